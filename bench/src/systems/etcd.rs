//! etcd as a session store, the way its users build one: a lease per session (its TTL), the
//! record under `/s/<session>` and an index key `/u/<user>/<session>`, both on the lease, put in
//! one transaction. Revoking a session revokes its lease (both keys go); revoking a user ranges
//! over its index prefix and revokes every lease found, concurrently.

use anyhow::{ensure, Context, Result};
use etcd_client::{Client, GetOptions, LeaseGrantOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use crate::dataset::{session_id, Dataset, Record, TTL_SECS};

/// Keys per page of a full listing (gRPC answers are capped at 4 MiB by default).
const PAGE: i64 = 5_000;

#[derive(Clone)]
pub struct Etcd {
    client: Client,
    /// Revoke a user's leases one after the other instead of all at once.
    sequential: bool,
    pub data: Dataset,
}

fn lease_of(n: u64) -> i64 {
    n as i64 + 1
}

impl Etcd {
    pub async fn connect(endpoints: &[String], sequential: bool) -> Result<Self> {
        let client = Client::connect(endpoints, None)
            .await
            .context("connect to etcd")?;
        Ok(Self {
            client,
            sequential,
            data: Dataset::default(),
        })
    }

    pub async fn create(&self, n: u64, record: &Record) -> Result<()> {
        let mut client = self.client.clone();
        let lease = lease_of(n);
        client
            .lease_grant(
                TTL_SECS as i64,
                Some(LeaseGrantOptions::new().with_id(lease)),
            )
            .await?;
        let on_lease = || Some(PutOptions::new().with_lease(lease));
        let txn = Txn::new().and_then(vec![
            TxnOp::put(
                format!("/s/{}", record.session_id),
                record.json(),
                on_lease(),
            ),
            TxnOp::put(
                format!("/u/{}/{}", record.user_id, record.session_id),
                "",
                on_lease(),
            ),
        ]);
        client.txn(txn).await?;
        Ok(())
    }

    pub async fn revoke_one(&self, n: u64) -> Result<()> {
        self.client.clone().lease_revoke(lease_of(n)).await?;
        Ok(())
    }

    pub async fn revoke_user(&self, user: u64) -> Result<usize> {
        let mut client = self.client.clone();
        let prefix = format!("/u/{}/", self.data.user_id(user));
        let found = client
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        if self.sequential {
            for kv in found.kvs() {
                client.lease_revoke(kv.lease()).await?;
            }
            return Ok(found.kvs().len());
        }
        let revokes = found.kvs().iter().map(|kv| {
            let mut client = self.client.clone();
            let lease = kv.lease();
            async move { client.lease_revoke(lease).await }
        });
        let done = futures_util::future::join_all(revokes).await;
        for result in &done {
            result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(done.len())
    }

    pub async fn list_user(&self, user: u64) -> Result<usize> {
        let mut client = self.client.clone();
        let prefix = format!("/u/{}/", self.data.user_id(user));
        let index = client
            .get(
                prefix.clone(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        let gets: Vec<TxnOp> = index
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = kv.key_str().ok()?;
                Some(TxnOp::get(format!("/s/{}", &key[prefix.len()..]), None))
            })
            .collect();
        let records = client.txn(Txn::new().and_then(gets)).await?;
        let mut count = 0;
        for response in records.op_responses() {
            if let TxnOpResponse::Get(get) = response {
                count += get.kvs().len();
            }
        }
        Ok(count)
    }

    pub async fn list_all(&self) -> Result<usize> {
        let mut client = self.client.clone();
        let end = b"/s0".to_vec();
        let mut from = b"/s/".to_vec();
        let mut count = 0;
        loop {
            let page = client
                .get(
                    from.clone(),
                    Some(GetOptions::new().with_range(end.clone()).with_limit(PAGE)),
                )
                .await?;
            let kvs = page.kvs();
            count += kvs.len();
            let Some(last) = kvs.last() else { break };
            ensure!(!last.value().is_empty(), "a session without its record");
            if !page.more() {
                break;
            }
            from = last.key().to_vec();
            from.push(0);
        }
        Ok(count)
    }

    /// Whether session `n` is stored (for the checks after a revocation).
    pub async fn exists(&self, n: u64) -> Result<bool> {
        let found = self
            .client
            .clone()
            .get(format!("/s/{}", session_id(n)), None)
            .await?;
        Ok(!found.kvs().is_empty())
    }
}
