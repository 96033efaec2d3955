//! Real `portcullis` processes: `serve` on an ephemeral port (its address read from the line it
//! prints), killed with SIGKILL or stopped; `migrate` and `users create` to bootstrap a store;
//! resident memory from `/proc`; a small seeded random source and percentiles for the figures.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::DEADLINE;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A `portcullis serve` process.
pub struct Proc {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its process id.
    pub pid: u32,
    /// The last lines it wrote to stderr, for failure messages.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Proc {
    /// Starts `portcullis serve FOLDER --database-url DB` on `127.0.0.1:0` with `extra` flags,
    /// and returns once it prints its address, with the time that took.
    pub fn serve(folder: &Path, db: Option<&str>, extra: &[&str]) -> (Proc, Duration) {
        Self::serve_with_env(folder, db, extra, &[])
    }

    /// Like `serve`, with `PORTCULLIS_*` variables of the test's choosing (e.g. the cache
    /// sizes `PORTCULLIS_SLICE_CACHE` and `PORTCULLIS_DECISION_CACHE`).
    pub fn serve_with_env(
        folder: &Path,
        db: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Proc, Duration) {
        let started = Instant::now();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg(folder)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(folder.parent().unwrap_or(folder))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The server refuses unknown `PORTCULLIS_*` variables (the tests' own, such as
        // `PORTCULLIS_TEST_POSTGRES_URL`), and its settings come from the flags here only.
        for (k, _) in std::env::vars() {
            if k.starts_with("PORTCULLIS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("PORTCULLIS_LOG", "warn");
        cmd.envs(env.iter().copied());
        if let Some(db) = db {
            cmd.args(["--database-url", db]);
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        // Drains stderr for the whole life of the process, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("portcullis: serving on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                let mut l = lines.lock().unwrap();
                if l.len() == 50 {
                    l.pop_front();
                }
                l.push_back(line);
            }
        });
        let url = rx.recv_timeout(DEADLINE);
        if url.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let url = url.unwrap_or_default();
        assert!(
            !url.is_empty(),
            "portcullis serve never printed its address:\n{}",
            log.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n")
        );
        let took = started.elapsed();
        (Proc { child, url, pid, log }, took)
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (through `kill`: the tests use no unsafe code).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {}", self.pid);
    }

    /// Waits (bounded by `DEADLINE`) for the process to exit; its status, or `None` if it is
    /// still running at the deadline.
    pub fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + DEADLINE;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of its stderr.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Resident memory in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion; panics with its stderr unless it succeeds; returns stdout.
pub fn run(args: &[&str]) -> String {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTCULLIS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.args(args).stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "portcullis {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `portcullis migrate` then `portcullis users create` of an owner with every scope in a new
/// customer company; returns the owner's API key.
pub fn bootstrap_owner(db: &str, company: &str, id: &str) -> String {
    bootstrap(db, company, "customer", id, "owner", &["scope_all=true"])
}

/// `portcullis migrate` then `portcullis users create` of user `id` (its login too) with `role`
/// and the stored attributes `attrs` (`name=JSON`) in `company`, created with `account_type`
/// when new; returns the user's API key.
pub fn bootstrap(
    db: &str,
    company: &str,
    account_type: &str,
    id: &str,
    role: &str,
    attrs: &[&str],
) -> String {
    let flags: Vec<&str> = attrs.iter().flat_map(|a| ["--attr", a]).collect();
    bootstrap_with(db, (company, account_type), id, role, &flags)
}

/// The same, with any further flags of `portcullis users create` (`--attr`, `--company-attr`).
pub fn bootstrap_with(
    db: &str,
    (company, account_type): (&str, &str),
    id: &str,
    role: &str,
    flags: &[&str],
) -> String {
    run(&["migrate", "--database-url", db]);
    let mut args = vec![
        "users",
        "--database-url",
        db,
        "create",
        "--company",
        company,
        "--account-type",
        account_type,
        "--id",
        id,
        "--login",
        id,
        "--role",
        role,
    ];
    args.extend(flags);
    let out = run(&args);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["api_key"].as_str().unwrap().to_owned()
}

/// splitmix64: reproducible from a printed seed, no dependency.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `var` when set, else from the clock; prints the seed.
    pub fn from_env(var: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{var}={seed}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// The `p`-th percentile (0..=100) of durations, by nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A number from the environment, or a default.
pub fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Milliseconds with one decimal, for the printed figures.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
