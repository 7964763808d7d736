host=http://127.0.0.1:5000

# Remove 2FA, proving the second factor (a code or a recovery code).
curl -XPOST -H 'Authorization: Bearer <ACCESS_TOKEN>' -H 'Content-Type: application/json' "$host/auth/2fa/disable" -d '{"verificationCode": 123456}'
# 200
# {}

# Not connected any more.
curl -XGET -H 'Authorization: Bearer <ACCESS_TOKEN>' "$host/auth/2fa/status"
# 200
# {
#     "connected": false
# }

# Nothing left to disable.
curl -XPOST -H 'Authorization: Bearer <ACCESS_TOKEN>' -H 'Content-Type: application/json' "$host/auth/2fa/disable" -d '{"verificationCode": 123456}'
# 409
# {
#     "errorCode": "NOT_CONNECTED",
#     "statusCode": 409,
#     "why": "Two-factor authentication is not connected for this user."
# }
