//! Sign-in's part of the OpenAPI document (merged into `GET /openapi.json`).

use serde_json::{json, Map, Value};

/// Every sign-in path the document describes.
pub const PATHS: [&str; 24] = [
    "/v1/auth/switch",
    "/v1/auth/login",
    "/v1/auth/logout",
    "/v1/auth/session",
    "/v1/auth/sessions",
    "/v1/auth/sessions/{id}",
    "/v1/auth/sessions/revoke-others",
    "/v1/auth/password",
    "/v1/auth/password-reset",
    "/v1/auth/password-reset/confirm",
    "/v1/auth/email/confirm",
    "/v1/auth/totp/enrol",
    "/v1/auth/totp/confirm",
    "/v1/auth/totp/disable",
    "/v1/auth/passkeys",
    "/v1/auth/passkeys/register",
    "/v1/auth/passkeys/{id}",
    "/v1/auth/passkey/challenge",
    "/v1/auth/passkey/login",
    "/v1/auth/link",
    "/v1/companies/{id}/links",
    "/v1/companies/{id}/links/{link}",
    "/v1/users/{id}/unlock",
    "/v1/users/{id}/sessions",
];

fn error() -> Value {
    json!({ "description": "error envelope", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// An operation answering `status` with `result` (a schema name, or `None` for no body), or
/// one of `errs` with the error envelope. `caller`: whether it needs a key or a session.
fn op(
    summary: &str,
    body: Option<&str>,
    status: &str,
    result: Option<&str>,
    errs: &[&str],
    caller: bool,
) -> Value {
    let mut responses = Map::new();
    for e in errs {
        responses.insert((*e).to_owned(), error());
    }
    let done = match result {
        Some(r) => {
            json!({ "description": "done", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{r}") } } } })
        }
        None => json!({ "description": "done" }),
    };
    responses.insert(status.to_owned(), done);
    let mut o = json!({ "summary": summary, "responses": responses });
    if caller {
        o["security"] = json!([{ "bearer": [] }, { "apiKey": [] }]);
    } else {
        o["security"] = json!([]);
    }
    if let Some(b) = body {
        o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{b}") } } } });
    }
    o
}

fn params(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| json!({ "name": n, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect(),
    )
}

/// Adds the sign-in paths and schemas to the document.
pub fn extend(doc: &mut Value) {
    // Public calls: a bad or oversized body, a refused credential; the store may be missing.
    let public = ["400", "401", "413", "503"];
    // Self-service calls need a session (an API key is answered 403 `session_required`).
    let mine = ["400", "401", "403", "404", "409", "413", "503"];
    let governed = ["400", "401", "403", "404", "409", "413", "503"];
    let paths = json!({
        "/v1/auth/login": { "post": op("Sign in: a session token (shown once). Unknown logins, wrong passwords, locked and deactivated accounts all answer 401 `invalid_credentials`; with two-factor on and no code, 401 `mfa_required`. A user who must use a second factor and has none gets `mfa_setup_required` and a session that can only enrol one", Some("LoginBody"), "200", Some("LoginAnswer"), &public, false) },
        "/v1/auth/logout": { "post": op("End the caller's session", None, "204", None, &mine, true) },
        "/v1/auth/session": { "get": op("The caller's session and user", None, "200", Some("SessionAndUser"), &mine, true) },
        "/v1/auth/sessions": { "get": op("The caller's live sessions, newest first", None, "200", Some("SessionList"), &mine, true) },
        "/v1/auth/sessions/{id}": { "parameters": params(&["id"]), "delete": op("End one of the caller's sessions", None, "204", None, &mine, true) },
        "/v1/auth/sessions/revoke-others": { "post": op("End every session of the caller but this one", None, "200", Some("Revoked"), &mine, true) },
        "/v1/auth/password": { "post": op("Change the caller's password (other sessions end)", Some("ChangePassword"), "204", None, &mine, true) },
        "/v1/auth/password-reset": { "post": op("Ask for a reset link: always 202 with the same body; the link goes to the configured `password_reset_command`, only for logins that are email addresses, one live link per login (a request while one is valid sends nothing)", Some("ResetRequest"), "202", Some("Accepted"), &["400", "413", "503"], false) },
        "/v1/auth/email/confirm": { "post": { "summary": "Put a changed e-mail address in force with the token of the link sent to it (folders with `sign_in.verify_email_changes`): once, before it expires, while no other user has the address; a login that was the old address follows it", "security": [], "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EmailConfirmBody" } } } }, "responses": { "200": { "description": "the user with its new address", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/User" } } } }, "400": error(), "404": error(), "409": error(), "410": error(), "413": error(), "503": error() } } },
        "/v1/auth/password-reset/confirm": { "post": { "summary": "Set a new password with a reset token: once, before it expires; unlocks the account, ends its sessions and revokes the API keys they made", "security": [], "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ResetBody" } } } }, "responses": { "200": { "description": "done", "content": { "application/json": { "schema": { "type": "object" } } } }, "400": error(), "410": error(), "413": error(), "503": error() } } },
        "/v1/auth/totp/enrol": { "post": op("Start two-factor enrolment: a TOTP secret and its otpauth URI", None, "200", Some("Enrolment"), &mine, true) },
        "/v1/auth/totp/confirm": { "post": op("Turn two-factor on with a first code; answers ten recovery codes, shown once", Some("CodeBody"), "200", Some("RecoveryCodes"), &mine, true) },
        "/v1/auth/totp/disable": { "post": op("Turn two-factor off (password and a code); 409 `mfa_required_by_policy` for a user the folder requires it of", Some("DisableBody"), "204", None, &mine, true) },
        "/v1/auth/passkeys": {
            "get": op("The caller's passkeys: names and dates, never key material", None, "200", Some("PasskeyList"), &mine, true),
            "post": op("Finish registering a passkey with what `navigator.credentials.create()` answered to the options of `POST /v1/auth/passkeys/register`: 400 `invalid_passkey` when the answer is not accepted (challenge, origin, relying party, user verification), 400 `invalid_token` for an unknown or used ceremony, 410 when it ran out, 409 when the passkey is registered already. The session then counts as having passed a second factor", Some("PasskeyRegistrationBody"), "201", Some("Passkey"), &["400", "401", "403", "404", "409", "410", "413", "503"], true)
        },
        "/v1/auth/passkeys/register": { "post": op("Start registering a passkey: the options for `navigator.credentials.create()` (binary fields in base64url) and a single-use `ceremony` token, valid 5 minutes; 409 when the server has no passkey settings (`passkey_rp_id`, `passkey_origins`). A session that must still enrol a second factor may call it", None, "200", Some("PasskeyCeremony"), &mine, true) },
        "/v1/auth/passkeys/{id}": { "parameters": params(&["id"]), "delete": op("Remove one of the caller's passkeys: needs a session that passed a second factor (403 `mfa_required`); 409 `mfa_required_by_policy` for the last second factor of a user the folder requires one of", None, "204", None, &mine, true) },
        "/v1/auth/passkey/challenge": { "post": op("Start a sign-in with a passkey (alone with `POST /v1/auth/passkey/login`, or as the second factor of `POST /v1/auth/login`): options for `navigator.credentials.get()` without any allowed credential, so nothing tells whether an account exists, and a single-use `ceremony` token; 409 when the server has no passkey settings", None, "200", Some("PasskeyCeremony"), &["409", "503"], false) },
        "/v1/auth/passkey/login": { "post": op("Sign in with a passkey alone: the session has passed a second factor. A wrong, replayed or unknown answer, a used or expired ceremony, a deactivated or locked account: all 401 `invalid_credentials`", Some("PasskeyLoginBody"), "200", Some("LoginAnswer"), &["400", "401", "409", "413", "503"], false) },
        "/v1/auth/link": { "post": op("Sign in with a customer's token link (the service portal): refused once the customer has portal users", Some("LinkBody"), "200", Some("LoginAnswer"), &["400", "401", "409", "413", "503"], false) },
        "/v1/auth/switch": { "post": op("Act for another customer profile (a forwarder acting for its customers), decided as `customer.switch`; the session's decisions then carry it in the folder's `sign_in.switch_attribute`. The profile is the server's (its entities file), never the caller's: 404 when the server does not hold it", Some("SwitchBody"), "200", Some("Session"), &mine, true) },
        "/v1/companies/{id}/links": { "parameters": params(&["id"]), "post": op("Create a customer's token link (decided as `user.create` of its token-link user); the token is answered once", None, "201", Some("IssuedLink"), &governed, true) },
        "/v1/companies/{id}/links/{link}": { "parameters": params(&["id", "link"]), "delete": op("Revoke a customer's token link", None, "200", Some("Link"), &governed, true) },
        "/v1/users/{id}/unlock": { "parameters": params(&["id"]), "post": op("Clear a sign-in lock (decided as `user.update`)", None, "200", Some("LockState"), &governed, true) },
        "/v1/users/{id}/sessions": {
            "parameters": params(&["id"]),
            "get": op("A user's live sessions and lock state (decided as `user.read`)", None, "200", Some("UserSessions"), &governed, true),
            "delete": op("End every session of a user (decided as `user.update`)", None, "200", Some("Revoked"), &governed, true)
        }
    });
    let closed = |required: Value, props: Value| json!({ "type": "object", "required": required, "properties": props, "additionalProperties": false });
    let obj = |props: Value| json!({ "type": "object", "properties": props });
    let text = json!({ "type": "string" });
    let assertion = json!({ "type": "object", "description": "the PublicKeyCredential of navigator.credentials.get(): id, rawId, type and response {authenticatorData, clientDataJSON, signature, userHandle}, binary fields in base64url" });
    let session = obj(
        json!({ "id": text, "user": text, "device": text, "mfa": { "type": "boolean" }, "switched_to": {}, "created_at": text, "last_active_at": text, "expires_at": text, "revoked_at": {} }),
    );
    let schemas = json!({
        "LoginBody": closed(json!(["login", "password"]), json!({ "login": text, "password": text, "code": { "type": ["string", "null"] }, "passkey": { "oneOf": [{ "$ref": "#/components/schemas/PasskeyAnswer" }, { "type": "null" }] }, "device": text })),
        "PasskeyAnswer": closed(json!(["ceremony", "credential"]), json!({ "ceremony": text, "credential": assertion })),
        "PasskeyLoginBody": closed(json!(["ceremony", "credential"]), json!({ "ceremony": text, "credential": assertion, "device": text })),
        "PasskeyRegistrationBody": closed(json!(["ceremony", "credential"]), json!({ "ceremony": text, "credential": { "type": "object", "description": "the PublicKeyCredential of navigator.credentials.create(): id, rawId, type and response {attestationObject, clientDataJSON}, binary fields in base64url" }, "name": text })),
        "PasskeyCeremony": obj(json!({ "ceremony": { "type": "string", "description": "pkc_…, single use, valid 5 minutes" }, "options": { "type": "object", "description": "{publicKey: …} for navigator.credentials.create() or .get()" } })),
        "Passkey": obj(json!({ "id": text, "user": text, "credential_id": text, "name": text, "created_at": text, "last_used_at": {} })),
        "PasskeyList": obj(json!({ "passkeys": { "type": "array", "items": { "$ref": "#/components/schemas/Passkey" } } })),
        "LoginAnswer": obj(json!({ "token": { "type": "string", "description": "pcs_…, shown once" }, "session": { "$ref": "#/components/schemas/Session" }, "user": { "$ref": "#/components/schemas/User" }, "mfa_setup_required": { "type": "boolean" } })),
        "Session": session,
        "SessionAndUser": obj(json!({ "session": { "$ref": "#/components/schemas/Session" }, "user": { "$ref": "#/components/schemas/User" }, "mfa_setup_required": { "type": "boolean", "description": "the user must use a second factor and this session has not: it can only enrol one, show itself and sign out; every other call answers 403 `mfa_enrollment_required`" } })),
        "SessionList": obj(json!({ "current": text, "sessions": { "type": "array", "items": { "$ref": "#/components/schemas/Session" } } })),
        "UserSessions": obj(json!({ "sessions": { "type": "array", "items": { "$ref": "#/components/schemas/Session" } }, "lock": { "$ref": "#/components/schemas/LockState" } })),
        "Revoked": obj(json!({ "revoked": { "type": "integer" } })),
        "LockState": obj(json!({ "failures": { "type": "integer" }, "locked_until": { "type": ["string", "null"] } })),
        "ChangePassword": closed(json!(["current_password", "new_password"]), json!({ "current_password": text, "new_password": text })),
        "ResetRequest": closed(json!(["login"]), json!({ "login": text })),
        "Accepted": obj(json!({ "status": text, "message": text })),
        "ResetBody": closed(json!(["token", "password"]), json!({ "token": text, "password": text })),
        "EmailConfirmBody": closed(json!(["token"]), json!({ "token": text })),
        "Enrolment": obj(json!({ "secret": text, "otpauth_uri": text })),
        "CodeBody": closed(json!(["code"]), json!({ "code": text })),
        "RecoveryCodes": obj(json!({ "recovery_codes": { "type": "array", "items": text } })),
        "DisableBody": closed(json!(["password", "code"]), json!({ "password": text, "code": text })),
        "SwitchBody": closed(json!(["customer"]), json!({ "customer": text })),
        "LinkBody": closed(json!(["token"]), json!({ "token": text, "device": text })),
        "Link": obj(json!({ "id": text, "company": text, "created_at": text, "revoked_at": {} })),
        "IssuedLink": obj(json!({ "link": { "$ref": "#/components/schemas/Link" }, "token": { "type": "string", "description": "pcl_…, shown once" } }))
    });
    for (key, add) in [("paths", paths), ("schemas", schemas)] {
        let target = if key == "paths" {
            doc.get_mut("paths")
        } else {
            doc.get_mut("components").and_then(|c| c.get_mut("schemas"))
        };
        if let (Some(Value::Object(t)), Value::Object(a)) = (target, add) {
            t.extend(a);
        }
    }
}
