host=http://127.0.0.1:5000

# Log in with the password...
curl -XPOST -H 'Content-Type: application/json' "$host/auth/login" -d '{"username": "alice", "password": "<PASSWORD>"}'
# 200
# {
#     "2fa": "<CHALLENGE_ID>"
# }

# ...and a code: managing 2FA needs a token from a login that used it.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/2fa/challenge" -d '{"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456}'
# 200
# {
#     "accessToken": "<ACCESS_TOKEN>",
#     "csrfToken": "<CSRF_TOKEN>",
#     "expiresAt": 1800003600000,
#     "refreshToken": "<REFRESH_TOKEN>"
# }

# Remove 2FA, proving the second factor (a code or a recovery code).
curl -XPOST -H 'Authorization: Bearer <ACCESS_TOKEN>' -H 'Content-Type: application/json' "$host/auth/2fa/disable" -d '{"verificationCode": 234567}'
# 200
# {}

# Not connected any more.
curl -XGET -H 'Authorization: Bearer <ACCESS_TOKEN>' "$host/auth/2fa/status"
# 200
# {
#     "connected": false
# }

# Nothing left to disable.
curl -XPOST -H 'Authorization: Bearer <ACCESS_TOKEN>' -H 'Content-Type: application/json' "$host/auth/2fa/disable" -d '{"verificationCode": 234567}'
# 409
# {
#     "errorCode": "NOT_CONNECTED",
#     "statusCode": 409,
#     "why": "Two-factor authentication is not connected for this user."
# }
