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

/// An operation: `operation` is the management operation the folder maps to the action that
/// decides it (empty: none).
fn op(
    summary: &str,
    operation: &str,
    body: Option<&str>,
    status: &str,
    result: &str,
    errs: &[&str],
) -> Value {
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
    if !operation.is_empty() {
        o["description"] = json!(format!(
            "Decided by the engine first: operation `{operation}` (the action `[management.operations]` of roles.toml maps it to), principal the caller. A denial answers 403 and is audited with outcome `denied`; an operation the folder does not map answers 403."
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
    // Every management call may answer these with the error envelope: a bad body or query,
    // no or a bad key, a denial, an unknown record, a conflict (taken login, user limit…),
    // a body over the limit, attributes that would not fit the folder's schema (422), a server
    // without a store.
    let w = [
        "400", "401", "403", "404", "409", "413", "415", "421", "422", "503",
    ];
    let with_errors = |mut responses: Value| {
        if let Value::Object(m) = &mut responses {
            for (code, r) in errors(&w) {
                m.entry(code).or_insert(r);
            }
        }
        responses
    };
    let paths = json!({
        "/v1/users": {
            "get": op("The users of a company (the caller's by default) the caller may read, each row decided", "user.read", None, "200", "UserPage", &w),
            "post": op("Create a user", "user.create", Some("NewUser"), "201", "User", &w)
        },
        "/v1/users/{id}": {
            "parameters": id_param(),
            "get": op("Read a user", "user.read", None, "200", "User", &w),
            "patch": op("Edit a user: login, email, name (`user.update`), or role, flags, add-ons, group, attrs (one decision per kind: `user.set_role`, `user.set_flags`, `user.set_addons`, `user.set_group`, `user.set_attr.<name>`)", "user.update", Some("UserPatch"), "200", "User", &w),
            "delete": { "summary": "Delete a user (audit history kept; `?transfer_to=` names who receives its records)", "description": "Decided by operation `user.delete`.", "parameters": [{ "name": "transfer_to", "in": "query", "schema": { "type": "string" } }], "responses": with_errors(json!({ "200": { "description": "the deleted user and the receiver", "content": { "application/json": { "schema": { "type": "object" } } } } })), "security": [{ "bearer": [] }, { "apiKey": [] }] }
        },
        "/v1/users/{id}/role": { "parameters": id_param(), "put": op("Change a user's role", "user.set_role", Some("RoleBody"), "200", "User", &w) },
        "/v1/users/{id}/deactivate": { "parameters": id_param(), "post": op("Deactivate a user (then denied everything)", "user.deactivate", None, "200", "User", &w) },
        "/v1/users/{id}/reactivate": { "parameters": id_param(), "post": op("Reactivate a user (within the user limit)", "user.reactivate", None, "200", "User", &w) },
        "/v1/users/{id}/move": { "parameters": id_param(), "post": op("Move a user to another company of its enterprise (and `user.remove` where it is)", "user.move", Some("MoveBody"), "200", "User", &w) },
        "/v1/users/{id}/companies": { "parameters": id_param(), "put": op("Set the companies a user may switch to", "user.set_companies", Some("CompaniesBody"), "200", "User", &w) },
        "/v1/users/{id}/api-keys": {
            "parameters": id_param(),
            "get": op("A user's API keys (never their secrets)", "user.read", None, "200", "ApiKeyList", &w),
            "post": op("Issue an API key for a user; the key is answered once", "user.api_keys", Some("KeyBody"), "201", "IssuedApiKey", &w)
        },
        "/v1/users/{id}/api-keys/{key}": {
            "parameters": [
                { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
                { "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }
            ],
            "delete": op("Revoke an API key", "user.api_keys", None, "200", "ApiKey", &w)
        },
        "/v1/companies/{id}": {
            "parameters": id_param(),
            "get": op("A company the caller may read (404 otherwise, as for a missing one)", "company.read", None, "200", "Company", &w),
            "patch": op("Change a company's name, account type, user limit or attrs (decided on the company as it will be; context `changes` names the fields set)", "company.update", Some("CompanyPatch"), "200", "Company", &w)
        },
        "/v1/companies": {
            "get": op("The caller's company and the companies of its enterprise below it that the caller may read", "company.read", None, "200", "CompanyList", &w),
            "post": op("Create a company (`parent` defaults to the caller's company)", "company.create", Some("NewCompany"), "201", "Company", &w)
        },
        "/v1/groups": {
            "get": op("The permission groups the caller may read (decided on its company)", "group.read", None, "200", "GroupList", &w),
            "post": op("Create a permission group (features declared in roles.toml)", "group.manage", Some("NewGroup"), "201", "Group", &w)
        },
        "/v1/groups/default": { "put": op("Make a group the default of new users (`name: null`: none)", "group.manage", Some("DefaultGroupBody"), "200", "DefaultGroup", &w) },
        "/v1/groups/{name}": {
            "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
            "patch": op("Change a permission group's description or features (decided on the caller's company and on every company with a member in it)", "group.manage", Some("GroupPatch"), "200", "Group", &w),
            "delete": { "summary": "Delete a permission group no user is in", "description": "Decided by operation `group.manage`.", "responses": with_errors(json!({ "204": { "description": "deleted" } })), "security": [{ "bearer": [] }, { "apiKey": [] }] }
        },
        "/v1/grants": {
            "get": op("Grants on a company's data (`?company=`) or the caller's own, those the caller may read", "grant.read", None, "200", "GrantList", &w),
            "post": op("Request a visitor grant", "grant.request", Some("GrantRequest"), "201", "Grant", &w)
        },
        "/v1/grants/{id}/approve": { "parameters": id_param(), "post": op("Approve a visitor grant", "grant.approve", None, "200", "Grant", &w) },
        "/v1/grants/{id}/refuse": { "parameters": id_param(), "post": op("Refuse a visitor grant", "grant.refuse", None, "200", "Grant", &w) },
        "/v1/grants/{id}/revoke": { "parameters": id_param(), "post": op("Revoke a visitor grant", "grant.revoke", None, "200", "Grant", &w) },
        "/v1/invitations": {
            "get": op("The caller's company's invitations it may read, as the users they would make (`?include_closed=true` for all)", "user.read", None, "200", "InvitationList", &w),
            "post": op("Invite someone with a pre-assigned role; the token is answered once", "user.invite", Some("NewInvitation"), "201", "IssuedInvitation", &w)
        },
        "/v1/invitations/{id}": { "parameters": id_param(), "delete": op("Revoke a pending invitation", "user.revoke_invitation", None, "200", "Invitation", &w) },
        "/v1/invitations/accept": { "post": { "summary": "Accept an invitation by its token (the token is the credential; no API key)", "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Acceptance" } } } }, "responses": with_errors(json!({ "201": { "description": "the new user", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/User" } } } }, "410": { "description": "expired", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } } })) } },
        "/v1/audit": { "get": {
            "summary": "The audit trail of a company (the caller's by default), newest first; `?format=csv` exports CSV with formula cells neutralised",
            "description": "Decided by operation `audit.export` (mapped in `[management.operations]`) on the company's AuditLog.",
            "parameters": [
                { "name": "user", "in": "query", "schema": { "type": "string" } },
                { "name": "company", "in": "query", "schema": { "type": "string" } },
                { "name": "action", "in": "query", "schema": { "type": "string" } },
                { "name": "customer", "in": "query", "schema": { "type": "string", "description": "the customer profile an audited decision was made for" } },
                { "name": "since", "in": "query", "schema": { "type": "string", "description": "RFC 3339 or YYYY-MM-DD" } },
                { "name": "until", "in": "query", "schema": { "type": "string" } },
                { "name": "before", "in": "query", "schema": { "type": "integer" } },
                { "name": "limit", "in": "query", "schema": { "type": "integer" } },
                { "name": "format", "in": "query", "schema": { "enum": ["json", "csv"] } }
            ],
            "responses": with_errors(json!({ "200": { "description": "entries", "content": { "application/json": { "schema": { "type": "object" } }, "text/csv": { "schema": { "type": "string" } } } } })),
            "security": [{ "bearer": [] }, { "apiKey": [] }]
        } }
    });
    let mut paths = paths;
    // A folder that verifies e-mail changes answers a new address with 202: the link is sent.
    paths["/v1/users/{id}"]["patch"]["responses"]["202"] = json!({
        "description": "the change is allowed; the new address waits for the link sent to it (`sign_in.verify_email_changes`)",
        "content": { "application/json": { "schema": { "type": "object", "properties": {
            "user": { "$ref": "#/components/schemas/User" },
            "pending_email": { "type": "string" },
            "valid_minutes": { "type": "integer" },
            "message": { "type": "string" }
        } } } }
    });
    let obj = |props: Value| json!({ "type": "object", "properties": props });
    // Request bodies: the fields and types the server's structs take (unknown fields are
    // refused, `null` is taken where the field is optional). Names must not be blank; the
    // store also bounds them (256 bytes, no control characters) and the policies decide
    // which roles, flags and companies exist, so a well-typed body may still be refused.
    let name = json!({ "type": "string", "minLength": 1 });
    let opt_name = json!({ "type": ["string", "null"], "minLength": 1 });
    let names = json!({ "type": "array", "items": name });
    let opt_names = json!({ "type": ["array", "null"], "items": name });
    let entity_refs = json!({ "type": "array", "items": { "type": "object", "required": ["type", "id"], "properties": { "type": { "type": "string" }, "id": { "type": "string" } } } });
    let attrs = json!({ "type": "object", "description": "the stored attributes the folder's schema declares (Cedar JSON)" });
    let closed = |required: Value, props: Value| json!({ "type": "object", "required": required, "properties": props, "additionalProperties": false });
    let schemas = json!({
        "User": obj(json!({ "id": {}, "company": {}, "login": {}, "email": {}, "name": {}, "role": {}, "active": { "type": "boolean" }, "flags": {}, "addons": {}, "group": {}, "attrs": {}, "accessible": {} })),
        "UserPage": obj(json!({ "users": { "type": "array", "items": { "$ref": "#/components/schemas/User" } }, "next": {} })),
        "NewUser": closed(json!(["login", "role"]), json!({ "id": opt_name, "company": name, "login": name, "email": opt_name, "name": { "type": "string" }, "role": name, "flags": names, "addons": names, "group": opt_name, "attrs": attrs })),
        "UserPatch": closed(json!([]), json!({ "login": opt_name, "email": opt_name, "name": { "type": ["string", "null"] }, "role": opt_name, "flags": opt_names, "addons": opt_names, "group": opt_name, "attrs": { "type": ["object", "null"] } })),
        "RoleBody": closed(json!(["role"]), json!({ "role": name })),
        "MoveBody": closed(json!(["company"]), json!({ "company": name })),
        "CompaniesBody": closed(json!(["companies"]), json!({ "companies": { "type": "array", "items": { "type": "object", "required": ["company"], "properties": { "company": name, "role": opt_name } } } })),
        "Company": obj(json!({ "id": {}, "name": {}, "account_type": {}, "parent": {}, "user_limit": {}, "attrs": {} })),
        "GrantRequest": closed(json!(["company"]), json!({ "company": name, "locations": entity_refs, "actors": entity_refs, "expires_at": { "type": ["string", "null"], "format": "date-time" } })),
        "Grant": obj(json!({ "id": {}, "user": {}, "from_company": {}, "company": {}, "locations": {}, "actors": {}, "status": { "enum": ["requested", "approved", "refused", "revoked"] } })),
        "GrantList": obj(json!({ "grants": { "type": "array", "items": { "$ref": "#/components/schemas/Grant" } } })),
        "NewInvitation": closed(json!(["email", "role"]), json!({ "company": name, "email": { "type": "string", "format": "email" }, "role": name, "flags": names, "addons": names, "group": opt_name, "attrs": attrs })),
        "Invitation": obj(json!({ "id": {}, "company": {}, "email": {}, "role": {}, "status": { "enum": ["pending", "accepted", "revoked", "expired"] }, "expires_at": {} })),
        "InvitationList": obj(json!({ "invitations": { "type": "array", "items": { "$ref": "#/components/schemas/Invitation" } } })),
        "IssuedInvitation": obj(json!({ "invitation": { "$ref": "#/components/schemas/Invitation" }, "token": { "type": "string" } })),
        "KeyBody": closed(json!([]), json!({ "name": { "type": "string" } })),
        "ApiKey": obj(json!({ "id": {}, "user": {}, "name": {}, "created_at": {}, "revoked_at": {} })),
        "ApiKeyList": obj(json!({ "api_keys": { "type": "array", "items": { "$ref": "#/components/schemas/ApiKey" } } })),
        "IssuedApiKey": obj(json!({ "api_key": { "$ref": "#/components/schemas/ApiKey" }, "key": { "type": "string", "description": "pck_<id>_<secret>, shown once" } })),
        "CompanyList": obj(json!({ "companies": { "type": "array", "items": { "$ref": "#/components/schemas/Company" } } })),
        "NewCompany": closed(json!(["id", "account_type"]), json!({ "id": name, "name": { "type": "string" }, "account_type": name, "parent": opt_name, "user_limit": { "type": ["integer", "null"], "minimum": 0 }, "attrs": { "type": "object" } })),
        "CompanyPatch": closed(json!([]), json!({ "name": opt_name, "account_type": opt_name, "user_limit": { "type": ["integer", "null"], "minimum": 0 }, "attrs": { "type": ["object", "null"] } })),
        "Group": obj(json!({ "name": {}, "description": {}, "features": {}, "is_default": { "type": "boolean" } })),
        "GroupList": obj(json!({ "groups": { "type": "array", "items": { "$ref": "#/components/schemas/Group" } } })),
        "NewGroup": closed(json!(["name"]), json!({ "name": name, "description": { "type": "string" }, "features": names, "is_default": { "type": "boolean" } })),
        "GroupPatch": closed(json!([]), json!({ "description": { "type": ["string", "null"] }, "features": opt_names })),
        "DefaultGroupBody": closed(json!([]), json!({ "name": { "type": ["string", "null"], "description": "the group; absent or null: no default" } })),
        "DefaultGroup": obj(json!({ "default": {} })),
        "Acceptance": closed(json!(["token"]), json!({ "token": { "type": "string" }, "user_id": opt_name, "login": opt_name, "name": { "type": "string" }, "password": { "type": ["string", "null"], "description": "the first password, checked against the folder's rule" } }))
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
