import requests

host = "http://127.0.0.1:5000"

# Log in: no 2FA yet, so the password alone gives tokens.
response = requests.post(
    f"{host}/auth/login",
    json={"username": "alice", "password": "<PASSWORD>"},
)
print(response.status_code, response.json())
# 200
# {
#     "accessToken": "<ACCESS_TOKEN>",
#     "csrfToken": "<CSRF_TOKEN>",
#     "expiresAt": 1800003600000,
#     "refreshToken": "<REFRESH_TOKEN>"
# }

# Is 2FA connected?
response = requests.get(
    f"{host}/auth/2fa/status",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
)
print(response.status_code, response.json())
# 200
# {
#     "connected": false
# }

# Start the setup.
response = requests.post(
    f"{host}/auth/2fa",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
)
print(response.status_code, response.json())
# 200
# {
#     "challengeId": "<CHALLENGE_ID>",
#     "otpAuthUri": "otpauth://totp/Example%20Auth%20Server:alice?secret=<SECRET>&issuer=Example%20Auth%20Server&algorithm=SHA1&digits=6&period=30",
#     "qrCodeB64Data": "data:image/png;base64,<QR_CODE_PNG>",
#     "secret": "<SECRET>"
# }

# Answer the setup challenge with the code the authenticator app shows.
response = requests.post(
    f"{host}/auth/2fa/challenge",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
    json={"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456},
)
print(response.status_code, response.json())
# 200
# {}

# Connected now.
response = requests.get(
    f"{host}/auth/2fa/status",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
)
print(response.status_code, response.json())
# 200
# {
#     "connected": true
# }
