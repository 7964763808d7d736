"""What the settings pages show around enrolment: the recovery codes, once, and a hint for a
phone whose clock is off.

The recovery codes page needs no script (the pages' Content-Security-Policy allows none): the
codes stand in a list to read, in a read-only text field to select and copy, and in a
``data:text/plain`` link made here that downloads them as a text file. The page is the answer
to the form that made the codes, never stored: a reload sends the form again, which shows no
codes.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import render_template
from flask_babel import gettext as _
from flask_babel import ngettext

#: The name a downloaded file of recovery codes gets.
DOWNLOAD_NAME = "recovery-codes.txt"


def recovery_codes_page(codes: list[str], username: str, *, at_setup: bool) -> str:
    """The page that shows ``codes`` once: right after the setup (``at_setup``) or after new
    codes replaced the earlier ones."""
    return render_template(
        "recovery_codes.html",
        codes=codes,
        codes_text="\n".join(codes),
        download_href=download_href(codes, username),
        download_name=DOWNLOAD_NAME,
        at_setup=at_setup,
    )


def download_href(codes: list[str], username: str) -> str:
    """A ``data:`` URL of a text file with ``codes``, one a line, under a line saying whose
    they are and how they work."""
    text = "\n".join(
        [
            _("Recovery codes of %(username)s (Example Auth Server)", username=username),
            _("Each code works once, in place of a code from your authenticator app."),
            "",
            *codes,
            "",
        ]
    )
    return "data:text/plain;charset=utf-8," + quote(text, safe="")


def clock_drift_hint(seconds: int | None) -> str | None:
    """What to tell a user whose setup code is that of a time step ``seconds`` away (positive:
    the device is ahead), or ``None`` without a drift."""
    if seconds is None:
        return None
    minutes = max(1, int(abs(seconds) / 60 + 0.5))
    if seconds > 0:
        return ngettext(
            "Your device's clock seems to be about %(num)d minute ahead: set its date and time"
            " to automatic, then try again.",
            "Your device's clock seems to be about %(num)d minutes ahead: set its date and time"
            " to automatic, then try again.",
            minutes,
        )
    return ngettext(
        "Your device's clock seems to be about %(num)d minute behind: set its date and time"
        " to automatic, then try again.",
        "Your device's clock seems to be about %(num)d minutes behind: set its date and time"
        " to automatic, then try again.",
        minutes,
    )
