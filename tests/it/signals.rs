//! Shared Signals against a real node and a real receiver the test starts: a kill, a lock and
//! a containment each push a CAEP `session-revoked` Security Event Token that verifies with the
//! key set the node publishes; a user's own logout pushes none.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::{add_user, Api, Tuning};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Method;
use serde_json::{json, Value};

const PW: &str = "signals-user-pw-63";
const REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const WAIT: Duration = Duration::from_secs(30);

type Pushed = Arc<Mutex<Vec<(String, String)>>>;

async fn serve_receiver(pushed: Pushed) -> u16 {
    let app = axum::Router::new().route(
        "/ssf",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let pushed = pushed.clone();
            async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                pushed.lock().expect("lock").push((kind, body));
                StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

async fn session_of(api: &Api, base: &str, login: &str) -> (String, String) {
    let answer = api.login(base, "example.org", login, PW).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let token = answer.body["token"].as_str().expect("token").to_string();
    let id = answer.body["session_id"].as_str().expect("id").to_string();
    (token, id)
}

#[tokio::test]
async fn a_kill_a_lock_and_a_containment_each_push_a_verifiable_session_revoked_token() {
    let pushed: Pushed = Arc::default();
    let port = serve_receiver(pushed.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("signals.pem");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    std::fs::write(&key_file, key.serialize_pem()).expect("write the key");
    let tuning = Tuning {
        tail: vec![format!(
            "[signals]\nsigning_key_file = \"{}\"\nissuer = \"https://sp.example.org\"\n\
             [[signals.receiver]]\nname = \"rp\"\nurl = \"http://127.0.0.1:{port}/ssf\"\n\
             audience = \"https://rp.example.org\"\nretry_initial_ms = 100\nretry_max_ms = 500\n",
            key_file.display()
        )],
        ..Tuning::default()
    };
    let (_site, api, base, admin) = common::admin_node(tuning).await;
    for login in ["gina", "hank", "ivy", "jill"] {
        add_user(&api, &base, &admin, "example.org", login, PW).await;
    }
    let (_, gina) = session_of(&api, &base, "gina").await;
    let (_, hank) = session_of(&api, &base, "hank").await;
    let (_, ivy) = session_of(&api, &base, "ivy").await;
    let (jill_token, jill) = session_of(&api, &base, "jill").await;

    let kill = api
        .call(
            Method::DELETE,
            format!("{base}/rest/v1/master/logicalroles/ws/sessions/{gina}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(kill.status, 204, "{}", kill.text);
    let lock = api
        .call(
            Method::POST,
            format!("{base}/rest/v1/locks"),
            Some(&admin),
            Some(
                json!({"target": {"user": "hank@example.org"}, "message": "Locked: call the desk"}),
            ),
        )
        .await;
    assert_eq!(lock.status, 201, "{}", lock.text);
    let contain = api
        .call(
            Method::POST,
            format!("{base}/rest/v1/incidents"),
            Some(&admin),
            Some(json!({"user": "ivy@example.org", "reason": "phished"})),
        )
        .await;
    assert_eq!(contain.status, 200, "{}", contain.text);
    let logout = api
        .call(
            Method::DELETE,
            format!("{base}/rest/v1/iam/sessions/current"),
            Some(&jill_token),
            None,
        )
        .await;
    assert!(logout.status < 300, "{}", logout.text);

    let deadline = tokio::time::Instant::now() + WAIT;
    while pushed.lock().expect("lock").len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not 3 tokens pushed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a fourth, which must not come.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let jwks = api
        .call(
            Method::GET,
            format!("{base}/rest/v1/signals/jwks"),
            None,
            None,
        )
        .await;
    assert_eq!(jwks.status, 200, "{}", jwks.text);
    let jwk = &jwks.body["keys"][0];
    assert_eq!(jwk["kty"], "EC");
    assert!(jwk.get("d").is_none(), "the private part is not published");
    let decoding = DecodingKey::from_ec_components(
        jwk["x"].as_str().expect("x"),
        jwk["y"].as_str().expect("y"),
    )
    .expect("a P-256 key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["https://rp.example.org"]);
    validation.set_issuer(&["https://sp.example.org"]);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;

    let pushed = pushed.lock().expect("lock").clone();
    let mut revoked = Vec::new();
    for (content_type, token) in &pushed {
        assert_eq!(content_type, "application/secevent+jwt");
        let header = jsonwebtoken::decode_header(token).expect("a JWT");
        assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
        assert_eq!(header.kid.as_deref(), jwk["kid"].as_str());
        let claims = jsonwebtoken::decode::<Value>(token, &decoding, &validation)
            .expect("the token verifies with the published key")
            .claims;
        let event = &claims["events"][REVOKED];
        assert!(event["event_timestamp"].as_u64().is_some(), "{claims}");
        assert!(claims["jti"].as_str().is_some_and(|j| j.contains(':')));
        assert_eq!(claims["sub_id"]["format"], "complex");
        let session = claims["sub_id"]["session"]["id"]
            .as_str()
            .expect("session")
            .to_string();
        let user = claims["sub_id"]["user"]["email"]
            .as_str()
            .expect("email")
            .to_string();
        let reason = event["reason_admin"]["en"]
            .as_str()
            .expect("reason")
            .to_string();
        revoked.push((session, user, reason));
    }
    revoked.sort();
    let mut expected = vec![
        (gina, "gina@example.org".to_string(), "revoked".to_string()),
        (hank, "hank@example.org".to_string(), "locked".to_string()),
        (ivy, "ivy@example.org".to_string(), "revoked".to_string()),
    ];
    expected.sort();
    assert_eq!(
        revoked, expected,
        "one token per ended session, none for jill's logout"
    );
    assert!(!revoked.iter().any(|(s, _, _)| *s == jill));
}

#[tokio::test]
async fn without_a_signing_key_there_is_no_key_set() {
    let (_site, api, base, _admin) = common::admin_node(Tuning::default()).await;
    let jwks = api
        .call(
            Method::GET,
            format!("{base}/rest/v1/signals/jwks"),
            None,
            None,
        )
        .await;
    common::assert_error(&jwks, 404, "notFound");
}
