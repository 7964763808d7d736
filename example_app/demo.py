"""``make demo``: a fresh example server on SQLite with a demo user, and how to try it.

Prints a curl session that walks UCloud's flow (status, create credentials, answer the challenge,
status again) and then a login that asks for a code, and serves the app until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
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

Or with curl: paste these steps into another terminal, one block at a time.

# 1. Log in with the password: no 2FA yet, so you get tokens.
TOKEN=$(curl -s -X POST {url}/auth/login -H 'Content-Type: application/json' \\
  -d '{{"username": "{username}", "password": "{password}"}}' \\
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])')
curl -s -H "Authorization: Bearer $TOKEN" {url}/auth/2fa/status
# {{"connected": false}}

# 2. Create credentials and scan the QR code with your authenticator app
#    (or type the secret into it by hand).
curl -s -X POST -H "Authorization: Bearer $TOKEN" {url}/auth/2fa > setup.json
{qr} "$(python3 -c 'import json; print(json.load(open("setup.json"))["otpAuthUri"])')"
python3 -c 'import json; print("secret:", json.load(open("setup.json"))["secret"])'
CHALLENGE=$(python3 -c 'import json; print(json.load(open("setup.json"))["challengeId"])')

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
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["2fa"])')

# 5. Wait for the next code in your app (a code works only once), put it into CODE, answer.
CODE=123456
curl -s -X POST -H 'Content-Type: application/json' {url}/auth/2fa/challenge \\
  -d "{{\\"challengeId\\": \\"$LOGIN_CHALLENGE\\", \\"verificationCode\\": \\"$CODE\\"}}"
# {{"accessToken": "...", "expiresAt": ..., "refreshToken": "..."}}

Stop the server with Ctrl-C.
"""


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
            qr=f"{os.path.relpath(sys.executable)} {os.path.relpath(terminal_qr)}",
        ),
        flush=True,
    )
    app.run(host=args.host, port=args.port, use_reloader=False)


if __name__ == "__main__":
    main()
