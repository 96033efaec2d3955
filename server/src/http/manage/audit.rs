//! `GET /v1/audit`: the audit trail of the caller's company (`audit.read` on its audit log),
//! filtered by user, company, action and date range, as JSON or CSV (`?format=csv`; cells
//! that a spreadsheet would take for a formula are neutralised with a leading `'`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_store::{AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::records;
use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::http::openapi::ManageRefused;
use crate::manage::entities;
use crate::manage::governance::{ReadAudit, Resource};
use crate::manage::targets::parts;
use crate::manage::{store_error, Caller};
use crate::state::AppState;

/// `GET /v1/audit` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries by or about this user.
    pub user: Option<String>,
    /// Entries in this company context (the caller's by default).
    pub company: Option<String>,
    /// Entries of this action, e.g. `user.create`.
    pub action: Option<String>,
    /// Entries made for this customer profile (audited decisions of a session that acts for
    /// it, or whose context names it).
    pub customer: Option<String>,
    /// At or after (RFC 3339, or a date `YYYY-MM-DD`).
    pub since: Option<String>,
    /// Before (RFC 3339, or a date).
    pub until: Option<String>,
    /// Cursor: entries with smaller ids.
    pub before: Option<i64>,
    /// Page size.
    // A u32, whose bound `format: int32` would put at 2^31 - 1.
    #[param(value_type = Option<u64>, maximum = 4294967295u32)]
    pub limit: Option<u32>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<AuditFormat>,
}

/// What `GET /v1/audit` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditFormat {
    /// A page of entries (`AuditPage`).
    Json,
    /// CSV, one header line then one line per entry.
    Csv,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<records::AuditEntry>,
    /// The cursor of the next page (`?before=`); `null` on the last page.
    pub next: Option<i64>,
}

fn when(field: &str, v: &str) -> Result<OffsetDateTime, ApiError> {
    let text = if v.len() == 10 {
        format!("{v}T00:00:00Z")
    } else {
        v.to_owned()
    };
    OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| {
        ApiError::bad_request(
            "invalid_query",
            format!("`{field}` must be an RFC 3339 time or a date (YYYY-MM-DD), not `{v}`"),
        )
    })
}

/// A CSV cell that a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, CR first) is
/// neutralised with a leading `'` (OWASP's CSV injection advice); the `csv` crate quotes.
pub fn neutral(v: &str) -> std::borrow::Cow<'_, str> {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{v}"))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

/// The entries as CSV, one header line then one line per entry.
pub fn to_csv(items: &[AuditEntry]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "id", "at", "actor", "company", "action", "target", "outcome", "version", "details",
    ]);
    for e in items {
        let at = e.at.format(&Rfc3339).unwrap_or_default();
        let cells = [
            e.id.to_string(),
            at,
            e.actor.clone().unwrap_or_default(),
            e.company.clone().unwrap_or_default(),
            e.action.clone(),
            e.target.clone().unwrap_or_default(),
            e.outcome.as_str().to_owned(),
            e.version.map(|v| v.to_string()).unwrap_or_default(),
            Value::Object(e.details.clone()).to_string(),
        ];
        let _ = w.write_record(cells.iter().map(|c| neutral(c).into_owned()));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The audit trail of a company (the caller's by default), newest first; `?format=csv` exports CSV with formula cells neutralised
///
/// `GET /v1/audit`.
#[utoipa::path(get, path = "/v1/audit",
    description = "Decided by operation `audit.export` (mapped in `[management.operations]`) on the company's AuditLog, or on the company itself where the folder's action applies to companies.",
    params(AuditParams),
    responses(
        (status = 200, description = "entries", content((AuditPage = "application/json"), (String = "text/csv"))),
        ManageRefused))]
pub async fn query(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let (m, served) = parts(&app)?;
    let s = &served.snapshot;
    let company = p.company.clone().unwrap_or_else(|| caller.company.clone());
    let chain = entities::company_chain(&m.gate.read(), &company)
        .await
        .map_err(store_error)?;
    let mut values: Vec<Value> = chain
        .iter()
        .map(|(id, f)| entities::company_value(s, id, f))
        .collect();
    // The folder's action for the export decides on the company itself when it applies to
    // companies (e.g. `access_log.download`), else on the company's audit log.
    let on_company = s
        .model()
        .and_then(|model| model.operation("audit.export"))
        .and_then(|a| {
            served
                .resolver
                .action(s, &portcullis_engine::EntityRef::Text(a.to_owned()))
                .ok()
        })
        .and_then(|a| {
            s.schema()
                .resources_for_action(&a)
                .map(|mut r| r.any(|t| t.to_string() == s.company_type()))
        })
        .unwrap_or(false);
    let resource = if on_company {
        Resource {
            ty: s.company_type(),
            id: company.clone(),
            entities: values,
            target: format!("audit:{company}"),
        }
    } else {
        let log_type = s.qualified_type("AuditLog");
        values.push(json!({
            "uid": { "type": log_type, "id": company },
            "attrs": {},
            "parents": [{ "type": s.company_type(), "id": company }],
        }));
        Resource {
            ty: log_type,
            id: company.clone(),
            entities: values,
            target: format!("audit:{company}"),
        }
    };
    let query = AuditQuery {
        user: p.user,
        company: Some(company),
        action: p.action,
        customer: p.customer,
        since: p.since.as_deref().map(|v| when("since", v)).transpose()?,
        until: p.until.as_deref().map(|v| when("until", v)).transpose()?,
        before: p.before,
        limit: p.limit,
    };
    let ok = m
        .gate
        .decide(
            &served,
            &m.cache,
            &caller,
            ReadAudit { query },
            resource,
            Map::new(),
        )
        .await?;
    let page = m.gate.query_audit(ok).await?;
    match p.format.unwrap_or(AuditFormat::Json) {
        AuditFormat::Json => Ok(Json(AuditPage {
            entries: records::all(page.items),
            next: page.next,
        })
        .into_response()),
        AuditFormat::Csv => Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"audit.csv\""),
            ],
            to_csv(&page.items),
        )
            .into_response()),
    }
}
