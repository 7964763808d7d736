host=http://127.0.0.1:5000

# Log in: no 2FA yet, so the password alone gives tokens.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/login" -d '{"username": "alice", "password": "<PASSWORD>"}'
# 200
# {
#     "accessToken": "<ACCESS_TOKEN>",
#     "csrfToken": "<CSRF_TOKEN>",
#     "expiresAt": 1800003600000,
#     "refreshToken": "<REFRESH_TOKEN>"
# }

# Is 2FA connected?
curl -XGET -H 'Authorization: Bearer <ACCESS_TOKEN>' "$host/auth/2fa/status"
# 200
# {
#     "connected": false
# }

# Start the setup.
curl -XPOST -H 'Authorization: Bearer <ACCESS_TOKEN>' "$host/auth/2fa"
# 200
# {
#     "challengeId": "<CHALLENGE_ID>",
#     "otpAuthUri": "otpauth://totp/Example%20Auth%20Server:alice?secret=<SECRET>&issuer=Example%20Auth%20Server&algorithm=SHA1&digits=6&period=30",
#     "qrCodeB64Data": "data:image/png;base64,<QR_CODE_PNG>",
#     "secret": "<SECRET>"
# }

# Answer the setup challenge with the code the authenticator app shows.
curl -XPOST -H 'Authorization: Bearer <ACCESS_TOKEN>' -H 'Content-Type: application/json' "$host/auth/2fa/challenge" -d '{"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456}'
# 200
# {}

# Connected now.
curl -XGET -H 'Authorization: Bearer <ACCESS_TOKEN>' "$host/auth/2fa/status"
# 200
# {
#     "connected": true
# }
