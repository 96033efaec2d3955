//! A small Chrome DevTools Protocol client for the browser tests: Debian's headless Chromium
//! on a loopback debugging port, one WebSocket, the few commands the tests need (open a page,
//! evaluate, press keys, resize, take screenshots). Waiting is always for a condition in the
//! page, polled within [`DEADLINE`], never a fixed sleep.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::DEADLINE;

/// Debian's Chromium (`.ci/run` installs it), or `PORTCULLIS_CHROMIUM`.
pub fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("PORTCULLIS_CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".to_owned(),
    ];
    candidates
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The flags every headless Chromium of the tests runs with: no sandbox (CI runs as root), no
/// GPU, nothing fetched from the network on its own, a fresh profile each time.
pub const HEADLESS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// One headless Chromium and its DevTools connection.
pub struct Browser {
    child: Child,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
    _profile: tempfile::TempDir,
}

/// A page (tab) of the browser.
pub struct Page {
    session: String,
}

impl Browser {
    /// Starts Chromium on an ephemeral debugging port and connects.
    pub async fn launch(bin: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin)
            .args(HEADLESS)
            .args([
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Chromium prints the browser's WebSocket URL on stderr; the rest is drained so the
        // pipe never fills.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.trim().to_owned());
                    }
                }
            }
        });
        let url = tokio::task::spawn_blocking(move || rx.recv_timeout(DEADLINE))
            .await
            .unwrap()
            .expect("Chromium printed no DevTools URL");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
        Browser {
            child,
            ws,
            next: 0,
            _profile: profile,
        }
    }

    /// Sends one command and awaits its answer; events in between are dropped.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        let answer = tokio::time::timeout(DEADLINE, async {
            while let Some(m) = self.ws.next().await {
                let Ok(Message::Text(t)) = m else { continue };
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == json!(id) {
                    return Some(v);
                }
            }
            None
        })
        .await
        .map_err(|_| format!("no answer to {method} within the deadline"))
        .unwrap()
        .expect("the DevTools connection closed");
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Opens `url` in a new tab of `width` × `height`.
    pub async fn open(&mut self, url: &str, width: u32, height: u32) -> Page {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        let page = Page {
            session: attached["sessionId"].as_str().unwrap().to_owned(),
        };
        self.viewport(&page, width, height, false).await;
        self.navigate(&page, url).await;
        page
    }

    /// Loads `url` in the page and waits until its document is complete.
    pub async fn navigate(&mut self, page: &Page, url: &str) {
        self.call(Some(&page.session), "Page.navigate", json!({ "url": url }))
            .await;
        self.wait_for(
            page,
            "document.readyState === 'complete' && location.href !== 'about:blank'",
            "the page to load",
        )
        .await;
    }

    /// Evaluates `expression` (awaiting a promise) and answers its value.
    pub async fn eval(&mut self, page: &Page, expression: &str) -> Value {
        let r = self
            .call(
                Some(&page.session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy (within the deadline); answers its value.
    pub async fn wait_for(&mut self, page: &Page, expression: &str, what: &str) -> Value {
        self.wait_within(page, expression, what, DEADLINE).await
    }

    /// [`Self::wait_for`] with its own bound.
    pub async fn wait_within(&mut self, page: &Page, expression: &str, what: &str, bound: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let r = self
                .call(
                    Some(&page.session),
                    "Runtime.evaluate",
                    json!({ "expression": expression, "returnByValue": true }),
                )
                .await;
            let v = r["result"]["value"].clone();
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy && r.get("exceptionDetails").is_none() {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited in vain for {what} ({expression}): {r}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Presses and releases one key (`Enter`, `Tab`, ` `…) as the keyboard would.
    pub async fn key(&mut self, page: &Page, key: &str) {
        let (code, vk) = match key {
            "Enter" => ("Enter", 13),
            "Tab" => ("Tab", 9),
            " " => ("Space", 32),
            "Escape" => ("Escape", 27),
            other => unreachable!("no key code for {other}"),
        };
        for kind in ["keyDown", "keyUp"] {
            let mut p = json!({ "type": kind, "key": key, "code": code, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk });
            if kind == "keyDown" && key == "Enter" {
                p["text"] = json!("\r");
            }
            self.call(Some(&page.session), "Input.dispatchKeyEvent", p).await;
        }
    }

    /// Sets the window size (a phone-sized window with `mobile`).
    pub async fn viewport(&mut self, page: &Page, width: u32, height: u32, mobile: bool) {
        self.call(
            Some(&page.session),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
    }

    /// Saves a PNG of what the window shows.
    pub async fn screenshot(&mut self, page: &Page, path: &Path) {
        let r = self
            .call(
                Some(&page.session),
                "Page.captureScreenshot",
                json!({ "format": "png" }),
            )
            .await;
        let png = data_encoding::BASE64
            .decode(r["data"].as_str().unwrap().as_bytes())
            .unwrap();
        assert!(png.len() > 5_000, "an empty screenshot");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
