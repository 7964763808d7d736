const host = "http://127.0.0.1:5000";

// Log in: the password is right, and 2FA is connected.
const response1 = await fetch(`${host}/auth/login`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"username": "alice", "password": "<PASSWORD>"}) });
console.log(response1.status, await response1.json());
// 200
// {
//     "2fa": "<CHALLENGE_ID>"
// }

// A wrong code: the challenge survives, with fewer attempts left.
const response2 = await fetch(`${host}/auth/2fa/challenge`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"challengeId": "<CHALLENGE_ID>", "verificationCode": 111111}) });
console.log(response2.status, await response2.json());
// 403
// {
//     "errorCode": "INVALID_CODE",
//     "remainingAttempts": 4,
//     "statusCode": 403,
//     "why": "Invalid 2FA code. Try again."
// }

// The right code: the login completes (the example app issues tokens).
const response3 = await fetch(`${host}/auth/2fa/challenge`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456}) });
console.log(response3.status, await response3.json());
// 200
// {
//     "accessToken": "<ACCESS_TOKEN>",
//     "csrfToken": "<CSRF_TOKEN>",
//     "expiresAt": 1800003600000,
//     "refreshToken": "<REFRESH_TOKEN>"
// }

// The new token records both factors.
const response4 = await fetch(`${host}/api/me`, { method: "GET", headers: {"Authorization": "Bearer <ACCESS_TOKEN>"} });
console.log(response4.status, await response4.json());
// 200
// {
//     "amr": [
//         "pwd",
//         "otp"
//     ],
//     "authTime": 1800000035,
//     "username": "alice"
// }
