//! `GET /`: the read-only page for product owners.
//!
//! Input: the served snapshot and the reload status. Output: one self-contained HTML page
//! (no build step, no external assets): the folder's role × feature matrix per account type
//! (own, add-on and conditional cells marked; hover or click a cell for the policy and the
//! `roles.toml` line behind it), the policy version and load time, the last reload error if
//! any, and a form that asks `POST /v1/authorize` for one decision and shows the answer with
//! its reasons. `/?request=<json>` fills the form and asks at once (links and tests use it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use portcullis_engine::matrix::{esc, Matrix, STYLE};

use super::policy::rfc3339;
use crate::state::AppState;

/// The page.
pub async fn page(State(app): State<Arc<AppState>>) -> Response {
    let served = app.served();
    let s = &served.snapshot;
    let status = app.reload_status();
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<header><h1>Portcullis</h1><p>Policy folder <code>{}</code> · version <code id=\"version\">{}</code> · loaded {}</p></header>",
        esc(&app.config.policies.display().to_string()),
        esc(s.version()),
        esc(&rfc3339(s.loaded_at()))
    );
    match &status.last_error {
        Some((at, e)) => {
            let _ = writeln!(
                body,
                "<section id=\"reload-error\" class=\"error\"><h2>The last edit was refused ({})</h2><p>The version above keeps serving until the folder builds again.</p><pre>{}</pre></section>",
                esc(&rfc3339(*at)),
                esc(&e.diagnostics.render_human(""))
            );
        }
        None => body.push_str("<p id=\"reload-ok\">The folder builds cleanly.</p>\n"),
    }
    match s.model() {
        Some(m) => {
            body.push_str("<h2>Rights matrix</h2>\n<p class=\"legend\"><span class=\"yes\">yes</span> on every record of the company · <span class=\"own\">own</span> on records the user owns · <span class=\"addon\">add-on</span> when granted to the user · * only when the feature's condition holds. Click a cell for its policy.</p>\n");
            body.push_str(&Matrix::of(m).html_tables());
        }
        None => body.push_str("<p>This folder has no <code>roles.toml</code>, so it has no matrix.</p>\n"),
    }
    // The Cedar text behind each policy, for the cell details.
    let policies: BTreeMap<&str, serde_json::Value> = s
        .policies()
        .into_iter()
        .map(|p| {
            let v =
                serde_json::json!({ "file": p.file, "line": p.line, "text": p.text, "describe": p.describe });
            (p.id.as_str(), v)
        })
        .collect();
    let policies = serde_json::to_string(&policies)
        .unwrap_or_else(|_| "{}".to_owned())
        .replace("</", "<\\/");
    let _ = write!(
        body,
        "<aside id=\"details\" hidden><h3 id=\"details-title\"></h3><pre id=\"details-text\"></pre></aside>\n\
         <h2>Ask for a decision</h2>\n<form id=\"ask\"><label for=\"request\">Request (JSON: principal, action, resource, context, entities)</label>\n\
         <textarea id=\"request\" rows=\"12\">{}</textarea>\n<label for=\"key\">API key (if the server needs one)</label> <input id=\"key\" type=\"password\">\n\
         <button type=\"submit\">Decide</button></form>\n<output id=\"answer\" data-decision=\"\"></output>\n\
         <script type=\"application/json\" id=\"policies\">{policies}</script>\n<script>{SCRIPT}</script>\n",
        esc(EXAMPLE)
    );
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Portcullis · {}</title>\n<style>{STYLE}{PAGE_STYLE}</style></head>\n<body>\n{body}</body></html>\n",
        esc(s.version())
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

const EXAMPLE: &str = r#"{
  "principal": "Portal::User::\"olivia\"",
  "action": "shipment.create",
  "resource": "Portal::Shipment::\"s1\"",
  "context": {},
  "entities": []
}"#;

const PAGE_STYLE: &str = "header p{color:#555}.error{background:#fde2e2;padding:.5rem 1rem;border-left:4px solid #c00}#reload-ok{color:#286b2f}td{cursor:pointer}textarea{width:100%;font-family:monospace}#details{position:fixed;right:1rem;top:1rem;width:40%;max-height:80vh;overflow:auto;background:#fff;border:1px solid #888;padding:.5rem 1rem;box-shadow:0 2px 8px #0003}output{display:block;margin:1rem 0;padding:.5rem 1rem;font-size:1.1rem}output[data-decision=allow]{background:#d7f5dd}output[data-decision=deny]{background:#fde2e2}.legend span{padding:0 .3rem}.legend .yes{background:#d7f5dd}.legend .own{background:#fff4c2}.legend .addon{background:#dde8ff}label{display:block;margin-top:.5rem}";

const SCRIPT: &str = r#"
const policies = JSON.parse(document.getElementById('policies').textContent);
document.querySelectorAll('section.matrix td').forEach(td => td.addEventListener('click', () => {
  const row = td.parentElement, id = td.title.startsWith('policy ') ? td.title.split(';')[0].slice(7) : null;
  const p = id && policies[id];
  document.getElementById('details-title').textContent = row.dataset.feature + ' / ' + td.dataset.role + ': ' + td.dataset.access;
  document.getElementById('details-text').textContent = p ? (p.file + ':' + p.line + '\n' + (p.describe || '') + '\n\n' + p.text) : 'No policy grants this cell.';
  document.getElementById('details').hidden = false;
}));
async function ask(text) {
  const out = document.getElementById('answer');
  const headers = {'content-type': 'application/json'};
  const key = document.getElementById('key').value;
  if (key) headers['authorization'] = 'Bearer ' + key;
  try {
    const r = await fetch('/v1/authorize', {method: 'POST', headers, body: text});
    const v = await r.json();
    if (!r.ok) { out.dataset.decision = 'error'; out.textContent = 'error: ' + v.error.message; return; }
    out.dataset.decision = v.decision;
    out.textContent = v.decision + (v.reasons.length ? ' by ' + v.reasons.join(', ') : ' (no policy applied)') + ' · version ' + v.version;
  } catch (e) { out.dataset.decision = 'error'; out.textContent = 'error: ' + e; }
}
document.getElementById('ask').addEventListener('submit', e => { e.preventDefault(); ask(document.getElementById('request').value); });
const given = new URLSearchParams(location.search).get('request');
if (given) { document.getElementById('request').value = given; ask(given); }
"#;
