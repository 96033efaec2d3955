//! Several instances: three `portcullis serve` processes on one fresh PostgreSQL database, each
//! with its own copy of the policy folder. A management write through one is reflected in the
//! decisions of the other two within a second (measured: median and max); the three report the
//! same policy version in `GET /v1/policy` and in every decision, and a fourth on a different
//! folder visibly reports another.

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{Fixture, Http};
use crate::manage::{drop_postgres, fresh_postgres};
use crate::procs::{bootstrap_owner, ms, percentile, Proc};

const COMPANY: &str = "Portal::Company::\"acme\"";
const ACTION: &str = "shipping_rule.edit";
/// A write must reach every other instance within this.
const PROPAGATION_BOUND: Duration = Duration::from_secs(1);

/// A decision for a stored principal: (decision, version).
async fn decide(http: &Http, principal: &str) -> (String, String) {
    let (s, b) = http
        .post(
            "/v1/authorize",
            &json!({ "principal": principal, "action": ACTION, "resource": COMPANY }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    (
        b["decision"].as_str().unwrap().to_owned(),
        b["version"].as_str().unwrap().to_owned(),
    )
}

async fn policy_version(http: &Http) -> String {
    let (s, b) = http.get("/v1/policy").await;
    assert_eq!(s, 200, "{b}");
    b["version"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_agree_within_a_second_on_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    let key = bootstrap_owner(&url, "acme", "own1");
    let folders: Vec<Fixture> = (0..3).map(|_| Fixture::new()).collect();
    let procs: Vec<Proc> = folders
        .iter()
        .map(|f| Proc::serve(&f.policies(), Some(&url), &[]).0)
        .collect();
    let anon: Vec<Http> = procs.iter().map(|p| Http::at(p.url.clone())).collect();
    let owner: Vec<Http> = anon.iter().map(|h| h.clone().with_key(&key)).collect();

    // One version everywhere, in /v1/policy and in decisions.
    let version = policy_version(&anon[0]).await;
    for h in &anon {
        assert_eq!(policy_version(h).await, version);
        assert_eq!(decide(h, "own1").await, ("allow".to_owned(), version.clone()));
    }
    // A drift is visible: an instance on another folder reports another version.
    let drifted = Fixture::new();
    std::fs::write(
        drifted.policies().join("drift.cedar"),
        "forbid (principal, action == Portal::Action::\"shipping_rule.edit\", resource);\n",
    )
    .unwrap();
    let (odd_proc, _) = Proc::serve(&drifted.policies(), Some(&url), &[]);
    let odd = Http::at(odd_proc.url.clone());
    let other = policy_version(&odd).await;
    assert_ne!(other, version, "a different folder reports the same version");
    assert_eq!(decide(&odd, "own1").await, ("deny".to_owned(), other));

    for id in ["m1", "m2"] {
        let (s, b) = owner[0]
            .post(
                "/v1/users",
                &json!({ "id": id, "login": id, "role": "admin", "attrs": { "scope_all": true } }),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }

    // Each write goes through instance k % 3; the decision it must flip, and to what.
    let writes: [(&str, &str, Value, &str, &str); 4] = [
        (
            "PUT",
            "/v1/users/m1/role",
            json!({ "role": "regular" }),
            "m1",
            "deny",
        ),
        ("POST", "/v1/users/m2/deactivate", json!({}), "m2", "deny"),
        (
            "PUT",
            "/v1/users/m1/role",
            json!({ "role": "admin" }),
            "m1",
            "allow",
        ),
        ("POST", "/v1/users/m2/reactivate", json!({}), "m2", "allow"),
    ];
    let rounds = 3;
    let mut times = Vec::new();
    for k in 0..writes.len() * rounds {
        let (method, path, body, user, want) = &writes[k % writes.len()];
        let via = k % 3;
        let before = if *want == "allow" { "deny" } else { "allow" };
        // Every instance has the user cached, with the old answer.
        for h in &anon {
            assert_eq!(decide(h, user).await.0, before);
        }
        let (s, b) = owner[via]
            .send(method, path, serde_json::to_vec(body).unwrap())
            .await;
        assert_eq!(s, 200, "{method} {path}: {b}");
        let acked = Instant::now();
        assert_eq!(
            decide(&anon[via], user).await.0,
            *want,
            "the writing instance answers at once"
        );
        let others: Vec<_> = (0..3)
            .filter(|i| *i != via)
            .map(|i| {
                let (h, user, want) = (anon[i].clone(), user.to_string(), want.to_string());
                tokio::spawn(async move {
                    loop {
                        let (d, v) = decide(&h, &user).await;
                        if d == want {
                            return (acked.elapsed(), v);
                        }
                        assert!(
                            acked.elapsed() < PROPAGATION_BOUND,
                            "instance {i} still answers {d} for `{user}` after {:?}",
                            acked.elapsed()
                        );
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        for o in others {
            let (took, v) = o.await.unwrap();
            assert!(took < PROPAGATION_BOUND, "{took:?}");
            assert_eq!(v, version, "a decision reports another version");
            times.push(took);
        }
    }
    for h in &anon {
        assert_eq!(policy_version(h).await, version);
    }
    times.sort();
    let line = format!(
        "multi-instance[postgres]: {} writes seen by the 2 other instances: propagation median {} max {} (bound {})\n",
        writes.len() * rounds,
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 100.0)),
        ms(PROPAGATION_BOUND),
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    drop(procs);
    drop(odd_proc);
    drop_postgres(&url).await;
}
