"""Administration: a user's 2FA as an administrator sees it, resetting it, rotating keys.

The facade's ``status``, ``reset`` and ``rotate_keys`` and the ``flask ucloud-2fa`` commands
call these. Rules, no HTTP.
"""

from __future__ import annotations

from typing import Any

from .crypto import SecretBox
from .data import CredentialStatus
from .limits import Emit
from .limits import Limits
from .store import Store
from .store import utc

#: Credentials re-encrypted per transaction by :func:`rotate_keys`.
ROTATION_BATCH = 1000


def status(store: Store, user_id: Any, now: float, limits: Limits) -> CredentialStatus | None:
    """The user's 2FA as an administrator sees it, or ``None`` without a credential."""
    user_id = store.user_key(user_id)
    credential = store.credential(user_id)
    if credential is None:
        return None
    blocked_until = credential.blocked_until
    if credential.forgiven_at is not None:
        # Locked out until the budget has forgiven one failure.
        locked = utc(credential.forgiven_at - (limits.horizon(now) - int(now)))
        if locked > utc(now) and (blocked_until is None or locked > blocked_until):
            blocked_until = locked
    return CredentialStatus(
        user_id=user_id,
        connected=credential.connected,
        created_at=credential.created_at,
        connected_at=credential.connected_at,
        failures=credential.failures,
        blocked_until=blocked_until,
        recovery_codes_left=store.count_recovery_codes(credential.id),
        pending_challenges=store.count_live_challenges(user_id, now),
    )


def reset(store: Store, user_id: Any, emit: Emit) -> bool:
    """Remove everything of the user's 2FA: credential, challenges, recovery codes, back-off.
    Whether there was anything to remove; only then the ``reset`` signal is sent."""
    user_id = store.user_key(user_id)
    with store.transaction():
        removed = store.delete_user(user_id)
    if removed:
        emit("reset", user_id, "success")
    return removed


def rotate_keys(store: Store, box: SecretBox) -> int:
    """Re-encrypt every secret under the newest key, committing each batch; how many were
    re-encrypted.

    :raises UnreadableSecret: a secret no configured key decrypts; its batch is not kept, the
        batches before it are, and a second run after fixing the keys finishes the job.
    """
    rotated = 0
    for batch in store.credential_batches(ROTATION_BATCH):
        with store.transaction():
            for credential_id, encrypted in batch:
                store.reencrypt(credential_id, box.rotate(encrypted))
        rotated += len(batch)
    return rotated
