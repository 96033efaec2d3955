//! `GET /`: the product owner's page.
//!
//! Input: the served snapshot, the reload status and the `console` setting. Output: one
//! self-contained HTML page (no build step, no external assets): the folder's role × feature
//! matrix per account type (own, add-on and conditional cells marked; click a cell, or focus it
//! and press Enter, for the policy and the `roles.toml` line behind it), the policy version and
//! load time, the last reload error if any, and a raw request form that asks `POST
//! /v1/authorize` (starting with the folder's own first fixture case; `/?request=<json>` fills
//! it and asks at once). With the console on, the page also edits the matrix and the role
//! model, previews, proves, saves and undoes through `/v1/console/*` (see `console.rs`), and
//! tries the folder as one of its users with forms built from the schema.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use portcullis_engine::fixtures::FixtureFile;
use portcullis_engine::matrix::{esc, Matrix, STYLE};
use portcullis_engine::{Slot, Snapshot};

use super::policy::rfc3339;
use crate::state::AppState;

/// The product owner's page: the rights matrix, and with `console` on, editing it with a preview, saves and undo, and trying users
#[utoipa::path(get, path = "/", responses((status = 200, description = "HTML page", body = String, content_type = "text/html")))]
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
    body.push_str("<aside id=\"details\" hidden aria-live=\"polite\"><button type=\"button\" id=\"details-close\" aria-label=\"Close\">×</button><h3 id=\"details-title\"></h3><pre id=\"details-text\"></pre><div id=\"cell-editor\" hidden><label for=\"cell-access\">Change this cell to</label> <select id=\"cell-access\"></select> <button type=\"button\" id=\"cell-apply\">Add to the changes</button></div></aside>\n");
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
    if app.config.console {
        body.push_str(CONSOLE_HTML);
    } else {
        body.push_str("<p id=\"console-off\" class=\"note\">The console is off: start the server with <code>--console</code> to change rights here, see what a change does before saving it, and try the folder as one of its users.</p>\n");
    }
    let data = serde_json::json!({
        "console": app.config.console,
        "version": s.version(),
        "policies": policies,
    });
    let data = serde_json::to_string(&data)
        .unwrap_or_else(|_| "{}".to_owned())
        .replace("</", "<\\/");
    let _ = write!(
        body,
        "<section id=\"raw\"><h2>Ask for a decision (raw request)</h2>\n<form id=\"ask\"><label for=\"request\">Request (JSON: principal, action, resource, context, entities)</label>\n\
         <textarea id=\"request\" rows=\"10\">{}</textarea>\n<label for=\"key\">API key (if the server needs one)</label> <input id=\"key\" type=\"password\" autocomplete=\"off\">\n\
         <button type=\"submit\">Decide</button></form>\n<output id=\"answer\" data-decision=\"\"></output></section>\n\
         <script type=\"application/json\" id=\"page-data\">{data}</script>\n<script>{SCRIPT}</script>\n",
        esc(&example(s))
    );
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Portcullis · {}</title>\n<style>{STYLE}{PAGE_STYLE}</style></head>\n<body>\n{body}</body></html>\n",
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

/// The raw form's first request: the folder's first fixture case, so it asks this folder's
/// question (a bare principal, action and resource when the folder has no fixtures).
fn example(s: &Snapshot) -> String {
    let case = s.sources().fixtures.iter().find_map(|f| {
        let parsed: FixtureFile = toml::from_str(&f.text).ok()?;
        let case = parsed.cases.into_iter().next()?.value;
        let principal = s.resolve(&case.principal, Slot::Principal).ok()?;
        let action = s.resolve(&case.action, Slot::Action).ok()?;
        let resource = s.resolve(&case.resource, Slot::Resource).ok()?;
        Some((
            principal.to_string(),
            action.id().unescaped().to_owned(),
            resource.to_string(),
        ))
    });
    let (principal, action, resource) = case.unwrap_or_else(|| {
        let user = s.user_type();
        let first = s.schema().request_envs().next();
        (
            format!("{user}::\"alice\""),
            first
                .as_ref()
                .map_or(String::new(), |e| e.action().id().unescaped().to_owned()),
            first.map_or(String::new(), |e| format!("{}::\"r1\"", e.resource())),
        )
    });
    let v = serde_json::json!({
        "principal": principal,
        "action": action,
        "resource": resource,
        "context": {},
        "entities": [],
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The console's sections, filled by the script from `GET /v1/console`.
const CONSOLE_HTML: &str = r#"<section id="console" aria-labelledby="console-title">
<h2 id="console-title">Change rights</h2>
<p class="note">Click a cell of the matrix (or focus it and press Enter) to change it. Every change is previewed here before anything is saved: the <code>roles.toml</code> edit, the cells and fixture outcomes it changes, and whether the folder's properties still hold.</p>
<p id="console-status" role="status"></p>
<details id="structure"><summary>Roles, features and flags</summary>
<form id="add-role" class="inline"><h3>Add a role</h3>
<label>Name <input name="role" required pattern="[A-Za-z0-9_.:-]+"></label> <label>Title <input name="title" required></label> <label>Rank <input name="rank" type="number" required value="10"></label>
<fieldset><legend>Account types</legend><span class="account-types"></span></fieldset><button type="submit">Add to the changes</button></form>
<form id="add-feature" class="inline"><h3>Add a feature</h3>
<label>Name <input name="feature" required pattern="[A-Za-z0-9_.:-]+"></label> <label>Title <input name="title" required></label>
<label>Actions <select name="actions" multiple size="5" required></select></label>
<fieldset><legend>Account types (none: all)</legend><span class="account-types"></span></fieldset><button type="submit">Add to the changes</button></form>
<form id="rename" class="inline"><h3>Rename</h3>
<label>What <select name="kind"><option value="role">role</option><option value="feature">feature</option></select></label> <label>Name <select name="from"></select></label> <label>New name <input name="to" required pattern="[A-Za-z0-9_.:-]+"></label> <button type="submit">Add to the changes</button></form>
<form id="retitle" class="inline"><h3>Retitle</h3>
<label>What <select name="kind"><option value="role">role</option><option value="feature">feature</option><option value="account_type">account type</option><option value="flag">flag</option><option value="group">permission group</option></select></label> <label>Name <select name="name"></select></label> <label>Title <input name="title" required></label> <button type="submit">Add to the changes</button></form>
<form id="role-rank" class="inline"><h3>Rank and managed roles</h3>
<label>Role <select name="role"></select></label> <label>Rank <input name="rank" type="number" required></label>
<fieldset><legend>Manages</legend><span class="manages"></span></fieldset><button type="submit">Add to the changes</button></form>
<form id="flag-limits" class="inline"><h3>Flag limits</h3>
<label>Flag <select name="flag"></select></label> <label>Highest rank (empty: none) <input name="max_rank" type="number"></label> <label><input name="owned_only" type="checkbox"> Own records only</label> <button type="submit">Add to the changes</button></form>
</details>
<h3>Changes not saved yet</h3>
<ol id="pending"><li class="empty">None.</li></ol>
<div class="buttons"><button type="button" id="save" disabled>Save to roles.toml</button> <button type="button" id="discard" disabled>Discard the changes</button> <button type="button" id="undo" disabled>Undo the last save</button></div>
<section id="preview" hidden aria-live="polite" tabindex="-1"><h3>What the changes do</h3>
<p id="preview-build"></p>
<h4>Matrix cells</h4><div class="scroll"><table id="preview-cells"></table></div>
<h4>Fixture outcomes</h4><ul id="preview-outcomes"></ul><p id="preview-fixtures"></p>
<h4>Properties</h4><p><button type="button" id="prove">Prove the properties with the changes</button></p><ul id="preview-properties"></ul>
<h4>The edit of roles.toml</h4><pre id="text-diff"></pre>
</section>
<h3>Saves</h3><ol id="history"><li class="empty">None yet.</li></ol>
</section>
<div id="bar" hidden role="region" aria-label="Changes not saved yet"><span id="bar-text"></span> <button type="button" id="bar-review">See what they do</button> <button type="button" id="bar-save">Save</button> <button type="button" id="bar-discard">Discard</button></div>
<section id="try" aria-labelledby="try-title"><h2 id="try-title">Try it as a user</h2>
<form id="try-form" class="inline"><label>Users of <select id="try-world"></select></label> <label>User <select id="try-user"></select></label> <button type="submit" id="try-what">What may this user do?</button></form>
<div id="try-can" class="scroll"></div>
<form id="decide-form" class="inline"><label>Action <select id="try-action"></select></label> <label>Resource <select id="try-resource"></select><input id="try-resource-text" hidden placeholder='Type::"id"'></label> <span id="try-context"></span> <button type="submit" id="try-decide">Decide</button></form>
<output id="try-answer" data-decision=""></output><pre id="try-explanation"></pre>
</section>
"#;

const PAGE_STYLE: &str = "header p{color:#555}.error{background:#fde2e2;padding:.5rem 1rem;border-left:4px solid #c00}#reload-ok{color:#286b2f}td{cursor:pointer}td:focus,td.selected{outline:3px solid #1a5fb4;outline-offset:-3px}td.pending{box-shadow:inset 0 0 0 3px #e66100}textarea{width:100%;font-family:monospace}#details{position:fixed;right:1rem;top:1rem;width:40%;max-height:80vh;overflow:auto;background:#fff;border:1px solid #888;padding:.5rem 1rem;box-shadow:0 2px 8px #0003}#details-close{float:right}output{display:block;margin:1rem 0;padding:.5rem 1rem;font-size:1.1rem}output[data-decision=allow]{background:#d7f5dd}output[data-decision=deny],output[data-decision=error]{background:#fde2e2}.legend span{padding:0 .3rem}.legend .yes{background:#d7f5dd}.legend .own{background:#fff4c2}.legend .addon{background:#dde8ff}label{display:inline-block;margin:.3rem .8rem .3rem 0}form.inline{margin:.5rem 0 1rem}fieldset{border:1px solid #ccc;margin:.3rem 0}#pending li,#history li{margin:.2rem 0}button{font:inherit;padding:.2rem .7rem;margin:.2rem 0}button:focus,select:focus,input:focus,summary:focus{outline:3px solid #1a5fb4}.note{color:#444}#preview{border-left:4px solid #e66100;padding:0 1rem;margin:1rem 0}#text-diff .add{background:#d7f5dd}#text-diff .del{background:#fde2e2}pre{white-space:pre-wrap;overflow-wrap:anywhere}.scroll{overflow-x:auto;max-width:100%}section.matrix{overflow-x:auto}.bad{color:#a00}.good{color:#286b2f}#console-status:empty{display:none}#console-status{background:#fff4c2;padding:.3rem .6rem}#bar{position:sticky;bottom:0;background:#fff8e5;border-top:3px solid #e66100;padding:.4rem 1rem;margin:0 -1rem;z-index:5}@media (max-width:700px){body{margin:.5rem}#details{left:0;right:0;top:auto;bottom:0;width:auto;max-height:50vh}label{display:block}}";

const SCRIPT: &str = r#"
const data = JSON.parse(document.getElementById('page-data').textContent);
const policies = data.policies;
const $ = id => document.getElementById(id);
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
function headers() {
  const h = {'content-type': 'application/json'};
  const key = $('key').value;
  if (key) h['authorization'] = 'Bearer ' + key;
  return h;
}
async function call(method, path, body) {
  const init = {method, headers: headers()};
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  let v = null;
  try { v = await r.json(); } catch (e) {}
  return {ok: r.ok, status: r.status, body: v};
}
const message = r => (r.body && r.body.error) ? r.body.error.message : ('HTTP ' + r.status);

// ---- The matrix: details, and in the console, the cell editor ----
let selected = null;
function cellKey(td) {
  const section = td.closest('section.matrix');
  return {table: section.dataset.accountType, feature: td.parentElement.dataset.feature, role: td.dataset.role};
}
function openCell(td) {
  document.querySelectorAll('td.selected').forEach(c => c.classList.remove('selected'));
  td.classList.add('selected');
  selected = td;
  const row = td.parentElement, id = td.title.startsWith('policy ') ? td.title.split(';')[0].slice(7) : null;
  const p = id && policies[id];
  $('details-title').textContent = row.dataset.feature + ' / ' + td.dataset.role + ': ' + td.dataset.access;
  $('details-text').textContent = p ? (p.file + ':' + p.line + '\n' + (p.describe || '') + '\n\n' + p.text) : 'No policy grants this cell.';
  $('details').hidden = false;
  if (data.console) {
    const k = cellKey(td), select = $('cell-access');
    select.innerHTML = '';
    const choices = k.table === 'groups' ? [['yes', 'held'], ['none', 'not held']] : [['yes', 'yes: every record of the company'], ['own', 'own: records the user owns'], ['addon', 'add-on: when granted to the user'], ['none', 'none']];
    const now = {'yes': 'yes', 'own': 'own', 'add-on': 'addon', '-': 'none'}[td.dataset.access.replace('*', '')] || 'none';
    for (const [v, t] of choices) { const o = el('option', t); o.value = v; if (v === now) o.selected = true; select.append(o); }
    $('cell-editor').hidden = false;
    select.focus();
  }
}
document.querySelectorAll('section.matrix td').forEach(td => {
  td.tabIndex = 0;
  td.addEventListener('click', () => openCell(td));
  td.addEventListener('keydown', e => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openCell(td); } });
});
$('details-close').addEventListener('click', () => { $('details').hidden = true; if (selected) selected.focus(); });
document.addEventListener('keydown', e => { if (e.key === 'Escape' && !$('details').hidden) { $('details').hidden = true; if (selected) selected.focus(); } });

// ---- The raw form ----
async function ask(text) {
  const out = $('answer');
  try {
    const r = await fetch('/v1/authorize', {method: 'POST', headers: headers(), body: text});
    const v = await r.json();
    if (!r.ok) { out.dataset.decision = 'error'; out.textContent = 'error: ' + v.error.message; return; }
    out.dataset.decision = v.decision;
    out.textContent = v.decision + (v.reasons.length ? ' by ' + v.reasons.join(', ') : ' (no policy applied)') + ' · version ' + v.version;
  } catch (e) { out.dataset.decision = 'error'; out.textContent = 'error: ' + e; }
}
$('ask').addEventListener('submit', e => { e.preventDefault(); ask($('request').value); });
const given = new URLSearchParams(location.search).get('request');
if (given) { $('request').value = given; ask(given); }

// ---- The console ----
let edits = [];
let overview = null;
function describe(e) {
  switch (e.op) {
    case 'cell': return `${e.role} holds ${e.feature}: ${e.access}` + (e.account_type && e.account_type !== '*' ? ` (${e.account_type} table)` : '');
    case 'group_cell': return `group ${e.group} ${e.held ? 'holds' : 'does not hold'} ${e.feature}`;
    case 'add_role': return `new role ${e.role} "${e.title}", rank ${e.rank}`;
    case 'add_feature': return `new feature ${e.feature} "${e.title}" (${e.actions.join(', ')})`;
    case 'rename': return `rename ${e.kind} ${e.from} to ${e.to}`;
    case 'title': return `${e.kind} ${e.name} titled "${e.title}"`;
    case 'rank': return `role ${e.role} ranked ${e.rank}`;
    case 'manages': return `role ${e.role} manages ${e.manages.join(', ') || 'no role'}`;
    case 'flag': return `flag ${e.flag}: highest rank ${e.max_rank ?? 'none'}, own records only: ${e.owned_only}`;
  }
  return JSON.stringify(e);
}
function status(text) { $('console-status').textContent = text; }
function addEdit(e, same) {
  edits = edits.filter(x => !same || !same(x));
  edits.push(e);
  changed();
}
function changed() {
  const list = $('pending');
  list.innerHTML = '';
  if (!edits.length) list.append(el('li', 'None.', 'empty'));
  edits.forEach((e, i) => {
    const li = el('li', describe(e) + ' ');
    const b = el('button', 'Remove');
    b.type = 'button';
    b.setAttribute('aria-label', 'Remove: ' + describe(e));
    b.addEventListener('click', () => { edits.splice(i, 1); changed(); });
    li.append(b);
    list.append(li);
  });
  document.querySelectorAll('td.pending').forEach(c => c.classList.remove('pending'));
  for (const e of edits) {
    if (e.op !== 'cell' && e.op !== 'group_cell') continue;
    const table = e.op === 'group_cell' ? 'groups' : (e.account_type || '*');
    const role = e.op === 'group_cell' ? e.group : e.role;
    document.querySelectorAll(`section.matrix[data-account-type="${CSS.escape(table)}"] tr[data-feature="${CSS.escape(e.feature)}"] td[data-role="${CSS.escape(role)}"]`).forEach(c => c.classList.add('pending'));
  }
  $('save').disabled = $('discard').disabled = !edits.length;
  $('bar').hidden = !edits.length;
  $('bar-text').textContent = `${edits.length} change${edits.length === 1 ? '' : 's'} not saved: working out what they do…`;
  preview();
}
let previewing = 0;
async function preview() {
  const mine = ++previewing;
  $('preview-properties').innerHTML = '';
  if (!edits.length) { $('preview').hidden = true; status(''); return; }
  status('Working out what the changes do…');
  const r = await call('POST', '/v1/console/preview', {base: data.version, edits});
  if (mine !== previewing) return;
  const p = $('preview');
  p.hidden = false;
  p.dataset.state = 'pending';
  if (!r.ok) {
    status(message(r));
    $('preview-build').textContent = 'Refused: ' + message(r);
    $('preview-build').className = 'bad';
    $('bar-text').textContent = 'The changes are refused: ' + message(r);
    $('bar-save').disabled = true;
    p.dataset.state = 'refused';
    return;
  }
  const v = r.body;
  status('');
  $('preview-build').textContent = v.builds ? `The edited folder builds (version ${v.version}).` : 'The edited folder does not build, so it cannot be saved:\n' + v.diagnostics_text;
  $('preview-build').className = v.builds ? 'good' : 'bad';
  $('save').disabled = !v.builds;
  const cells = $('preview-cells');
  cells.innerHTML = '';
  if (v.cells.length) {
    const head = el('tr');
    for (const h of ['Account type', 'Role', 'Feature', 'Before', 'After']) head.append(el('th', h));
    cells.append(head);
    for (const c of v.cells) {
      const tr = el('tr');
      tr.dataset.cell = `${c.account_type},${c.role},${c.feature},${c.old},${c.new}`;
      for (const t of [c.account_type, c.role, c.feature, c.old, c.new]) tr.append(el('td', t));
      cells.append(tr);
    }
  } else if (v.builds) cells.append(el('caption', 'No cell changes.'));
  const outcomes = $('preview-outcomes');
  outcomes.innerHTML = '';
  for (const o of v.outcomes) {
    const li = el('li', `${o.file}: ${o.name}: ${o.old ?? 'error'} → ${o.new ?? 'error'}`);
    li.dataset.outcome = `${o.file},${o.name},${o.old ?? 'error'},${o.new ?? 'error'}`;
    outcomes.append(li);
  }
  for (const n of v.notes) outcomes.append(el('li', n, 'bad'));
  if (!v.outcomes.length && !v.notes.length && v.builds) outcomes.append(el('li', 'No fixture outcome changes.'));
  $('preview-fixtures').textContent = v.fixtures ? `With the changes, ${v.fixtures.passed} fixture cases pass and ${v.fixtures.failed} fail.` : '';
  const diff = $('text-diff');
  diff.innerHTML = '';
  for (const line of v.text_diff.replace(/\n$/, '').split('\n')) {
    const cls = line.startsWith('+') && !line.startsWith('+++') ? 'add' : line.startsWith('-') && !line.startsWith('---') ? 'del' : '';
    diff.append(el('span', line + '\n', cls));
  }
  $('prove').disabled = !v.builds;
  $('bar-save').disabled = !v.builds;
  $('bar-text').textContent = `${edits.length} change${edits.length === 1 ? '' : 's'} not saved: ` + (v.builds ? `${v.cells.length} matrix cell${v.cells.length === 1 ? '' : 's'} and ${v.outcomes.length} fixture outcome${v.outcomes.length === 1 ? '' : 's'} change.` : 'the folder would not build.');
  p.dataset.state = v.builds ? 'ready' : 'broken';
}
$('bar-review').addEventListener('click', () => { $('preview').scrollIntoView(); $('preview').focus(); });
$('bar-save').addEventListener('click', () => $('save').click());
$('bar-discard').addEventListener('click', () => $('discard').click());
$('prove').addEventListener('click', async () => {
  const list = $('preview-properties');
  list.innerHTML = '';
  list.append(el('li', 'Proving…'));
  const r = await call('POST', '/v1/console/prove', {base: data.version, edits});
  list.innerHTML = '';
  if (!r.ok) { list.append(el('li', message(r), 'bad')); list.dataset.done = 'error'; return; }
  for (const v of r.body.verdicts) {
    const ok = v.outcome === 'proved';
    const li = el('li', (ok ? 'holds: ' : 'BROKEN: ') + v.name + ` (${v.source})`, ok ? 'good' : 'bad');
    li.dataset.outcome = v.outcome;
    if (!ok) { const c = v.counterexample; li.append(el('div', `for example ${c.principal} ${c.action} ${c.resource} is ${c.decision}`)); }
    list.append(li);
  }
  for (const s of r.body.skipped) list.append(el('li', `not checked here: ${s.name} (${s.source}) compares with another version; run portcullis verify`));
  list.dataset.done = 'true';
});
$('cell-apply').addEventListener('click', () => {
  if (!selected) return;
  const k = cellKey(selected), access = $('cell-access').value;
  if (k.table === 'groups') addEdit({op: 'group_cell', group: k.role, feature: k.feature, held: access === 'yes'}, x => x.op === 'group_cell' && x.group === k.role && x.feature === k.feature);
  else addEdit({op: 'cell', feature: k.feature, role: k.role, access, account_type: k.table}, x => x.op === 'cell' && x.feature === k.feature && x.role === k.role && x.account_type === k.table);
  $('details').hidden = true;
  selected.focus();
});
$('discard').addEventListener('click', () => { edits = []; changed(); });
$('save').addEventListener('click', async () => {
  $('save').disabled = true;
  status('Saving…');
  const r = await call('POST', '/v1/console/save', {base: data.version, edits});
  if (!r.ok) {
    status('Not saved: ' + message(r) + (r.body && r.body.error && r.body.error.text ? '\n' + r.body.error.text : ''));
    $('save').disabled = false;
    return;
  }
  location.href = '/?saved=' + encodeURIComponent(r.body.version);
});
$('undo').addEventListener('click', async () => {
  status('Undoing…');
  const r = await call('POST', '/v1/console/undo');
  if (!r.ok) { status('Not undone: ' + message(r)); return; }
  location.href = '/?undone=' + encodeURIComponent(r.body.version);
});
function fill(select, items, value, text) {
  select.innerHTML = '';
  for (const it of items) { const o = el('option', text(it)); o.value = value(it); select.append(o); }
}
function checkboxes(span, name, items, checked) {
  span.innerHTML = '';
  for (const it of items) {
    const l = el('label'), c = el('input');
    c.type = 'checkbox'; c.name = name; c.value = it.name; c.checked = checked(it);
    l.append(c, ' ' + it.title);
    span.append(l);
  }
}
const checked = (form, name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map(c => c.value);
function structure(m) {
  const names = kind => ({role: m.roles, feature: m.features, account_type: m.account_types, flag: m.flags, group: m.groups}[kind] || []);
  for (const f of ['add-role', 'add-feature']) for (const s of $(f).querySelectorAll('.account-types')) checkboxes(s, 'account_types', m.account_types, () => false);
  fill($('add-feature').elements.actions, overview.actions, a => a.id, a => a.id);
  const byKind = form => { fill(form.elements[form.id === 'rename' ? 'from' : 'name'], names(form.elements.kind.value), x => x.name, x => `${x.title} (${x.name})`); };
  for (const f of [$('rename'), $('retitle')]) { byKind(f); f.elements.kind.addEventListener('change', () => byKind(f)); }
  const rr = $('role-rank');
  fill(rr.elements.role, m.roles, r => r.name, r => `${r.title} (${r.name})`);
  const showRole = () => { const r = m.roles.find(x => x.name === rr.elements.role.value); if (!r) return; rr.elements.rank.value = r.rank; checkboxes(rr.querySelector('.manages'), 'manages', m.roles, x => r.manages.includes(x.name)); };
  rr.elements.role.addEventListener('change', showRole); showRole();
  const fl = $('flag-limits');
  fill(fl.elements.flag, m.flags, f => f.name, f => `${f.title} (${f.name})`);
  const showFlag = () => { const f = m.flags.find(x => x.name === fl.elements.flag.value); if (!f) return; fl.elements.max_rank.value = f.max_rank ?? ''; fl.elements.owned_only.checked = f.owned_only; };
  fl.elements.flag.addEventListener('change', showFlag); showFlag();
  if (!m.flags.length) fl.hidden = true;
}
function onSubmit(id, make, same) {
  $(id).addEventListener('submit', e => { e.preventDefault(); const x = make(e.target); if (x) addEdit(x, same && (y => same(x, y))); });
}
onSubmit('add-role', f => ({op: 'add_role', role: f.elements.role.value, title: f.elements.title.value, rank: Number(f.elements.rank.value), account_types: checked(f, 'account_types')}));
onSubmit('add-feature', f => ({op: 'add_feature', feature: f.elements.feature.value, title: f.elements.title.value, actions: [...f.elements.actions.selectedOptions].map(o => o.value), account_types: checked(f, 'account_types')}));
onSubmit('rename', f => ({op: 'rename', kind: f.elements.kind.value, from: f.elements.from.value, to: f.elements.to.value}));
onSubmit('retitle', f => ({op: 'title', kind: f.elements.kind.value, name: f.elements.name.value, title: f.elements.title.value}), (x, y) => y.op === 'title' && y.kind === x.kind && y.name === x.name);
onSubmit('role-rank', f => {
  const role = f.elements.role.value, r = overview.model.roles.find(x => x.name === role);
  const rank = Number(f.elements.rank.value), manages = checked(f, 'manages');
  const out = [];
  if (r.rank !== rank) out.push({op: 'rank', role, rank});
  if (JSON.stringify([...r.manages].sort()) !== JSON.stringify([...manages].sort())) out.push({op: 'manages', role, manages});
  for (const e of out.slice(0, -1)) edits.push(e);
  return out[out.length - 1];
});
onSubmit('flag-limits', f => ({op: 'flag', flag: f.elements.flag.value, max_rank: f.elements.max_rank.value === '' ? null : Number(f.elements.max_rank.value), owned_only: f.elements.owned_only.checked}), (x, y) => y.op === 'flag' && y.flag === x.flag);

// ---- Try it as a user ----
const STORED = '(stored users)';
function worldOf() { const w = $('try-world').value; return w === STORED ? null : overview.worlds.find(x => x.file === w); }
function userUid(u) { return `${overview.user_type}::${JSON.stringify(u)}`; }
function tryUsers() {
  const w = worldOf();
  if (w) fill($('try-user'), w.users, u => u, u => u);
  else fill($('try-user'), overview.stored_users, u => u.id, u => `${u.name || u.login} (${u.role}, ${u.company})`);
  tryActions();
}
function tryActions() {
  fill($('try-action'), overview.actions.filter(a => a.principals.includes(overview.user_type)), a => a.id, a => a.id);
  tryResources();
}
function tryContext(a, w) {
  const span = $('try-context');
  span.innerHTML = '';
  for (const f of (a ? a.context : [])) {
    const l = el('label', f.name + (f.required ? '' : ' (optional)') + ' ');
    let input;
    if (f.kind === 'Bool' && f.required) { input = el('input'); input.type = 'checkbox'; }
    else if (f.kind === 'Bool') { input = el('select'); for (const [v, t] of [['', 'absent'], ['true', 'true'], ['false', 'false']]) { const o = el('option', t); o.value = v; input.append(o); } }
    else if (f.kind === 'Entity' && w) { input = el('select'); const ids = f.entity_type === overview.user_type ? w.users : (w.entities[f.entity_type] || []); if (!f.required) { const o = el('option', 'absent'); o.value = ''; input.append(o); } for (const id of ids) { const o = el('option', id); o.value = id; input.append(o); } }
    else { input = el('input'); if (f.kind === 'Long') input.type = 'number'; if (f.kind === 'Json') input.placeholder = 'JSON'; if (f.kind === 'Entity') input.placeholder = 'id'; }
    input.dataset.name = f.name; input.dataset.kind = f.kind; input.dataset.required = f.required;
    if (f.entity_type) input.dataset.type = f.entity_type;
    l.append(input);
    span.append(l);
  }
}
function contextOf() {
  const ctx = {};
  for (const i of $('try-context').querySelectorAll('[data-name]')) {
    const name = i.dataset.name, required = i.dataset.required === 'true';
    if (i.type === 'checkbox') { ctx[name] = i.checked; continue; }
    const v = i.value;
    if (v === '' && !required) continue;
    if (i.dataset.kind === 'Bool') ctx[name] = v === 'true';
    else if (i.dataset.kind === 'Long') ctx[name] = Number(v);
    else if (i.dataset.kind === 'Entity') ctx[name] = {'__entity': {type: i.dataset.type, id: v}};
    else if (i.dataset.kind === 'Json') { try { ctx[name] = JSON.parse(v); } catch (e) { ctx[name] = v; } }
    else ctx[name] = v;
  }
  return ctx;
}
function tryResources() {
  const w = worldOf(), a = overview.actions.find(x => x.id === $('try-action').value);
  tryContext(a, w);
  const select = $('try-resource'), text = $('try-resource-text');
  select.hidden = !w; text.hidden = !!w;
  if (!w || !a) return;
  const items = [];
  for (const ty of a.resources) for (const id of (ty === overview.user_type ? w.users : (w.entities[ty] || []))) items.push(`${ty}::${JSON.stringify(id)}`);
  fill(select, items, x => x, x => x);
}
$('try-world').addEventListener('change', tryUsers);
$('try-action').addEventListener('change', tryResources);
$('try-form').addEventListener('submit', async e => {
  e.preventDefault();
  const out = $('try-can'), w = worldOf(), user = $('try-user').value;
  out.textContent = 'Deciding…';
  let rows = [];
  if (w) {
    const r = await call('POST', '/v1/console/try', {world: w.file, user});
    if (!r.ok) { out.textContent = message(r); return; }
    rows = r.body.by_type;
  } else {
    const types = [...new Set(overview.actions.filter(a => a.principals.includes(overview.user_type)).flatMap(a => a.resources))].sort();
    for (const t of types) {
      const r = await call('POST', '/v1/permissions', {principal: userUid(user), resource_type: t});
      if (!r.ok) { out.textContent = message(r); return; }
      rows.push({resource_type: t, allowed: r.body.allowed, features: r.body.features.filter(f => f.allowed)});
    }
  }
  const table = el('table');
  table.id = 'try-table';
  const head = el('tr');
  for (const h of ['On a new record of', 'Features (as in the matrix)', 'Actions allowed']) head.append(el('th', h));
  table.append(head);
  for (const row of rows) {
    const tr = el('tr');
    tr.dataset.type = row.resource_type;
    tr.append(el('td', row.resource_type), el('td', row.features.map(f => f.title).join('; ') || 'nothing'), el('td', row.allowed.join(', ') || 'none'));
    table.append(tr);
  }
  out.innerHTML = '';
  out.append(table);
});
$('decide-form').addEventListener('submit', async e => {
  e.preventDefault();
  const w = worldOf(), user = $('try-user').value, action = $('try-action').value;
  const resource = w ? $('try-resource').value : $('try-resource-text').value;
  const out = $('try-answer'), text = $('try-explanation');
  const r = w
    ? await call('POST', '/v1/console/try', {world: w.file, user, action, resource, context: contextOf()})
    : await call('POST', '/v1/authorize', {principal: userUid(user), action, resource, context: contextOf(), explain: true});
  if (!r.ok) { out.dataset.decision = 'error'; out.textContent = 'error: ' + message(r); text.textContent = ''; return; }
  const x = r.body.explanation;
  const decision = w ? x.decision.decision : r.body.decision;
  out.dataset.decision = decision;
  out.textContent = `${user} ${action} ${resource}: ${decision}`;
  text.textContent = w ? r.body.text : (x ? x.summary : '');
});

async function start() {
  const r = await call('GET', '/v1/console');
  if (!r.ok) { status(r.status === 401 ? 'Enter the API key below, then press Enter in its field.' : message(r)); return; }
  overview = r.body;
  if (overview.model) structure(overview.model); else $('structure').hidden = true;
  const worlds = overview.worlds.map(w => w.file);
  if (overview.stored_users.length) worlds.push(STORED);
  fill($('try-world'), worlds, x => x, x => x === STORED ? 'the user store' : x);
  if (worlds.length) tryUsers(); else $('try').hidden = true;
  const h = $('history');
  h.innerHTML = '';
  if (!overview.history.length) h.append(el('li', 'None yet.', 'empty'));
  for (const s of overview.history) {
    const li = el('li', `${s.at}: ${s.edits.map(describe).join('; ')} (version ${s.before_version} → ${s.after_version})`);
    h.append(li);
  }
  $('undo').disabled = !overview.history.length;
  const q = new URLSearchParams(location.search);
  if (q.get('saved')) status(`Saved: version ${q.get('saved')} is served.`);
  if (q.get('undone')) status(`Undone: version ${q.get('undone')} is served.`);
  document.body.dataset.console = 'ready';
}
if (data.console) { start(); $('key').addEventListener('change', start); }
"#;
