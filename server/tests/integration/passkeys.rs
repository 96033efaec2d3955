//! Passkeys on the customs portal, as its help page recommends them: an admin who must enrol a
//! second factor registers a passkey, signs in with it alone and as the second factor after a
//! password, lists and removes passkeys; replays, answers from a foreign origin and another
//! user's passkey are refused. Against a real `portcullis serve` process of the customs-portal
//! example, with the store on SQLite and on PostgreSQL, signed by `webauthn-authenticator-rs`'s
//! software authenticator.

use serde_json::{json, Value};
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::common::Http;
use crate::examples::{call, folder, login, set_password, sqlite};
use crate::manage::{drop_postgres, fresh_postgres};
use crate::procs::{bootstrap, Proc};

/// The relying party the server is set up for, and the page origin the browser signs for.
const RP_ID: &str = "customs.example";
const ORIGIN: &str = "https://portal.customs.example";

/// A passkey authenticator as a browser holds it. `SoftPasskey` keeps credentials by id and
/// signs only for ids it is given, so this side plays the discoverable part a platform
/// authenticator does itself: offered no credential ids (a sign-in without a login), it picks
/// its own credential for the relying party and answers with the user handle it registered.
struct Authenticator {
    soft: SoftPasskey,
    origin: Url,
    /// Credential id (base64url) and the user handle it was registered with (base64url).
    held: Vec<(Value, Value)>,
}

impl Authenticator {
    fn at(origin: &str) -> Self {
        Authenticator {
            // `true`: it reports user verification (a software key has no PIN to ask for).
            soft: SoftPasskey::new(true),
            origin: Url::parse(origin).unwrap(),
            held: Vec::new(),
        }
    }

    /// `navigator.credentials.create()` on the server's options.
    fn create(&mut self, options: &Value) -> Value {
        let ccr: CreationChallengeResponse = serde_json::from_value(options.clone()).unwrap();
        let credential = self.soft.do_registration(self.origin.clone(), ccr).unwrap();
        let credential = serde_json::to_value(credential).unwrap();
        let handle = options["publicKey"]["user"]["id"].clone();
        self.held.push((credential["id"].clone(), handle));
        credential
    }

    /// `navigator.credentials.get()` on the server's options, with the credential at `index`.
    fn get(&mut self, options: &Value, index: usize) -> Value {
        let (id, handle) = self.held[index].clone();
        let mut options = options.clone();
        options["publicKey"]["allowCredentials"] = json!([{ "type": "public-key", "id": id }]);
        let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self.soft.do_authentication(self.origin.clone(), rcr).unwrap();
        let mut answer = serde_json::to_value(answer).unwrap();
        answer["response"]["userHandle"] = handle;
        answer
    }
}

/// Registers a passkey through a session; answers the stored passkey.
async fn register(session: &Http, key: &mut Authenticator, name: &str) -> Value {
    let (s, started) = session.post("/v1/auth/passkeys/register", &json!({})).await;
    assert_eq!(s, 200, "{started}");
    let credential = key.create(&started["options"]);
    let body = json!({ "ceremony": started["ceremony"], "credential": credential, "name": name });
    let (s, b) = session.post("/v1/auth/passkeys", &body).await;
    assert_eq!(s, 201, "{b}");
    b
}

/// A sign-in ceremony: its token and options.
async fn challenge(anon: &Http) -> (Value, Value) {
    let (s, b) = anon.post("/v1/auth/passkey/challenge", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    (b["ceremony"].clone(), b["options"].clone())
}

fn code(answer: &(u16, Value)) -> (u16, Value) {
    (answer.0, answer.1["error"]["code"].clone())
}

async fn passkeys_story(db: &str) {
    let fay_key = bootstrap(
        db,
        "freightco",
        "forwarder",
        "fay",
        "admin",
        &["all_customers=true"],
    );
    let dir = folder("customs-portal");
    let env = [
        ("PORTCULLIS_PASSKEY_RP_ID", RP_ID),
        ("PORTCULLIS_PASSKEY_ORIGINS", ORIGIN),
        ("PORTCULLIS_PASSKEY_RP_NAME", "FreightCo customs portal"),
    ];
    let (server, _) = Proc::serve_with_env(&dir, Some(db), &[], &env);
    let anon = Http::at(server.url.clone());
    let fay_api = Http::at(server.url.clone()).with_key(&fay_key);
    let (s, b) = fay_api
        .post(
            "/v1/users",
            &json!({ "id": "lena", "login": "lena", "role": "operator" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    set_password(db, &dir, "fay", "Fay-Admin-Pass-9");
    set_password(db, &dir, "lena", "Lena-Pass-2026!");

    // Fay is an admin, who must enrol a second factor: her first session can only enrol one.
    let (s, b) = login(&anon, "fay", "Fay-Admin-Pass-9").await;
    assert_eq!((s, b["mfa_setup_required"].clone()), (200, json!(true)), "{b}");
    let fay = Http::at(server.url.clone()).with_key(b["token"].as_str().unwrap());
    assert_eq!(
        code(&fay.get("/v1/users").await),
        (403, json!("mfa_enrollment_required"))
    );

    // The options ask for a discoverable credential, verified by PIN or biometrics, for the
    // portal's relying party, and exclude nothing yet.
    let (s, started) = fay.post("/v1/auth/passkeys/register", &json!({})).await;
    assert_eq!(s, 200, "{started}");
    let pk = &started["options"]["publicKey"];
    assert_eq!(
        (&pk["rp"]["id"], &pk["rp"]["name"], &pk["user"]["name"]),
        (&json!(RP_ID), &json!("FreightCo customs portal"), &json!("fay")),
        "{started}"
    );
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "preferred", "{pk}");
    assert_eq!(
        pk["authenticatorSelection"]["userVerification"], "required",
        "{pk}"
    );
    assert!(
        started["ceremony"].as_str().unwrap().starts_with("pkc_"),
        "{started}"
    );

    // An answer signed for another page is refused, and the ceremony is spent by the try.
    let mut stranger = Authenticator::at("https://portal-evil.customs.example");
    let forged = stranger.create(&started["options"]);
    let body = json!({ "ceremony": started["ceremony"], "credential": forged });
    let refused = fay.post("/v1/auth/passkeys", &body).await;
    assert_eq!(code(&refused), (400, json!("invalid_passkey")), "{}", refused.1);
    let replay = fay.post("/v1/auth/passkeys", &body).await;
    assert_eq!(code(&replay), (400, json!("invalid_token")), "{}", replay.1);

    // Her YubiKey: registered, it is her second factor, and this session has passed it.
    let mut yubikey = Authenticator::at(ORIGIN);
    let first = register(&fay, &mut yubikey, "YubiKey").await;
    assert_eq!(
        (&first["name"], &first["user"]),
        (&json!("YubiKey"), &json!("fay")),
        "{first}"
    );
    assert!(
        first.get("credential").is_none() && first.get("handle").is_none(),
        "{first}"
    );
    let (s, b) = fay.get("/v1/auth/session").await;
    assert_eq!((s, b["mfa_setup_required"].clone()), (200, json!(false)), "{b}");
    assert_eq!(fay.get("/v1/users/lena").await.0, 200);
    // The same authenticator is excluded from registering again.
    let (_, again) = fay.post("/v1/auth/passkeys/register", &json!({})).await;
    let excluded = &again["options"]["publicKey"]["excludeCredentials"];
    assert_eq!(excluded[0]["id"], first["credential_id"], "{again}");

    // A passkey alone signs her in, as a session that has passed a second factor.
    let (ceremony, options) = challenge(&anon).await;
    let list = &options["publicKey"]["allowCredentials"];
    assert!(
        list.is_null() || list == &json!([]),
        "no account is named: {options}"
    );
    let answer = yubikey.get(&options, 0);
    let body = json!({ "ceremony": ceremony, "credential": answer, "device": "laptop" });
    let (s, b) = anon.post("/v1/auth/passkey/login", &body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["user"]["id"], &b["session"]["mfa"], &b["mfa_setup_required"]),
        (&json!("fay"), &json!(true), &json!(false)),
        "{b}"
    );
    let fay_passkey = Http::at(server.url.clone()).with_key(b["token"].as_str().unwrap());
    assert_eq!(fay_passkey.get("/v1/users").await.0, 200);
    // The same answer again: the ceremony is spent.
    assert_eq!(
        code(&anon.post("/v1/auth/passkey/login", &body).await),
        (401, json!("invalid_credentials"))
    );
    // The old answer for a new ceremony: its signature is over another challenge.
    let (ceremony, _) = challenge(&anon).await;
    let stale = json!({ "ceremony": ceremony, "credential": answer });
    assert_eq!(
        code(&anon.post("/v1/auth/passkey/login", &stale).await),
        (401, json!("invalid_credentials"))
    );
    // A passkey the server never registered.
    let (ceremony, options) = challenge(&anon).await;
    let unknown = json!({ "ceremony": ceremony, "credential": stranger.get(&options, 0) });
    assert_eq!(
        code(&anon.post("/v1/auth/passkey/login", &unknown).await),
        (401, json!("invalid_credentials"))
    );
    let (_, _) = anon.post("/v1/auth/passkey/challenge", &json!({})).await;

    // With a passkey registered, a password alone is not enough: the passkey is the second factor.
    let (s, b) = login(&anon, "fay", "Fay-Admin-Pass-9").await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (401, json!("mfa_required")),
        "{b}"
    );
    let (ceremony, options) = challenge(&anon).await;
    let with_passkey = json!({
        "login": "fay", "password": "Fay-Admin-Pass-9",
        "passkey": { "ceremony": ceremony, "credential": yubikey.get(&options, 0) }
    });
    let (s, b) = anon.post("/v1/auth/login", &with_passkey).await;
    assert_eq!((s, b["session"]["mfa"].clone()), (200, json!(true)), "{b}");

    // Lena registers her own passkey in one session; her other session, signed in with a
    // password alone before, cannot remove it.
    let (_, b) = login(&anon, "lena", "Lena-Pass-2026!").await;
    let lena_old = Http::at(server.url.clone()).with_key(b["token"].as_str().unwrap());
    let (_, b) = login(&anon, "lena", "Lena-Pass-2026!").await;
    let lena = Http::at(server.url.clone()).with_key(b["token"].as_str().unwrap());
    let mut phone = Authenticator::at(ORIGIN);
    let lenas = register(&lena, &mut phone, "Phone").await;
    let path = format!("/v1/auth/passkeys/{}", lenas["id"].as_str().unwrap());
    assert_eq!(
        code(&call(&lena_old, "DELETE", &path, None).await),
        (403, json!("mfa_required"))
    );
    // Nor can Fay remove it: another user's passkey is a missing one.
    assert_eq!(call(&fay, "DELETE", &path, None).await.0, 404);
    // Lena's password with Fay's passkey is refused like a wrong password.
    let (ceremony, options) = challenge(&anon).await;
    let mixed = json!({
        "login": "lena", "password": "Lena-Pass-2026!",
        "passkey": { "ceremony": ceremony, "credential": yubikey.get(&options, 0) }
    });
    assert_eq!(
        code(&anon.post("/v1/auth/login", &mixed).await),
        (401, json!("invalid_credentials"))
    );

    // Fay's passkeys: her last second factor stays while the folder requires one of admins;
    // with a second passkey the first can go.
    let (s, b) = fay.get("/v1/auth/passkeys").await;
    assert_eq!((s, b["passkeys"].as_array().map(Vec::len)), (200, Some(1)), "{b}");
    let first_path = format!("/v1/auth/passkeys/{}", first["id"].as_str().unwrap());
    let last = call(&fay, "DELETE", &first_path, None).await;
    assert_eq!(code(&last), (409, json!("mfa_required_by_policy")), "{}", last.1);
    let mut laptop = Authenticator::at(ORIGIN);
    register(&fay, &mut laptop, "Laptop").await;
    assert_eq!(call(&fay, "DELETE", &first_path, None).await.0, 204);
    let (_, b) = fay.get("/v1/auth/passkeys").await;
    let names: Vec<&Value> = b["passkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, [&json!("Laptop")], "{b}");
    // The removed passkey signs in no more; the laptop does.
    let (ceremony, options) = challenge(&anon).await;
    let removed = json!({ "ceremony": ceremony, "credential": yubikey.get(&options, 0) });
    assert_eq!(
        code(&anon.post("/v1/auth/passkey/login", &removed).await),
        (401, json!("invalid_credentials"))
    );
    let (ceremony, options) = challenge(&anon).await;
    let kept = json!({ "ceremony": ceremony, "credential": laptop.get(&options, 0) });
    assert_eq!(anon.post("/v1/auth/passkey/login", &kept).await.0, 200);

    // A deactivated user's passkey signs in no more.
    assert_eq!(fay.post("/v1/users/lena/deactivate", &json!({})).await.0, 200);
    let (ceremony, options) = challenge(&anon).await;
    let gone = json!({ "ceremony": ceremony, "credential": phone.get(&options, 0) });
    assert_eq!(
        code(&anon.post("/v1/auth/passkey/login", &gone).await),
        (401, json!("invalid_credentials"))
    );

    // The audit trail has each registration and removal.
    let (s, b) = fay.get("/v1/audit?action=auth.passkey").await;
    assert_eq!(s, 200, "{b}");
    let states: Vec<String> = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["target"].as_str().unwrap(),
                e["details"]["state"].as_str().unwrap()
            )
        })
        .collect();
    for expected in ["user:fay:registered", "user:lena:registered", "user:fay:removed"] {
        assert!(states.iter().any(|s| s == expected), "{expected}: {states:?}");
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customs_portal_passkeys_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    passkeys_story(&sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customs_portal_passkeys_on_postgres() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    passkeys_story(&url).await;
    drop_postgres(&url).await;
}

/// A server without passkey settings says what is missing, and a password sign-in is as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_settings_passkeys_say_what_to_set() {
    let (_fx, server, _store) = crate::signin::env(false).await;
    let anon = Http::at(server.url());
    let (s, b) = anon.post("/v1/auth/passkey/challenge", &json!({})).await;
    assert_eq!(s, 409, "{b}");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("passkey_rp_id") && message.contains("passkey_origins"),
        "{b}"
    );
}
