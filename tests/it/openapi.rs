//! The OpenAPI document served at `/openapi.json` checked against the node that serves it:
//! schemathesis (installed by `.ci/run`) generates requests from it for every operation and
//! checks that no answer is a 5xx and that every answer (status, content type, headers, body)
//! is the one documented.

use crate::common;

use std::process::Command;

use common::{Api, TestSite, Tuning};

#[tokio::test(flavor = "multi_thread")]
async fn the_api_keeps_to_its_openapi_document() {
    let _alone = common::turns::alone();
    let keys = tempfile::tempdir().expect("temp dir");
    let key = keys.path().join("service.key");
    std::fs::write(&key, "a-service-key-for-the-openapi-test-0123456789").expect("key");
    let site = TestSite::start(
        1,
        Tuning {
            iam: vec![format!("service_key_file = \"{}\"", key.display())],
            ..Default::default()
        },
    )
    .await;
    site.wait_for_admin(0).await;
    let base = site.api_url(0);
    let spec = Api::default()
        .get(format!("{base}/openapi.json"))
        .expect(200)
        .await;
    assert!(spec.body["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    assert_eq!(spec.body["paths"].as_object().map(|p| p.len()), Some(40));

    // A service token: the run may log a session out, never this.
    let issued = Command::new(env!("CARGO_BIN_EXE_sessionplane"))
        .args(["token", "issue", "--sub", "schemathesis", "--key-file"])
        .arg(&key)
        .output()
        .expect("token issue");
    assert!(issued.status.success());
    let token = String::from_utf8(issued.stdout).expect("utf-8");
    let run = Command::new("schemathesis")
        .args(["run", &format!("{base}/openapi.json")])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", token.trim()),
        ])
        // Domain names, logins and the `sites` value follow rules richer than the document's
        // types: a string the schema allows may rightly be refused with a 400.
        .args(["--exclude-checks", "positive_data_acceptance"])
        // Adding an unreachable voter to a one-node site would take its quorum away for the
        // rest of the run (tests/it/health.rs adds a real node).
        .args(["--exclude-path", "/cluster/nodes"])
        // A stream that does not end (tests/it/events.rs reads it and tries its bad input).
        .args(["--exclude-path", "/rest/v1/events"])
        .args(["--max-examples", "60", "--seed", "20261124", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis runs (.ci/run installs it: pip install schemathesis)");
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found failures:\n{said}\n{}\n{}",
        String::from_utf8_lossy(&run.stderr),
        site.logs()
    );
    assert!(said.contains("Tested: 57"), "{said}");
    assert!(
        !site.log_of(0).contains("panicked"),
        "a panic in the node:\n{}",
        site.logs()
    );
}
