//! The decision adapter's part of the OpenAPI 3.1 document, and its base: info, servers,
//! security schemes (composed into `GET /openapi.json` by [`crate::http::openapi`]).
//!
//! Written by hand next to the routes it describes; a test checks that every route of the
//! router appears here.

use serde_json::{json, Value};

/// Every path the document describes, for the test that keeps it in step with the router.
pub const PATHS: [&str; 22] = [
    "/v1/console",
    "/v1/console/preview",
    "/v1/console/prove",
    "/v1/console/save",
    "/v1/console/undo",
    "/v1/console/try",
    "/v1/permissions",
    "/",
    "/v1/authorize",
    "/v1/authorize/batch",
    "/access/v1/evaluation",
    "/access/v1/evaluations",
    "/access/v1/search/subject",
    "/access/v1/search/resource",
    "/access/v1/search/action",
    "/.well-known/authzen-configuration",
    "/v1/policy",
    "/v1/policy/reload",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
];

fn body(schema: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn ok(schema: &str, description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn errors(codes: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for c in codes {
        m.insert(
            (*c).to_owned(),
            json!({ "description": "error envelope", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
        );
    }
    Value::Object(m)
}

fn op(summary: &str, req: Option<&str>, res: Value, errs: &[&str], secured: bool) -> Value {
    let mut responses = errors(errs);
    if let Some(m) = responses.as_object_mut() {
        m.insert("200".to_owned(), res);
    }
    let mut o = json!({ "summary": summary, "responses": responses });
    if let Some(r) = req {
        o["requestBody"] = body(r);
    }
    if secured {
        // The service key is optional: required only when one is configured (and it must be
        // beyond loopback); `{}` says a call without one may be answered.
        o["security"] = json!([{}, { "bearer": [] }, { "apiKey": [] }]);
    }
    o
}

/// The decision API's document, console and searches included: the base the other
/// adapters' parts are merged into ([`crate::http::openapi`]).
pub fn openapi() -> Value {
    let mut doc = base();
    extend_search(&mut doc);
    extend_console(&mut doc);
    doc
}

fn base() -> Value {
    let bad = ["400", "401", "408", "413"];
    let entity_ref = json!({
        "description": "`Portal::User::\"alice\"`, a bare id where the slot implies the type, or {type, id}",
        "oneOf": [
            { "type": "string" },
            { "type": "object", "required": ["type", "id"], "properties": { "type": { "type": "string" }, "id": { "type": "string" } }, "additionalProperties": false }
        ]
    });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Portcullis decision API", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/v1/authorize": { "post": op("Decide one request", Some("AuthorizeRequest"), ok("Decision", "the decision"), &bad, true) },
            "/v1/permissions": { "post": op("Every action and feature the principal is allowed on the resource", Some("PermissionsRequest"), ok("Permissions", "the allowed actions and features"), &bad, true) },
            "/v1/authorize/batch": { "post": op("Decide many requests under one policy version", Some("BatchRequest"), ok("BatchResponse", "one answer per check"), &bad, true) },
            "/access/v1/evaluation": { "post": op("AuthZEN Access Evaluation", Some("AuthzenEvaluation"), ok("AuthzenDecision", "the decision"), &bad, true) },
            "/access/v1/evaluations": { "post": op("AuthZEN Access Evaluations", Some("AuthzenEvaluations"), ok("AuthzenDecisions", "one decision per evaluation"), &bad, true) },
            "/.well-known/authzen-configuration": { "get": op("AuthZEN PDP metadata", None, json!({ "description": "metadata" }), &[], false) },
            "/v1/policy": { "get": op("The policy served and the last reload error", None, ok("Policy", "policy status"), &[], false) },
            "/v1/policy/reload": { "post": op("Rebuild the policy folder now", None, json!({ "description": "the new version" }), &["401", "422"], true) },
            "/healthz": { "get": op("Liveness", None, json!({ "description": "ok" }), &[], false) },
            "/readyz": { "get": { "summary": "Readiness: policies built, user store answering, not draining", "responses": {
                "200": { "description": "ready", "content": { "application/json": { "schema": { "type": "object", "required": ["status"], "properties": { "status": { "const": "ready" }, "version": { "type": "string" } } } } } },
                "503": { "description": "not ready: draining, or the store does not answer", "content": { "application/json": { "schema": { "type": "object", "required": ["status", "message"], "properties": { "status": { "enum": ["draining", "store_unavailable"] }, "message": { "type": "string" }, "version": { "type": "string" } } } } } }
            } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "Prometheus text format", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
            "/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } },
            "/": { "get": { "summary": "The product owner's page: the rights matrix, and with `console` on, editing it with a preview, saves and undo, and trying users", "responses": { "200": { "description": "HTML page", "content": { "text/html": { "schema": { "type": "string" } } } } } } }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-Api-Key" }
            },
            "schemas": {
                "EntityRef": entity_ref,
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
                "AuthorizeRequest": { "type": "object", "required": ["action", "resource"], "additionalProperties": false, "description": "`principal`, or `session` (a signed-in session's token, whose user becomes the principal and whose MFA state fills the folder's `sign_in.mfa_context` attribute where the action's context declares it), but not both", "properties": {
                    "principal": { "$ref": "#/components/schemas/EntityRef" },
                    "session": { "type": "string", "description": "pcs_… from POST /v1/auth/login" },
                    "action": { "$ref": "#/components/schemas/EntityRef" },
                    "resource": { "$ref": "#/components/schemas/EntityRef" },
                    "context": { "type": "object" },
                    "entities": { "type": "array", "description": "Cedar JSON entities", "items": { "type": "object" } },
                    "explain": { "type": "boolean", "description": "add an `explanation`: the deciding policies, or for a default deny the nearest permits and their failed conditions" }
                } },
                "PermissionsRequest": { "type": "object", "required": ["principal", "resource"], "additionalProperties": false, "properties": {
                    "principal": { "$ref": "#/components/schemas/EntityRef" },
                    "resource": { "$ref": "#/components/schemas/EntityRef" },
                    "context": { "type": "object" },
                    "entities": { "type": "array", "description": "Cedar JSON entities", "items": { "type": "object" } }
                } },
                "Permissions": { "type": "object", "required": ["allowed", "actions", "features", "version"], "properties": {
                    "allowed": { "type": "array", "items": { "type": "string" } },
                    "actions": { "type": "array", "items": { "type": "object", "properties": { "action": { "type": "string" }, "decision": { "enum": ["allow", "deny"] }, "reasons": { "type": "array", "items": { "type": "string" } } } } },
                    "features": { "type": "array", "items": { "type": "object", "properties": { "feature": { "type": "string" }, "title": { "type": "string" }, "allowed": { "type": "boolean" }, "actions": { "type": "array", "items": { "type": "string" } } } } },
                    "skipped": { "type": "array" },
                    "version": { "type": "string" }
                } },
                "Decision": { "type": "object", "required": ["decision", "reasons", "version", "decision_id"], "properties": {
                    "decision": { "enum": ["allow", "deny"] },
                    "reasons": { "type": "array", "items": { "type": "string" } },
                    "errors": { "type": "array", "items": { "type": "object", "properties": { "policy": { "type": "string" }, "message": { "type": "string" } } } },
                    "version": { "type": "string" },
                    "decision_id": { "type": "string", "format": "uuid" }
                } },
                "BatchRequest": { "type": "object", "required": ["checks"], "additionalProperties": false, "properties": {
                    "checks": { "type": "array", "items": { "allOf": [ { "$ref": "#/components/schemas/AuthorizeRequest" } ], "required": ["id"], "properties": { "id": {} } } },
                    "entities": { "type": "array", "items": { "type": "object" } }
                } },
                "BatchResponse": { "type": "object", "properties": {
                    "version": { "type": "string" },
                    "results": { "type": "array", "items": { "type": "object", "properties": { "id": {}, "decision": { "enum": ["allow", "deny"] }, "reasons": { "type": "array" }, "decision_id": { "type": "string" }, "error": { "type": "object" } } } }
                } },
                "AuthzenThing": { "type": "object", "required": ["type", "id"], "properties": { "type": { "type": "string" }, "id": { "type": "string" }, "properties": {} } },
                "AuthzenAction": { "type": "object", "required": ["name"], "properties": { "name": { "type": "string" }, "properties": {} } },
                "AuthzenEvaluation": { "type": "object", "required": ["subject", "action", "resource"], "properties": {
                    "subject": { "$ref": "#/components/schemas/AuthzenThing" },
                    "action": { "$ref": "#/components/schemas/AuthzenAction" },
                    "resource": { "$ref": "#/components/schemas/AuthzenThing" },
                    "context": { "type": ["object", "null"] },
                    "entities": { "type": "array", "items": { "type": "object" } }
                } },
                "AuthzenEvaluations": { "type": "object", "properties": {
                    "subject": { "oneOf": [{ "$ref": "#/components/schemas/AuthzenThing" }, { "type": "null" }] },
                    "action": { "oneOf": [{ "$ref": "#/components/schemas/AuthzenAction" }, { "type": "null" }] },
                    "resource": { "oneOf": [{ "$ref": "#/components/schemas/AuthzenThing" }, { "type": "null" }] },
                    "context": { "type": ["object", "null"] },
                    "evaluations": { "type": "array", "items": { "type": "object", "properties": {
                        "subject": { "oneOf": [{ "$ref": "#/components/schemas/AuthzenThing" }, { "type": "null" }] },
                        "action": { "oneOf": [{ "$ref": "#/components/schemas/AuthzenAction" }, { "type": "null" }] },
                        "resource": { "oneOf": [{ "$ref": "#/components/schemas/AuthzenThing" }, { "type": "null" }] },
                        "context": { "type": ["object", "null"] }
                    } } },
                    "options": { "type": "object", "properties": { "evaluations_semantic": { "enum": ["execute_all", "deny_on_first_deny", "permit_on_first_permit", null] } } },
                    "entities": { "type": "array", "items": { "type": "object" } }
                } },
                "AuthzenDecision": { "type": "object", "required": ["decision"], "properties": { "decision": { "type": "boolean" }, "context": { "type": "object" } } },
                "AuthzenDecisions": { "type": "object", "properties": { "evaluations": { "type": "array", "items": { "$ref": "#/components/schemas/AuthzenDecision" } } } },
                "Policy": { "type": "object", "properties": {
                    "version": { "type": "string" }, "generation": { "type": "integer" }, "loaded_at": { "type": "string" },
                    "files": { "type": "array" }, "entities": { "type": "object" },
                    "last_error": { "type": ["object", "null"], "properties": { "message": { "type": "string" }, "diagnostics": { "type": "array" } } }
                } }
            }
        }
    })
}

/// The AuthZEN search endpoints and their schemas, added to the document.
fn extend_search(doc: &mut Value) {
    let bad = ["400", "401", "408", "413"];
    let paths = json!({
            "/access/v1/search/subject": { "post": op("AuthZEN Subject Search: the subjects of a type allowed the action on the resource", Some("AuthzenSubjectSearch"), ok("AuthzenSearchResults", "one page of subjects"), &bad, true) },
            "/access/v1/search/resource": { "post": op("AuthZEN Resource Search: the resources of a type the subject is allowed the action on", Some("AuthzenResourceSearch"), ok("AuthzenSearchResults", "one page of resources"), &bad, true) },
            "/access/v1/search/action": { "post": op("AuthZEN Action Search: the actions the subject is allowed on the resource", Some("AuthzenActionSearch"), ok("AuthzenSearchResults", "one page of actions"), &bad, true) }
    });
    let schemas = json!({
                "AuthzenKind": { "type": "object", "required": ["type"], "properties": { "type": { "type": "string" }, "id": { "description": "ignored" }, "properties": {} } },
                "AuthzenPage": { "type": ["object", "null"], "properties": { "token": { "type": ["string", "null"], "description": "the `next_token` of the previous page" }, "limit": { "type": ["integer", "null"], "minimum": 1 } } },
                "AuthzenSubjectSearch": { "type": "object", "required": ["subject", "action", "resource"], "properties": {
                    "subject": { "$ref": "#/components/schemas/AuthzenKind" },
                    "action": { "$ref": "#/components/schemas/AuthzenAction" },
                    "resource": { "$ref": "#/components/schemas/AuthzenThing" },
                    "context": { "type": ["object", "null"] },
                    "page": { "$ref": "#/components/schemas/AuthzenPage" },
                    "entities": { "type": "array", "items": { "type": "object" } }
                } },
                "AuthzenResourceSearch": { "type": "object", "required": ["subject", "action", "resource"], "properties": {
                    "subject": { "$ref": "#/components/schemas/AuthzenThing" },
                    "action": { "$ref": "#/components/schemas/AuthzenAction" },
                    "resource": { "$ref": "#/components/schemas/AuthzenKind" },
                    "context": { "type": ["object", "null"] },
                    "page": { "$ref": "#/components/schemas/AuthzenPage" },
                    "entities": { "type": "array", "items": { "type": "object" } }
                } },
                "AuthzenActionSearch": { "type": "object", "required": ["subject", "resource"], "properties": {
                    "subject": { "$ref": "#/components/schemas/AuthzenThing" },
                    "resource": { "$ref": "#/components/schemas/AuthzenThing" },
                    "context": { "type": ["object", "null"] },
                    "page": { "$ref": "#/components/schemas/AuthzenPage" },
                    "entities": { "type": "array", "items": { "type": "object" } }
                } },
                "AuthzenSearchResults": { "type": "object", "required": ["results", "page"], "properties": {
                    "results": { "type": "array", "items": { "type": "object" } },
                    "page": { "type": "object", "required": ["next_token"], "properties": { "next_token": { "type": "string", "description": "empty on the last page" }, "count": { "type": "integer" } } },
                    "context": { "type": "object" }
                } }
    });
    for (section, add) in [("/paths", paths), ("/components/schemas", schemas)] {
        if let (Some(to), Value::Object(add)) = (doc.pointer_mut(section).and_then(Value::as_object_mut), add)
        {
            to.extend(add);
        }
    }
}

/// The console's endpoints and their schemas, added to the document.
fn extend_console(doc: &mut Value) {
    let errs = ["400", "401", "403", "408", "409", "413"];
    let edit = json!({ "type": "object", "required": ["op"], "description": "one change of roles.toml", "properties": {
        "op": { "enum": ["cell", "group_cell", "add_role", "add_feature", "rename", "title", "rank", "manages", "flag"] },
        "feature": { "type": "string" }, "role": { "type": "string" }, "group": { "type": "string" }, "flag": { "type": "string" },
        "access": { "enum": ["yes", "own", "addon", "none"] }, "account_type": { "type": ["string", "null"] }, "held": { "type": "boolean" },
        "title": { "type": "string" }, "rank": { "type": "integer" }, "account_types": { "type": "array", "items": { "type": "string" } },
        "actions": { "type": "array", "items": { "type": "string" } }, "kind": { "enum": ["role", "feature", "account_type", "flag", "group"] },
        "from": { "type": "string" }, "to": { "type": "string" }, "name": { "type": "string" },
        "manages": { "type": "array", "items": { "type": "string" } }, "max_rank": { "type": ["integer", "null"] }, "owned_only": { "type": "boolean" }
    } });
    let paths = json!({
        "/v1/console": { "get": op("The console's overview: role model, actions, fixture worlds and their users, stored users, saves", None, json!({ "description": "the overview" }), &["401", "403"], true) },
        "/v1/console/preview": { "post": op("What edits of roles.toml would change: text diff, matrix cells, fixture outcomes; nothing is saved", Some("ConsoleEdits"), json!({ "description": "the preview" }), &errs, true) },
        "/v1/console/prove": { "post": op("Whether the folder's properties hold with the edits (cvc5)", Some("ConsoleEdits"), json!({ "description": "one verdict per property" }), &[&errs[..], &["422"]].concat(), true) },
        "/v1/console/save": { "post": op("Write the edits to roles.toml when the result builds, and reload", Some("ConsoleEdits"), json!({ "description": "the installed version and the save" }), &[&errs[..], &["422"]].concat(), true) },
        "/v1/console/undo": { "post": op("Put roles.toml back as it was before the last save", None, json!({ "description": "the installed version and the save undone" }), &["401", "403", "409", "422"], true) },
        "/v1/console/try": { "post": op("A fixture user's rights per resource type, or one decision explained", Some("ConsoleTry"), json!({ "description": "rights per resource type, or the explanation" }), &["400", "401", "403", "408", "413"], true) }
    });
    let schemas = json!({
        "ConsoleEdit": edit,
        "ConsoleEdits": { "type": "object", "required": ["base", "edits"], "additionalProperties": false, "properties": {
            "base": { "type": "string", "description": "the policy version the edits were made on (GET /v1/policy)" },
            "edits": { "type": "array", "maxItems": 200, "items": { "$ref": "#/components/schemas/ConsoleEdit" } }
        } },
        "ConsoleTry": { "type": "object", "required": ["world", "user"], "additionalProperties": false, "properties": {
            "world": { "type": "string", "description": "a fixture file of the folder, e.g. fixtures/common.toml" },
            "user": { "type": "string" }, "action": { "type": "string" }, "resource": { "type": "string" }, "context": { "type": "object" }
        } }
    });
    for (section, add) in [("/paths", paths), ("/components/schemas", schemas)] {
        if let (Some(to), Value::Object(add)) = (doc.pointer_mut(section).and_then(Value::as_object_mut), add)
        {
            to.extend(add);
        }
    }
}
