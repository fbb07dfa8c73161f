//! The console in a real browser against one node holding 100,000 sessions: cold first loads
//! (to interactive, and bytes transferred), filter changes in the sessions view, and the
//! browser's memory, as `tests/browser/console_speed.py` measures them in headless Chromium.
//! Usage: `cargo bench --bench console [-- --sessions 100000 --rounds 5]`

mod common;

#[tokio::main]
async fn main() {
    let total = common::arg("--sessions", 100_000);
    let rounds = common::arg("--rounds", 5);
    let data = tempfile::tempdir().expect("temp dir");
    let nodes = common::start_site(1, data.path()).await;
    let node = &nodes[0];
    let base = format!("http://{}", node.api_addr);
    let http = reqwest::Client::new();
    common::admin_login(&http, &base).await;
    common::fill_sessions(node, total).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/console_speed.py"
    );
    let run = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&base)
        .arg("admin@master.domain")
        .arg(common::ADMIN_PASSWORD)
        .arg(rounds.to_string())
        .output()
        .await
        .expect("python3 runs (scripts/test installs selenium, chromium and chromium-driver)");
    assert!(
        run.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&run.stdout).expect("the harness's JSON report");
    let mib = |key: &str| report[key].as_f64().unwrap_or(0.0) / 1_048_576.0;
    println!("console against {total} sessions, {rounds} rounds:");
    for view in ["overview", "sessions"] {
        let load = &report["loads"][view];
        println!(
            "  cold first load of #{view}: interactive median {:.0} ms (max {:.0} ms), {:.1} KiB in {} requests",
            load["interactive_ms"].as_f64().unwrap_or(0.0),
            load["interactive_max_ms"].as_f64().unwrap_or(0.0),
            load["bytes"].as_f64().unwrap_or(0.0) / 1024.0,
            load["requests"]
        );
    }
    println!(
        "  filter change to the frame after the new rows: median {:.1} ms, max {:.1} ms over {} changes (rows of the first round: {})",
        report["filter_ms_median"].as_f64().unwrap_or(0.0),
        report["filter_ms_max"].as_f64().unwrap_or(0.0),
        report["filter_changes"],
        report["rows"]
    );
    println!(
        "  browser memory: JS heap {:.1} MiB used of {:.1} MiB; {} Chromium processes, {:.0} MiB proportional set size in all",
        mib("js_heap_used_bytes"),
        mib("js_heap_total_bytes"),
        report["chromium_processes"],
        mib("chromium_pss_bytes")
    );
    let kinds = |key: &str| -> String {
        report[key]
            .as_object()
            .map(|kinds| {
                kinds
                    .iter()
                    .map(|(kind, sizes)| {
                        let sizes: Vec<String> = sizes
                            .as_array()
                            .map(|s| s.iter().map(|v| v.to_string()).collect())
                            .unwrap_or_default();
                        format!("{kind} {}", sizes.join(" + "))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!("  by process (MiB): {}", kinds("pss_by_process"));
    println!(
        "  the same browser at about:blank, before the console (MiB): {}",
        kinds("pss_by_process_at_about_blank")
    );
}
