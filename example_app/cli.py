"""``flask --app example_app create-user USERNAME --password PASSWORD``."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from . import db
from .models import User


@click.command("create-user")
@click.argument("username")
@click.password_option(help="The password; asked for (twice) when left out.")
@with_appcontext
def create_user(username: str, password: str) -> None:
    """Create a user who can log in with USERNAME and the password."""
    if db.session.execute(db.select(User).filter_by(username=username)).first() is not None:
        raise click.ClickException(f"User {username!r} already exists.")
    user = User(username=username)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"Created user {username!r}.")
