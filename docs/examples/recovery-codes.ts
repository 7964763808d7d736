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

// New recovery codes, for a current code; show them once, then forget them.
const response3 = await fetch(`${host}/auth/2fa/recovery-codes`, { method: "POST", headers: {"Authorization": "Bearer <ACCESS_TOKEN>", "Content-Type": "application/json"}, body: JSON.stringify({"verificationCode": 234567}) });
console.log(response3.status, await response3.json());
// 200
// {
//     "recoveryCodes": [
//         "<RECOVERY_CODE>",
//         "<RECOVERY_CODE_2>",
//         "<RECOVERY_CODE_3>",
//         "<RECOVERY_CODE_4>",
//         "<RECOVERY_CODE_5>",
//         "<RECOVERY_CODE_6>",
//         "<RECOVERY_CODE_7>",
//         "<RECOVERY_CODE_8>",
//         "<RECOVERY_CODE_9>",
//         "<RECOVERY_CODE_10>"
//     ]
// }

// Later, without the phone: log in.
const response4 = await fetch(`${host}/auth/login`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"username": "alice", "password": "<PASSWORD>"}) });
console.log(response4.status, await response4.json());
// 200
// {
//     "2fa": "<CHALLENGE_ID_2>"
// }

// Answer the login challenge with a recovery code; it works once.
const response5 = await fetch(`${host}/auth/2fa/challenge`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"challengeId": "<CHALLENGE_ID_2>", "recoveryCode": "<RECOVERY_CODE>"}) });
console.log(response5.status, await response5.json());
// 200
// {
//     "accessToken": "<ACCESS_TOKEN_2>",
//     "csrfToken": "<CSRF_TOKEN_2>",
//     "expiresAt": 1800003600000,
//     "refreshToken": "<REFRESH_TOKEN_2>"
// }
