host=http://127.0.0.1:5000

# No bearer token.
curl -XGET "$host/auth/2fa/status"
# 401
# WWW-Authenticate: bearer error="missing_authorization", error_description="Missing 'Authorization' in headers."
# {
#     "errorCode": "MISSING_AUTHORIZATION",
#     "statusCode": 401,
#     "why": "Missing 'Authorization' in headers."
# }

# A token the server does not know.
curl -XGET -H 'Authorization: Bearer <ACCESS_TOKEN_2>' "$host/auth/2fa/status"
# 401
# WWW-Authenticate: Bearer error="invalid_token", error_description="The access token provided is expired, revoked, malformed, or invalid for other reasons."
# {
#     "errorCode": "INVALID_TOKEN",
#     "statusCode": 401,
#     "why": "The access token provided is expired, revoked, malformed, or invalid for other reasons."
# }

# Setting up again while connected is refused; the credential is untouched.
curl -XPOST -H 'Authorization: Bearer <ACCESS_TOKEN>' "$host/auth/2fa"
# 409
# {
#     "errorCode": "ALREADY_CONNECTED",
#     "statusCode": 409,
#     "why": "Two-factor authentication is already connected for this user."
# }

# A code that is not six digits.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/2fa/challenge" -d '{"challengeId": "<CHALLENGE_ID>", "verificationCode": 1234567}'
# 400
# {
#     "errorCode": "BAD_REQUEST",
#     "statusCode": 400,
#     "why": "verificationCode must be a six-digit code: an integer from 0 to 999999 or a string of six digits."
# }

# An unknown, expired, used or burned challenge.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/2fa/challenge" -d '{"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456}'
# 404
# {
#     "errorCode": "CHALLENGE_NOT_FOUND",
#     "statusCode": 404,
#     "why": "Unknown or expired challenge. Start again."
# }

# Step-up (example app): a password-only token of a user with 2FA.
curl -XGET -H 'Authorization: Bearer <ACCESS_TOKEN>' "$host/api/me/security"
# 401
# WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="This needs a login with your second factor. Log in again with your 2FA code."
# {
#     "errorCode": "INSUFFICIENT_USER_AUTHENTICATION",
#     "statusCode": 401,
#     "why": "This needs a login with your second factor. Log in again with your 2FA code."
# }

# After 5 consecutive wrong codes answers are slowed down: wait Retry-After seconds.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/2fa/challenge" -d '{"challengeId": "<CHALLENGE_ID_2>", "verificationCode": 123456}'
# 429
# Retry-After: 1
# {
#     "errorCode": "TOO_MANY_ATTEMPTS",
#     "retryAfter": 1,
#     "statusCode": 429,
#     "why": "Too many wrong codes. Wait before trying again."
# }
