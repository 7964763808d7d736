const host = "http://127.0.0.1:5000";

// A login after 5 consecutive wrong codes.
const response1 = await fetch(`${host}/auth/login`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"username": "alice", "password": "<PASSWORD>"}) });
console.log(response1.status, await response1.json());
// 200
// {
//     "2fa": "<CHALLENGE_ID>"
// }

// The 6th wrong code in a row (UCLOUD_2FA_LOCKOUT_AFTER=6 here; 100 by default).
const response2 = await fetch(`${host}/auth/2fa/challenge`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"challengeId": "<CHALLENGE_ID>", "verificationCode": 111111}) });
console.log(response2.status, await response2.json());
// 403
// Retry-After: 3300
// {
//     "errorCode": "INVALID_CODE",
//     "remainingAttempts": 4,
//     "retryAfter": 3300,
//     "statusCode": 403,
//     "why": "Invalid 2FA code. Try again."
// }

// Locked out: even the right code is refused until the lock-out ends.
const response3 = await fetch(`${host}/auth/2fa/challenge`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456}) });
console.log(response3.status, await response3.json());
// 429
// Retry-After: 3300
// {
//     "errorCode": "LOCKED_OUT",
//     "retryAfter": 3300,
//     "statusCode": 429,
//     "why": "Too many consecutive wrong codes: two-factor login is locked for a while. An administrator can reset it."
// }
