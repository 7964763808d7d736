"""The integrator's data model: models of their own from the exported mixins, and the options
of TwoFactor that shape the tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from authlib.integrations.flask_oauth2 import ResourceProtector
from cryptography.fernet import Fernet
from flask import Flask
from flask import jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey
from sqlalchemy import event
from sqlalchemy import inspect
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_ucloud_2fa import ChallengeMixin
from flask_ucloud_2fa import CredentialMixin
from flask_ucloud_2fa import LoginCompleted
from flask_ucloud_2fa import Proof
from flask_ucloud_2fa import RecoveryCodeMixin
from flask_ucloud_2fa import TwoFactor
from flask_ucloud_2fa import TwoFactorModels

from helpers import FakeClock
from helpers import code_for
from helpers import count

ENCRYPTION_KEY = Fernet.generate_key().decode()

#: The integrator's own ``db``, with table names of their own for the extension's rows.
own_db = SQLAlchemy()


class Account(own_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)


class MyCredential(own_db.Model, CredentialMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "my_credential"

    user_id = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), unique=True)


class MyChallenge(own_db.Model, ChallengeMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "my_challenge"

    user_id = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    credential_id = mapped_column(ForeignKey("my_credential.id", ondelete="CASCADE"))


class MyRecoveryCode(own_db.Model, RecoveryCodeMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "my_recovery_code"

    credential_id = mapped_column(ForeignKey("my_credential.id", ondelete="CASCADE"))


OWN_MODELS = TwoFactorModels(
    Credential=MyCredential, Challenge=MyChallenge, RecoveryCode=MyRecoveryCode
)


def _foreign_keys_on(connection: Any, _record: object) -> None:
    connection.execute("PRAGMA foreign_keys=ON")


@pytest.fixture
def own_app(database_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Flask]:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url, UCLOUD_2FA_ENCRYPTION_KEYS=[ENCRYPTION_KEY]
    )
    own_db.init_app(app)
    two_factor = TwoFactor(
        app, db=own_db, resource_protector=ResourceProtector(), models=OWN_MODELS, clock=clock
    )

    @two_factor.login_completed
    def finish(login: LoginCompleted) -> Any:
        return jsonify(userId=login.user_id, methods=login.methods)

    with app.app_context():
        if own_db.engine.dialect.name == "sqlite":
            event.listen(own_db.engine, "connect", _foreign_keys_on)
        own_db.create_all()
    yield app
    with app.app_context():
        own_db.drop_all()
        own_db.engine.dispose()


def test_own_models_hold_every_row_and_follow_their_user(own_app: Flask, clock: FakeClock) -> None:
    two_factor: TwoFactor = own_app.extensions["ucloud_2fa"].extension
    with own_app.app_context():
        assert two_factor.models is OWN_MODELS
        tables = set(inspect(own_db.engine).get_table_names())
        assert tables == {"account", "my_credential", "my_challenge", "my_recovery_code"}
        own_db.session.add(Account(id=7))
        own_db.session.commit()

        created = two_factor.start_setup(7, "seven")
        two_factor.confirm_setup(
            created.challenge_id, Proof(code=code_for(created.secret, clock)), user_id=7
        )
        clock.advance(30)
        codes = two_factor.regenerate_recovery_codes(
            7, Proof(code=code_for(created.secret, clock))
        )
        assert two_factor.is_connected(7)
    with own_app.test_request_context("/login", method="POST"):
        challenge_id = own_app.make_response(two_factor.login(7)).json["2fa"]
        clock.advance(30)
        answered = two_factor.answer_login(
            challenge_id, Proof(code=code_for(created.secret, clock))
        )
        assert answered.json == {"userId": 7, "methods": ["pwd", "otp"]}

    assert len(codes) == 10
    assert count(own_app, MyCredential, user_id=7) == 1
    assert count(own_app, MyRecoveryCode) == 10
    with own_app.app_context():
        own_db.session.delete(own_db.session.get(Account, 7))
        own_db.session.commit()
        assert not two_factor.is_connected(7)
    for model in (MyCredential, MyChallenge, MyRecoveryCode):
        assert count(own_app, model) == 0, model


def test_own_models_and_user_table_are_refused_together() -> None:
    with pytest.raises(ValueError, match=r"either models=\.\.\. or user_table=\.\.\., not both"):
        TwoFactor(
            db=own_db, resource_protector=ResourceProtector(), models=OWN_MODELS, user_table="a"
        )


def test_one_db_has_one_user_table() -> None:
    db = SQLAlchemy()
    TwoFactor(db=db, resource_protector=ResourceProtector(), user_table="person")

    with pytest.raises(RuntimeError, match="already defined on this db with user_table='person'"):
        TwoFactor(db=db, resource_protector=ResourceProtector())


def test_a_user_table_that_is_not_defined_is_named(tmp_path: Path) -> None:
    db = SQLAlchemy()
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite://", UCLOUD_2FA_ENCRYPTION_KEYS=[ENCRYPTION_KEY]
    )
    db.init_app(app)
    two_factor = TwoFactor(app, db=db, resource_protector=ResourceProtector(), user_table="usr")

    with (
        app.app_context(),
        pytest.raises(
            RuntimeError, match=r"refers to usr\.id, which is not defined on this db: pass Two"
        ),
    ):
        two_factor.is_connected(1)
