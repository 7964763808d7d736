const host = "http://127.0.0.1:5000";

// No bearer token.
const response1 = await fetch(`${host}/auth/2fa/status`, { method: "GET" });
console.log(response1.status, await response1.json());
// 401
// WWW-Authenticate: bearer error="missing_authorization", error_description="Missing 'Authorization' in headers."
// {
//     "errorCode": "MISSING_AUTHORIZATION",
//     "statusCode": 401,
//     "why": "Missing 'Authorization' in headers."
// }

// A token the server does not know.
const response2 = await fetch(`${host}/auth/2fa/status`, { method: "GET", headers: {"Authorization": "Bearer <ACCESS_TOKEN_2>"} });
console.log(response2.status, await response2.json());
// 401
// WWW-Authenticate: Bearer error="invalid_token", error_description="The access token provided is expired, revoked, malformed, or invalid for other reasons."
// {
//     "errorCode": "INVALID_TOKEN",
//     "statusCode": 401,
//     "why": "The access token provided is expired, revoked, malformed, or invalid for other reasons."
// }

// Setting up again while connected is refused; the credential is untouched.
const response3 = await fetch(`${host}/auth/2fa`, { method: "POST", headers: {"Authorization": "Bearer <ACCESS_TOKEN>"} });
console.log(response3.status, await response3.json());
// 409
// {
//     "errorCode": "ALREADY_CONNECTED",
//     "statusCode": 409,
//     "why": "Two-factor authentication is already connected for this user."
// }

// A code that is not six digits.
const response4 = await fetch(`${host}/auth/2fa/challenge`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"challengeId": "<CHALLENGE_ID>", "verificationCode": 1234567}) });
console.log(response4.status, await response4.json());
// 400
// {
//     "errorCode": "BAD_REQUEST",
//     "statusCode": 400,
//     "why": "verificationCode must be a six-digit code: an integer from 0 to 999999 or a string of six digits."
// }

// An unknown, expired, used or burned challenge.
const response5 = await fetch(`${host}/auth/2fa/challenge`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"challengeId": "<CHALLENGE_ID>", "verificationCode": 123456}) });
console.log(response5.status, await response5.json());
// 404
// {
//     "errorCode": "CHALLENGE_NOT_FOUND",
//     "statusCode": 404,
//     "why": "Unknown or expired challenge. Start again."
// }

// Step-up (example app): a password-only token of a user with 2FA.
const response6 = await fetch(`${host}/api/me/security`, { method: "GET", headers: {"Authorization": "Bearer <ACCESS_TOKEN>"} });
console.log(response6.status, await response6.json());
// 401
// WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="This needs a login with your second factor. Log in again with your 2FA code."
// {
//     "errorCode": "INSUFFICIENT_USER_AUTHENTICATION",
//     "statusCode": 401,
//     "why": "This needs a login with your second factor. Log in again with your 2FA code."
// }

// After 5 consecutive wrong codes answers are slowed down: wait Retry-After seconds.
const response7 = await fetch(`${host}/auth/2fa/challenge`, { method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({"challengeId": "<CHALLENGE_ID_2>", "verificationCode": 123456}) });
console.log(response7.status, await response7.json());
// 429
// Retry-After: 1
// {
//     "errorCode": "TOO_MANY_ATTEMPTS",
//     "retryAfter": 1,
//     "statusCode": 429,
//     "why": "Too many wrong codes. Wait before trying again."
// }
