const host = "http://127.0.0.1:5000";

// Remove 2FA, proving the second factor (a code or a recovery code).
const response1 = await fetch(`${host}/auth/2fa/disable`, { method: "POST", headers: {"Authorization": "Bearer <ACCESS_TOKEN>", "Content-Type": "application/json"}, body: JSON.stringify({"verificationCode": 123456}) });
console.log(response1.status, await response1.json());
// 200
// {}

// Not connected any more.
const response2 = await fetch(`${host}/auth/2fa/status`, { method: "GET", headers: {"Authorization": "Bearer <ACCESS_TOKEN>"} });
console.log(response2.status, await response2.json());
// 200
// {
//     "connected": false
// }

// Nothing left to disable.
const response3 = await fetch(`${host}/auth/2fa/disable`, { method: "POST", headers: {"Authorization": "Bearer <ACCESS_TOKEN>", "Content-Type": "application/json"}, body: JSON.stringify({"verificationCode": 123456}) });
console.log(response3.status, await response3.json());
// 409
// {
//     "errorCode": "NOT_CONNECTED",
//     "statusCode": 409,
//     "why": "Two-factor authentication is not connected for this user."
// }
