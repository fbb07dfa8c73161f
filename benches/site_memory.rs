//! Memory of the site state machine per session at 1,000,000 sessions, and the time to build and
//! install a snapshot of them. Usage: `cargo bench --bench site_memory [-- --sessions N]`

mod common;

use std::time::Instant;

use openraft::SnapshotMeta;
use sessionplane::testing::NewSession;
use sessionplane::testing::SiteCall;
use sessionplane::testing::{SiteQuery, SiteQueryReply, SiteState};
use sessionplane_cluster::{SnapshotStore, StateMachine};
use uuid::Uuid;

fn main() {
    let raw: Vec<String> = std::env::args().collect();
    let sessions: usize = raw
        .iter()
        .position(|a| a == "--sessions")
        .and_then(|i| raw.get(i + 1))
        .map(|v| v.parse().expect("--sessions N"))
        .unwrap_or(1_000_000);

    // Each command is made just before it applies and freed after: what stays is the state's.
    // (Building them all first would not do: the allocator hands their freed memory to the
    // state, and the resident size would not grow.)
    let users: Vec<Uuid> = (0..sessions / 4 + 1).map(|_| Uuid::now_v7()).collect();
    let command = |n: usize| {
        SiteCall::create_session(NewSession {
            session_id: Uuid::now_v7(),
            user_id: users[n / 4],
            login: format!("user{:07}", n / 4),
            domain: format!("tenant{}.example.org", n % 100),
            lifetime_ms: 12 * 3_600_000,
            client_addr: Some([203, 0, (n % 256) as u8, ((n / 256) % 256) as u8].into()),
            user_agent: Some(format!(
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/{}.0",
                100 + n % 50
            )),
        })
    };

    let now = sessionplane_cluster::now_ms();
    let before = common::rss_bytes();
    let mut state = SiteState::default();
    let started = Instant::now();
    for n in 0..sessions {
        command(n).apply_to(&mut state, now + n as u64);
    }
    let apply_time = started.elapsed();
    let after = common::rss_bytes();
    let per_session = after.saturating_sub(before) as f64 / sessions as f64;

    // Build: a consistent copy, serialized, then written durably as the node does.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path().join("snapshots")).expect("snapshot dir");
    let meta = SnapshotMeta::default();
    let started = Instant::now();
    let writer = state.snapshot();
    let copy_time = started.elapsed();
    let bytes = writer();
    store.save(&meta, &bytes).expect("save snapshot");
    let build_time = started.elapsed();
    // Install: read back from disk and replace the state whole.
    let started = Instant::now();
    let (_, loaded) = store.load().expect("load snapshot").expect("a snapshot");
    let restored = state.restore(&loaded).expect("restore");
    let install_time = started.elapsed();
    assert_eq!(restored.stored_count(), sessions);
    let counts: SiteQueryReply = restored.query(SiteQuery::Counts);

    println!("| sessions | state RSS | bytes/session | apply all | snapshot copy | build (copy+serialize+fsync) | snapshot size | install (read+restore) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {sessions} | {:.0} MiB | {per_session:.0} | {:.2} s | {:.1} ms | {:.2} s | {:.0} MiB | {:.2} s |",
        after.saturating_sub(before) as f64 / 1048576.0,
        apply_time.as_secs_f64(),
        copy_time.as_secs_f64() * 1000.0,
        build_time.as_secs_f64(),
        bytes.len() as f64 / 1048576.0,
        install_time.as_secs_f64(),
    );
    println!("restored state answers: {counts:?}");
}
