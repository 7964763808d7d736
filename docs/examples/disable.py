import requests

host = "http://127.0.0.1:5000"

# Remove 2FA, proving the second factor (a code or a recovery code).
response = requests.post(
    f"{host}/auth/2fa/disable",
    headers={"Authorization": "Bearer <ACCESS_TOKEN>"},
    json={"verificationCode": 123456},
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
    json={"verificationCode": 123456},
)
print(response.status_code, response.json())
# 409
# {
#     "errorCode": "NOT_CONNECTED",
#     "statusCode": 409,
#     "why": "Two-factor authentication is not connected for this user."
# }
