"""The extension itself on an app of its own: registration, configuration, missing hooks."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.sqla_oauth2 import OAuth2TokenMixin
from authlib.integrations.sqla_oauth2 import create_bearer_token_validator
from cryptography.fernet import Fernet
from flask import Flask
from flask import jsonify
from flask.typing import ResponseReturnValue
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from flask_ucloud_2fa import LoginCompleted
from flask_ucloud_2fa import Proof
from flask_ucloud_2fa import TwoFactor

from helpers import FakeClock
from helpers import add_id_login
from helpers import answer
from helpers import code_for
from helpers import connect
from helpers import counting
from helpers import settings_of
from helpers import two_factor_of
from helpers import wrong_code

#: One encryption key for every custom app of this module.
KEY = Fernet.generate_key().decode()

#: The integrator's own ``db``, models and token validator, apart from the example app's.
custom_db = SQLAlchemy()


class Account(custom_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)


class AccountToken(custom_db.Model, OAuth2TokenMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "account_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    user: Mapped[Account] = relationship()


class GrantToken(custom_db.Model):  # type: ignore[name-defined,misc]
    """A token model of another shape: the user id is text, in a column of another name."""

    __tablename__ = "grant_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))


@dataclass
class CustomApp:
    app: Flask
    two_factor: TwoFactor
    clock: FakeClock

    def add_account(self, name: str) -> tuple[int, dict[str, str]]:
        """A new account and the headers carrying a bearer token of it."""
        access_token = secrets.token_urlsafe(32)
        with self.app.app_context():
            account = Account(name=name)
            custom_db.session.add(account)
            custom_db.session.flush()
            custom_db.session.add(
                AccountToken(
                    user_id=account.id,
                    client_id="custom",
                    token_type="Bearer",
                    access_token=access_token,
                    scope="",
                    issued_at=int(time.time()),
                    expires_in=3600,
                )
            )
            custom_db.session.commit()
            return account.id, {"Authorization": f"Bearer {access_token}"}

    def count(self, model: Any) -> int:
        with self.app.app_context():
            total: int = custom_db.session.execute(
                select(func.count()).select_from(model)
            ).scalar_one()
            return total


MakeApp = Callable[..., CustomApp]


@pytest.fixture
def make_custom_app(tmp_path: Any) -> Iterator[MakeApp]:
    """Build a small integrator app on a SQLite file; hooks and config are up to the test."""
    apps: list[Flask] = []

    def make(
        config: dict[str, Any] | None = None,
        *,
        account_name_loader: bool = True,
        login_completed: bool = True,
        import_name: str = "custom_app",
    ) -> CustomApp:
        app = Flask(import_name)
        app.config.update(
            TESTING=True,
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/custom-{len(apps)}.sqlite",
            UCLOUD_2FA_ENCRYPTION_KEYS=[KEY],
            **(config or {}),
        )
        custom_db.init_app(app)
        apps.append(app)
        protector = ResourceProtector()
        protector.register_token_validator(
            create_bearer_token_validator(custom_db.session, AccountToken)()
        )
        clock = FakeClock()
        two_factor = TwoFactor(db=custom_db, resource_protector=protector, clock=clock)
        if account_name_loader:

            @two_factor.account_name_loader
            def account_name(token: AccountToken) -> str:
                return token.user.name

        add_id_login(app, two_factor, login_completed=login_completed)
        two_factor.init_app(app)
        with app.app_context():
            custom_db.create_all()
        return CustomApp(app, two_factor, clock)

    yield make
    for app in apps:
        with app.app_context():
            custom_db.session.remove()
            custom_db.engine.dispose()


def connect_custom(custom: CustomApp, headers: dict[str, str], prefix: str = "/auth/2fa") -> str:
    """Set up and confirm 2FA for the token's account; the secret. Moves the clock a step on."""
    return connect(custom.app.test_client(), headers, custom.clock, prefix)


# -- registration ------------------------------------------------------------------------------


def test_extension_is_stored_in_app_extensions(make_custom_app: MakeApp) -> None:
    custom = make_custom_app()
    assert two_factor_of(custom.app) is custom.two_factor


def test_app_passed_to_the_constructor_is_initialised(tmp_path: Any) -> None:
    app = Flask("constructed")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/constructed.sqlite"
    app.config["UCLOUD_2FA_ENCRYPTION_KEYS"] = [KEY]
    two_factor = TwoFactor(app, db=custom_db, resource_protector=ResourceProtector())

    assert two_factor_of(app) is two_factor
    assert "ucloud_2fa" in app.blueprints
    assert {rule.rule for rule in app.url_map.iter_rules()} >= {
        "/auth/2fa",
        "/auth/2fa/status",
        "/auth/2fa/challenge",
    }


@pytest.mark.parametrize("same_instance", [True, False], ids=["same-instance", "new-instance"])
def test_init_app_twice_on_one_app_is_refused(
    make_custom_app: MakeApp, same_instance: bool
) -> None:
    custom = make_custom_app()
    second = (
        custom.two_factor
        if same_instance
        else TwoFactor(db=custom_db, resource_protector=ResourceProtector())
    )

    with pytest.raises(
        RuntimeError,
        match=re.escape(
            "Flask-UCloud-2FA is already registered on this app. Call 'init_app' once per app,"
        ),
    ):
        second.init_app(custom.app)

    assert two_factor_of(custom.app) is custom.two_factor


def test_one_instance_serves_several_apps_with_their_own_settings(
    make_custom_app: MakeApp,
) -> None:
    first = make_custom_app()
    other = Flask("other")
    other.config.update(
        UCLOUD_2FA_URL_PREFIX="/mfa", UCLOUD_2FA_ISSUER="Other", UCLOUD_2FA_ENCRYPTION_KEYS=[KEY]
    )

    first.two_factor.init_app(other)

    assert two_factor_of(other) is first.two_factor
    assert settings_of(other).issuer == "Other"
    assert settings_of(other).url_prefix == "/mfa"
    assert settings_of(first.app).issuer == "custom_app"
    assert settings_of(first.app).url_prefix == "/auth/2fa"
    assert other.test_client().get("/mfa/status").status_code == 401
    assert first.app.test_client().get("/auth/2fa/status").status_code == 401


def test_hook_decorators_return_the_function(make_custom_app: MakeApp) -> None:
    two_factor = make_custom_app().two_factor

    def hook(value: Any) -> Any:
        return value

    assert two_factor.login_completed(hook) is hook
    assert two_factor.account_name_loader(hook) is hook
    assert two_factor.user_id_loader(hook) is hook
    assert two_factor.token_methods_loader(hook) is hook


# -- configuration -----------------------------------------------------------------------------


def test_config_defaults(make_custom_app: MakeApp) -> None:
    config = make_custom_app().app.config

    assert config["UCLOUD_2FA_ISSUER"] is None
    assert config["UCLOUD_2FA_URL_PREFIX"] == "/auth/2fa"
    assert config["UCLOUD_2FA_CHALLENGE_LIFETIME"] == 600
    assert config["UCLOUD_2FA_MAX_ATTEMPTS"] == 5


def test_issuer_defaults_to_the_app_name(make_custom_app: MakeApp) -> None:
    custom = make_custom_app(import_name="acme_auth")
    _, headers = custom.add_account("carol")

    response = custom.app.test_client().post("/auth/2fa", headers=headers)

    assert response.status_code == 200
    secret = response.json["secret"]
    assert response.json["otpAuthUri"] == (
        f"otpauth://totp/acme_auth:carol?secret={secret}&issuer=acme_auth"
        "&algorithm=SHA1&digits=6&period=30"
    )


def test_configured_issuer_is_used(make_custom_app: MakeApp) -> None:
    custom = make_custom_app({"UCLOUD_2FA_ISSUER": "Acme & Co"})
    _, headers = custom.add_account("carol")

    response = custom.app.test_client().post("/auth/2fa", headers=headers)

    assert response.json["otpAuthUri"].startswith("otpauth://totp/Acme%20%26%20Co:carol?")
    assert "&issuer=Acme%20%26%20Co&" in response.json["otpAuthUri"]


@pytest.mark.parametrize("issuer", ["Acme: Auth", ":", "Acme:"])
def test_issuer_with_a_colon_is_refused(make_custom_app: MakeApp, issuer: str) -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"UCLOUD_2FA_ISSUER {issuer!r} contains ':', which authenticator apps read as the"
            " end of the issuer. Choose a name without it."
        ),
    ):
        make_custom_app({"UCLOUD_2FA_ISSUER": issuer})


def test_app_name_with_a_colon_is_refused_as_issuer(make_custom_app: MakeApp) -> None:
    with pytest.raises(ValueError, match=re.escape("UCLOUD_2FA_ISSUER 'acme:auth' contains ':'")):
        make_custom_app(import_name="acme:auth")


def test_refused_config_leaves_the_app_unregistered(tmp_path: Any) -> None:
    app = Flask("refused")
    app.config["UCLOUD_2FA_ISSUER"] = "a:b"

    with pytest.raises(ValueError, match="contains ':'"):
        TwoFactor(app, db=custom_db, resource_protector=ResourceProtector())

    assert "ucloud_2fa" not in app.extensions
    assert "ucloud_2fa" not in app.blueprints


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("UCLOUD_2FA_CHALLENGE_LIFETIME", 0),
        ("UCLOUD_2FA_CHALLENGE_LIFETIME", -600),
        ("UCLOUD_2FA_MAX_ATTEMPTS", 0),
        ("UCLOUD_2FA_MAX_ATTEMPTS", -1),
        ("UCLOUD_2FA_BACKOFF_MAX", 0),
        ("UCLOUD_2FA_LOCKOUT_AFTER", 0),
        ("UCLOUD_2FA_RECOVERY_CODES", -1),
    ],
)
def test_non_positive_limits_are_refused(make_custom_app: MakeApp, key: str, value: int) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{key} must be positive, not {value}.")):
        make_custom_app({key: value})


#: The settings that hold a positive whole number.
NUMERIC_SETTINGS = [
    f"UCLOUD_2FA_{name}"
    for name in (
        "CHALLENGE_LIFETIME",
        "MAX_ATTEMPTS",
        "BACKOFF_AFTER",
        "BACKOFF_MAX",
        "LOCKOUT_AFTER",
        "LOCKOUT_DURATION",
        "RECOVERY_CODES",
        "LOGIN_ADDRESS_BUDGET",
        "LOGIN_ADDRESS_FORGIVE",
        "LOGIN_USER_BUDGET",
        "LOGIN_USER_FORGIVE",
    )
]


@pytest.mark.parametrize("value", ["abc", "5 attempts", None, 2.5j])
@pytest.mark.parametrize("key", NUMERIC_SETTINGS)
def test_non_numeric_limits_are_refused_by_name(
    make_custom_app: MakeApp, key: str, value: Any
) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"{key} must be a whole number, not {value!r}.")
    ):
        make_custom_app({key: value})


@pytest.mark.parametrize("prefix", ["mfa", "/mfa/", "/", "", "/m fa", "/mfa?x", "/<user>", None])
def test_a_url_prefix_that_cannot_work_is_refused_with_the_fix(
    make_custom_app: MakeApp, prefix: Any
) -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "UCLOUD_2FA_URL_PREFIX must be a path that starts with '/' and does not end with one,"
            f" like '/auth/2fa', not {prefix!r}."
        ),
    ):
        make_custom_app({"UCLOUD_2FA_URL_PREFIX": prefix})


def test_every_numeric_setting_is_checked(make_custom_app: MakeApp) -> None:
    config = make_custom_app().app.config
    numeric = {
        key
        for key, value in config.items()
        if key.startswith("UCLOUD_2FA_") and type(value) is int
    }
    # UCLOUD_2FA_REMEMBER_DAYS may be 0 (off): test_remember_browser.py checks it.
    assert numeric == {*NUMERIC_SETTINGS, "UCLOUD_2FA_REMEMBER_DAYS"}


def test_custom_url_prefix_serves_the_routes(make_custom_app: MakeApp) -> None:
    custom = make_custom_app({"UCLOUD_2FA_URL_PREFIX": "/mfa"})
    _, headers = custom.add_account("carol")
    client = custom.app.test_client()

    status = client.get("/mfa/status", headers=headers)
    assert status.status_code == 200
    assert status.json == {"connected": False}
    assert client.get("/auth/2fa/status", headers=headers).status_code == 404

    connect_custom(custom, headers, prefix="/mfa")

    assert client.get("/mfa/status", headers=headers).json == {"connected": True}


def test_custom_challenge_lifetime(make_custom_app: MakeApp) -> None:
    custom = make_custom_app({"UCLOUD_2FA_CHALLENGE_LIFETIME": 60})
    _, headers = custom.add_account("carol")
    client = custom.app.test_client()
    setup = client.post("/auth/2fa", headers=headers).json
    custom.clock.advance(61)

    response = answer(
        client, setup["challengeId"], code_for(setup["secret"], custom.clock), headers
    )

    assert response.status_code == 404
    assert response.json["errorCode"] == "CHALLENGE_NOT_FOUND"
    assert client.get("/auth/2fa/status", headers=headers).json == {"connected": False}


def test_custom_max_attempts(make_custom_app: MakeApp) -> None:
    custom = make_custom_app({"UCLOUD_2FA_MAX_ATTEMPTS": 2})
    _, headers = custom.add_account("carol")
    client = custom.app.test_client()
    setup = client.post("/auth/2fa", headers=headers).json
    wrong = wrong_code(setup["secret"], custom.clock)

    for remaining in (1, 0):
        response = answer(client, setup["challengeId"], wrong, headers)
        assert response.status_code == 403
        assert response.json["remainingAttempts"] == remaining
    assert custom.count(custom.two_factor.models.Challenge) == 0
    right = code_for(setup["secret"], custom.clock)
    assert answer(client, setup["challengeId"], right, headers).status_code == 404


# -- hooks the integrator forgot ---------------------------------------------------------------


def test_missing_account_name_loader_fails_at_setup(make_custom_app: MakeApp) -> None:
    custom = make_custom_app(account_name_loader=False)
    _, headers = custom.add_account("carol")
    client = custom.app.test_client()

    with pytest.raises(RuntimeError, match=re.escape("'@two_factor.account_name_loader'")):
        client.post("/auth/2fa", headers=headers)

    assert custom.count(custom.two_factor.models.Credential) == 0
    assert custom.count(custom.two_factor.models.Challenge) == 0
    # Routes that need no account name work without the loader.
    assert client.get("/auth/2fa/status", headers=headers).json == {"connected": False}


def test_missing_account_name_loader_is_not_needed_before_a_token(
    make_custom_app: MakeApp,
) -> None:
    custom = make_custom_app(account_name_loader=False)

    response = custom.app.test_client().post("/auth/2fa")

    assert response.status_code == 401


def test_missing_login_completed_hook_fails_at_login_without_2fa(
    make_custom_app: MakeApp,
) -> None:
    custom = make_custom_app(login_completed=False)
    user_id, _ = custom.add_account("carol")

    with pytest.raises(RuntimeError, match=re.escape("'@two_factor.login_completed'")):
        custom.app.test_client().post("/login", json={"user_id": user_id})


def test_missing_login_completed_hook_fails_at_the_login_challenge(
    make_custom_app: MakeApp,
) -> None:
    custom = make_custom_app(login_completed=False)
    user_id, headers = custom.add_account("carol")
    secret = connect_custom(custom, headers)
    client = custom.app.test_client()
    login = client.post("/login", json={"user_id": user_id})
    assert login.status_code == 200
    challenge_id = login.json["2fa"]

    with pytest.raises(RuntimeError, match=re.escape("'@two_factor.login_completed'")):
        client.post(
            "/auth/2fa/challenge",
            json={"challengeId": challenge_id, "verificationCode": code_for(secret, custom.clock)},
        )

    # Nothing was spent: once the hook exists, the same code finishes the same challenge.
    assert custom.count(custom.two_factor.models.Challenge) == 1

    @custom.two_factor.login_completed
    def finish(completed: LoginCompleted) -> ResponseReturnValue:
        return jsonify({"user": completed.user_id, "amr": completed.methods})

    response = client.post(
        "/auth/2fa/challenge",
        json={"challengeId": challenge_id, "verificationCode": code_for(secret, custom.clock)},
    )
    assert response.status_code == 200
    assert response.json == {"user": str(user_id), "amr": ["pwd", "otp"]}


def test_login_step_on_a_custom_app(make_custom_app: MakeApp) -> None:
    custom = make_custom_app()
    user_id, headers = custom.add_account("carol")
    client = custom.app.test_client()

    assert client.post("/login", json={"user_id": user_id}).json == {
        "user": str(user_id),
        "amr": ["pwd"],
    }
    secret = connect_custom(custom, headers)
    login = client.post("/login", json={"user_id": user_id}).json
    assert set(login) == {"2fa"}
    response = client.post(
        "/auth/2fa/challenge",
        json={"challengeId": login["2fa"], "verificationCode": code_for(secret, custom.clock)},
    )
    assert response.status_code == 200
    assert response.json == {"user": str(user_id), "amr": ["pwd", "otp"]}


def test_the_shipped_challenge_page_serves_apps_that_do_not_override_it(
    make_custom_app: MakeApp,
) -> None:
    custom = make_custom_app()
    page = custom.app.test_client().get("/auth/2fa?challengeId=unknown")
    html = page.get_data(as_text=True)
    assert page.status_code == 404
    assert "<title>Two-factor authentication</title>" in html
    assert "This login has expired or was already used." in html
    assert 'href="/" id="back-to-login"' in html


# -- the 2FA state with the token -------------------------------------------------------------


def test_status_without_load_with_token_asks_the_database(make_custom_app: MakeApp) -> None:
    custom = make_custom_app()
    _, headers = custom.add_account("dave")
    client = custom.app.test_client()
    with custom.app.app_context():
        engine = custom_db.engine
    assert client.get("/auth/2fa/status", headers=headers).json == {"connected": False}
    connect_custom(custom, headers)
    with counting(engine) as statements:
        assert client.get("/auth/2fa/status", headers=headers).json == {"connected": True}
    # AccountToken does not carry the state: the token lookup, then one SELECT.
    assert len(statements) == 2, statements
    assert "FROM account_token" in statements[0]
    assert "ucloud_2fa_credential" not in statements[0]
    assert "FROM ucloud_2fa_credential" in statements[1]


def test_load_with_token_takes_the_user_id_column(make_custom_app: MakeApp) -> None:
    custom = make_custom_app()
    account_id, headers = custom.add_account("erin")
    pending_id, pending_headers = custom.add_account("frank")
    connect_custom(custom, headers)
    assert custom.app.test_client().post("/auth/2fa", headers=pending_headers).status_code == 200
    custom.two_factor.load_with_token(GrantToken, GrantToken.owner)
    with custom.app.app_context():
        custom_db.session.add_all(
            GrantToken(owner=owner) for owner in (str(account_id), str(pending_id), "nobody")
        )
        custom_db.session.commit()
        custom_db.session.expunge_all()
        with counting(custom_db.engine) as statements:
            tokens = custom_db.session.execute(select(GrantToken).order_by(GrantToken.id))
            states = [custom.two_factor.is_connected(token=token) for token in tokens.scalars()]
    assert states == [True, False, False]
    assert len(statements) == 1, statements


def test_load_with_token_needs_the_user_id_column(make_custom_app: MakeApp) -> None:
    custom = make_custom_app()
    with pytest.raises(RuntimeError, match="Account has no 'user_id' column: pass the column"):
        custom.two_factor.load_with_token(Account)


# -- routing errors under the prefix ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "error_code"),
    [
        ("GET", "/auth/2fa/challenge", 405, "METHOD_NOT_ALLOWED"),
        ("PUT", "/auth/2fa/status", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/auth/2fa/no-such-route", 404, "NOT_FOUND"),
    ],
)
def test_routing_errors_under_the_prefix_are_json(
    make_custom_app: MakeApp, method: str, path: str, status: int, error_code: str
) -> None:
    response = make_custom_app().app.test_client().open(path, method=method)
    assert response.status_code == status
    assert response.is_json
    assert response.json["statusCode"] == status
    assert response.json["errorCode"] == error_code
    if status == 405:
        allowed = {method.strip() for method in response.headers["Allow"].split(",")}
        assert allowed >= ({"POST"} if path.endswith("challenge") else {"GET"})


def test_routing_errors_elsewhere_keep_the_apps_own_handlers(tmp_path: Any) -> None:
    app = Flask("own_handlers")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/own.sqlite"
    app.config["UCLOUD_2FA_ENCRYPTION_KEYS"] = [KEY]

    @app.errorhandler(404)
    def not_found(_error: Exception) -> ResponseReturnValue:
        return "the app's own page", 404

    @app.post("/submit")
    def submit() -> ResponseReturnValue:
        return "ok"

    TwoFactor(app, db=custom_db, resource_protector=ResourceProtector())
    client = app.test_client()

    mine = client.get("/no-such-page")
    assert (mine.status_code, mine.get_data(as_text=True)) == (404, "the app's own page")
    flasks = client.get("/submit")  # no 405 handler of the app's: Flask's page
    assert flasks.status_code == 405
    assert flasks.content_type.startswith("text/html")
    ours = client.get("/auth/2fa/no-such-route")
    assert ours.status_code == 404
    assert ours.json["errorCode"] == "NOT_FOUND"


# -- an app the extension was never registered on ---------------------------------------------

NOT_REGISTERED = (
    "Flask-UCloud-2FA is not registered on the current app. Call 'two_factor.init_app(app)' in"
    " your app factory, or pass the app to 'TwoFactor(app, ...)'."
)
PROOF = Proof(code="123456")


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda two_factor: two_factor.login(1), id="login"),
        pytest.param(lambda two_factor: two_factor.start_setup(1, "carol"), id="start_setup"),
        pytest.param(
            lambda two_factor: two_factor.confirm_setup("x", PROOF, user_id=1), id="confirm_setup"
        ),
        pytest.param(lambda two_factor: two_factor.answer_login("x", PROOF), id="answer_login"),
        pytest.param(
            lambda two_factor: two_factor.answer_challenge("x", PROOF), id="answer_challenge"
        ),
        pytest.param(
            lambda two_factor: two_factor.regenerate_recovery_codes(1, PROOF),
            id="regenerate_recovery_codes",
        ),
        pytest.param(lambda two_factor: two_factor.disable(1, PROOF), id="disable"),
        pytest.param(lambda two_factor: two_factor.is_connected(1), id="is_connected"),
        pytest.param(lambda two_factor: two_factor.status(1), id="status"),
        pytest.param(lambda two_factor: two_factor.reset(1), id="reset"),
        pytest.param(lambda two_factor: two_factor.rotate_keys(), id="rotate_keys"),
    ],
)
def test_facade_on_an_app_without_init_app_names_init_app(
    tmp_path: Any, use: Callable[[TwoFactor], Any]
) -> None:
    app = Flask("uninitialised")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/uninitialised.sqlite"
    db = SQLAlchemy(app)
    two_factor = TwoFactor(db=db, resource_protector=ResourceProtector())

    with app.test_request_context(), pytest.raises(RuntimeError, match=re.escape(NOT_REGISTERED)):
        use(two_factor)

    with app.app_context():
        db.engine.dispose()
