import requests

host = "http://127.0.0.1:5000"

# Log in with the password...
response = requests.post(
    f"{host}/auth/login",
    json={"username": "alice", "password": "<PASSWORD>"},
)
print(response.status_code, response.json())
# 200
# {
#     "2fa": "<CHALLENGE_ID>"
# }

# ...and a code: managing 2FA needs a token from a login that used it.
response = requests.post(
    f"{host}/auth/2fa/challenge",
    json={"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456},
)
print(response.status_code, response.json())
# 200
# {
#     "accessToken": "<ACCESS_TOKEN>",
#     "csrfToken": "<CSRF_TOKEN>",
#     "expiresAt": 1800003600000,
#     "refreshToken": "<REFRESH_TOKEN>"
# }

# Remove 2FA, proving the second factor (a code or a recovery code).
response = requests.post(
    f"{host}/auth/2fa/disable",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
    json={"verificationCode": 234567},
)
print(response.status_code, response.json())
# 200
# {}

# Not connected any more.
response = requests.get(
    f"{host}/auth/2fa/status",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
)
print(response.status_code, response.json())
# 200
# {
#     "connected": false
# }

# Nothing left to disable.
response = requests.post(
    f"{host}/auth/2fa/disable",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
    json={"verificationCode": 234567},
)
print(response.status_code, response.json())
# 409
# {
#     "errorCode": "NOT_CONNECTED",
#     "statusCode": 409,
#     "why": "Two-factor authentication is not connected for this user."
# }
