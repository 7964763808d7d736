"""The quickstart: an Authlib resource server with a password login and Flask-UCloud-2FA."""

import secrets
import time

import click
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.sqla_oauth2 import OAuth2TokenMixin
from authlib.integrations.sqla_oauth2 import create_bearer_token_validator
from flask import Flask
from flask import jsonify
from flask import request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from flask_ucloud_2fa import InvalidRequest
from flask_ucloud_2fa import LoginCompleted
from flask_ucloud_2fa import TwoFactor
from flask_ucloud_2fa import TwoFactorError
from flask_ucloud_2fa import error_response

db = SQLAlchemy()
require_oauth = ResourceProtector()
# user_table: deleting a user deletes their 2FA (a foreign key with ON DELETE CASCADE)
two_factor = TwoFactor(db=db, resource_protector=require_oauth, user_table="user")


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(80), unique=True, nullable=False)
    password_hash = db.Column(db.String(255), nullable=False)


class Token(db.Model, OAuth2TokenMixin):
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    user = db.relationship(User)
    amr = db.Column(db.String(64), nullable=False, default="pwd")


class InvalidCredentials(TwoFactorError):  # error_response answers it in UCloud's shape
    status_code = 401
    error_code = "INVALID_CREDENTIALS"
    why = "Incorrect username or password."


app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///quickstart.sqlite"
app.config.from_prefixed_env()  # FLASK_SECRET_KEY, FLASK_UCLOUD_2FA_ENCRYPTION_KEYS, ...
db.init_app(app)
require_oauth.register_token_validator(create_bearer_token_validator(db.session, Token)())
two_factor.init_app(app)  # the routes under /auth/2fa


# -- the 2FA wiring: who the token is, what finishing a login means, and the login step --------


@two_factor.account_name_loader  # the name shown in authenticator apps
def account_name(token):
    return token.user.username


@two_factor.login_completed  # runs once every factor succeeded: issue the tokens here
def finish_login(login: LoginCompleted):
    token = Token(
        user_id=login.user_id,
        client_id="quickstart",
        token_type="Bearer",
        access_token=secrets.token_urlsafe(32),
        scope="",
        issued_at=int(time.time()),
        expires_in=3600,
        amr=" ".join(login.methods),  # ["pwd"] or ["pwd", "otp"]
    )
    db.session.add(token)  # the extension commits it, with the spent challenge
    return jsonify(accessToken=token.access_token)


@app.post("/auth/login")
def login():
    body = request.get_json(silent=True)  # a JSON object, sent as application/json
    if not isinstance(body, dict) or not all(
        isinstance(body.get(key), str) for key in ("username", "password")
    ):
        return error_response(InvalidRequest("Send a JSON object with username and password."))
    # Counted before the password is checked: 429 with Retry-After when it is one too many.
    attempt = two_factor.limit_password_attempt(body["username"], request.remote_addr)
    user = db.session.execute(
        db.select(User).filter_by(username=body["username"])
    ).scalar_one_or_none()
    if user is None or not check_password_hash(user.password_hash, body["password"]):
        return error_response(InvalidCredentials())
    attempt.succeeded()
    return two_factor.login(user.id)  # {"2fa": challengeId} when 2FA is on, else the tokens


@app.cli.command("create-user")
@click.argument("username")
@click.password_option()
def create_user(username, password):
    """Add a user who logs in with USERNAME and a password."""
    db.session.add(User(username=username, password_hash=generate_password_hash(password)))
    db.session.commit()


with app.app_context():
    if db.engine.dialect.name == "sqlite":  # SQLite enforces foreign keys only when asked
        event.listen(db.engine, "connect", lambda conn, _: conn.execute("PRAGMA foreign_keys=ON"))
    db.create_all()
