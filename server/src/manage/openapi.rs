//! The management API's part of the OpenAPI document (merged into `GET /openapi.json`).

use serde_json::{json, Map, Value};

/// Every management path the document describes.
pub const PATHS: [&str; 22] = [
    "/v1/users",
    "/v1/users/{id}",
    "/v1/users/{id}/role",
    "/v1/users/{id}/deactivate",
    "/v1/users/{id}/reactivate",
    "/v1/users/{id}/move",
    "/v1/users/{id}/companies",
    "/v1/companies/{id}",
    "/v1/grants",
    "/v1/grants/{id}/approve",
    "/v1/grants/{id}/refuse",
    "/v1/grants/{id}/revoke",
    "/v1/invitations",
    "/v1/invitations/{id}",
    "/v1/invitations/accept",
    "/v1/audit",
    "/v1/users/{id}/api-keys",
    "/v1/users/{id}/api-keys/{key}",
    "/v1/companies",
    "/v1/groups",
    "/v1/groups/default",
    "/v1/groups/{name}",
];

fn errors(codes: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    for c in codes {
        m.insert(
            (*c).to_owned(),
            json!({ "description": "error envelope", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
        );
    }
    m
}

/// An operation: `action` is the schema action that decides it (empty: none).
fn op(summary: &str, action: &str, body: Option<&str>, status: &str, result: &str, errs: &[&str]) -> Value {
    let mut responses = errors(errs);
    responses.insert(
        status.to_owned(),
        json!({ "description": "done", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{result}") } } } }),
    );
    let mut o = json!({
        "summary": summary,
        "responses": responses,
        "security": [{ "bearer": [] }, { "apiKey": [] }],
    });
    if !action.is_empty() {
        o["description"] = json!(format!(
            "Decided by the engine first: action `{action}`, principal the caller. A denial answers 403 and is audited with outcome `denied`."
        ));
    }
    if let Some(b) = body {
        o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{b}") } } } });
    }
    o
}

fn id_param() -> Value {
    json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }])
}

/// Adds the management paths and schemas to the document.
pub fn extend(doc: &mut Value) {
    let w = ["400", "401", "403", "404", "409"];
    let paths = json!({
        "/v1/users": {
            "get": op("Users of the caller's company", "", None, "200", "UserPage", &["401", "403"]),
            "post": op("Create a user", "user.create", Some("NewUser"), "201", "User", &w)
        },
        "/v1/users/{id}": {
            "parameters": id_param(),
            "get": op("Read a user", "user.read", None, "200", "User", &w),
            "patch": op("Edit a user: login, email, name (user.update), or role, flags, add-ons, group, attrs (user.set_role)", "user.update", Some("UserPatch"), "200", "User", &w),
            "delete": { "summary": "Delete a user (audit history kept; `?transfer_to=` names who receives its records)", "description": "Decided by action `user.delete`.", "parameters": [{ "name": "transfer_to", "in": "query", "schema": { "type": "string" } }], "responses": { "200": { "description": "the deleted user and the receiver" } }, "security": [{ "bearer": [] }, { "apiKey": [] }] }
        },
        "/v1/users/{id}/role": { "parameters": id_param(), "put": op("Change a user's role", "user.set_role", Some("RoleBody"), "200", "User", &w) },
        "/v1/users/{id}/deactivate": { "parameters": id_param(), "post": op("Deactivate a user (then denied everything)", "user.deactivate", None, "200", "User", &w) },
        "/v1/users/{id}/reactivate": { "parameters": id_param(), "post": op("Reactivate a user (within the user limit)", "user.reactivate", None, "200", "User", &w) },
        "/v1/users/{id}/move": { "parameters": id_param(), "post": op("Move a user to another company of its enterprise", "user.create", Some("MoveBody"), "200", "User", &w) },
        "/v1/users/{id}/companies": { "parameters": id_param(), "put": op("Set the companies a user may switch to", "user.set_role", Some("CompaniesBody"), "200", "User", &w) },
        "/v1/users/{id}/api-keys": {
            "parameters": id_param(),
            "get": op("A user's API keys (never their secrets)", "user.read", None, "200", "ApiKeyList", &w),
            "post": op("Issue an API key for a user; the key is answered once", "user.update", Some("KeyBody"), "201", "IssuedApiKey", &w)
        },
        "/v1/users/{id}/api-keys/{key}": {
            "parameters": [
                { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
                { "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }
            ],
            "delete": op("Revoke an API key", "user.update", None, "200", "ApiKey", &w)
        },
        "/v1/companies/{id}": {
            "parameters": id_param(),
            "get": op("The caller's company, an ancestor or an accessible company", "", None, "200", "Company", &["401", "404"]),
            "patch": op("Change a company's name, account type, user limit or attrs (decided on the company as it will be; context `changes` names the fields set)", "company.update", Some("CompanyPatch"), "200", "Company", &w)
        },
        "/v1/companies": {
            "get": op("The caller's company and the companies of its enterprise below it", "", None, "200", "CompanyList", &["401"]),
            "post": op("Create a company (`parent` defaults to the caller's company)", "company.create", Some("NewCompany"), "201", "Company", &w)
        },
        "/v1/groups": {
            "get": op("Every permission group", "", None, "200", "GroupList", &["401"]),
            "post": op("Create a permission group (features declared in roles.toml)", "group.manage", Some("NewGroup"), "201", "Group", &w)
        },
        "/v1/groups/default": { "put": op("Make a group the default of new users (`name: null`: none)", "group.manage", Some("DefaultGroupBody"), "200", "DefaultGroup", &w) },
        "/v1/groups/{name}": {
            "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
            "patch": op("Change a permission group's description or features (refused while users of another company are in it)", "group.manage", Some("GroupPatch"), "200", "Group", &w),
            "delete": { "summary": "Delete a permission group no user is in", "description": "Decided by action `group.manage`.", "responses": { "204": { "description": "deleted" }, "403": { "description": "denied" }, "409": { "description": "users are in it" } }, "security": [{ "bearer": [] }, { "apiKey": [] }] }
        },
        "/v1/grants": {
            "get": op("Grants on the caller's company's data (`?company=`) or the caller's own", "", None, "200", "GrantList", &["401", "403"]),
            "post": op("Request a visitor grant", "grant.request", Some("GrantRequest"), "201", "Grant", &w)
        },
        "/v1/grants/{id}/approve": { "parameters": id_param(), "post": op("Approve a visitor grant", "grant.approve", None, "200", "Grant", &w) },
        "/v1/grants/{id}/refuse": { "parameters": id_param(), "post": op("Refuse a visitor grant", "grant.refuse", None, "200", "Grant", &w) },
        "/v1/grants/{id}/revoke": { "parameters": id_param(), "post": op("Revoke a visitor grant", "grant.revoke", None, "200", "Grant", &w) },
        "/v1/invitations": {
            "get": op("The caller's company's invitations (`?include_closed=true` for all)", "", None, "200", "InvitationList", &["401"]),
            "post": op("Invite someone with a pre-assigned role; the token is answered once", "user.invite", Some("NewInvitation"), "201", "IssuedInvitation", &w)
        },
        "/v1/invitations/{id}": { "parameters": id_param(), "delete": op("Revoke a pending invitation", "user.invite", None, "200", "Invitation", &w) },
        "/v1/invitations/accept": { "post": { "summary": "Accept an invitation by its token (the token is the credential; no API key)", "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Acceptance" } } } }, "responses": { "201": { "description": "the new user" }, "404": { "description": "unknown token" }, "410": { "description": "expired" }, "409": { "description": "user limit reached" } } } },
        "/v1/audit": { "get": {
            "summary": "The audit trail of a company (the caller's by default), newest first; `?format=csv` exports CSV with formula cells neutralised",
            "description": "Decided by action `audit.read` on the company's AuditLog.",
            "parameters": [
                { "name": "user", "in": "query", "schema": { "type": "string" } },
                { "name": "company", "in": "query", "schema": { "type": "string" } },
                { "name": "action", "in": "query", "schema": { "type": "string" } },
                { "name": "since", "in": "query", "schema": { "type": "string", "description": "RFC 3339 or YYYY-MM-DD" } },
                { "name": "until", "in": "query", "schema": { "type": "string" } },
                { "name": "before", "in": "query", "schema": { "type": "integer" } },
                { "name": "limit", "in": "query", "schema": { "type": "integer" } },
                { "name": "format", "in": "query", "schema": { "enum": ["json", "csv"] } }
            ],
            "responses": { "200": { "description": "entries", "content": { "application/json": {}, "text/csv": {} } }, "401": { "description": "no key" }, "403": { "description": "denied" } },
            "security": [{ "bearer": [] }, { "apiKey": [] }]
        } }
    });
    let obj = |props: Value| json!({ "type": "object", "properties": props });
    let schemas = json!({
        "User": obj(json!({ "id": {}, "company": {}, "login": {}, "email": {}, "name": {}, "role": {}, "active": { "type": "boolean" }, "flags": {}, "addons": {}, "group": {}, "attrs": {}, "accessible": {} })),
        "UserPage": obj(json!({ "users": { "type": "array", "items": { "$ref": "#/components/schemas/User" } }, "next": {} })),
        "NewUser": { "type": "object", "required": ["login", "role"], "properties": { "id": {}, "company": {}, "login": {}, "email": {}, "name": {}, "role": {}, "flags": {}, "addons": {}, "group": {}, "attrs": { "description": "scope_all, locations, actors, all_customers, customers (Cedar JSON)" }, "actor_locations": { "description": "locations of the given actors, for the scope check" } } },
        "UserPatch": obj(json!({ "login": {}, "email": {}, "name": {}, "role": {}, "flags": {}, "addons": {}, "group": {}, "attrs": {}, "actor_locations": {} })),
        "RoleBody": { "type": "object", "required": ["role"], "properties": { "role": { "type": "string" } } },
        "MoveBody": { "type": "object", "required": ["company"], "properties": { "company": { "type": "string" } } },
        "CompaniesBody": { "type": "object", "required": ["companies"], "properties": { "companies": { "type": "array", "items": obj(json!({ "company": {}, "role": {} })) } } },
        "Company": obj(json!({ "id": {}, "name": {}, "account_type": {}, "parent": {}, "user_limit": {}, "attrs": {} })),
        "GrantRequest": { "type": "object", "required": ["company"], "properties": { "company": {}, "locations": {}, "actors": {}, "expires_at": {} } },
        "Grant": obj(json!({ "id": {}, "user": {}, "from_company": {}, "company": {}, "locations": {}, "actors": {}, "status": { "enum": ["requested", "approved", "refused", "revoked"] } })),
        "GrantList": obj(json!({ "grants": { "type": "array", "items": { "$ref": "#/components/schemas/Grant" } } })),
        "NewInvitation": { "type": "object", "required": ["email", "role"], "properties": { "company": {}, "email": {}, "role": {}, "flags": {}, "addons": {}, "group": {}, "attrs": {}, "actor_locations": {} } },
        "Invitation": obj(json!({ "id": {}, "company": {}, "email": {}, "role": {}, "status": { "enum": ["pending", "accepted", "revoked", "expired"] }, "expires_at": {} })),
        "InvitationList": obj(json!({ "invitations": { "type": "array", "items": { "$ref": "#/components/schemas/Invitation" } } })),
        "IssuedInvitation": obj(json!({ "invitation": { "$ref": "#/components/schemas/Invitation" }, "token": { "type": "string" } })),
        "KeyBody": obj(json!({ "name": { "type": "string" } })),
        "ApiKey": obj(json!({ "id": {}, "user": {}, "name": {}, "created_at": {}, "revoked_at": {} })),
        "ApiKeyList": obj(json!({ "api_keys": { "type": "array", "items": { "$ref": "#/components/schemas/ApiKey" } } })),
        "IssuedApiKey": obj(json!({ "api_key": { "$ref": "#/components/schemas/ApiKey" }, "key": { "type": "string", "description": "pck_<id>_<secret>, shown once" } })),
        "CompanyList": obj(json!({ "companies": { "type": "array", "items": { "$ref": "#/components/schemas/Company" } } })),
        "NewCompany": { "type": "object", "required": ["id", "account_type"], "properties": { "id": {}, "name": {}, "account_type": {}, "parent": {}, "user_limit": {}, "attrs": {} } },
        "CompanyPatch": obj(json!({ "name": {}, "account_type": {}, "user_limit": {}, "attrs": {} })),
        "Group": obj(json!({ "name": {}, "description": {}, "features": {}, "is_default": { "type": "boolean" } })),
        "GroupList": obj(json!({ "groups": { "type": "array", "items": { "$ref": "#/components/schemas/Group" } } })),
        "NewGroup": { "type": "object", "required": ["name"], "properties": { "name": {}, "description": {}, "features": {}, "is_default": { "type": "boolean" } } },
        "GroupPatch": obj(json!({ "description": {}, "features": {} })),
        "DefaultGroupBody": { "type": "object", "required": ["name"], "properties": { "name": { "type": ["string", "null"] } } },
        "DefaultGroup": obj(json!({ "default": {} })),
        "Acceptance": { "type": "object", "required": ["token"], "properties": { "token": {}, "user_id": {}, "login": {}, "name": {} } }
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
