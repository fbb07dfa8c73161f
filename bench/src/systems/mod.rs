//! The three systems behind one set of operations, each in the shape its users give it.

pub mod etcd;
pub mod redis;
pub mod sessionplane;

use anyhow::Result;

use crate::dataset::Dataset;

#[derive(Clone)]
pub enum System {
    Sessionplane(sessionplane::Sessionplane),
    Etcd(Box<etcd::Etcd>),
    Redis(redis::Redis),
}

impl System {
    pub fn data(&self) -> &Dataset {
        match self {
            System::Sessionplane(s) => &s.data,
            System::Etcd(s) => &s.data,
            System::Redis(s) => &s.data,
        }
    }

    /// Stores session `n` (of the shared data set) with its TTL and the per-user index.
    pub async fn create(&self, n: u64) -> Result<()> {
        let record = self.data().session(n);
        match self {
            System::Sessionplane(s) => s.create(n, &record).await,
            System::Etcd(s) => s.create(n, &record).await,
            System::Redis(s) => s.create(&record).await,
        }
    }

    pub async fn revoke_one(&self, n: u64) -> Result<()> {
        match self {
            System::Sessionplane(s) => s.revoke_one(n).await,
            System::Etcd(s) => s.revoke_one(n).await,
            System::Redis(s) => s.revoke_one(n).await,
        }
    }

    /// Revokes every session of `user`; returns how many there were.
    pub async fn revoke_user(&self, user: u64) -> Result<usize> {
        match self {
            System::Sessionplane(s) => s.revoke_user(user).await,
            System::Etcd(s) => s.revoke_user(user).await,
            System::Redis(s) => s.revoke_user(user).await,
        }
    }

    /// Reads every session record of `user`; returns how many.
    pub async fn list_user(&self, user: u64) -> Result<usize> {
        match self {
            System::Sessionplane(s) => s.list_user(user).await,
            System::Etcd(s) => s.list_user(user).await,
            System::Redis(s) => s.list_user(user).await,
        }
    }

    /// Reads every session record; returns how many.
    pub async fn list_all(&self) -> Result<usize> {
        match self {
            System::Sessionplane(s) => s.list_all().await,
            System::Etcd(s) => s.list_all().await,
            System::Redis(s) => s.list_all().await,
        }
    }

    pub async fn exists(&self, n: u64) -> Result<bool> {
        match self {
            System::Sessionplane(s) => s.exists(n).await,
            System::Etcd(s) => s.exists(n).await,
            System::Redis(s) => s.exists(n).await,
        }
    }
}
