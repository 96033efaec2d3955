//! Fuzzes the decision request: the input's first byte picks a policy folder of the
//! repository, the rest is the JSON body of `POST /v1/authorize` (`AuthzQuery`: entity
//! references as Cedar strings or `{type, id}` objects, a context, inline entities in Cedar's
//! JSON format). A query that parses is prepared against the folder's snapshot, decided,
//! explained, and its permissions listed, as the server does. Nothing may panic; an error is
//! the expected outcome of most inputs.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_engine::{AuthzQuery, Slot};

fuzz_target!(|data: &[u8]| {
    let Some((folder, _, rest)) = portcullis_fuzz::split(data) else {
        return;
    };
    let Ok(query) = serde_json::from_slice::<AuthzQuery>(rest) else {
        return;
    };
    let snapshot = &folder.snapshot;
    let Ok(prepared) = snapshot.prepare(&query) else {
        return;
    };
    let decision = snapshot.decide(&prepared);
    let _ = serde_json::to_string(&decision);
    let _ = snapshot.explain(&prepared).render();
    let principal = snapshot.resolve(&query.principal, Slot::Principal);
    let resource = snapshot.resolve(&query.resource, Slot::Resource);
    if let (Ok(principal), Ok(resource)) = (principal, resource) {
        let _ = snapshot.permissions(
            &principal,
            &resource,
            &query.context,
            &prepared.entities,
            snapshot.policy_set(),
        );
    }
});
