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

# New recovery codes, for a current code; show them once, then forget them.
curl -XPOST -H 'Authorization: Bearer <ACCESS_TOKEN>' -H 'Content-Type: application/json' "$host/auth/2fa/recovery-codes" -d '{"verificationCode": 234567}'
# 200
# {
#     "recoveryCodes": [
#         "<RECOVERY_CODE>",
#         "<RECOVERY_CODE_2>",
#         "<RECOVERY_CODE_3>",
#         "<RECOVERY_CODE_4>",
#         "<RECOVERY_CODE_5>",
#         "<RECOVERY_CODE_6>",
#         "<RECOVERY_CODE_7>",
#         "<RECOVERY_CODE_8>",
#         "<RECOVERY_CODE_9>",
#         "<RECOVERY_CODE_10>"
#     ]
# }

# Later, without the phone: log in.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/login" -d '{"username": "alice", "password": "<PASSWORD>"}'
# 200
# {
#     "2fa": "<CHALLENGE_ID_2>"
# }

# Answer the login challenge with a recovery code; it works once.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/2fa/challenge" -d '{"challengeId": "<CHALLENGE_ID_2>", "recoveryCode": "<RECOVERY_CODE>"}'
# 200
# {
#     "accessToken": "<ACCESS_TOKEN_2>",
#     "csrfToken": "<CSRF_TOKEN_2>",
#     "expiresAt": 1800003600000,
#     "refreshToken": "<REFRESH_TOKEN_2>"
# }
