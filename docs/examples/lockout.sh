host=http://127.0.0.1:5000

# A login after 5 consecutive wrong codes.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/login" -d '{"username": "alice", "password": "<PASSWORD>"}'
# 200
# {
#     "2fa": "<CHALLENGE_ID>"
# }

# The 6th wrong code in a row (UCLOUD_2FA_LOCKOUT_AFTER=6 here; 100 by default).
curl -XPOST -H 'Content-Type: application/json' "$host/auth/2fa/challenge" -d '{"challengeId": "<CHALLENGE_ID>", "verificationCode": 111111}'
# 403
# Retry-After: 3300
# {
#     "errorCode": "INVALID_CODE",
#     "remainingAttempts": 4,
#     "retryAfter": 3300,
#     "statusCode": 403,
#     "why": "Invalid 2FA code. Try again."
# }

# Locked out: even the right code is refused until the lock-out ends.
curl -XPOST -H 'Content-Type: application/json' "$host/auth/2fa/challenge" -d '{"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456}'
# 429
# Retry-After: 3300
# {
#     "errorCode": "LOCKED_OUT",
#     "retryAfter": 3300,
#     "statusCode": 429,
#     "why": "Too many consecutive wrong codes: two-factor login is locked for a while. An administrator can reset it."
# }
