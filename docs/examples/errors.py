import requests

host = "http://127.0.0.1:5000"

# No bearer token.
response = requests.get(
    f"{host}/auth/2fa/status",
)
print(response.status_code, response.json())
# 401
# WWW-Authenticate: bearer error="missing_authorization", error_description="Missing 'Authorization' in headers."
# {
#     "errorCode": "MISSING_AUTHORIZATION",
#     "statusCode": 401,
#     "why": "Missing 'Authorization' in headers."
# }

# A token the server does not know.
response = requests.get(
    f"{host}/auth/2fa/status",
    headers={"Authorization": "Bearer <ACCESS_TOKEN_2>"},
)
print(response.status_code, response.json())
# 401
# WWW-Authenticate: Bearer error="invalid_token", error_description="The access token provided is expired, revoked, malformed, or invalid for other reasons."
# {
#     "errorCode": "INVALID_TOKEN",
#     "statusCode": 401,
#     "why": "The access token provided is expired, revoked, malformed, or invalid for other reasons."
# }

# Setting up again while connected is refused; the credential is untouched.
response = requests.post(
    f"{host}/auth/2fa",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
)
print(response.status_code, response.json())
# 409
# {
#     "errorCode": "ALREADY_CONNECTED",
#     "statusCode": 409,
#     "why": "Two-factor authentication is already connected for this user."
# }

# A code that is not six digits.
response = requests.post(
    f"{host}/auth/2fa/challenge",
    json={"challengeId": "<CHALLENGE_ID>", "verificationCode": 1234567},
)
print(response.status_code, response.json())
# 400
# {
#     "errorCode": "BAD_REQUEST",
#     "statusCode": 400,
#     "why": "verificationCode must be a six-digit code: an integer from 0 to 999999 or a string of six digits."
# }

# An unknown, expired, used or burned challenge.
response = requests.post(
    f"{host}/auth/2fa/challenge",
    json={"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456},
)
print(response.status_code, response.json())
# 404
# {
#     "errorCode": "CHALLENGE_NOT_FOUND",
#     "statusCode": 404,
#     "why": "Unknown or expired challenge. Start again."
# }

# Step-up (example app): a password-only token of a user with 2FA.
response = requests.get(
    f"{host}/api/me/security",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
)
print(response.status_code, response.json())
# 401
# WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="This needs a login with your second factor. Log in again with your 2FA code."
# {
#     "errorCode": "INSUFFICIENT_USER_AUTHENTICATION",
#     "statusCode": 401,
#     "why": "This needs a login with your second factor. Log in again with your 2FA code."
# }

# After 5 consecutive wrong codes answers are slowed down: wait Retry-After seconds.
response = requests.post(
    f"{host}/auth/2fa/challenge",
    json={"challengeId": "<CHALLENGE_ID_2>", "verificationCode": 123456},
)
print(response.status_code, response.json())
# 429
# Retry-After: 1
# {
#     "errorCode": "TOO_MANY_ATTEMPTS",
#     "retryAfter": 1,
#     "statusCode": 429,
#     "why": "Too many wrong codes. Wait before trying again."
# }
