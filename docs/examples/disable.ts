const host = "http://127.0.0.1:5000";

// Log in with the password...
const response1 = await fetch(`${host}/auth/login`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"username": "alice", "password": "<PASSWORD>"}) });
console.log(response1.status, await response1.json());
// 200
// {
//     "2fa": "<CHALLENGE_ID>"
// }

// ...and a code: managing 2FA needs a token from a login that used it.
const response2 = await fetch(`${host}/auth/2fa/challenge`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456}) });
console.log(response2.status, await response2.json());
// 200
// {
//     "accessToken": "<ACCESS_TOKEN>",
//     "csrfToken": "<CSRF_TOKEN>",
//     "expiresAt": 1800003600000,
//     "refreshToken": "<REFRESH_TOKEN>"
// }

// Remove 2FA, proving the second factor (a code or a recovery code).
const response3 = await fetch(`${host}/auth/2fa/disable`, { method: "POST", headers: {"Authorization": "Bearer <ACCESS_TOKEN>", "Content-Type": "application/json"}, body: JSON.stringify({"verificationCode": 234567}) });
console.log(response3.status, await response3.json());
// 200
// {}

// Not connected any more.
const response4 = await fetch(`${host}/auth/2fa/status`, { method: "GET", headers: {"Authorization": "Bearer <ACCESS_TOKEN>"} });
console.log(response4.status, await response4.json());
// 200
// {
//     "connected": false
// }

// Nothing left to disable.
const response5 = await fetch(`${host}/auth/2fa/disable`, { method: "POST", headers: {"Authorization": "Bearer <ACCESS_TOKEN>", "Content-Type": "application/json"}, body: JSON.stringify({"verificationCode": 234567}) });
console.log(response5.status, await response5.json());
// 409
// {
//     "errorCode": "NOT_CONNECTED",
//     "statusCode": 409,
//     "why": "Two-factor authentication is not connected for this user."
// }
