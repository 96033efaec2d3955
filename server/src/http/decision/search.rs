//! The AuthZEN search API: `POST /access/v1/search/{subject,resource,action}`.
//!
//! Each search names everything but one part's id (or, for actions, the action) and answers
//! with the candidates the policies allow. Candidates are the held entities of the asked type
//! (the entities file, indexed per type in id order) followed by the stored users or companies
//! when the type is the folder's user or company type; each is decided by the same function as
//! `POST /access/v1/evaluation` (stored facts, properties, context filtering included), so a
//! search result is exactly a candidate whose evaluation says `true`.
//!
//! Pages follow id order. The `next_token` is the last candidate looked at (its source and id,
//! hex-encoded), so a page is stable across reloads and instances, and no server state is kept
//! between pages. A page stops at `limit` results or after [`SCAN_PER_PAGE`] candidates,
//! whichever comes first, so one request never walks an unbounded store.
//!
//! A search naming an unknown action or type, or an action that does not apply to the types,
//! answers no results with the reason in `context.error` (the interop scenarios ask for a
//! valid empty response); a bad page token or limit is a 400.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Json;
use portcullis_engine::{EntityRef, Slot};
use portcullis_store::UserQuery;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::authzen::{entity_ref, evaluate, Action, Thing};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::openapi::Refused;
use crate::slice::Inline;
use crate::state::{AppState, Served};

/// Results per page when the request names no `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Candidates one page looks at, at most, before it answers with what it found.
pub const SCAN_PER_PAGE: usize = 200_000;

/// The `page` of a search request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = AuthzenPage)]
pub struct PageRequest {
    /// The `next_token` of the previous page.
    #[serde(default)]
    pub token: Option<String>,
    /// Most results on this page.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub limit: Option<usize>,
}

/// A subject or resource whose id is asked for: only its type.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = AuthzenKind)]
pub struct Kind {
    /// The entity type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Properties every candidate is described with (see [`Thing::properties`]).
    #[serde(default)]
    pub properties: Option<Value>,
}

/// `POST /access/v1/search/subject` body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = AuthzenSubjectSearch)]
pub struct SubjectSearch {
    /// The type of the subjects asked for.
    pub subject: Kind,
    /// The action.
    pub action: Action,
    /// The resource.
    pub resource: Thing,
    /// The context.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// The page ([`PageRequest`]; an object or null).
    #[serde(default)]
    #[schema(value_type = Option<PageRequest>)]
    pub page: Option<Value>,
    /// Extension: Cedar JSON entities every decision may use.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<Value>,
}

/// `POST /access/v1/search/resource` body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = AuthzenResourceSearch)]
pub struct ResourceSearch {
    /// The subject.
    pub subject: Thing,
    /// The action.
    pub action: Action,
    /// The type of the resources asked for.
    pub resource: Kind,
    /// The context.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// The page ([`PageRequest`]; an object or null).
    #[serde(default)]
    #[schema(value_type = Option<PageRequest>)]
    pub page: Option<Value>,
    /// Extension: Cedar JSON entities every decision may use.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<Value>,
}

/// `POST /access/v1/search/action` body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = AuthzenActionSearch)]
pub struct ActionSearch {
    /// The subject.
    pub subject: Thing,
    /// The resource.
    pub resource: Thing,
    /// The context.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// The page ([`PageRequest`]; an object or null).
    #[serde(default)]
    #[schema(value_type = Option<PageRequest>)]
    pub page: Option<Value>,
    /// Extension: Cedar JSON entities every decision may use.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<Value>,
}

/// Where a candidate comes from, in the order a search walks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// The entities file (or, for actions, the schema).
    Held,
    /// The user store.
    Stored,
}

/// A position in the walk: the last candidate a page looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    source: Source,
    after: String,
}

impl Cursor {
    fn token(&self) -> String {
        let tag = match self.source {
            Source::Held => 'h',
            Source::Stored => 's',
        };
        format!("{tag}{}", hex::encode(&self.after))
    }

    fn parse(token: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::bad_request(
                "invalid_page_token",
                "`page.token` is not a token this server gave",
            )
        };
        let mut chars = token.chars();
        let source = match chars.next() {
            Some('h') => Source::Held,
            Some('s') => Source::Stored,
            _ => return Err(bad()),
        };
        let bytes = hex::decode(chars.as_str()).map_err(|_| bad())?;
        let after = String::from_utf8(bytes).map_err(|_| bad())?;
        Ok(Self { source, after })
    }
}

/// What one page asks: its size and where it starts.
struct PageAsk {
    limit: usize,
    from: Option<Cursor>,
}

impl PageAsk {
    fn new(app: &AppState, page: Option<Value>) -> Result<Self, ApiError> {
        let page: PageRequest = match page {
            None | Some(Value::Null) => PageRequest::default(),
            // An object only (serde would take a struct from an array too).
            Some(v @ Value::Object(_)) => serde_json::from_value(v)
                .map_err(|e| ApiError::bad_request("invalid_body", format!("`page`: {e}")))?,
            Some(_) => return Err(ApiError::bad_request("invalid_body", "`page` must be an object")),
        };
        let max = app.config.limits.max_batch;
        let limit = page.limit.unwrap_or(DEFAULT_LIMIT.min(max));
        if limit == 0 || limit > max {
            return Err(ApiError::bad_request(
                "invalid_page_limit",
                format!("`page.limit` must be between 1 and {max}"),
            ));
        }
        let from = match page.token.as_deref() {
            None | Some("") => None,
            Some(t) => Some(Cursor::parse(t)?),
        };
        Ok(Self { limit, from })
    }
}

/// The answer: the results and the token of the next page (empty on the last one).
fn answer(results: Vec<Value>, next: Option<Cursor>, version: &str) -> Json<SearchResults> {
    let page = SearchPage {
        next_token: next.map(|c| c.token()).unwrap_or_default(),
        count: results.len(),
    };
    let context = json!({ "version": version });
    Json(SearchResults {
        results,
        page,
        context,
    })
}

/// The answer to a search no candidate can satisfy (an unknown action or type, or an action
/// that does not apply to the types): no results, as the interop scenarios ask, with the
/// reason in `context.error` so a typo does not pass unnoticed.
fn nothing(e: ApiError, version: &str) -> Json<SearchResults> {
    let page = SearchPage {
        next_token: String::new(),
        count: 0,
    };
    let context = json!({ "version": version, "error": { "code": e.code, "message": e.message } });
    Json(SearchResults {
        results: Vec::new(),
        page,
        context,
    })
}

/// The walk over the candidates of one entity type: held ones in id order, then stored ones.
/// `decide` says whether a candidate id is a result.
async fn walk<F, Fut>(
    app: &AppState,
    served: &Served,
    ty: &str,
    slot: Slot,
    ask: PageAsk,
    mut decide: F,
) -> Result<(Vec<String>, Option<Cursor>), ApiError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<bool, ApiError>>,
{
    let s = &served.snapshot;
    let uid = served.resolver.entity(
        s,
        &EntityRef::Object {
            ty: ty.to_owned(),
            id: String::new(),
        },
        slot,
    )?;
    let type_name = uid.type_name().clone();
    let full = type_name.to_string();
    let mut found = Vec::new();
    let mut scanned = 0usize;
    let mut last: Option<Cursor> = None;
    let start = ask.from.clone();
    // Held entities first.
    if start.as_ref().is_none_or(|c| c.source == Source::Held) {
        let after = start.as_ref().map(|c| c.after.as_str());
        let ids: Vec<String> = served
            .entities
            .entities
            .ids_after(&type_name, after)
            .map(str::to_owned)
            .collect();
        for id in ids {
            if found.len() == ask.limit || scanned == SCAN_PER_PAGE {
                return Ok((found, last));
            }
            scanned += 1;
            last = Some(Cursor {
                source: Source::Held,
                after: id.clone(),
            });
            if decide(id.clone()).await? {
                found.push(id);
            }
        }
    }
    // Then the store's users or companies, when the type is one of them.
    let Some(m) = app.manage.get() else {
        return Ok((found, None));
    };
    let (users, companies) = (full == s.user_type(), full == s.company_type());
    if !users && !companies {
        return Ok((found, None));
    }
    let mut after = match &start {
        Some(c) if c.source == Source::Stored => Some(c.after.clone()),
        _ => None,
    };
    let read = m.gate.read();
    loop {
        let (ids, next) = if users {
            let page = read
                .list_users(&UserQuery {
                    company: None,
                    include_inactive: true,
                    after: after.clone(),
                    limit: Some(500),
                })
                .await
                .map_err(crate::manage::store_error)?;
            (
                page.items.into_iter().map(|u| u.id).collect::<Vec<_>>(),
                page.next,
            )
        } else {
            let page = read
                .list_companies(&portcullis_store::CompanyQuery {
                    after: after.clone(),
                    limit: Some(500),
                    ..Default::default()
                })
                .await
                .map_err(crate::manage::store_error)?;
            (
                page.items.into_iter().map(|c| c.id).collect::<Vec<_>>(),
                page.next,
            )
        };
        for id in ids {
            if found.len() == ask.limit || scanned == SCAN_PER_PAGE {
                return Ok((found, last));
            }
            scanned += 1;
            last = Some(Cursor {
                source: Source::Stored,
                after: id.clone(),
            });
            if decide(id.clone()).await? {
                found.push(id);
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => return Ok((found, None)),
        }
    }
}

/// A candidate's decision: allowed, or not a result (denied, or a request the schema refuses
/// for this candidate). Errors of the search itself were caught before the walk.
fn allowed(r: Result<(portcullis_engine::Decision, super::authzen::Ignored), ApiError>) -> bool {
    r.is_ok_and(|(d, _)| d.allowed())
}

/// Checks the parts every candidate shares before the walk: a search that no candidate can
/// satisfy (an unknown action or type) says why instead of walking every candidate.
fn check_parts(
    served: &Served,
    subject: &EntityRef,
    action: &str,
    resource: &EntityRef,
) -> Result<(), ApiError> {
    let s = &served.snapshot;
    let a = served.resolver.action(s, &EntityRef::Text(action.to_owned()))?;
    let p = served.resolver.entity(s, subject, Slot::Principal)?;
    let r = served.resolver.entity(s, resource, Slot::Resource)?;
    let schema = s.schema();
    let applies =
        |types: Option<Box<dyn Iterator<Item = &cedar_policy::EntityTypeName> + '_>>,
         t: &cedar_policy::EntityTypeName| { types.is_none_or(|mut it| it.any(|x| x == t)) };
    let principals = schema
        .principals_for_action(&a)
        .map(|it| Box::new(it) as Box<dyn Iterator<Item = _>>);
    if !applies(principals, p.type_name()) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "action `{action}` does not apply to subjects of type `{}`",
                p.type_name()
            ),
        ));
    }
    let resources = schema
        .resources_for_action(&a)
        .map(|it| Box::new(it) as Box<dyn Iterator<Item = _>>);
    if !applies(resources, r.type_name()) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "action `{action}` does not apply to resources of type `{}`",
                r.type_name()
            ),
        ));
    }
    Ok(())
}

/// A subject or resource search: one side known, the other asked by type.
struct EntitySearch {
    /// The side whose ids are asked: `Principal` (subject search) or `Resource`.
    slot: Slot,
    asked: Kind,
    known: Thing,
    action: Action,
    context: Option<Map<String, Value>>,
    page: Option<Value>,
    entities: Vec<Value>,
}

impl EntitySearch {
    /// The evaluation of candidate `id`: (subject, resource).
    fn sides(&self, id: String) -> (Thing, Thing) {
        let candidate = Thing {
            ty: self.asked.ty.clone(),
            id,
            properties: self.asked.properties.clone(),
        };
        match self.slot {
            Slot::Principal => (candidate, self.known.clone()),
            _ => (self.known.clone(), candidate),
        }
    }
}

async fn search_entities(app: Arc<AppState>, mut q: EntitySearch) -> Result<Json<SearchResults>, ApiError> {
    let started = Instant::now();
    let served = app.served();
    let ask = PageAsk::new(&app, q.page.take())?;
    // Malformed input is a 400 before anything else.
    let inline = Inline::parse(&q.entities, served.snapshot.described())?;
    let (subject, resource) = q.sides(String::new());
    if let Err(e) = check_parts(
        &served,
        &entity_ref(&subject),
        &q.action.name,
        &entity_ref(&resource),
    ) {
        return Ok(nothing(e, served.snapshot.version()));
    }
    let (ids, next) = walk(&app, &served, &q.asked.ty, q.slot, ask, |id| {
        let (subject, resource) = q.sides(id);
        let (app, served, inline, q) = (&app, &served, &inline, &q);
        async move {
            let context = q.context.clone();
            let r = evaluate(
                app,
                served,
                &subject,
                &q.action,
                &resource,
                context,
                (inline, &q.entities),
            )
            .await;
            Ok(allowed(r))
        }
    })
    .await?;
    app.metrics.latency(started.elapsed());
    let results = ids
        .into_iter()
        .map(|id| json!({ "type": q.asked.ty, "id": id }))
        .collect();
    Ok(answer(results, next, served.snapshot.version()))
}

/// One page of search results.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuthzenSearchResults)]
pub struct SearchResults {
    /// The allowed candidates: `{type, id}`, or for actions `{name}`.
    #[schema(value_type = Vec<Object>)]
    results: Vec<Value>,
    /// Where the next page starts.
    page: SearchPage,
    /// The policy version, and `error` when nothing could be searched.
    #[schema(value_type = Object)]
    context: Value,
}

/// The `page` of search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPage {
    /// The token of the next page; empty on the last page.
    next_token: String,
    /// How many results this page holds.
    count: usize,
}

/// AuthZEN Subject Search: the subjects of a type allowed the action on the resource
#[utoipa::path(post, path = "/access/v1/search/subject", request_body = SubjectSearch,
    responses((status = 200, description = "one page of subjects", body = SearchResults), Refused))]
pub async fn subject(
    State(app): State<Arc<AppState>>,
    ApiJson(q): ApiJson<SubjectSearch>,
) -> Result<Json<SearchResults>, ApiError> {
    let q = EntitySearch {
        slot: Slot::Principal,
        asked: q.subject,
        known: q.resource,
        action: q.action,
        context: q.context,
        page: q.page,
        entities: q.entities,
    };
    search_entities(app, q).await
}

/// AuthZEN Resource Search: the resources of a type the subject is allowed the action on
#[utoipa::path(post, path = "/access/v1/search/resource", request_body = ResourceSearch,
    responses((status = 200, description = "one page of resources", body = SearchResults), Refused))]
pub async fn resource(
    State(app): State<Arc<AppState>>,
    ApiJson(q): ApiJson<ResourceSearch>,
) -> Result<Json<SearchResults>, ApiError> {
    let q = EntitySearch {
        slot: Slot::Resource,
        asked: q.resource,
        known: q.subject,
        action: q.action,
        context: q.context,
        page: q.page,
        entities: q.entities,
    };
    search_entities(app, q).await
}

/// AuthZEN Action Search: the actions the subject is allowed on the resource
///
/// Among those the schema lets apply to their types, in name order.
#[utoipa::path(post, path = "/access/v1/search/action", request_body = ActionSearch,
    responses((status = 200, description = "one page of actions", body = SearchResults), Refused))]
pub async fn action(
    State(app): State<Arc<AppState>>,
    ApiJson(mut q): ApiJson<ActionSearch>,
) -> Result<Json<SearchResults>, ApiError> {
    let started = Instant::now();
    let served = app.served();
    let ask = PageAsk::new(&app, q.page.take())?;
    let s = &served.snapshot;
    let inline = Inline::parse(&q.entities, s.described())?;
    let parts = served
        .resolver
        .entity(s, &entity_ref(&q.subject), Slot::Principal)
        .and_then(|p| {
            Ok((
                p,
                served
                    .resolver
                    .entity(s, &entity_ref(&q.resource), Slot::Resource)?,
            ))
        });
    let (p, r) = match parts {
        Ok(pr) => pr,
        Err(e) => return Ok(nothing(e.into(), s.version())),
    };
    let action_type = match s.namespace() {
        "" => "Action".to_owned(),
        ns => format!("{ns}::Action"),
    };
    let schema = s.schema();
    let mut names: Vec<String> = schema
        .actions()
        .filter(|a| a.type_name().to_string() == action_type)
        .filter(|a| {
            schema
                .principals_for_action(a)
                .is_some_and(|mut it| it.any(|t| t == p.type_name()))
                && schema
                    .resources_for_action(a)
                    .is_some_and(|mut it| it.any(|t| t == r.type_name()))
        })
        .map(|a| a.id().unescaped().to_owned())
        .collect();
    names.sort_unstable();
    let start = match &ask.from {
        Some(c) if c.source == Source::Held => names.partition_point(|n| *n <= c.after),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_page_token",
                "`page.token` is not a token this server gave",
            ))
        }
        None => 0,
    };
    let mut found = Vec::new();
    let mut next = None;
    for name in names.get(start..).unwrap_or_default() {
        if found.len() == ask.limit {
            break;
        }
        let a = Action {
            name: name.clone(),
            properties: None,
        };
        let r = evaluate(
            &app,
            &served,
            &q.subject,
            &a,
            &q.resource,
            q.context.clone(),
            (&inline, &q.entities),
        )
        .await;
        if allowed(r) {
            found.push(json!({ "name": name }));
        }
        next = Some(Cursor {
            source: Source::Held,
            after: name.clone(),
        });
    }
    if names
        .last()
        .is_none_or(|l| next.as_ref().is_some_and(|c| c.after == *l))
    {
        next = None;
    }
    app.metrics.latency(started.elapsed());
    Ok(answer(found, next, served.snapshot.version()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_any_id() {
        for (source, after) in [
            (Source::Held, "a"),
            (Source::Stored, "ü \"x\"::y"),
            (Source::Held, ""),
        ] {
            let c = Cursor {
                source,
                after: after.to_owned(),
            };
            assert_eq!(Cursor::parse(&c.token()).ok(), Some(c));
        }
        for bad in ["", "x00", "h0", "hzz", "hff"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }
}
