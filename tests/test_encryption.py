"""Secrets at rest: encrypted under configured keys, rotatable, never in logs or reprs."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING
from typing import Any

import pytest
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc6750 import InvalidTokenError
from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from flask import Flask
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select
from sqlalchemy import update

from flask_ucloud_2fa import CreatedCredentials
from flask_ucloud_2fa import Proof
from flask_ucloud_2fa import TwoFactor
from flask_ucloud_2fa import UnreadableSecret

from helpers import TOKEN_KEYS
from helpers import FakeClock
from helpers import add_id_login
from helpers import add_user
from helpers import answer
from helpers import answer_with_recovery_code
from helpers import bearer
from helpers import begin_login
from helpers import cli
from helpers import code_for
from helpers import connect
from helpers import connect_and_step_up
from helpers import db_of
from helpers import decrypt_secret
from helpers import new_codes
from helpers import secret_box
from helpers import settings_of
from helpers import step_up
from helpers import two_factor_of

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()

MakeApp = Callable[..., Flask]


# -- helpers -----------------------------------------------------------------------------------


def unlikely_wrong_code(secret: str, clock: FakeClock) -> str:
    """A random wrong code: unlike ``000000``, not a piece of every logged timestamp."""
    valid = {code_for(secret, clock, offset) for offset in (-1, 0, 1)} | {"000000"}
    while (code := f"{secrets.randbelow(1_000_000):06d}") in valid:
        pass
    return code


def stored_secrets(app: Flask) -> dict[Any, str]:
    """The encrypted secret of every credential row, by user id."""
    credential = two_factor_of(app).models.Credential
    with app.app_context():
        return {
            row.user_id: row.encrypted_secret
            for row in db_of(app).session.execute(
                select(credential.user_id, credential.encrypted_secret)
            )
        }


def keyed(make_app: MakeApp, *keys: str) -> Flask:
    """An app (another process, say) with ``UCLOUD_2FA_ENCRYPTION_KEYS`` set to ``keys``."""
    return make_app({"UCLOUD_2FA_ENCRYPTION_KEYS": list(keys)})


def connect_on(app: Flask, user: TestUser, clock: FakeClock) -> str:
    """Connect 2FA for ``user`` on ``app``, and step the user's token up; the secret."""
    return connect_and_step_up(app.test_client(), user, clock)


def log_in_with_totp(app: Flask, user: TestUser, secret: str, clock: FakeClock) -> Any:
    """A whole login with password and TOTP code; the challenge answer. Moves the clock on."""
    client = app.test_client()
    response = answer(client, begin_login(client, user), code_for(secret, clock))
    clock.advance(30)
    return response


# -- the stored secret -------------------------------------------------------------------------


def test_stored_secret_is_encrypted(app: Flask, connected_user: tuple[TestUser, str]) -> None:
    user, secret = connected_user

    encrypted = stored_secrets(app)[user.id]

    assert encrypted != secret
    assert secret not in encrypted
    assert secret.lower() not in encrypted
    with app.app_context():
        assert decrypt_secret(app, encrypted) == secret
    # A Fernet token under the first configured key.
    key = app.config["UCLOUD_2FA_ENCRYPTION_KEYS"][0]
    assert Fernet(key).decrypt(encrypted.encode()).decode() == secret


def test_pending_secret_is_encrypted_and_replaced_by_a_new_setup(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    first = client.post("/auth/2fa", headers=user.headers).json
    first_stored = stored_secrets(app)[user.id]
    second = client.post("/auth/2fa", headers=user.headers).json
    second_stored = stored_secrets(app)[user.id]

    assert first["secret"] not in first_stored
    assert second["secret"] not in second_stored
    assert first_stored != second_stored
    with app.app_context():
        assert decrypt_secret(app, first_stored) == first["secret"]
        assert decrypt_secret(app, second_stored) == second["secret"]


def test_same_secret_encrypts_differently_each_time(app: Flask) -> None:
    box = secret_box(app)
    once, twice = box.encrypt("JBSWY3DPEHPK3PXP"), box.encrypt("JBSWY3DPEHPK3PXP")

    assert once != twice
    assert box.decrypt(once) == box.decrypt(twice) == "JBSWY3DPEHPK3PXP"


# -- key rotation ------------------------------------------------------------------------------


def test_key_rotation(make_app: MakeApp, clock: FakeClock) -> None:
    old = keyed(make_app, KEY_A)
    account = add_user(old)
    secret = connect_on(old, account, clock)
    assert Fernet(KEY_A).decrypt(stored_secrets(old)[account.id].encode()).decode() == secret

    # A new key first, the old one after it: secrets under the old key still work.
    both = keyed(make_app, KEY_B, KEY_A)
    answered = log_in_with_totp(both, account, secret, clock)
    assert answered.status_code == 200, answered.json
    assert set(answered.json) == TOKEN_KEYS

    rotated = cli(both, "rotate-keys")

    assert rotated.exit_code == 0, rotated.output
    assert rotated.output == "Re-encrypted 1 secret(s) under the newest key.\n"
    assert secret not in rotated.output
    encrypted = stored_secrets(both)[account.id]
    assert Fernet(KEY_B).decrypt(encrypted.encode()).decode() == secret
    with pytest.raises(InvalidToken):
        Fernet(KEY_A).decrypt(encrypted.encode())

    # The old key can now go.
    new = keyed(make_app, KEY_B)
    answered = log_in_with_totp(new, account, secret, clock)
    assert answered.status_code == 200, answered.json
    assert set(answered.json) == TOKEN_KEYS

    # A worker still configured with the old key alone cannot read the secret any more.
    stale = keyed(make_app, KEY_A)
    client = stale.test_client()
    challenge_id = begin_login(client, account)
    with pytest.raises(UnreadableSecret, match="cannot be decrypted with any key of UCLOUD_2FA"):
        client.post(
            "/auth/2fa/challenge",
            json={"challengeId": challenge_id, "verificationCode": code_for(secret, clock)},
        )
    assert stored_secrets(new)[account.id] == encrypted


def test_rotation_counts_every_credential(make_app: MakeApp, clock: FakeClock) -> None:
    old = keyed(make_app, KEY_A)
    connected = [add_user(old) for _ in range(2)]
    secrets_ = [connect_on(old, account, clock) for account in connected]
    pending = add_user(old)
    pending_secret = old.test_client().post("/auth/2fa", headers=pending.headers).json["secret"]
    both = keyed(make_app, KEY_B, KEY_A)

    first = cli(both, "rotate-keys")
    again = cli(both, "rotate-keys")

    assert first.output == "Re-encrypted 3 secret(s) under the newest key.\n"
    assert again.output == "Re-encrypted 3 secret(s) under the newest key.\n"
    stored = stored_secrets(both)
    expected = {account.id: secret for account, secret in zip(connected, secrets_, strict=True)}
    expected[pending.id] = pending_secret
    assert {
        user_id: Fernet(KEY_B).decrypt(token.encode()).decode()
        for user_id, token in stored.items()
    } == expected


def test_rotation_without_credentials(make_app: MakeApp) -> None:
    app = keyed(make_app, KEY_B, KEY_A)

    result = cli(app, "rotate-keys")

    assert result.exit_code == 0, result.output
    assert result.output == "Re-encrypted 0 secret(s) under the newest key.\n"


def test_rotation_with_an_unreadable_secret_changes_nothing(
    make_app: MakeApp, clock: FakeClock
) -> None:
    old = keyed(make_app, KEY_A)
    readable, unreadable = add_user(old), add_user(old)
    connect_on(old, readable, clock)
    connect_on(old, unreadable, clock)
    credential = two_factor_of(old).models.Credential
    foreign = Fernet(Fernet.generate_key()).encrypt(b"JBSWY3DPEHPK3PXP").decode()
    with old.app_context():
        db_of(old).session.execute(
            update(credential)
            .where(credential.user_id == unreadable.id)
            .values(encrypted_secret=foreign)
        )
        db_of(old).session.commit()
    before = stored_secrets(old)
    both = keyed(make_app, KEY_B, KEY_A)

    result = cli(both, "rotate-keys")

    assert result.exit_code == 1
    assert "Error: A stored TOTP secret cannot be decrypted with any key" in result.output
    assert stored_secrets(both) == before


def test_recovery_codes_across_a_key_rotation(make_app: MakeApp, clock: FakeClock) -> None:
    """Recovery codes are keyed hashes under the configured keys: old codes work while the old
    key is configured, and codes made under the new key work once the old key is gone (as
    the README says: keep an old key until users have regenerated their codes)."""
    old = keyed(make_app, KEY_A)
    account = add_user(old)
    secret = connect_on(old, account, clock)
    old_codes = new_codes(old.test_client(), account.headers, secret, clock)
    both = keyed(make_app, KEY_B, KEY_A)
    assert cli(both, "rotate-keys").exit_code == 0

    def log_in_with_recovery_code(app: Flask, code: str) -> Any:
        client = app.test_client()
        return answer_with_recovery_code(client, begin_login(client, account), code)

    assert log_in_with_recovery_code(both, old_codes[0]).status_code == 200
    regenerated = (
        both.test_client()
        .post(
            "/auth/2fa/recovery-codes",
            headers=account.headers,
            json={"recoveryCode": old_codes[1]},
        )
        .json["recoveryCodes"]
    )
    new = keyed(make_app, KEY_B)
    assert log_in_with_recovery_code(new, regenerated[0]).status_code == 200


def test_keys_as_a_comma_separated_string(make_app: MakeApp, clock: FakeClock) -> None:
    old = keyed(make_app, KEY_A)
    account = add_user(old)
    secret = connect_on(old, account, clock)

    app = make_app({"UCLOUD_2FA_ENCRYPTION_KEYS": f" {KEY_B} , {KEY_A},"})

    # The second key decrypts...
    answered = log_in_with_totp(app, account, secret, clock)
    assert answered.status_code == 200, answered.json
    # ...and the first encrypts.
    other = add_user(app)
    other_secret = connect_on(app, other, clock)
    stored = stored_secrets(app)[other.id]
    assert Fernet(KEY_B).decrypt(stored.encode()).decode() == other_secret


# -- configuration of the keys, on an integrator's own app ------------------------------------

#: A small integrator app of this module, apart from the example app.
fallback_db = SQLAlchemy()


class NameTokenValidator(BearerTokenValidator):  # type: ignore[misc]
    """Accepts ``Bearer <name>`` for the names it knows: enough for the extension's routes."""

    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def authenticate_token(self, token_string: str) -> Any:
        if token_string in self.names:
            return SimpleNamespace(user_id=token_string, name=token_string)
        return None

    def validate_token(self, token: Any, scopes: Any, request: Any) -> None:
        if token is None:
            raise InvalidTokenError()


@dataclass
class SmallApp:
    app: Flask
    clock: FakeClock

    def connect(self, name: str) -> str:
        return connect(self.app.test_client(), bearer(name), self.clock)

    def log_in(self, name: str, secret: str) -> Any:
        client = self.app.test_client()
        challenge_id = client.post("/login", json={"user_id": name}).json["2fa"]
        response = answer(client, challenge_id, code_for(secret, self.clock))
        self.clock.advance(30)
        return response


MakeSmallApp = Callable[..., SmallApp]


@pytest.fixture
def make_small_app(tmp_path: Any) -> Iterator[MakeSmallApp]:
    """Build an integrator app on one SQLite file, with the config the test gives."""
    apps: list[Flask] = []
    clock = FakeClock()

    def make(**config: Any) -> SmallApp:
        app = Flask("small_app")
        app.config.update(
            TESTING=True, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/small.sqlite", **config
        )
        fallback_db.init_app(app)
        apps.append(app)
        protector = ResourceProtector()
        protector.register_token_validator(NameTokenValidator({"carol", "dave"}))
        two_factor = TwoFactor(db=fallback_db, resource_protector=protector, clock=clock)

        @two_factor.account_name_loader
        def account_name(token: Any) -> str:
            name: str = token.name
            return name

        add_id_login(app, two_factor)
        two_factor.init_app(app)
        with app.app_context():
            fallback_db.create_all()
        return SmallApp(app, clock)

    yield make
    for app in apps:
        with app.app_context():
            fallback_db.session.remove()
            fallback_db.engine.dispose()


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "flask_ucloud_2fa"
        and record.levelno == logging.WARNING
        and "UCLOUD_2FA_ENCRYPTION_KEYS is not set" in record.getMessage()
    ]


def test_key_derived_from_secret_key_with_a_warning(
    make_small_app: MakeSmallApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_ucloud_2fa")

    small = make_small_app(SECRET_KEY="a secret key of the app")

    [warning] = fallback_warnings(caplog)
    assert "SECRET_KEY" in warning.getMessage()
    assert "a secret key of the app" not in warning.getMessage()
    secret = small.connect("carol")
    with small.app.app_context():
        encrypted = fallback_db.session.execute(
            select(two_factor_of(small.app).models.Credential.encrypted_secret)
        ).scalar_one()
    assert secret not in encrypted
    answered = small.log_in("carol", secret)
    assert answered.status_code == 200
    assert answered.json == {"user": "carol", "amr": ["pwd", "otp"]}
    # The derived key is the same after a restart with the same SECRET_KEY...
    restarted = make_small_app(SECRET_KEY="a secret key of the app")
    assert restarted.log_in("carol", secret).status_code == 200
    # ...and another SECRET_KEY cannot read the secret: what the warning is about.
    changed = make_small_app(SECRET_KEY="another secret key")
    with pytest.raises(UnreadableSecret, match="or SECRET_KEY changed"):
        changed.log_in("carol", secret)


def test_configured_keys_give_no_warning(
    make_small_app: MakeSmallApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_ucloud_2fa")

    small = make_small_app(SECRET_KEY="a secret key", UCLOUD_2FA_ENCRYPTION_KEYS=[KEY_A])

    assert fallback_warnings(caplog) == []
    secret = small.connect("carol")
    assert small.log_in("carol", secret).status_code == 200


def test_no_key_at_all_is_refused() -> None:
    app = Flask("keyless")

    with pytest.raises(
        RuntimeError,
        match=re.escape(
            "Flask-UCloud-2FA encrypts TOTP secrets and needs a key: set"
            " UCLOUD_2FA_ENCRYPTION_KEYS to a list of Fernet keys"
        ),
    ):
        TwoFactor(app, db=fallback_db, resource_protector=ResourceProtector())

    assert "ucloud_2fa" not in app.extensions
    assert "ucloud_2fa" not in app.blueprints


@pytest.mark.parametrize(
    ("keys", "position", "bad"),
    [
        (["not-a-fernet-key"], 0, "not-a-fernet-key"),
        ([KEY_A, "c2hvcnQ="], 1, "c2hvcnQ="),
        (f"{KEY_A},{KEY_B},{'x' * 44}", 2, "x" * 44),
        ([KEY_A[:-2]], 0, KEY_A[:-2]),
    ],
    ids=["garbage", "second-too-short", "string-third-not-base64", "truncated"],
)
def test_invalid_key_is_refused(keys: Any, position: int, bad: str) -> None:
    app = Flask("bad_key")
    app.config["UCLOUD_2FA_ENCRYPTION_KEYS"] = keys

    with pytest.raises(
        ValueError,
        match=re.escape(f"UCLOUD_2FA_ENCRYPTION_KEYS[{position}] is not a Fernet key."),
    ) as raised:
        TwoFactor(app, db=fallback_db, resource_protector=ResourceProtector())

    assert bad not in str(raised.value)  # a key, even a broken one, is not echoed
    assert "ucloud_2fa" not in app.extensions


def test_empty_key_string_is_refused() -> None:
    app = Flask("empty_keys")
    app.config["UCLOUD_2FA_ENCRYPTION_KEYS"] = " , "

    with pytest.raises(ValueError, match=re.escape("UCLOUD_2FA_ENCRYPTION_KEYS is empty")):
        TwoFactor(app, db=fallback_db, resource_protector=ResourceProtector())


# -- secrets stay out of logs and reprs --------------------------------------------------------

#: Attributes every log record has; anything else on a record came in through ``extra``.
STANDARD_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


def record_texts(record: logging.LogRecord) -> list[str]:
    """What a record says: its message, its arguments and its extra fields, as text."""
    texts = [record.getMessage(), str(record.msg), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        texts.append(repr(record.exc_info[1]))
    texts.extend(
        f"{key}={value!r}"
        for key, value in vars(record).items()
        if key not in STANDARD_RECORD_ATTRIBUTES
    )
    return texts


def test_secrets_and_codes_never_reach_the_logs(
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every logger: the root, and those with a level of their own (SQLAlchemy's, ...).
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            caplog.set_level(logging.DEBUG, logger=name)
    long_secrets: set[str] = set()
    codes: set[str] = set()

    setup = client.post("/auth/2fa", headers=user.headers).json
    secret = setup["secret"]
    long_secrets |= {secret, secret.lower(), setup["challengeId"], setup["otpAuthUri"]}
    wrong = unlikely_wrong_code(secret, clock)
    codes.add(wrong)
    refused = client.post(
        "/auth/2fa/challenge",
        headers=user.headers,
        json={"challengeId": setup["challengeId"], "verificationCode": wrong},
    )
    assert refused.status_code == 403
    assert secret not in refused.get_data(as_text=True)
    right = code_for(secret, clock)
    codes.add(right)
    confirmed = client.post(
        "/auth/2fa/challenge",
        headers=user.headers,
        json={"challengeId": setup["challengeId"], "verificationCode": int(right)},
    )
    assert confirmed.status_code == 200
    clock.advance(30)
    codes.add(code_for(secret, clock))
    step_up(client, user, secret, clock)  # new codes need a login that used the code

    proof = code_for(secret, clock)
    codes.add(proof)
    generated = client.post(
        "/auth/2fa/recovery-codes", headers=user.headers, json={"verificationCode": proof}
    )
    assert generated.status_code == 200
    recovery_codes = generated.json["recoveryCodes"]
    long_secrets |= {form for c in recovery_codes for form in (c, c.replace("-", ""))}
    wrong_recovery = "A2A2-A2A2-A2A2-A2A2"
    long_secrets |= {wrong_recovery, wrong_recovery.replace("-", "")}
    refused = client.post(
        "/auth/2fa/recovery-codes", headers=user.headers, json={"recoveryCode": wrong_recovery}
    )
    assert refused.status_code == 403
    clock.advance(30)

    challenge_id = begin_login(client, user)
    long_secrets.add(challenge_id)
    wrong = unlikely_wrong_code(secret, clock)
    codes.add(wrong)
    refused = client.post(
        "/auth/2fa/challenge", json={"challengeId": challenge_id, "verificationCode": wrong}
    )
    assert refused.status_code == 403
    login_code = code_for(secret, clock)
    codes.add(login_code)
    logged_in = client.post(
        "/auth/2fa/challenge", json={"challengeId": challenge_id, "verificationCode": login_code}
    )
    assert logged_in.status_code == 200
    challenge_id = begin_login(client, user)
    long_secrets.add(challenge_id)
    recovered = client.post(
        "/auth/2fa/challenge",
        json={"challengeId": challenge_id, "recoveryCode": recovery_codes[0].lower()},
    )
    assert recovered.status_code == 200

    records = caplog.records
    # The flow was logged, with the SQL and its parameters: the test looks at real records.
    assert any(record.name.startswith("sqlalchemy.engine") for record in records)
    events = {getattr(record, "event", None) for record in records}
    assert {
        "setup_started",
        "connected",
        "challenge_failed",
        "challenge_passed",
        "recovery_codes_generated",
        "recovery_code_used",
    } <= events
    # Bounded by non-word characters: a code inside a hex or base64 string is chance.
    six_digits = [re.compile(rf"\b{code}\b") for code in codes]
    for record in records:
        for text in record_texts(record):
            for value in long_secrets:
                assert value not in text, (record.name, record.getMessage())
            for pattern in six_digits:
                assert not pattern.search(text), (record.name, pattern.pattern, text)


def test_reprs_carry_no_secrets(
    app: Flask,
    db: Any,
    two_factor: TwoFactor,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    make_user: Callable[[str], TestUser],
    clock: FakeClock,
) -> None:
    user, secret = connected_user
    codes = client.post(
        "/auth/2fa/recovery-codes",
        headers=user.headers,
        json={"verificationCode": code_for(secret, clock)},
    ).json["recoveryCodes"]
    challenge_id = begin_login(client, user)
    models = two_factor.models
    other_user = make_user("other")

    with app.app_context():
        credential = db.session.execute(select(models.Credential)).scalar_one()
        challenge = db.session.execute(select(models.Challenge)).scalar_one()
        recovery_rows = db.session.execute(select(models.RecoveryCode)).scalars().all()
        settings = settings_of(app)
        hidden = [
            secret,
            secret.lower(),
            credential.encrypted_secret,
            challenge_id,
            challenge.id_hash,
            *codes,
            *(code.replace("-", "") for code in codes),
            *(row.code_hash for row in recovery_rows),
            *app.config["UCLOUD_2FA_ENCRYPTION_KEYS"],
        ]
        reprs = [
            repr(credential),
            str(credential),
            repr(challenge),
            *(repr(row) for row in recovery_rows),
            repr(settings),
            repr(settings.box),
            repr(Proof(code=code_for(secret, clock))),
            repr(Proof(recovery_code=codes[0].replace("-", ""))),
        ]
        assert str(user.id) in repr(credential)
        # A second user's setup, made as the view makes it.
        other = two_factor.start_setup(other_user.id, "other")
        assert isinstance(other, CreatedCredentials)
        hidden += [other.secret, other.challenge_id, other.otp_auth_uri, other.qr_code_b64_data]
        reprs += [repr(other), str(other)]

    for text in reprs:
        for value in hidden:
            assert value not in text, text
    assert not any(re.search(rf"\b{code_for(secret, clock)}\b", text) for text in reprs)
