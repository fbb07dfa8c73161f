//! The comparison table: one row per workload, concurrency and setup, with the speed of the
//! reference setup (the first sessionplane row of the group) over this row's.

use std::fmt::Write;

use anyhow::{Context, Result};

use crate::measure::Outcome;

pub fn parse(text: &str) -> Result<Vec<Outcome>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("line {}", i + 1)))
        .collect()
}

/// Groups rows by (workload, clients) in the order they first appear; the reference of a group
/// is its first row whose label starts with "sessionplane".
pub fn render(rows: &[Outcome]) -> String {
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for row in rows {
        if !groups.contains(&(row.workload.as_str(), row.clients)) {
            groups.push((row.workload.as_str(), row.clients));
        }
    }
    let mut out = String::from(
        "| workload | clients | setup | ops/s | p50 ms | p99 ms | server CPU (cores) | server RSS MiB | sessionplane ÷ this |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (workload, clients) in groups {
        let members: Vec<&Outcome> = rows
            .iter()
            .filter(|r| r.workload == workload && r.clients == clients)
            .collect();
        let reference = members.iter().find(|r| r.label.starts_with("sessionplane"));
        for row in &members {
            let ratio = match reference {
                Some(r) if row.per_sec > 0.0 => format!("{:.2}×", r.per_sec / row.per_sec),
                _ => "—".into(),
            };
            let _ = writeln!(
                out,
                "| {workload} | {clients} | {} | {} | {:.2} | {:.2} | {} | {} | {ratio} |",
                row.label,
                thousands(row.per_sec),
                row.p50_ms,
                row.p99_ms,
                row.cpu_cores.map_or("—".into(), |c| format!("{c:.2}")),
                row.rss_mib.map_or("—".into(), |m| format!("{m:.0}")),
            );
        }
    }
    out
}

fn thousands(value: f64) -> String {
    if value < 100.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{:.0}", value);
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, workload: &str, clients: usize, per_sec: f64) -> Outcome {
        Outcome {
            label: label.into(),
            workload: workload.into(),
            clients,
            ops: 10,
            errors: 0,
            seconds: 1.0,
            per_sec,
            p50_ms: 1.0,
            p99_ms: 2.0,
            cpu_cores: Some(0.5),
            rss_mib: None,
        }
    }

    #[test]
    fn each_row_is_compared_with_the_sessionplane_row_of_its_group() {
        let rows = vec![
            row("sessionplane, 3 nodes", "create", 64, 20_000.0),
            row("etcd 3.4, 3 members", "create", 64, 5_000.0),
            row("etcd 3.4, 3 members", "create", 1, 400.0),
            row("sessionplane, 3 nodes", "create", 1, 500.0),
        ];
        let table = render(&rows);
        assert!(
            table.contains(
                "| create | 64 | etcd 3.4, 3 members | 5,000 | 1.00 | 2.00 | 0.50 | — | 4.00× |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| create | 1 | etcd 3.4, 3 members | 400 | 1.00 | 2.00 | 0.50 | — | 1.25× |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| create | 64 | sessionplane, 3 nodes | 20,000 |"),
            "{table}"
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[2].contains("| 64 | sessionplane"),
            "groups keep their first order: {table}"
        );
    }

    #[test]
    fn results_parse_back() {
        let line = serde_json::to_string(&row("redis", "list", 1, 3.0)).expect("json");
        let parsed = parse(&format!("{line}\n\n{line}\n")).expect("parse");
        assert_eq!(parsed.len(), 2);
        assert!(parse("not json").is_err());
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(12.34), "12.3");
    }
}
