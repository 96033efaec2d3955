//! Prometheus metrics, kept in atomics and rendered as text at `GET /metrics`.
//!
//! Input: the decision handlers count outcomes and record request latency; the reloader counts
//! reloads and failures; installs set the policy version. Output: the Prometheus text format.
//! Hand-written because the handful of series does not justify a metrics registry.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    allow: AtomicU64,
    deny: AtomicU64,
    rejected: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    last_reload_ok: AtomicU64,
    entities: AtomicU64,
    version: Mutex<String>,
    decision_errors: AtomicU64,
    sign_in_failures: AtomicU64,
    lockouts: AtomicU64,
    /// HTTP responses by status class: 1xx … 5xx.
    responses: [AtomicU64; 5],
}

impl Metrics {
    /// Counts one decision, and whether a policy failed to evaluate in it.
    pub fn decision(&self, d: &portcullis_engine::Decision) {
        if d.allowed() {
            self.allow.fetch_add(1, Relaxed);
        } else {
            self.deny.fetch_add(1, Relaxed);
        }
        if !d.errors.is_empty() {
            self.decision_errors.fetch_add(1, Relaxed);
        }
    }

    /// Counts a sign-in refused as `invalid_credentials` (wrong password or code, unknown
    /// login, locked or deactivated account).
    pub fn sign_in_failed(&self) {
        self.sign_in_failures.fetch_add(1, Relaxed);
    }

    /// Counts an account locked by too many failed attempts.
    pub fn locked_out(&self) {
        self.lockouts.fetch_add(1, Relaxed);
    }

    /// Counts an HTTP response by its status class.
    pub fn response(&self, status: axum::http::StatusCode) {
        let class = usize::from(status.as_u16() / 100);
        if let Some(c) = class.checked_sub(1).and_then(|i| self.responses.get(i)) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts a check refused as bad input.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    /// Records the latency of one decision request.
    pub fn latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Counts a reload attempt.
    pub fn reload(&self, ok: bool) {
        self.reloads.fetch_add(1, Relaxed);
        if !ok {
            self.reload_failures.fetch_add(1, Relaxed);
        }
        self.last_reload_ok.store(u64::from(ok), Relaxed);
    }

    /// Sets the policy version and entity count served.
    pub fn set_policy(&self, version: &str, entities: usize) {
        self.last_reload_ok.store(1, Relaxed);
        self.entities
            .store(u64::try_from(entities).unwrap_or(u64::MAX), Relaxed);
        if let Ok(mut v) = self.version.lock() {
            version.clone_into(&mut v);
        }
    }

    /// Renders the Prometheus text format; `tls` is (certificate changes loaded, changes
    /// refused) when the server serves TLS.
    pub fn render(&self, tls: Option<(u64, u64)>) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# HELP portcullis_decisions_total Decisions made, by result.");
        let _ = writeln!(o, "# TYPE portcullis_decisions_total counter");
        let _ = writeln!(
            o,
            "portcullis_decisions_total{{result=\"allow\"}} {}",
            self.allow.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "portcullis_decisions_total{{result=\"deny\"}} {}",
            self.deny.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP portcullis_rejected_checks_total Checks refused as bad input."
        );
        let _ = writeln!(o, "# TYPE portcullis_rejected_checks_total counter");
        let _ = writeln!(
            o,
            "portcullis_rejected_checks_total {}",
            self.rejected.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP portcullis_decision_request_duration_seconds Time to answer a decision request."
        );
        let _ = writeln!(o, "# TYPE portcullis_decision_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(
                o,
                "portcullis_decision_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(
            o,
            "portcullis_decision_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        #[expect(clippy::cast_precision_loss, reason = "a sum of nanoseconds shown as seconds")]
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(o, "portcullis_decision_request_duration_seconds_sum {sum}");
        let _ = writeln!(o, "portcullis_decision_request_duration_seconds_count {count}");
        let _ = writeln!(o, "# HELP portcullis_reloads_total Policy reload attempts.");
        let _ = writeln!(o, "# TYPE portcullis_reloads_total counter");
        let _ = writeln!(o, "portcullis_reloads_total {}", self.reloads.load(Relaxed));
        let _ = writeln!(
            o,
            "# HELP portcullis_reload_failures_total Reloads that failed and kept the last good policy."
        );
        let _ = writeln!(o, "# TYPE portcullis_reload_failures_total counter");
        let _ = writeln!(
            o,
            "portcullis_reload_failures_total {}",
            self.reload_failures.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP portcullis_last_reload_success 1 when the last reload succeeded."
        );
        let _ = writeln!(o, "# TYPE portcullis_last_reload_success gauge");
        let _ = writeln!(
            o,
            "portcullis_last_reload_success {}",
            self.last_reload_ok.load(Relaxed)
        );
        let _ = writeln!(o, "# HELP portcullis_entities Static entities held.");
        let _ = writeln!(o, "# TYPE portcullis_entities gauge");
        let _ = writeln!(o, "portcullis_entities {}", self.entities.load(Relaxed));
        counter(
            &mut o,
            "portcullis_decision_errors_total",
            "Decisions in which a policy failed to evaluate (it was skipped; see the decision's errors).",
            self.decision_errors.load(Relaxed),
        );
        counter(
            &mut o,
            "portcullis_sign_in_failures_total",
            "Sign-ins and re-verifications refused as invalid credentials.",
            self.sign_in_failures.load(Relaxed),
        );
        counter(
            &mut o,
            "portcullis_lockouts_total",
            "Accounts locked after too many failed attempts.",
            self.lockouts.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP portcullis_http_responses_total HTTP responses, by status class."
        );
        let _ = writeln!(o, "# TYPE portcullis_http_responses_total counter");
        for (i, c) in self.responses.iter().enumerate() {
            let _ = writeln!(
                o,
                "portcullis_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Relaxed)
            );
        }
        if let Some((loaded, refused)) = tls {
            counter(
                &mut o,
                "portcullis_tls_reloads_total",
                "Changes of the certificate files that were loaded and served.",
                loaded,
            );
            counter(
                &mut o,
                "portcullis_tls_reload_failures_total",
                "Changes of the certificate files that did not load (the previous certificate is kept).",
                refused,
            );
        }
        let version = self.version.lock().map(|v| v.clone()).unwrap_or_default();
        let _ = writeln!(o, "# HELP portcullis_policy_info The policy version served.");
        let _ = writeln!(o, "# TYPE portcullis_policy_info gauge");
        let _ = writeln!(o, "portcullis_policy_info{{version=\"{version}\"}} 1");
        let _ = writeln!(
            o,
            "# HELP portcullis_cache_hits_total Lookups a cache answered, by cache."
        );
        let _ = writeln!(o, "# TYPE portcullis_cache_hits_total counter");
        for (name, c) in crate::cache::COUNTS.each() {
            let _ = writeln!(o, "portcullis_cache_hits_total{{cache=\"{name}\"}} {}", c.get().0);
        }
        let _ = writeln!(
            o,
            "# HELP portcullis_cache_misses_total Lookups a cache did not answer, by cache."
        );
        let _ = writeln!(o, "# TYPE portcullis_cache_misses_total counter");
        for (name, c) in crate::cache::COUNTS.each() {
            let _ = writeln!(
                o,
                "portcullis_cache_misses_total{{cache=\"{name}\"}} {}",
                c.get().1
            );
        }
        o
    }
}

/// Writes one counter with its help and type lines.
fn counter(o: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} counter");
    let _ = writeln!(o, "{name} {value}");
}
