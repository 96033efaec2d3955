//! The product owner's console end to end: for the default folder and every example folder, a
//! real headless Chromium (over the DevTools protocol) changes a matrix cell with the keyboard,
//! the preview is checked against `portcullis diff` of the same edit, the properties are proved
//! (with cvc5), the change is saved and the new version awaited, the file keeps its comments and
//! `portcullis test` still runs, the save is undone byte for byte, a fixture user is tried, and
//! the page is looked at on a phone-sized window. Screenshots of each step land in
//! `target/tmp/console-screenshots/`. Without Chromium the test says loudly that it was skipped,
//! except under CI. The HTTP part (409s, 422s, what a disabled console answers) runs anyway.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use portcullis_engine::roles::edit::{self, Access, Edit};
use portcullis_server::Config;
use serde_json::{json, Value};

use crate::cdp::{chromium, Browser};
use crate::common::{await_install, copy_dir, start, Http};

/// Runs the CLI: exit code, stdout; stderr goes to the test's output.
fn portcullis(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_remove("PORTCULLIS_TEST_POSTGRES_URL")
        .output()
        .unwrap();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn folders() -> Vec<(String, PathBuf)> {
    crate::common::portal_folders()
        .into_iter()
        .map(|f| {
            let name = f.rsplit('/').next().unwrap_or(&f).to_owned();
            (name, crate::common::repo().join(f))
        })
        .collect()
}

fn config(folder: &Path) -> Config {
    let mut c = Config::new(folder);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.reload_debounce = Duration::from_millis(10);
    c.console = true;
    // A preview rebuilds the folder and runs its fixtures: in a debug build, with the whole
    // suite sharing the cores, that can pass the default 10 s a request may take.
    c.limits.request_timeout = Duration::from_secs(90);
    c
}

/// The comment lines of a TOML text (whole-line and trailing comments).
fn comments(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.find('#').map(|i| l[i..].trim().to_owned()))
        .filter(|c| c.len() > 1)
        .collect()
}

fn cvc5() -> bool {
    Command::new(std::env::var("CVC5").unwrap_or_else(|_| "cvc5".to_owned()))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_owner_changes_a_right_in_every_folder_from_the_page_and_undoes_it() {
    let Some(bin) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium: .ci/run installs it"
        );
        eprintln!("SKIPPED: the console's browser test needs Chromium (apt-get install chromium)");
        return;
    };
    let prove = cvc5();
    if !prove {
        eprintln!("SKIPPED in the console's browser test: proving properties (no cvc5)");
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let mut browser = Browser::launch(&bin).await;
    for (name, src) in folders() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(&name);
        copy_dir(&src, &folder);
        let roles_path = folder.join("roles.toml");
        let original = std::fs::read_to_string(&roles_path).unwrap();
        let server = start(config(&folder)).await;
        let base = format!("http://{}/", server.addr);
        let first_version = server.state.served().snapshot.version().to_owned();
        let page = browser.open(&base, 1280, 800).await;
        browser
            .wait_for(&page, "document.body.dataset.console === 'ready'", "the console")
            .await;

        // A held cell of an account type's table, reached and changed with the keyboard.
        let cell = browser
            .eval(
                &page,
                "(() => { const all = [...document.querySelectorAll('section.matrix td')]; const held = t => t.dataset.access.startsWith('yes'); \
                 const td = all.find(t => held(t) && t.closest('section.matrix').dataset.accountType !== 'groups') || all.find(held); td.id = 'target'; \
                 return {table: td.closest('section.matrix').dataset.accountType, feature: td.parentElement.dataset.feature, role: td.dataset.role, access: td.dataset.access}; })()",
            )
            .await;
        let (table, feature, role) = (
            cell["table"].as_str().unwrap().to_owned(),
            cell["feature"].as_str().unwrap().to_owned(),
            cell["role"].as_str().unwrap().to_owned(),
        );
        browser
            .eval(&page, "document.getElementById('target').focus()")
            .await;
        browser.key(&page, "Enter").await;
        assert_eq!(
            browser.eval(&page, "document.activeElement.id").await,
            json!("cell-access"),
            "{name}: Enter on a cell opens its editor with the choice focused"
        );
        browser
            .eval(&page, "document.getElementById('cell-access').value = 'none'")
            .await;
        browser.key(&page, "Tab").await;
        assert_eq!(
            browser.eval(&page, "document.activeElement.id").await,
            json!("cell-apply")
        );
        browser.key(&page, "Enter").await;
        // A preview rebuilds the folder and runs its fixtures: seconds in a debug build, more
        // with the whole suite (or a build) sharing the cores.
        let state = browser
            .wait_within(
                &page,
                "['ready', 'refused', 'broken'].includes(document.getElementById('preview').dataset.state) && document.getElementById('preview').dataset.state",
                "the preview",
                Duration::from_secs(90),
            )
            .await;
        let build = browser
            .eval(&page, "document.getElementById('preview-build').textContent")
            .await;
        assert_eq!(state, json!("ready"), "{name}: {build}");
        let bar = browser
            .eval(&page, "document.getElementById('bar-text').textContent")
            .await;
        assert!(
            bar.as_str().unwrap().starts_with("1 change not saved: "),
            "{name}: {bar}"
        );
        browser
            .screenshot(&page, &shots.join(format!("{name}-1-cell-changed.png")))
            .await;
        browser
            .eval(&page, "document.getElementById('bar-review').click()")
            .await;
        browser
            .screenshot(&page, &shots.join(format!("{name}-1-preview.png")))
            .await;

        // The preview is `portcullis diff` of the same edit.
        let edit = if table == "groups" {
            Edit::GroupCell {
                group: role.clone(),
                feature: feature.clone(),
                held: false,
            }
        } else {
            Edit::Cell {
                feature: feature.clone(),
                role: role.clone(),
                access: Access::None,
                account_type: Some(table.clone()),
            }
        };
        let expected_text = edit::apply(&original, &[edit]).unwrap();
        let edited = dir.path().join("edited");
        copy_dir(&folder, &edited);
        std::fs::write(edited.join("roles.toml"), &expected_text).unwrap();
        let (code, out) = portcullis(&[
            "diff",
            folder.to_str().unwrap(),
            edited.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert!(code == 0 || code == 1, "{name}: portcullis diff: {out}");
        let diff: Value = serde_json::from_str(&out).unwrap();
        let cli_cells: BTreeSet<String> = diff["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{},{},{},{},{}",
                    c["account_type"].as_str().unwrap(),
                    c["role"].as_str().unwrap(),
                    c["feature"].as_str().unwrap(),
                    c["old"].as_str().unwrap(),
                    c["new"].as_str().unwrap()
                )
            })
            .collect();
        let cli_outcomes: BTreeSet<String> = diff["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                format!(
                    "{},{},{},{}",
                    o["file"].as_str().unwrap(),
                    o["name"].as_str().unwrap(),
                    o["old"].as_str().unwrap_or("error"),
                    o["new"].as_str().unwrap_or("error")
                )
            })
            .collect();
        let page_cells: BTreeSet<String> = serde_json::from_value(
            browser
                .eval(
                    &page,
                    "[...document.querySelectorAll('#preview-cells tr[data-cell]')].map(r => r.dataset.cell)",
                )
                .await,
        )
        .unwrap();
        let page_outcomes: BTreeSet<String> = serde_json::from_value(
            browser
                .eval(&page, "[...document.querySelectorAll('#preview-outcomes li[data-outcome]')].map(r => r.dataset.outcome)")
                .await,
        )
        .unwrap();
        assert!(
            page_cells
                .iter()
                .any(|c| c.starts_with(&format!("{table},{role},{feature},yes")) && c.ends_with(",-")),
            "{name}: the changed cell is in the preview: {page_cells:?}"
        );
        assert_eq!(
            page_cells, cli_cells,
            "{name}: the preview's cells are portcullis diff's"
        );
        assert_eq!(
            page_outcomes, cli_outcomes,
            "{name}: the preview's outcomes are portcullis diff's"
        );
        let diff_text = browser
            .eval(&page, "document.getElementById('text-diff').textContent")
            .await;
        assert_eq!(
            diff_text.as_str().unwrap(),
            edit::unified_diff("roles.toml", &original, &expected_text),
            "{name}"
        );

        if prove {
            browser
                .eval(&page, "document.getElementById('prove').click()")
                .await;
            // Proofs take seconds (one solver per core), more with the whole suite running.
            browser
                .wait_within(
                    &page,
                    "document.getElementById('preview-properties').dataset.done",
                    &format!("{name}: the proofs"),
                    Duration::from_secs(150),
                )
                .await;
            let done = browser.eval(&page, "[document.getElementById('preview-properties').dataset.done, document.getElementById('preview-properties').textContent]").await;
            assert_eq!(done[0], json!("true"), "{name}: {done}");
            let verdicts = browser
                .eval(
                    &page,
                    "[...document.querySelectorAll('#preview-properties li[data-outcome]')].length",
                )
                .await;
            assert!(
                verdicts.as_u64().unwrap() >= 1,
                "{name}: at least the built-in property"
            );
            browser
                .eval(
                    &page,
                    "document.getElementById('preview-properties').scrollIntoView()",
                )
                .await;
            browser
                .screenshot(&page, &shots.join(format!("{name}-2-proved.png")))
                .await;
        }

        // Save: the new version is awaited, the file is the edit and kept its comments.
        let before = server.state.subscribe().borrow().generation;
        browser
            .eval(&page, "document.getElementById('save').click()")
            .await;
        let installed = await_install(&server, before).await;
        let saved = std::fs::read_to_string(&roles_path).unwrap();
        assert_eq!(saved, expected_text, "{name}");
        assert_eq!(
            comments(&saved),
            comments(&original),
            "{name}: every comment kept, in order"
        );
        browser
            .wait_for(
                &page,
                &format!(
                    "document.body.dataset.console === 'ready' && document.getElementById('version').textContent === '{}' && document.getElementById('history').children.length === 1 && !document.getElementById('undo').disabled",
                    installed.version
                ),
                "the saved version on the page",
            )
            .await;
        let now = browser
            .eval(&page, &format!("document.querySelector('section.matrix[data-account-type=\"{table}\"] tr[data-feature=\"{feature}\"] td[data-role=\"{role}\"]').dataset.access"))
            .await;
        assert_eq!(now, json!("-"), "{name}: the page shows the saved matrix");
        browser
            .eval(&page, "document.getElementById('console').scrollIntoView()")
            .await;
        browser
            .screenshot(&page, &shots.join(format!("{name}-3-saved.png")))
            .await;
        let (code, out) = portcullis(&["test", folder.to_str().unwrap()]);
        assert!(
            code == 0 || code == 1,
            "{name}: portcullis test still runs on the saved folder: {out}"
        );

        // Undo: the file is back byte for byte, and so is the version.
        let before = server.state.subscribe().borrow().generation;
        browser
            .eval(&page, "document.getElementById('undo').click()")
            .await;
        let installed = await_install(&server, before).await;
        assert_eq!(&*installed.version, first_version, "{name}");
        assert_eq!(std::fs::read_to_string(&roles_path).unwrap(), original, "{name}");
        browser
            .wait_for(
                &page,
                &format!("document.body.dataset.console === 'ready' && document.getElementById('version').textContent === '{first_version}'"),
                "the undone version on the page",
            )
            .await;
        browser
            .screenshot(&page, &shots.join(format!("{name}-4-undone.png")))
            .await;

        // Try it as a fixture user: what the user may do, in the matrix's words, and one
        // decision, as `portcullis authorize` decides it.
        let has_worlds = browser
            .eval(&page, "document.getElementById('try-world').options.length > 0")
            .await;
        if has_worlds == json!(true) {
            browser
                .eval(&page, "document.getElementById('try-what').click()")
                .await;
            browser
                .wait_for(
                    &page,
                    "document.getElementById('try-table')",
                    "what the user may do",
                )
                .await;
            browser
                .eval(&page, "document.getElementById('try-decide').click()")
                .await;
            let asked = browser
                .wait_for(
                    &page,
                    "(() => { const o = document.getElementById('try-answer'); return o.dataset.decision ? {decision: o.dataset.decision, world: document.getElementById('try-world').value, user: document.getElementById('try-user').value, action: document.getElementById('try-action').value, resource: document.getElementById('try-resource').value, context: contextOf(), text: o.textContent} : null; })()",
                    "the decision",
                )
                .await;
            let (code, out) = portcullis(&[
                "authorize",
                folder.to_str().unwrap(),
                "--fixture",
                asked["world"].as_str().unwrap(),
                "--principal",
                asked["user"].as_str().unwrap(),
                "--action",
                asked["action"].as_str().unwrap(),
                "--resource",
                asked["resource"].as_str().unwrap(),
                "--context",
                &asked["context"].to_string(),
            ]);
            assert!(code == 0 || code == 1, "{name}: {out}");
            let cli: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(asked["decision"], cli["decision"], "{name}: {asked} vs {cli}");
            browser
                .eval(&page, "document.getElementById('try').scrollIntoView()")
                .await;
            browser
                .screenshot(&page, &shots.join(format!("{name}-5-tried.png")))
                .await;
        }

        // A phone-sized window: nothing wider than the screen.
        browser.viewport(&page, 390, 844, true).await;
        browser.navigate(&page, &base).await;
        browser
            .wait_for(
                &page,
                "document.body.dataset.console === 'ready'",
                "the console on a phone",
            )
            .await;
        let overflow = browser
            .eval(&page, "document.documentElement.scrollWidth - window.innerWidth")
            .await;
        assert!(
            overflow.as_i64().unwrap() <= 1,
            "{name}: the page is {overflow} px wider than a phone"
        );
        browser
            .screenshot(&page, &shots.join(format!("{name}-6-phone.png")))
            .await;
        server.shutdown().await;
    }
    eprintln!("console screenshots: {}", shots.display());
}

/// The console's HTTP rules, without a browser: off by default (403), edits made on an older
/// version (409), edits that do not build (422 with the diagnostics, nothing written), unknown
/// names (400), nothing to undo (409), and undo refusing to overwrite a later edit (409).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("policies");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        &folder,
    );
    let roles_path = folder.join("roles.toml");
    let original = std::fs::read_to_string(&roles_path).unwrap();

    let mut off = config(&folder);
    off.console = false;
    let server = start(off).await;
    let http = Http::new(&server);
    for (method, path) in [
        ("GET", "/v1/console"),
        ("POST", "/v1/console/save"),
        ("POST", "/v1/console/undo"),
    ] {
        let (s, v) = http
            .send(method, path, b"{\"base\":\"x\",\"edits\":[]}".to_vec())
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("console_disabled")),
            "{path}"
        );
    }
    let (s, page) = http.send_text("GET", "/", Vec::new()).await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"console-off\""));
    server.shutdown().await;

    // Without the watcher, what is on disk and what is served part ways until a reload.
    let mut on = config(&folder);
    on.watch = false;
    let server = start(on).await;
    let http = Http::new(&server);
    let version = server.state.served().snapshot.version().to_owned();
    let cell = |access: &str| json!({ "op": "cell", "feature": "shipping_rules", "role": "admin", "access": access, "account_type": "customer" });

    let (s, v) = http.post("/v1/console/undo", &json!({})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("nothing_to_undo")));
    let (s, v) = http
        .post(
            "/v1/console/preview",
            &json!({ "base": "0000", "edits": [cell("none")] }),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("stale_version")),
        "{v}"
    );
    let (s, v) = http
        .post(
            "/v1/console/preview",
            &json!({ "base": version, "edits": [{ "op": "cell", "feature": "shiping_rules", "role": "admin", "access": "none" }] }),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `shipping_rules`"),
        "{v}"
    );
    let (s, _) = http
        .post(
            "/v1/console/preview",
            &json!({ "base": version, "edits": [{ "op": "drop_everything" }] }),
        )
        .await;
    assert_eq!(s, 400);

    // A rename builds, but the fixtures no longer load: the preview says so.
    let rename = json!({ "op": "rename", "kind": "role", "from": "owner", "to": "boss" });
    let (s, v) = http
        .post(
            "/v1/console/preview",
            &json!({ "base": version, "edits": [rename] }),
        )
        .await;
    assert_eq!((s, &v["builds"]), (200, &json!(true)), "{v}");
    assert!(
        v["notes"][0].as_str().unwrap().contains("unknown role `owner`"),
        "{v}"
    );

    // A feature over an action the schema lacks: previewed as not building, refused on save.
    let broken = json!({ "op": "add_feature", "feature": "exports", "title": "Exports", "actions": ["data.export_all"] });
    let (s, v) = http
        .post(
            "/v1/console/preview",
            &json!({ "base": version, "edits": [broken] }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["builds"], false, "{v}");
    assert!(
        v["diagnostics_text"]
            .as_str()
            .unwrap()
            .contains("data.export_all"),
        "{v}"
    );
    let (s, v) = http
        .post("/v1/console/save", &json!({ "base": version, "edits": [broken] }))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("build_failed")),
        "{v}"
    );
    assert!(
        v["error"]["diagnostics"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "{v}"
    );
    assert_eq!(
        std::fs::read_to_string(&roles_path).unwrap(),
        original,
        "nothing written"
    );

    // A save over a file edited on disk and not yet served is refused.
    std::fs::write(&roles_path, format!("{original}\n# an edit in an editor\n")).unwrap();
    let (s, v) = http
        .post(
            "/v1/console/save",
            &json!({ "base": version, "edits": [cell("none")] }),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("stale_version")),
        "{v}"
    );
    assert!(std::fs::read_to_string(&roles_path)
        .unwrap()
        .ends_with("# an edit in an editor\n"));
    std::fs::write(&roles_path, &original).unwrap();

    // A good save, then an editor's change after it: undo refuses to overwrite it.
    let (s, v) = http
        .post(
            "/v1/console/save",
            &json!({ "base": version, "edits": [cell("own")] }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(std::fs::read_to_string(&roles_path)
        .unwrap()
        .contains("own = [\"admin\"]"));
    assert_ne!(v["version"], json!(version));
    let saved = std::fs::read_to_string(&roles_path).unwrap();
    std::fs::write(&roles_path, format!("{saved}\n# later\n")).unwrap();
    let (s, v) = http.post("/v1/console/undo", &json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("changed_since")),
        "{v}"
    );
    assert!(std::fs::read_to_string(&roles_path)
        .unwrap()
        .ends_with("# later\n"));
    std::fs::write(&roles_path, &saved).unwrap();
    let (s, v) = http.post("/v1/console/undo", &json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(std::fs::read_to_string(&roles_path).unwrap(), original);
    assert_eq!(v["version"], json!(version));

    // Trying a user needs the user to be in the fixture file.
    let (s, v) = http
        .post(
            "/v1/console/try",
            &json!({ "world": "fixtures/common.toml", "user": "nobody" }),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("unknown_user")),
        "{v}"
    );
    server.shutdown().await;
}

/// With a user store: the overview lists the stored users (for "try it as a user"), and a save
/// and its undo are audit rows of the installation (no company's audit log shows them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_saves_are_audited_and_stored_users_are_offered() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("policies");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        &folder,
    );
    let db = dir.path().join("store.db").display().to_string();
    let key = crate::procs::bootstrap_owner(&db, "acme", "olga");
    let mut c = config(&folder);
    c.database_url = Some(db.clone());
    let server = start(c).await;
    let http = Http::new(&server);
    let (s, v) = http.get("/v1/console").await;
    assert_eq!(s, 200, "{v}");
    let stored = v["stored_users"].as_array().unwrap();
    assert_eq!(stored.len(), 1, "{v}");
    assert_eq!(stored[0]["uid"], json!("Portal::User::\"olga\""));
    assert_eq!(stored[0]["role"], json!("owner"));

    let version = server.state.served().snapshot.version().to_owned();
    let edit = json!({ "op": "title", "kind": "feature", "name": "portal_theme", "title": "Change the portal's theme" });
    let (s, v) = http
        .post("/v1/console/save", &json!({ "base": version, "edits": [edit] }))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = http.post("/v1/console/undo", &json!({})).await;
    assert_eq!(s, 200, "{v}");
    // Installation rows (no company): no company's audit log shows them.
    let owner = Http::new(&server).with_key(&key);
    let (s, v) = owner.get("/v1/audit?action=policy.console_save").await;
    assert_eq!((s, v["entries"].as_array().map(Vec::len)), (200, Some(0)), "{v}");
    let (store, _) = portcullis_server::manage::open_store(&db).await.unwrap();
    let rows = |action: &str| portcullis_store::AuditQuery {
        action: Some(action.to_owned()),
        ..Default::default()
    };
    let saves = store
        .query_audit(&rows("policy.console_save"))
        .await
        .unwrap()
        .items;
    assert_eq!(saves.len(), 1, "{saves:?}");
    assert_eq!(saves[0].actor.as_deref(), Some("console"));
    assert_eq!(saves[0].details["before_version"], json!(version));
    assert_eq!(saves[0].details["edits"][0]["op"], json!("title"));
    let undos = store
        .query_audit(&rows("policy.console_undo"))
        .await
        .unwrap()
        .items;
    assert_eq!(undos.len(), 1, "{undos:?}");
    server.shutdown().await;
}
