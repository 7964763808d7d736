const host = "http://127.0.0.1:5000";

// Log in: no 2FA yet, so the password alone gives tokens.
const response1 = await fetch(`${host}/auth/login`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"username": "alice", "password": "<PASSWORD>"}) });
console.log(response1.status, await response1.json());
// 200
// {
//     "accessToken": "<ACCESS_TOKEN>",
//     "csrfToken": "<CSRF_TOKEN>",
//     "expiresAt": 1800003600000,
//     "refreshToken": "<REFRESH_TOKEN>"
// }

// Is 2FA connected?
const response2 = await fetch(`${host}/auth/2fa/status`, { method: "GET", headers: {"Authorization": "Bearer <ACCESS_TOKEN>"} });
console.log(response2.status, await response2.json());
// 200
// {
//     "connected": false
// }

// Start the setup.
const response3 = await fetch(`${host}/auth/2fa`, { method: "POST", headers: {"Authorization": "Bearer <ACCESS_TOKEN>"} });
console.log(response3.status, await response3.json());
// 200
// {
//     "challengeId": "<CHALLENGE_ID>",
//     "otpAuthUri": "otpauth://totp/Example%20Auth%20Server:alice?secret=<SECRET>&issuer=Example%20Auth%20Server&algorithm=SHA1&digits=6&period=30",
//     "qrCodeB64Data": "data:image/png;base64,<QR_CODE_PNG>",
//     "secret": "<SECRET>"
// }

// Answer the setup challenge with the code the authenticator app shows.
const response4 = await fetch(`${host}/auth/2fa/challenge`, { method: "POST", headers: {"Authorization": "Bearer <ACCESS_TOKEN>", "Content-Type": "application/json"}, body: JSON.stringify({"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456}) });
console.log(response4.status, await response4.json());
// 200
// {}

// Connected now.
const response5 = await fetch(`${host}/auth/2fa/status`, { method: "GET", headers: {"Authorization": "Bearer <ACCESS_TOKEN>"} });
console.log(response5.status, await response5.json());
// 200
// {
//     "connected": true
// }
