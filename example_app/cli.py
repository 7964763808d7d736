"""``flask --app example_app create-user NAME``, ``... set-password NAME`` and
``... delete-user NAME``."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from .extensions import db
from .models import User
from .notices import email_address
from .revocation import end_logins
from .ucloud_2fa import two_factor


def _email(_context: click.Context, _parameter: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return email_address(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


@click.command("create-user")
@click.argument("username")
@click.password_option(help="The password; asked for (twice) when left out.")
@click.option(
    "--email",
    callback=_email,
    help="Where the user's security notices go (2FA turned on or off, ...); none without it.",
)
@with_appcontext
def create_user(username: str, password: str, email: str | None) -> None:
    """Create a user who can log in with USERNAME and the password."""
    if User.by_username(username) is not None:
        raise click.ClickException(f"User {username!r} already exists.")
    user = User(username=username, email=email)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"Created user {username!r}.")


@click.command("set-password")
@click.argument("username")
@click.password_option(help="The new password; asked for (twice) when left out.")
@with_appcontext
def set_password(username: str, password: str) -> None:
    """Change USERNAME's password, and end every login made with the old one: their tokens
    are revoked, their browser sessions end and their remembered browsers ask for a code
    again."""
    user = User.by_username(username)
    if user is None:
        raise click.ClickException(f"There is no user {username!r}.")
    user.set_password(password)
    end_logins(user.id)  # commits the new password with the revocation
    two_factor.forget_browsers(user.id)
    click.echo(f"Changed the password of {username!r}; their logins have ended.")


@click.command("delete-user")
@click.argument("username")
@with_appcontext
def delete_user(username: str) -> None:
    """Delete the user USERNAME with their tokens and 2FA: the database's foreign keys
    (ON DELETE CASCADE) delete those rows with the user's."""
    user = User.by_username(username)
    if user is None:
        raise click.ClickException(f"There is no user {username!r}.")
    db.session.delete(user)
    db.session.commit()
    click.echo(f"Deleted user {username!r}.")
