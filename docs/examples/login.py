import requests

host = "http://127.0.0.1:5000"

# Log in: the password is right, and 2FA is connected.
response = requests.post(
    f"{host}/auth/login",
    json={"username": "alice", "password": "<PASSWORD>"},
)
print(response.status_code, response.json())
# 200
# {
#     "2fa": "<CHALLENGE_ID>"
# }

# A wrong code: the challenge survives, with fewer attempts left.
response = requests.post(
    f"{host}/auth/2fa/challenge",
    json={"challengeId": "<CHALLENGE_ID>", "verificationCode": 111111},
)
print(response.status_code, response.json())
# 403
# {
#     "errorCode": "INVALID_CODE",
#     "remainingAttempts": 4,
#     "statusCode": 403,
#     "why": "Invalid 2FA code. Try again."
# }

# The right code: the login completes (the example app issues tokens).
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

# The new token records both factors.
response = requests.get(
    f"{host}/api/me",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
)
print(response.status_code, response.json())
# 200
# {
#     "amr": [
#         "pwd",
#         "otp"
#     ],
#     "authTime": 1800000035,
#     "username": "alice"
# }
