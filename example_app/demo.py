"""``make demo``: a fresh example server on SQLite with a demo user, and how to try it.

Prints a curl session that walks UCloud's flow (status, create credentials, answer the challenge,
status again) and then a login that asks for a code, and serves the app until Ctrl-C. When the
port is taken (another demo, or macOS's AirPlay Receiver on 5000), it says so and exits before
touching anything, so a running demo keeps its database.
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import socket
import sys

from . import create_app
from . import db
from . import init_database
from .models import User

USERNAME = "demo"
PASSWORD = "demo-password"  # nosec B105 - the throwaway demo user, printed for people

SESSION = """\
Flask-UCloud-2FA demo: the example auth server runs at {url}
  user: {username}   password: {password}   (fresh database: {database})

In a browser: open {url}/login, log in, set up 2FA on the settings page with your phone's
authenticator app, log out and log in again: the server asks for a code.

Or with curl: paste these steps into another terminal, one block at a time, from any directory.

# 0. A private temporary directory for the session's files (setup.json holds the TOTP secret):
#    nothing is written where you are. Remove it when you are done: rm -r "$DEMO_DIR"
DEMO_DIR=$(mktemp -d)
PYTHON={python}

# 1. Log in with the password: no 2FA yet, so you get tokens.
TOKEN=$(curl -s -X POST {url}/auth/login -H 'Content-Type: application/json' \\
  -d '{{"username": "{username}", "password": "{password}"}}' \\
  | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])')
curl -s -H "Authorization: Bearer $TOKEN" {url}/auth/2fa/status
# {{"connected": false}}

# 2. Create credentials and scan the QR code with your authenticator app
#    (or type the secret into it by hand).
curl -s -X POST -H "Authorization: Bearer $TOKEN" {url}/auth/2fa > "$DEMO_DIR/setup.json"
SETUP_FIELD='import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])'
"$PYTHON" {terminal_qr} "$("$PYTHON" -c "$SETUP_FIELD" "$DEMO_DIR/setup.json" otpAuthUri)"
echo "secret: $("$PYTHON" -c "$SETUP_FIELD" "$DEMO_DIR/setup.json" secret)"
CHALLENGE=$("$PYTHON" -c "$SETUP_FIELD" "$DEMO_DIR/setup.json" challengeId)

# 3. Put the six digits your app shows into CODE, then answer the challenge.
CODE=123456
curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
  {url}/auth/2fa/challenge \\
  -d "{{\\"challengeId\\": \\"$CHALLENGE\\", \\"verificationCode\\": \\"$CODE\\"}}"
# {{}}
curl -s -H "Authorization: Bearer $TOKEN" {url}/auth/2fa/status
# {{"connected": true}}

# 4. Log in again: now the password alone gives a login challenge, not tokens.
LOGIN_CHALLENGE=$(curl -s -X POST {url}/auth/login -H 'Content-Type: application/json' \\
  -d '{{"username": "{username}", "password": "{password}"}}' \\
  | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["2fa"])')

# 5. Wait for the next code in your app (a code works only once), put it into CODE, answer.
CODE=123456
curl -s -X POST -H 'Content-Type: application/json' {url}/auth/2fa/challenge \\
  -d "{{\\"challengeId\\": \\"$LOGIN_CHALLENGE\\", \\"verificationCode\\": \\"$CODE\\"}}"
# {{"accessToken": "...", "csrfToken": "...", "expiresAt": ..., "refreshToken": "..."}}

# 6. Done: remove the session's files, the TOTP secret with them.
rm -r "$DEMO_DIR"

Stop the server with Ctrl-C.
"""


def port_taken(host: str, port: int) -> bool:
    """Whether the server could not listen on ``host:port``: something answers there, or the
    address cannot be bound as the server binds it (``SO_REUSEADDR``)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    # A server on every address (macOS's AirPlay Receiver on *:5000) answers on loopback.
    loopback = {"0.0.0.0": ("127.0.0.1", port), "::": ("::1", port, 0, 0)}  # nosec B104 - to connect
    connect_to = loopback.get(host, address)
    with socket.socket(family, kind, proto) as probe:
        probe.settimeout(1)
        if probe.connect_ex(connect_to) == 0:
            return True
    try:
        with socket.create_server(address, family=family):
            return False
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return True
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--database",
        default="sqlite:///demo.sqlite",
        help="emptied at start; a relative SQLite path is in the instance folder",
    )
    args = parser.parse_args()

    if port_taken(args.host, args.port):
        who = "another demo" + (", or macOS's AirPlay Receiver" if args.port == 5000 else "")
        sys.exit(
            f"Port {args.port} on {args.host} is already in use ({who}?): nothing was started"
            " and no database was touched. Stop what listens there, or choose another port:"
            f" make demo PORT={args.port + 1}"
        )

    app = create_app({"SQLALCHEMY_DATABASE_URI": args.database})
    with app.app_context():
        db.drop_all()
        init_database()
        user = User(username=USERNAME)
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
        database = db.engine.url.render_as_string()

    terminal_qr = os.path.join(os.path.dirname(os.path.abspath(__file__)), "terminal_qr.py")
    print(
        SESSION.format(
            url=f"http://{args.host}:{args.port}",
            username=USERNAME,
            password=PASSWORD,
            database=database,
            python=shlex.quote(sys.executable),
            terminal_qr=shlex.quote(terminal_qr),
        ),
        flush=True,
    )
    app.run(host=args.host, port=args.port, use_reloader=False)


if __name__ == "__main__":
    main()
