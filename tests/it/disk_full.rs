//! A node whose disk fills up stops its groups and exits non-zero, so that its supervisor
//! restarts it once space is back; the site keeps serving meanwhile, and the node rejoins.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Api, TestSite, Tuning};

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} {args:?}");
}

/// A tmpfs mounted over a directory, unmounted on drop.
struct Tmpfs(String);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_out_of_disk_exits_and_rejoins_when_space_is_back() {
    let _alone = common::turns::alone();
    let mut site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let victim = 2;
    let data = site.data_dir(victim);
    let path = data.to_str().expect("utf-8 path").to_string();
    // Move the node's data onto a small tmpfs of its own.
    site.kill(victim);
    let aside = format!("{path}.aside");
    std::fs::rename(&data, &aside).expect("move aside");
    std::fs::create_dir(&data).expect("mount point");
    run("mount", &["-t", "tmpfs", "-o", "size=96m", "tmpfs", &path]);
    let _tmpfs = Tmpfs(path.clone());
    run("cp", &["-a", &format!("{aside}/."), &path]);
    site.restart(victim).await;
    site.wait_formed(3, Duration::from_secs(20)).await;

    // Fill it, leaving almost nothing, and keep the site writing.
    let filler = data.join("filler");
    let _ = Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=1M",
            "count=200",
        ])
        .stderr(std::process::Stdio::null())
        .status();
    let base = site.api_url(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let _ = api
            .try_login(&base, "master.domain", "admin", common::ADMIN_PASSWORD)
            .await;
        if let Some(status) = site.exited(victim) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node with a full disk kept running"
        );
    };
    assert!(!status.success(), "it exits non-zero: {status:?}");
    assert!(
        site.log_of(victim).contains("a Raft group stopped"),
        "{}",
        site.log_of(victim)
    );
    // The two others keep serving.
    let login = api
        .login(
            &site.api_url(1),
            "master.domain",
            "admin",
            common::ADMIN_PASSWORD,
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);

    // Space is back: the supervisor's restart brings it back into the site.
    std::fs::remove_file(&filler).expect("free the space");
    site.restart(victim).await;
    site.wait_formed(3, Duration::from_secs(30)).await;
    api.get(format!("{}/healthcheck", site.api_url(victim)))
        .expect(200)
        .await;
    site.kill(victim);
}
