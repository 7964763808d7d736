"""Step-up for resource servers: ``second_factor_required`` refuses a token whose login did not
use the second factor of a user who has one (RFC 9470 ``insufficient_user_authentication``)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

import pytest
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.flask_oauth2 import current_token
from authlib.integrations.sqla_oauth2 import OAuth2TokenMixin
from authlib.integrations.sqla_oauth2 import create_bearer_token_validator
from cryptography.fernet import Fernet
from flask import Flask
from flask import jsonify
from flask import request
from flask.testing import FlaskClient
from flask.typing import ResponseReturnValue
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from flask_ucloud_2fa import InsufficientUserAuthentication
from flask_ucloud_2fa import LoginCompleted
from flask_ucloud_2fa import TwoFactor

from helpers import FakeClock
from helpers import bearer
from helpers import begin_login
from helpers import code_for
from helpers import connect
from helpers import new_codes
from integrator import Integrator

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser

RFC_9470_ERROR = 'error="insufficient_user_authentication"'
INSUFFICIENT = {
    "statusCode": 401,
    "why": InsufficientUserAuthentication.why,
    "errorCode": "INSUFFICIENT_USER_AUTHENTICATION",
}


# -- the integrator app: GET /api/me/security -----------------------------------------------------


def security(client: FlaskClient, headers: dict[str, str]) -> Any:
    return client.get("/api/me/security", headers=headers)


def assert_insufficient(response: Any) -> None:
    assert response.status_code == 401
    assert response.json == INSUFFICIENT
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert RFC_9470_ERROR in challenge


def login_with_second_factor(
    client: FlaskClient, user: TestUser, proof: dict[str, str]
) -> dict[str, Any]:
    """Log in with the password, then answer the login challenge with ``proof``; the tokens."""
    challenge_id = begin_login(client, user)
    response = client.post("/auth/2fa/challenge", json={"challengeId": challenge_id, **proof})
    assert response.status_code == 200, response.json
    tokens: dict[str, Any] = response.json
    return tokens


def test_user_without_2fa_passes_with_a_password_token(
    client: FlaskClient, user: TestUser
) -> None:
    response = security(client, user.headers)

    assert response.status_code == 200, response.json
    assert response.json == {"username": user.username, "secondFactor": False}


def test_pending_setup_does_not_require_the_second_factor(
    client: FlaskClient, user: TestUser
) -> None:
    assert client.post("/auth/2fa", headers=user.headers).status_code == 200

    response = security(client, user.headers)

    assert response.status_code == 200, response.json
    assert response.json == {"username": user.username, "secondFactor": False}


def test_password_token_issued_before_2fa_was_connected_is_refused(
    client: FlaskClient, password_token_user: tuple[TestUser, str]
) -> None:
    user, _ = password_token_user

    assert_insufficient(security(client, user.headers))
    # Resources that do not ask for the second factor still accept the token.
    me = client.get("/api/me", headers=user.headers)
    assert me.status_code == 200
    assert me.json["amr"] == ["pwd"]


def test_token_from_a_login_through_the_challenge_passes(
    client: FlaskClient, password_token_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = password_token_user

    tokens = login_with_second_factor(client, user, {"verificationCode": code_for(secret, clock)})

    response = security(client, bearer(tokens["accessToken"]))
    assert response.status_code == 200, response.json
    assert response.json == {"username": user.username, "secondFactor": True}
    me = client.get("/api/me", headers=bearer(tokens["accessToken"])).json
    assert me["amr"] == ["pwd", "otp"]
    assert me["authTime"] == int(clock.now)
    # The earlier password-only token is not upgraded by the new login.
    assert_insufficient(security(client, user.headers))


def test_token_from_a_recovery_code_login_passes(
    client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    codes = new_codes(client, user.headers, secret, clock)

    tokens = login_with_second_factor(client, user, {"recoveryCode": codes[0]})

    response = security(client, bearer(tokens["accessToken"]))
    assert response.status_code == 200, response.json
    assert response.json["secondFactor"] is True


def test_password_token_passes_again_once_2fa_is_disabled(
    client: FlaskClient, password_token_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = password_token_user
    assert_insufficient(security(client, user.headers))
    tokens = login_with_second_factor(client, user, {"verificationCode": code_for(secret, clock)})
    clock.advance(30)

    disabled = client.post(
        "/auth/2fa/disable",
        headers=bearer(tokens["accessToken"]),
        json={"verificationCode": code_for(secret, clock)},
    )
    assert disabled.status_code == 200, disabled.json

    response = security(client, user.headers)
    assert response.status_code == 200, response.json
    assert response.json["secondFactor"] is False


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("not-a-token")],
    ids=["no-token", "unknown-token"],
)
def test_missing_or_invalid_token_is_refused_by_the_resource_protector(
    client: FlaskClient, user: TestUser, headers: dict[str, str]
) -> None:
    response = security(client, headers)

    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.lower().startswith("bearer ")  # Authlib's own header, in lower case
    assert RFC_9470_ERROR not in challenge


# -- the decorator and the hook on an app of their own ----------------------------------------

#: The integrator's own ``db``: its tokens keep the login's methods as ``login_methods``
#: ("pwd,otp"), not in an ``amr`` attribute.
step_db = SQLAlchemy()
KEY = Fernet.generate_key().decode()


class Member(step_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "member"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)


class MemberToken(step_db.Model, OAuth2TokenMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "member_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    user: Mapped[Member] = relationship()
    login_methods: Mapped[str] = mapped_column(String(64), default="pwd")


def add_token(member_id: int, methods: str) -> str:
    """Store a token of a login with ``methods`` on the current session; its access token."""
    access_token = secrets.token_urlsafe(32)
    step_db.session.add(
        MemberToken(
            user_id=member_id,
            client_id="step-up",
            token_type="Bearer",
            access_token=access_token,
            scope="",
            issued_at=int(time.time()),
            expires_in=3600,
            login_methods=methods,
        )
    )
    step_db.session.commit()
    return access_token


@dataclass
class StepUpApp:
    app: Flask
    two_factor: TwoFactor
    clock: FakeClock

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def add_member(self, name: str, methods: str = "pwd") -> tuple[int, dict[str, str]]:
        """A new member and the headers carrying a token of a login with ``methods``."""
        with self.app.app_context():
            member = Member(name=name)
            step_db.session.add(member)
            step_db.session.commit()
            member_id = member.id
        return member_id, bearer(self.issue_token(member_id, methods))

    def issue_token(self, member_id: int, methods: str) -> str:
        with self.app.app_context():
            return add_token(member_id, methods)

    def connect(self, headers: dict[str, str]) -> str:
        """Set up and confirm 2FA for the token's member; the secret."""
        return connect(self.client, headers, self.clock)


@pytest.fixture
def step_up_app(tmp_path: Any) -> Iterator[StepUpApp]:
    """An integrator app with protected routes; the test registers ``token_methods_loader``."""
    app = Flask("step_up_app")
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/step-up.sqlite",
        UCLOUD_2FA_ENCRYPTION_KEYS=[KEY],
    )
    step_db.init_app(app)
    protector = ResourceProtector()
    protector.register_token_validator(
        create_bearer_token_validator(step_db.session, MemberToken)()
    )
    clock = FakeClock()
    two_factor = TwoFactor(db=step_db, resource_protector=protector, clock=clock)
    custom = StepUpApp(app, two_factor, clock)

    @two_factor.account_name_loader
    def account_name(token: MemberToken) -> str:
        return token.user.name

    @two_factor.login_completed
    def finish(login: LoginCompleted) -> ResponseReturnValue:
        # Inside the transaction that spends the challenge: on the same session, no new context.
        return jsonify({"token": add_token(int(login.user_id), ",".join(login.methods))})

    @app.post("/login")
    def login() -> ResponseReturnValue:
        return two_factor.login(request.get_json()["member_id"])

    @app.get("/secure")
    @protector()
    @two_factor.second_factor_required
    def secure() -> ResponseReturnValue:
        return jsonify({"member": current_token.user.name})

    @app.get("/checked")
    @protector()
    def checked() -> ResponseReturnValue:
        # The validator form, for views that decide themselves when to ask for the 2nd factor.
        two_factor.check_second_factor(current_token)
        return jsonify({"member": current_token.user.name})

    @app.get("/unprotected")
    @two_factor.second_factor_required
    def unprotected() -> ResponseReturnValue:
        return jsonify({"reached": True})

    two_factor.init_app(app)
    with app.app_context():
        step_db.create_all()
    yield custom
    with app.app_context():
        step_db.session.remove()
        step_db.engine.dispose()


def register_comma_loader(custom: StepUpApp) -> list[tuple[bool, str]]:
    """Register a ``token_methods_loader`` reading ``login_methods``; what it was given: whether
    a validated token, and its ``login_methods``."""
    seen: list[tuple[bool, str]] = []

    def methods(token: MemberToken) -> list[str]:
        seen.append((isinstance(token, MemberToken), token.login_methods))
        return token.login_methods.split(",")

    assert custom.two_factor.token_methods_loader(methods) is methods
    return seen


NO_TOKEN = (
    "'second_factor_required' found no validated token: put it below the resource protector's"
    " decorator, as in @require_oauth() then @second_factor_required."
)
NO_AMR = (
    "The bearer token has no 'amr' attribute. Register a function that returns it from a"
    " validated token with '@two_factor.token_methods_loader'."
)


@pytest.mark.parametrize(
    ("path", "methods_loader", "authorization", "message"),
    [
        pytest.param("/unprotected", True, False, NO_TOKEN, id="no-protector-no-header"),
        pytest.param("/unprotected", True, True, NO_TOKEN, id="no-protector-valid-token"),
        pytest.param("/secure", False, True, NO_AMR, id="no-amr-no-methods-loader"),
    ],
)
def test_a_misuse_names_its_fix(
    step_up_app: StepUpApp, path: str, methods_loader: bool, authorization: bool, message: str
) -> None:
    if methods_loader:
        register_comma_loader(step_up_app)
    _, headers = step_up_app.add_member("carol")

    with pytest.raises(RuntimeError, match=re.escape(message)):
        step_up_app.client.get(path, headers=headers if authorization else {})


@pytest.mark.parametrize("path", ["/secure", "/checked"])
def test_token_methods_loader_decides_what_the_login_used(
    step_up_app: StepUpApp, path: str
) -> None:
    seen = register_comma_loader(step_up_app)
    member_id, password_only = step_up_app.add_member("carol")
    step_up_app.connect(password_only)
    with_otp = bearer(step_up_app.issue_token(member_id, "pwd,otp"))
    client = step_up_app.client

    refused = client.get(path, headers=password_only)
    passed = client.get(path, headers=with_otp)

    assert refused.status_code == 401
    assert refused.json == INSUFFICIENT
    assert RFC_9470_ERROR in refused.headers["WWW-Authenticate"]
    assert passed.status_code == 200, passed.json
    assert passed.json == {"member": "carol"}
    assert seen == [(True, "pwd"), (True, "pwd,otp")]


@pytest.mark.parametrize(
    "loaded",
    [lambda methods: methods.replace(",", " "), lambda methods: methods.split(",")],
    ids=["space-separated-string", "list"],
)
def test_token_methods_loader_may_return_a_string_or_a_list(
    step_up_app: StepUpApp, loaded: Callable[[str], Any]
) -> None:
    step_up_app.two_factor.token_methods_loader(lambda token: loaded(token.login_methods))
    member_id, password_only = step_up_app.add_member("carol")
    step_up_app.connect(password_only)

    client = step_up_app.client
    assert client.get("/secure", headers=password_only).status_code == 401
    with_otp = bearer(step_up_app.issue_token(member_id, "pwd,otp"))
    assert client.get("/secure", headers=with_otp).status_code == 200


def test_login_through_the_challenge_on_a_custom_app_gives_a_token_that_passes(
    step_up_app: StepUpApp,
) -> None:
    register_comma_loader(step_up_app)
    member_id, password_only = step_up_app.add_member("carol")
    secret = step_up_app.connect(password_only)
    client = step_up_app.client
    login = client.post("/login", json={"member_id": member_id})
    assert login.status_code == 200, login.json

    answered = client.post(
        "/auth/2fa/challenge",
        json={
            "challengeId": login.json["2fa"],
            "verificationCode": code_for(secret, step_up_app.clock),
        },
    )

    assert answered.status_code == 200, answered.json
    response = client.get("/secure", headers=bearer(answered.json["token"]))
    assert response.status_code == 200, response.json


def test_token_methods_loader_on_the_integrator_app(
    integrator: Integrator, client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user
    trusted: list[str] = []

    @integrator.two_factor.token_methods_loader
    def methods(token: Any) -> list[str]:
        trusted.append(token.access_token)
        return ["pwd", "otp"]  # say, the integrator trusts its own device binding

    response = security(client, user.headers)

    assert response.status_code == 200, response.json
    assert trusted == [user.token]
