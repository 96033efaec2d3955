//! The rights-matrix page end to end in headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`): the page loads, its matrix matches `portcullis matrix --format csv`, a policy
//! edit shows up after the reload, and the form answers. A screenshot is left in the target
//! folder for review. Without Chromium the test says loudly that it was skipped, except under
//! CI, where a missing browser is a failure.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::cdp::{chromium, HEADLESS};
use crate::common::{await_install, olivia_creates, start, Fixture};

/// Runs headless Chromium on `url` with extra flags; returns stdout.
async fn chrome(bin: &std::path::Path, url: String, extra: Vec<String>) -> String {
    let bin = bin.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().unwrap();
        let out = Command::new(bin)
            .args(HEADLESS)
            .arg("--virtual-time-budget=5000")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

async fn dom(bin: &std::path::Path, url: String) -> String {
    chrome(bin, url, vec!["--dump-dom".to_owned()]).await
}

/// The value of attribute `name` in the tag text `tag`.
fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].replace("&quot;", "\"").replace("&amp;", "&"))
}

/// `account_type,role,feature,access` lines from the page's matrix tables.
fn matrix_of_page(html: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for section in html.split("<section class=\"matrix\"").skip(1) {
        let at = attr(section, "data-account-type").unwrap();
        let section = section.split("</section>").next().unwrap();
        for row in section.split("<tr data-feature=").skip(1) {
            let feature = row[1..].split('"').next().unwrap().to_owned();
            for cell in row.split("<td ").skip(1) {
                let tag = cell.split('>').next().unwrap();
                let role = attr(tag, "data-role").unwrap();
                let access = attr(tag, "data-access").unwrap();
                out.insert(format!("{at},{role},{feature},{access}"));
            }
        }
    }
    out
}

fn matrix_of_cli(folder: &std::path::Path) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["matrix", folder.to_str().unwrap(), "--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_page_matches_the_cli_follows_edits_and_answers() {
    let Some(bin) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium: .ci/run installs it"
        );
        eprintln!("SKIPPED: the browser test needs Chromium (apt-get install chromium)");
        return;
    };
    let f = Fixture::new();
    let server = start(f.config()).await;
    let base = format!("http://{}/", server.addr);

    // The page loads and its matrix is the CLI's.
    let html = dom(&bin, base.clone()).await;
    assert!(html.contains("<h1>Portcullis</h1>"), "{html}");
    assert!(html.contains("id=\"reload-ok\""), "{html}");
    let page = matrix_of_page(&html);
    assert!(page.len() > 100, "{} cells", page.len());
    assert_eq!(page, matrix_of_cli(&f.policies()));
    assert!(page.contains("customer,admin,shipping_rules,yes"));

    // A screenshot for review.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portcullis-matrix-page.png");
    let _ = std::fs::remove_file(&shot);
    chrome(
        &bin,
        base.clone(),
        vec![
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,2400".to_owned(),
        ],
    )
    .await;
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "no screenshot at {}",
        shot.display()
    );
    eprintln!("screenshot of the page: {}", shot.display());

    // An edit shows up after the reload: Admins lose Shipping Rules.
    let roles_path = f.policies().join("roles.toml");
    let roles = std::fs::read_to_string(&roles_path).unwrap();
    let start_at = roles.find("[features.shipping_rules]").unwrap();
    let line = roles[start_at..].find("\nroles = ").unwrap() + start_at + 1;
    let end = roles[line..].find('\n').unwrap() + line;
    let g = server.state.subscribe().borrow().generation;
    std::fs::write(
        &roles_path,
        format!("{}roles = [\"owner\"]{}", &roles[..line], &roles[end..]),
    )
    .unwrap();
    let installed = await_install(&server, g).await;
    let html = dom(&bin, base.clone()).await;
    assert!(
        html.contains(&*installed.version),
        "the page shows the new version"
    );
    let page = matrix_of_page(&html);
    assert!(page.contains("customer,admin,shipping_rules,-"));
    assert_eq!(page, matrix_of_cli(&f.policies()));

    // The form answers, with the reasons.
    let url = format!("{base}?request={}", percent_encode(&olivia_creates().to_string()));
    let html = dom(&bin, url).await;
    let answer = html
        .split("<output id=\"answer\"")
        .nth(1)
        .unwrap()
        .split("</output>")
        .next()
        .unwrap();
    assert!(answer.contains("data-decision=\"allow\""), "{answer}");
    assert!(answer.contains("allow by feature.create_shipments"), "{answer}");
    assert!(answer.contains(&*installed.version), "{answer}");
}
