//! The durable Raft log: one redb database per node, two tables per group (`<group>/log` and
//! `<group>/meta`), written by a single writer thread.
//!
//! The writer drains every queued operation of every group into one write transaction and
//! commits it (fsync) before it fires any acknowledgement, so:
//! - an append is acknowledged (`IOFlushed`) only once it is on disk, and appends arriving while
//!   a commit is under way are batched into the next one;
//! - a vote is on disk before `save_vote` returns;
//! - operations are applied in the order they were queued: vote and log writes never reorder;
//! - the committed index (optional for openraft) rides along with the next durable commit
//!   instead of costing a transaction of its own.
//!
//! Entries are readable as soon as `append` returns: every entry not yet on disk, and the most
//! recent flushed ones (up to [`TAIL_BYTES`]), stay in an in-memory tail, so replicating fresh
//! entries never reads the database.
//!
//! This module also owns the stored form of an entry: a format byte, then MessagePack, raw or
//! LZ4-compressed.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader};
use redb::{ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::types::{Entry, GroupId, LogId, TypeConfig, Vote};
use crate::wire::{decode, encode, MAX_BODY_BYTES};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// Flushed entries kept in memory behind the unflushed ones, at most (encoded bytes).
const TAIL_BYTES: usize = 16 * 1024 * 1024;

/// Most operations one commit takes from the queue: bounds a transaction's size and latency.
const MAX_OPS_PER_COMMIT: usize = 4096;

/// The node's log database and its writer thread. Cheap to clone.
#[derive(Clone)]
pub struct LogDb {
    db: Arc<redb::Database>,
    writer: mpsc::Sender<WriteOp>,
}

impl LogDb {
    pub fn open(path: &Path) -> Result<Self, redb::DatabaseError> {
        // redb creates its file with the process's umask; create it first, 0600 (it holds
        // password hashes), and let redb initialise the empty file.
        crate::private_fs::file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
        let db = Arc::new(redb::Database::create(path)?);
        let (writer, queue) = mpsc::channel();
        let writer_db = db.clone();
        thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || run_writer(&writer_db, &queue))
            .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
        Ok(Self { db, writer })
    }

    /// Counts this start: returns the node's incarnation, one more than at its previous start
    /// (1 on the first), durably recorded before it is returned.
    pub fn bump_incarnation(&self) -> Result<u64, redb::Error> {
        const NODE: TableDefinition<'_, &'static str, u64> = TableDefinition::new("node/meta");
        let txn = self.db.begin_write()?;
        let incarnation = {
            let mut table = txn.open_table(NODE)?;
            let previous = table.get("incarnation")?.map_or(0, |v| v.value());
            let next = previous.saturating_add(1);
            table.insert("incarnation", next)?;
            next
        };
        txn.commit()?;
        Ok(incarnation)
    }

    /// Opens (creating if needed) the log of one group.
    pub fn group_log(&self, group: &GroupId) -> Result<GroupLog, io::Error> {
        let tables = Arc::new(Tables::for_group(group));
        let log = GroupLog {
            db: self.clone(),
            tables,
            tail: Default::default(),
            bounds: Default::default(),
            vote: Default::default(),
        };
        let (last_purged, last) = log.read_bounds().map_err(read_err)?;
        *log.bounds() = LogBounds { last_purged, last };
        *lock(&log.vote) = log.read_meta(VOTE).map_err(read_err)?;
        Ok(log)
    }

    fn submit(&self, op: WriteOp) -> Result<(), io::Error> {
        self.writer.send(op).map_err(|_| write_err(WriterGone))
    }
}

struct Tables {
    log: String,
    meta: String,
}

impl Tables {
    fn for_group(group: &GroupId) -> Self {
        Self {
            log: format!("{group}/log"),
            meta: format!("{group}/meta"),
        }
    }
    fn log(&self) -> TableDefinition<'_, u64, &'static [u8]> {
        TableDefinition::new(&self.log)
    }
    fn meta(&self) -> TableDefinition<'_, &'static str, &'static [u8]> {
        TableDefinition::new(&self.meta)
    }
}

#[derive(Default, Clone, Copy)]
struct LogBounds {
    last_purged: Option<LogId>,
    last: Option<LogId>,
}

/// One group's log: implements openraft's `RaftLogStorage` and `RaftLogReader`.
#[derive(Clone)]
pub struct GroupLog {
    db: LogDb,
    tables: Arc<Tables>,
    tail: Arc<Mutex<Tail>>,
    bounds: Arc<Mutex<LogBounds>>,
    /// The stored vote: replication checks it around every read of entries.
    vote: Arc<Mutex<Option<Vote>>>,
}

enum WriteOp {
    Append {
        tables: Arc<Tables>,
        entries: Vec<(u64, Vec<u8>)>,
        flushed: Flushed,
    },
    PutMeta {
        tables: Arc<Tables>,
        key: &'static str,
        value: Vec<u8>,
        done: Option<Done>,
    },
    Truncate {
        tables: Arc<Tables>,
        from: u64,
        done: Done,
    },
    Purge {
        tables: Arc<Tables>,
        upto: LogId,
        done: Done,
    },
}

type Done = oneshot::Sender<Result<(), String>>;

impl WriteOp {
    fn is_lazy(&self) -> bool {
        matches!(self, WriteOp::PutMeta { done: None, .. })
    }
}

/// What to do once an append is on disk.
struct Flushed {
    callback: IOFlushed<TypeConfig>,
    tail: Arc<Mutex<Tail>>,
    last_index: u64,
}

/// The newest entries of a group's log, by index: contiguous, since appends extend it, truncation
/// cuts its end and pruning its start.
struct Tail {
    entries: BTreeMap<u64, (Entry, usize)>,
    bytes: usize,
    budget: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            bytes: 0,
            budget: TAIL_BYTES,
        }
    }
}

impl Tail {
    fn insert(&mut self, entry: Entry, size: usize) {
        self.bytes += size;
        if let Some((_, old)) = self.entries.insert(entry.log_id.index, (entry, size)) {
            self.bytes -= old;
        }
    }

    /// Keeps `..index` (truncation) or `index..` (purge).
    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let bytes = &mut self.bytes;
        self.entries.retain(|index, (_, size)| {
            let kept = keep(*index);
            if !kept {
                *bytes -= *size;
            }
            kept
        });
    }

    /// Drops the oldest entries up to `flushed` (they are on disk) while over budget.
    fn prune(&mut self, flushed: u64) {
        while self.bytes > self.budget {
            match self.entries.first_key_value() {
                Some((index, (_, size))) if *index <= flushed => {
                    self.bytes -= *size;
                    let index = *index;
                    self.entries.remove(&index);
                }
                _ => return,
            }
        }
    }

    /// The entries of `start..=end`, if the tail holds all of them.
    fn covering(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let first = *self.entries.first_key_value()?.0;
        let last = *self.entries.last_key_value()?.0;
        (first <= start && end <= last).then(|| {
            self.entries
                .range(start..=end)
                .map(|(_, (e, _))| e.clone())
                .collect()
        })
    }

    fn range(&self, bounds: (Bound<u64>, Bound<u64>)) -> BTreeMap<u64, Entry> {
        self.entries
            .range(bounds)
            .map(|(i, (e, _))| (*i, e.clone()))
            .collect()
    }
}

fn run_writer(db: &redb::Database, queue: &mpsc::Receiver<WriteOp>) {
    // Lazy metadata (the committed index, which openraft may lose) waits for the next durable
    // commit instead of costing a transaction of its own; only the latest value per key is kept.
    let mut deferred: Vec<WriteOp> = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_OPS_PER_COMMIT {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if batch.iter().all(WriteOp::is_lazy) {
            for op in batch {
                defer(&mut deferred, op);
            }
            continue;
        }
        let mut ops = std::mem::take(&mut deferred);
        ops.append(&mut batch);
        let result = commit_batch(db, &ops).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "raft log commit failed");
        }
        for op in ops {
            acknowledge(op, &result);
        }
    }
}

fn defer(deferred: &mut Vec<WriteOp>, op: WriteOp) {
    if let WriteOp::PutMeta { tables, key, .. } = &op {
        deferred.retain(|d| {
            !matches!(d, WriteOp::PutMeta { tables: t, key: k, .. } if t.meta == tables.meta && k == key)
        });
    }
    deferred.push(op);
}

fn commit_batch(db: &redb::Database, batch: &[WriteOp]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    for op in batch {
        match op {
            WriteOp::Append {
                tables, entries, ..
            } => {
                let mut log = txn.open_table(tables.log())?;
                for (index, bytes) in entries {
                    log.insert(index, bytes.as_slice())?;
                }
            }
            WriteOp::PutMeta {
                tables, key, value, ..
            } => {
                txn.open_table(tables.meta())?
                    .insert(key, value.as_slice())?;
            }
            WriteOp::Truncate { tables, from, .. } => {
                txn.open_table(tables.log())?
                    .retain_in(*from.., |_, _| false)?;
            }
            WriteOp::Purge { tables, upto, .. } => {
                txn.open_table(tables.log())?
                    .retain_in(..=upto.index, |_, _| false)?;
                let value = encode(upto).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
                txn.open_table(tables.meta())?
                    .insert(LAST_PURGED, value.as_slice())?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn acknowledge(op: WriteOp, result: &Result<(), String>) {
    let reply = |done: Done| {
        let _ = done.send(result.clone());
    };
    match op {
        WriteOp::Append { flushed, .. } => {
            if result.is_ok() {
                lock(&flushed.tail).prune(flushed.last_index);
            }
            let io = result.clone().map_err(std::io::Error::other);
            flushed.callback.io_completed(io);
        }
        WriteOp::PutMeta { done, .. } => {
            if let Some(done) = done {
                reply(done);
            }
        }
        WriteOp::Truncate { done, .. } | WriteOp::Purge { done, .. } => reply(done),
    }
}

impl GroupLog {
    fn bounds(&self) -> MutexGuard<'_, LogBounds> {
        lock(&self.bounds)
    }

    fn read_bounds(&self) -> Result<(Option<LogId>, Option<LogId>), redb::Error> {
        let txn = self.db.db.begin_read()?;
        let last_purged: Option<LogId> = match txn.open_table(self.tables.meta()) {
            Ok(meta) => match meta.get(LAST_PURGED)? {
                Some(v) => {
                    Some(decode(v.value()).map_err(|e| redb::Error::Corrupted(e.to_string()))?)
                }
                None => None,
            },
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let last = match txn.open_table(self.tables.log()) {
            Ok(log) => match log.last()? {
                Some((_, v)) => {
                    let entry = decode_entry(v.value())?;
                    Some(entry.log_id)
                }
                None => None,
            },
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        Ok((last_purged, last.or(last_purged)))
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, redb::Error> {
        let txn = self.db.db.begin_read()?;
        let meta = match txn.open_table(self.tables.meta()) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match meta.get(key)? {
            Some(v) => Ok(Some(
                decode(v.value()).map_err(|e| redb::Error::Corrupted(e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    fn read_stored(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry>, redb::Error> {
        let txn = self.db.db.begin_read()?;
        let log = match txn.open_table(self.tables.log()) {
            Ok(log) => log,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut entries = Vec::new();
        for item in log.range::<u64>(range)? {
            let (_, v) = item?;
            entries.push(decode_entry(v.value())?);
        }
        Ok(entries)
    }

    async fn wait(&self, done: oneshot::Receiver<Result<(), String>>) -> Result<(), io::Error> {
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(write_err(std::io::Error::other(e))),
            Err(_) => Err(write_err(WriterGone)),
        }
    }

    async fn put_meta_durably<T: serde::Serialize>(
        &self,
        key: &'static str,
        value: &T,
    ) -> Result<(), io::Error> {
        let (done, wait) = oneshot::channel();
        let value = encode(value).map_err(write_err)?;
        self.db.submit(WriteOp::PutMeta {
            tables: self.tables.clone(),
            key,
            value,
            done: Some(done),
        })?;
        self.wait(wait).await
    }
}

impl RaftLogReader<TypeConfig> for GroupLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        if let Some((start, end)) = inclusive(bounds) {
            if start > end {
                return Ok(Vec::new());
            }
            if let Some(entries) = lock(&self.tail).covering(start, end) {
                return Ok(entries);
            }
        }
        // The tail first: an entry pruned from it meanwhile is then found in the store.
        let pending = lock(&self.tail).range(bounds);
        let reader = self.clone();
        let stored = tokio::task::spawn_blocking(move || reader.read_stored(bounds))
            .await
            .map_err(read_err)?
            .map_err(read_err)?;
        let mut merged: BTreeMap<u64, Entry> =
            stored.into_iter().map(|e| (e.log_id.index, e)).collect();
        merged.extend(pending);
        Ok(merged.into_values().collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(*lock(&self.vote))
    }
}

impl RaftLogStorage<TypeConfig> for GroupLog {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let bounds = *self.bounds();
        Ok(LogState {
            last_purged_log_id: bounds.last_purged,
            last_log_id: bounds.last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.put_meta_durably(VOTE, vote).await?;
        *lock(&self.vote) = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let value = encode(&committed).map_err(write_err)?;
        self.db.submit(WriteOp::PutMeta {
            tables: self.tables.clone(),
            key: COMMITTED,
            value,
            done: None,
        })
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self
            .read_meta::<Option<LogId>>(COMMITTED)
            .map_err(read_err)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|e| e.log_id) else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        let mut encoded = Vec::with_capacity(entries.len());
        for entry in &entries {
            encoded.push((entry.log_id.index, encode_entry(entry).map_err(write_err)?));
        }
        {
            let mut tail = lock(&self.tail);
            for (entry, (_, bytes)) in entries.into_iter().zip(&encoded) {
                tail.insert(entry, bytes.len());
            }
        }
        self.bounds().last = Some(last);
        let flushed = Flushed {
            callback,
            tail: self.tail.clone(),
            last_index: last.index,
        };
        self.db.submit(WriteOp::Append {
            tables: self.tables.clone(),
            entries: encoded,
            flushed,
        })
    }

    async fn truncate_after(&mut self, last_kept: Option<LogId>) -> Result<(), io::Error> {
        let from = last_kept.as_ref().map_or(0, |id| id.index + 1);
        lock(&self.tail).retain(|index| index < from);
        let (done, wait) = oneshot::channel();
        self.db.submit(WriteOp::Truncate {
            tables: self.tables.clone(),
            from,
            done,
        })?;
        self.wait(wait).await?;
        let mut bounds = self.bounds();
        let cut = bounds
            .last
            .is_some_and(|last| last_kept.is_none_or(|kept| last.index > kept.index));
        if cut {
            bounds.last = last_kept.or(bounds.last_purged);
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        lock(&self.tail).retain(|index| index > log_id.index);
        let (done, wait) = oneshot::channel();
        self.db.submit(WriteOp::Purge {
            tables: self.tables.clone(),
            upto: log_id,
            done,
        })?;
        self.wait(wait).await?;
        let mut bounds = self.bounds();
        bounds.last_purged = Some(log_id);
        if bounds.last.is_none_or(|last| last.index < log_id.index) {
            bounds.last = Some(log_id);
        }
        Ok(())
    }
}

/// Stored entries start with a format byte: raw MessagePack, or LZ4 of it. Batched commands are
/// alike (same domain, same user agents), and a commit's fsync costs grow with its bytes.
const RAW: u8 = 0;
const LZ4: u8 = 1;
/// Entries this small are stored raw: compressing them saves no page.
const COMPRESS_FROM: usize = 1024;

fn encode_entry(entry: &Entry) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let raw = encode(entry)?;
    if raw.len() < COMPRESS_FROM {
        let mut stored = Vec::with_capacity(raw.len() + 1);
        stored.push(RAW);
        stored.extend_from_slice(&raw);
        return Ok(stored);
    }
    let mut stored = vec![LZ4];
    stored.extend_from_slice(&lz4_flex::compress_prepend_size(&raw));
    Ok(stored)
}

fn decode_entry(stored: &[u8]) -> Result<Entry, redb::Error> {
    let corrupted = |e: &dyn std::fmt::Display| redb::Error::Corrupted(format!("log entry: {e}"));
    match stored.split_first() {
        Some((&RAW, raw)) => decode(raw).map_err(|e| corrupted(&e)),
        Some((&LZ4, packed)) => {
            // Every entry came in one request body, so a larger size is damage, and unpacking
            // would reserve all of it first.
            let declared = packed
                .first_chunk()
                .map_or(0, |size| u32::from_le_bytes(*size));
            if declared as usize > MAX_BODY_BYTES {
                return Err(corrupted(&format_args!("declares {declared} bytes")));
            }
            let raw = lz4_flex::decompress_size_prepended(packed).map_err(|e| corrupted(&e))?;
            decode(&raw).map_err(|e| corrupted(&e))
        }
        _ => Err(corrupted(&"unknown format byte")),
    }
}

/// `start..=end` of a bounded range.
fn inclusive(bounds: (Bound<u64>, Bound<u64>)) -> Option<(u64, u64)> {
    let start = match bounds.0 {
        Bound::Included(s) => s,
        Bound::Excluded(s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match bounds.1 {
        Bound::Included(e) => e,
        Bound::Excluded(e) => e.checked_sub(1)?,
        Bound::Unbounded => return None,
    };
    Some((start, end))
}

#[derive(Debug, thiserror::Error)]
#[error("the raft log writer thread has stopped")]
struct WriterGone;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_err<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(format!("writing the raft log: {e}"))
}

fn read_err<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(format!("reading the raft log: {e}"))
}

#[cfg(test)]
mod tests {
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::storage::RaftLogStorageExt;
    use openraft::EntryPayload;
    use serde_bytes::ByteBuf;

    use super::*;
    use crate::types::Proposal;

    /// Even entries are large enough to be stored compressed, odd ones are stored raw.
    fn entry(term: u64, index: u64) -> Entry {
        let size = if index.is_multiple_of(2) { 4_000 } else { 100 };
        let command = ByteBuf::from(vec![index as u8; size]);
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Proposal {
                at_ms: index,
                commands: vec![command],
            }),
        }
    }

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(LeaderId { term, node_id: 0 }, index)
    }

    fn ids(entries: &[Entry]) -> Vec<LogId> {
        entries.iter().map(|e| e.log_id).collect()
    }

    #[tokio::test]
    async fn entries_no_longer_in_memory_are_read_from_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let group = GroupId::new("site:t").unwrap();
        let mut log = LogDb::open(&dir.path().join("raft.redb"))
            .unwrap()
            .group_log(&group)
            .unwrap();
        lock(&log.tail).budget = 0;
        let written: Vec<Entry> = (1..=50).map(|i| entry(1, i)).collect();
        log.blocking_append(written.clone()).await.unwrap();
        assert!(
            lock(&log.tail).entries.is_empty(),
            "flushed entries over budget leave memory"
        );

        let read = log.try_get_log_entries(1..=50).await.unwrap();
        assert_eq!(ids(&read), ids(&written));
        assert_eq!(
            format!("{:?}", read[9].payload),
            format!("{:?}", written[9].payload)
        );

        log.truncate_after(Some(log_id(1, 40))).await.unwrap();
        log.blocking_append(vec![entry(2, 41)]).await.unwrap();
        let read = log.try_get_log_entries(38..).await.unwrap();
        assert_eq!(
            ids(&read),
            ids(&[entry(1, 38), entry(1, 39), entry(1, 40), entry(2, 41)])
        );
        log.purge(log_id(1, 10)).await.unwrap();
        drop(log);

        // A new store on the same database finds the same bounds and entries (once the writer
        // thread of the first has let go of the file).
        let db = loop {
            match LogDb::open(&dir.path().join("raft.redb")) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        let mut reopened = db.group_log(&group).unwrap();
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(10));
        assert_eq!(state.last_log_id, Some(entry(2, 41).log_id));
        assert_eq!(
            reopened.try_get_log_entries(11..=41).await.unwrap().len(),
            31
        );
    }

    #[tokio::test]
    async fn the_committed_index_rides_along_with_the_next_durable_commit() {
        let dir = tempfile::tempdir().unwrap();
        let group = GroupId::new("site:t").unwrap();
        let db = LogDb::open(&dir.path().join("raft.redb")).unwrap();
        let mut log = db.group_log(&group).unwrap();
        log.blocking_append(vec![entry(1, 1), entry(1, 2)])
            .await
            .unwrap();
        for index in 1..=2 {
            let committed = Some(log_id(1, index));
            log.save_committed(committed).await.unwrap();
        }
        log.blocking_append(vec![entry(1, 3)]).await.unwrap();
        let committed = log.read_committed().await.unwrap();
        assert_eq!(
            committed.map(|c| c.index),
            Some(2),
            "the latest value, written with entry 3"
        );
    }

    #[test]
    fn stored_entries_of_an_unknown_format_are_reported_corrupt() {
        assert!(decode_entry(&[9, 1, 2]).is_err());
        assert!(decode_entry(&[]).is_err());
        assert!(decode_entry(&[LZ4, 0xff, 0xff, 0xff, 0x7f, 1]).is_err());
        let stored = encode_entry(&entry(1, 2)).unwrap();
        assert_eq!(stored[0], LZ4);
        assert!(stored.len() < 1_000, "4 kB of alike bytes compress");
    }

    /// An entry's format byte and LZ4 header come from disk: one that declares more than any
    /// entry can hold is refused before anything is reserved for it.
    #[test]
    fn a_stored_entry_declaring_more_than_an_entry_can_hold_is_refused_unpacked() {
        let error = decode_entry(&[LZ4, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap_err();
        assert!(
            error.to_string().contains("declares 4294967295 bytes"),
            "{error}"
        );
    }

    mod properties {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;

        fn stored_entry() -> impl Strategy<Value = Entry> {
            // Sizes on both sides of COMPRESS_FROM, alike bytes (compressible) or not.
            let command = prop_oneof![
                vec(any::<u8>(), 0..2048),
                (any::<u8>(), 0usize..4096).prop_map(|(b, n)| vec![b; n]),
            ];
            (any::<u64>(), any::<u64>(), any::<u64>(), vec(command, 0..4)).prop_map(
                |(term, index, at_ms, commands)| Entry {
                    log_id: log_id(term, index),
                    payload: EntryPayload::Normal(Proposal {
                        at_ms,
                        commands: commands.into_iter().map(ByteBuf::from).collect(),
                    }),
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn stored_entries_read_back_as_written(entry in stored_entry()) {
                let stored = encode_entry(&entry).unwrap();
                let read = decode_entry(&stored).unwrap();
                prop_assert_eq!(read.log_id, entry.log_id);
                prop_assert_eq!(encode(&read).unwrap(), encode(&entry).unwrap());
            }

            /// Whatever a page of the log holds, reading it is an entry or a corruption report.
            #[test]
            fn arbitrary_stored_bytes_decode_or_are_corrupt(
                format in 0u8..3,
                bytes in vec(any::<u8>(), 0..512),
            ) {
                let mut stored = vec![format];
                stored.extend(bytes);
                let _ = decode_entry(&stored);
            }

            /// A stored entry cut short or with a byte changed never panics the reader.
            #[test]
            fn damaged_stored_entries_decode_or_are_corrupt(
                entry in stored_entry(),
                at in any::<prop::sample::Index>(),
                byte in any::<u8>(),
                cut in any::<bool>(),
            ) {
                let mut stored = encode_entry(&entry).unwrap();
                let i = at.index(stored.len());
                match cut {
                    true => stored.truncate(i),
                    false => stored[i] = byte,
                }
                let _ = decode_entry(&stored);
            }
        }
    }
}
