//! What one durable log append costs on this machine's disk: a redb commit of one entry (the
//! cluster's log store) against a write + `fdatasync` into a preallocated file (an append-only
//! write-ahead log such as etcd's). Files live under the build's target directory, on the disk
//! the nodes would use, not in a tmpfs. Usage:
//! `cargo bench --bench log_flush [-- --rounds N]`

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// About one session-creating command with its entry's framing.
const ENTRY_BYTES: usize = 400;
const WAL_BYTES: u64 = 64 << 20;

fn main() {
    let rounds = common::arg("--rounds", 2_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory on disk");
    let entry = vec![7u8; ENTRY_BYTES];

    let db = Database::create(dir.path().join("log.redb")).expect("redb");
    let redb = timed(rounds, |index| {
        let txn = db.begin_write().expect("begin");
        txn.open_table(LOG)
            .expect("table")
            .insert(index, entry.as_slice())
            .expect("insert");
        txn.commit().expect("commit");
    });

    let wal = std::fs::File::create_new(dir.path().join("wal")).expect("wal file");
    wal.set_len(WAL_BYTES).expect("preallocate");
    wal.sync_all().expect("sync");
    let slot = 512;
    let appends = timed(rounds.min(WAL_BYTES / slot), |index| {
        wal.write_all_at(&entry, index * slot).expect("write");
        wal.sync_data().expect("fdatasync");
    });

    println!("durable appends of one {ENTRY_BYTES}-byte entry, {rounds} rounds, in ms:");
    println!("| | p50 | p90 | p99 |\n|---|---:|---:|---:|");
    report("redb commit (the log store)", redb);
    report("write + fdatasync, preallocated file", appends);
}

fn timed(rounds: u64, mut append: impl FnMut(u64)) -> Vec<Duration> {
    (0..rounds)
        .map(|index| {
            let started = Instant::now();
            append(index);
            started.elapsed()
        })
        .collect()
}

fn report(what: &str, mut times: Vec<Duration>) {
    println!("{}", common::quantile_row(what, &mut times, 1e3, 3));
}
