host=http://127.0.0.1:5000

# Log in: the password is right, and 2FA is connected.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/login" -d '{"username": "alice", "password": "<PASSWORD>"}'
# 200
# {
#     "2fa": "<CHALLENGE_ID>"
# }

# A wrong code: the challenge survives, with fewer attempts left.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/2fa/challenge" -d '{"challengeId": "<CHALLENGE_ID>", "verificationCode": 111111}'
# 403
# {
#     "errorCode": "INVALID_CODE",
#     "remainingAttempts": 4,
#     "statusCode": 403,
#     "why": "Invalid 2FA code. Try again."
# }

# The right code: the login completes (the example app issues tokens).
curl -XPOST -H 'Content-Type: application/json' "$host/auth/2fa/challenge" -d '{"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456}'
# 200
# {
#     "accessToken": "<ACCESS_TOKEN>",
#     "csrfToken": "<CSRF_TOKEN>",
#     "expiresAt": 1800003600000,
#     "refreshToken": "<REFRESH_TOKEN>"
# }

# The new token records both factors.
curl -XGET -H 'Authorization: Bearer <ACCESS_TOKEN>' "$host/api/me"
# 200
# {
#     "amr": [
#         "pwd",
#         "otp"
#     ],
#     "authTime": 1800000035,
#     "username": "alice"
# }
