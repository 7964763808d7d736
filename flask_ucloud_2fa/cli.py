"""``flask ucloud-2fa ...``: administrator commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from cryptography.fernet import Fernet
from flask.cli import AppGroup

from .config import app_state
from .errors import UnreadableSecret

if TYPE_CHECKING:
    from .extension import TwoFactor

cli = AppGroup("ucloud-2fa", help="Administer Flask-UCloud-2FA two-factor authentication.")


def _two_factor() -> TwoFactor:
    two_factor: TwoFactor = app_state().extension
    return two_factor


@cli.command("status")
@click.argument("user_id")
def status(user_id: str) -> None:
    """Show USER_ID's 2FA state (never the secret)."""
    try:
        found = _two_factor().status(user_id)
    except ValueError as error:  # not a user id of the app's user table
        raise click.BadParameter(str(error), param_hint="USER_ID") from None
    if found is None:
        click.echo(f"User {user_id!r} has no 2FA credential.")
        return
    click.echo(f"user_id: {found.user_id}")
    click.echo(f"connected: {'yes' if found.connected else 'no (setup pending)'}")
    click.echo(f"created_at: {found.created_at:%Y-%m-%d %H:%M:%S} UTC")
    if found.connected_at is not None:
        click.echo(f"connected_at: {found.connected_at:%Y-%m-%d %H:%M:%S} UTC")
    click.echo(f"consecutive_failures: {found.failures}")
    if found.blocked_until is not None:
        click.echo(f"blocked_until: {found.blocked_until:%Y-%m-%d %H:%M:%S} UTC")
    click.echo(f"recovery_codes_left: {found.recovery_codes_left}")
    click.echo(f"pending_challenges: {found.pending_challenges}")


@cli.command("reset")
@click.argument("user_id")
@click.confirmation_option(prompt="Remove this user's 2FA credential, challenges and codes?")
def reset(user_id: str) -> None:
    """Remove USER_ID's 2FA entirely: credential, challenges, recovery codes, back-off."""
    try:
        removed = _two_factor().reset(user_id)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="USER_ID") from None
    if not removed:
        raise click.ClickException(f"User {user_id!r} has no 2FA credential.")
    click.echo(f"Reset 2FA of user {user_id!r}: they log in with the password alone now.")


@cli.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every secret under the first of UCLOUD_2FA_ENCRYPTION_KEYS."""
    try:
        count = _two_factor().rotate_keys()
    except UnreadableSecret as error:
        # The batch with the unreadable secret is not committed; earlier batches are, and a
        # second run after fixing the keys finishes the job.
        raise click.ClickException(str(error)) from None
    click.echo(f"Re-encrypted {count} secret(s) under the newest key.")


@cli.command("generate-key")
def generate_key() -> None:
    """Print a new key for UCLOUD_2FA_ENCRYPTION_KEYS."""
    click.echo(Fernet.generate_key().decode("ascii"))
