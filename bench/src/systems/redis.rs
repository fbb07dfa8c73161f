//! Redis as a session store, the usual Spring Session shape: the record under `s:<session>` with
//! `SET … EX`, the user's sessions in a set `u:<user>`; one multiplexed connection shared by all
//! clients (commands from concurrent clients are pipelined on it). Revoking a user reads its set
//! and deletes the records and the set in one `DEL`.

use anyhow::{ensure, Context, Result};
use redis::aio::MultiplexedConnection;

use crate::dataset::{session_id, Dataset, Record, TTL_SECS};

#[derive(Clone)]
pub struct Redis {
    connection: MultiplexedConnection,
    pub data: Dataset,
}

impl Redis {
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url).context("redis url")?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .context("connect to redis")?;
        Ok(Self {
            connection,
            data: Dataset::default(),
        })
    }

    pub async fn create(&self, record: &Record) -> Result<()> {
        let id = record.session_id.to_string();
        let mut set = redis::cmd("SET");
        set.arg(format!("s:{id}"))
            .arg(record.json())
            .arg("EX")
            .arg(TTL_SECS);
        let mut add = redis::cmd("SADD");
        add.arg(format!("u:{}", record.user_id)).arg(&id);
        self.pipeline(set, add).await
    }

    pub async fn revoke_one(&self, n: u64) -> Result<()> {
        let record = self.data.session(n);
        let id = record.session_id.to_string();
        let mut del = redis::cmd("DEL");
        del.arg(format!("s:{id}"));
        let mut remove = redis::cmd("SREM");
        remove.arg(format!("u:{}", record.user_id)).arg(&id);
        self.pipeline(del, remove).await
    }

    /// A record's command and its index's, sent together; their answers are not needed.
    async fn pipeline(&self, record: redis::Cmd, index: redis::Cmd) -> Result<()> {
        redis::pipe()
            .add_command(record)
            .ignore()
            .add_command(index)
            .ignore()
            .query_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn members(&self, user: u64) -> Result<(String, Vec<String>)> {
        let set = format!("u:{}", self.data.user_id(user));
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&set)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok((set, ids))
    }

    pub async fn revoke_user(&self, user: u64) -> Result<usize> {
        let (set, ids) = self.members(user).await?;
        let mut del = redis::cmd("DEL");
        for id in &ids {
            del.arg(format!("s:{id}"));
        }
        del.arg(set);
        let deleted: usize = del.query_async(&mut self.connection.clone()).await?;
        Ok(deleted.saturating_sub(1))
    }

    pub async fn list_user(&self, user: u64) -> Result<usize> {
        let (_, ids) = self.members(user).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut get = redis::cmd("MGET");
        for id in &ids {
            get.arg(format!("s:{id}"));
        }
        let records: Vec<Option<Vec<u8>>> = get.query_async(&mut self.connection.clone()).await?;
        Ok(records.iter().flatten().count())
    }

    pub async fn list_all(&self) -> Result<usize> {
        let mut connection = self.connection.clone();
        let mut cursor: u64 = 0;
        let mut count = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("s:*")
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut connection)
                .await?;
            if !keys.is_empty() {
                let records: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await?;
                ensure!(
                    records.iter().all(|r| r.is_some()),
                    "a key without its record"
                );
                count += records.len();
            }
            if next == 0 {
                return Ok(count);
            }
            cursor = next;
        }
    }

    pub async fn exists(&self, n: u64) -> Result<bool> {
        let found: bool = redis::cmd("EXISTS")
            .arg(format!("s:{}", session_id(n)))
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(found)
    }
}
