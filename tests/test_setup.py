"""``POST /auth/2fa``: a pending secret, its QR code and the setup challenge that confirms it."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import pyotp
import pytest
import zxingcpp
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

from flask_ucloud_2fa.statements import Statements

from helpers import FakeClock
from helpers import answer
from helpers import assert_error
from helpers import begin_login
from helpers import code_for
from helpers import count
from helpers import db_of
from helpers import decrypt_secret
from helpers import hash_challenge_id
from helpers import two_factor_of

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser

ISSUER = "Test%20Auth%20Server"
DATA_URI_PREFIX = "data:image/png;base64,"
BASE32_NO_PADDING = re.compile(r"[A-Z2-7]{32,}")
URL_SAFE = re.compile(r"[A-Za-z0-9_-]{43,}")


def expected_uri(secret: str, account: str) -> str:
    """The otpauth URI of the contract, with ``account`` already percent-encoded."""
    return (
        f"otpauth://totp/{ISSUER}:{account}?secret={secret}&issuer={ISSUER}"
        "&algorithm=SHA1&digits=6&period=30"
    )


def decode_qr(data_uri: str) -> str:
    """The text of the QR code in a ``data:image/png;base64,`` URI, read by a real QR reader."""
    assert data_uri.startswith(DATA_URI_PREFIX)
    png = base64.b64decode(data_uri[len(DATA_URI_PREFIX) :], validate=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(results) == 1
    text: str = results[0].text
    return text


def credential_rows(app: Flask) -> list[dict[str, Any]]:
    """Every credential row, as plain values read in a fresh session."""
    credential = two_factor_of(app).models.Credential
    with app.app_context():
        rows = (
            db_of(app).session.execute(select(credential).order_by(credential.id)).scalars().all()
        )
        return [
            {
                "id": row.id,
                "user_id": row.user_id,
                "secret": decrypt_secret(app, row.encrypted_secret),
                "connected": row.connected,
                "created_at": row.created_at,
                "connected_at": row.connected_at,
                "last_used_step": row.last_used_step,
            }
            for row in rows
        ]


def challenge_rows(app: Flask) -> list[dict[str, Any]]:
    """Every challenge row, as plain values read in a fresh session."""
    challenge = two_factor_of(app).models.Challenge
    with app.app_context():
        rows = db_of(app).session.execute(select(challenge)).scalars().all()
        return [
            {
                "id_hash": row.id_hash,
                "kind": row.kind,
                "user_id": row.user_id,
                "attempts": row.attempts,
            }
            for row in rows
        ]


def test_setup_answers_exactly_the_ucloud_keys(client: FlaskClient, user: TestUser) -> None:
    response = client.post("/auth/2fa", headers=user.headers)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert set(response.json) == {"otpAuthUri", "qrCodeB64Data", "secret", "challengeId"}
    assert response.headers["Cache-Control"] == "no-store"


def test_setup_otpauth_uri_is_the_contract_format(client: FlaskClient, user: TestUser) -> None:
    body = client.post("/auth/2fa", headers=user.headers).json
    assert body["otpAuthUri"] == expected_uri(body["secret"], "alice")


def test_setup_secret_is_unpadded_base32_of_at_least_160_bits(
    client: FlaskClient, user: TestUser
) -> None:
    secret = client.post("/auth/2fa", headers=user.headers).json["secret"]
    assert BASE32_NO_PADDING.fullmatch(secret), secret
    padded = secret + "=" * (-len(secret) % 8)
    assert len(base64.b32decode(padded)) >= 20


def test_setup_challenge_id_is_url_safe_and_long(client: FlaskClient, user: TestUser) -> None:
    challenge_id = client.post("/auth/2fa", headers=user.headers).json["challengeId"]
    assert URL_SAFE.fullmatch(challenge_id), challenge_id


def test_setup_secrets_and_challenge_ids_differ_between_users(
    client: FlaskClient, make_user: Callable[[str], TestUser]
) -> None:
    first = client.post("/auth/2fa", headers=make_user("alice").headers).json
    second = client.post("/auth/2fa", headers=make_user("bob").headers).json
    assert first["secret"] != second["secret"]
    assert first["challengeId"] != second["challengeId"]


def test_setup_qr_code_decodes_to_the_otpauth_uri(client: FlaskClient, user: TestUser) -> None:
    body = client.post("/auth/2fa", headers=user.headers).json
    assert body["qrCodeB64Data"].startswith(DATA_URI_PREFIX)
    assert decode_qr(body["qrCodeB64Data"]) == body["otpAuthUri"]


@pytest.mark.parametrize(
    ("username", "encoded"),
    [
        ("alice smith", "alice%20smith"),
        ("Zoë", "Zo%C3%AB"),
        ("ops:admin", "ops%3Aadmin"),
        ("Zoë Ann:ops", "Zo%C3%AB%20Ann%3Aops"),
        ("李 雷", "%E6%9D%8E%20%E9%9B%B7"),
    ],
)
def test_setup_percent_encodes_the_account_name(
    client: FlaskClient, make_user: Callable[[str], TestUser], username: str, encoded: str
) -> None:
    user = make_user(username)
    body = client.post("/auth/2fa", headers=user.headers).json
    assert body["otpAuthUri"] == expected_uri(body["secret"], encoded)
    assert decode_qr(body["qrCodeB64Data"]) == body["otpAuthUri"]
    # What an authenticator app reads back from the URI.
    parsed = pyotp.parse_uri(body["otpAuthUri"])
    assert parsed.secret == body["secret"]
    assert parsed.name == username
    assert parsed.issuer == "Test Auth Server"


def test_setup_code_from_the_uri_confirms_the_setup(
    client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    body = client.post("/auth/2fa", headers=user.headers).json
    code = pyotp.parse_uri(body["otpAuthUri"]).at(clock.now)
    response = answer(client, body["challengeId"], code, user.headers)
    assert response.status_code == 200
    assert response.json == {}


def test_second_setup_replaces_the_first(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    first = client.post("/auth/2fa", headers=user.headers).json
    second_response = client.post("/auth/2fa", headers=user.headers)
    assert second_response.status_code == 200
    second = second_response.json
    assert second["secret"] != first["secret"]
    assert second["challengeId"] != first["challengeId"]
    assert second["otpAuthUri"] == expected_uri(second["secret"], "alice")

    credentials = credential_rows(app)
    challenges = challenge_rows(app)
    assert len(credentials) == 1
    assert credentials[0]["user_id"] == user.id
    assert credentials[0]["connected"] is False
    assert len(challenges) == 1
    assert challenges[0]["kind"] == "setup"
    assert challenges[0]["id_hash"] == hash_challenge_id(second["challengeId"])

    # The first challenge is dead, even answered with a code of the first secret.
    stale = answer(client, first["challengeId"], code_for(first["secret"], clock), user.headers)
    assert_error(stale, 404, "CHALLENGE_NOT_FOUND")
    assert credential_rows(app)[0]["connected"] is False

    fresh = answer(client, second["challengeId"], code_for(second["secret"], clock), user.headers)
    assert fresh.status_code == 200
    assert fresh.json == {}
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": True}
    assert count(app, two_factor_of(app).models.Credential) == 1
    assert count(app, two_factor_of(app).models.Challenge) == 0


def test_second_setup_refuses_a_code_of_the_first_secret(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    first = client.post("/auth/2fa", headers=user.headers).json
    old_code = code_for(first["secret"], clock)
    while True:
        second = client.post("/auth/2fa", headers=user.headers).json
        # Once in ~300000 setups the old code is also valid for the new secret: set up again.
        if old_code not in {code_for(second["secret"], clock, step) for step in (-1, 0, 1)}:
            break
    response = answer(client, second["challengeId"], old_code, user.headers)
    assert_error(response, 403, "INVALID_CODE")
    assert credential_rows(app)[0]["connected"] is False


def test_setup_when_connected_is_409_and_changes_nothing(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    before = credential_rows(app)
    assert len(before) == 1 and before[0]["connected"] is True

    response = client.post("/auth/2fa", headers=user.headers)
    assert_error(response, 409, "ALREADY_CONNECTED")
    assert set(response.json) == {"statusCode", "why", "errorCode"}
    assert secret not in response.get_data(as_text=True)

    assert credential_rows(app) == before
    assert challenge_rows(app) == []
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": True}

    # The connected secret still logs the user in.
    response = answer(client, begin_login(client, user), code_for(secret, clock))
    assert response.status_code == 200
    assert "accessToken" in response.json


@pytest.mark.parametrize(
    ("headers", "error_code"),
    [
        pytest.param({}, "MISSING_AUTHORIZATION", id="no token"),
        pytest.param({"Authorization": "Bearer not-a-token"}, "INVALID_TOKEN", id="unknown token"),
    ],
)
def test_setup_without_a_valid_token_is_401(
    app: Flask, client: FlaskClient, user: TestUser, headers: dict[str, str], error_code: str
) -> None:
    response = client.post("/auth/2fa", headers=headers)
    assert_error(response, 401, error_code)
    assert set(response.json) == {"statusCode", "why", "errorCode"}
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert credential_rows(app) == []
    assert challenge_rows(app) == []


def test_setup_challenge_of_another_user_is_404(
    app: Flask, client: FlaskClient, make_user: Callable[[str], TestUser], clock: FakeClock
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    setup = client.post("/auth/2fa", headers=alice.headers).json
    code = code_for(setup["secret"], clock)

    response = answer(client, setup["challengeId"], code, bob.headers)
    assert_error(response, 404, "CHALLENGE_NOT_FOUND")
    text = response.get_data(as_text=True)
    assert setup["secret"] not in text and code not in text

    credentials = credential_rows(app)
    assert len(credentials) == 1
    assert credentials[0]["user_id"] == alice.id
    assert credentials[0]["connected"] is False
    assert credentials[0]["last_used_step"] is None
    assert client.get("/auth/2fa/status", headers=bob.headers).json == {"connected": False}

    # Alice's challenge survived and is still hers to answer, with the same code.
    response = answer(client, setup["challengeId"], code, alice.headers)
    assert response.status_code == 200
    assert response.json == {}
    assert client.get("/auth/2fa/status", headers=alice.headers).json == {"connected": True}
    assert client.get("/auth/2fa/status", headers=bob.headers).json == {"connected": False}


def test_setup_challenge_answered_with_a_refused_token_is_401(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    setup = client.post("/auth/2fa", headers=user.headers).json
    code = code_for(setup["secret"], clock)

    response = answer(client, setup["challengeId"], code, {"Authorization": "Bearer not-a-token"})
    assert_error(response, 401, "INVALID_TOKEN")
    assert credential_rows(app)[0]["connected"] is False
    assert [row["attempts"] for row in challenge_rows(app)] == [0]


def test_setup_challenge_answered_without_a_token_is_401(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    setup = client.post("/auth/2fa", headers=user.headers).json
    code = code_for(setup["secret"], clock)

    response = answer(client, setup["challengeId"], code)
    assert_error(response, 401, "MISSING_AUTHORIZATION")
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    text = response.get_data(as_text=True)
    assert setup["secret"] not in text and code not in text
    credentials = credential_rows(app)
    assert credentials[0]["connected"] is False
    assert credentials[0]["last_used_step"] is None
    assert [row["attempts"] for row in challenge_rows(app)] == [0]

    response = answer(client, setup["challengeId"], code, user.headers)
    assert response.status_code == 200
    assert response.json == {}


def test_a_database_without_upserts_is_refused_with_what_is_supported(
    make_sqlite_app: Callable[..., Flask],
) -> None:
    models = two_factor_of(make_sqlite_app()).models
    with pytest.raises(RuntimeError, match="supports PostgreSQL and SQLite, not 'mysql'"):
        Statements.of(models, "mysql")
