//! The node's health checks (James's format is the api's business): each Raft group, the data
//! directory, the other sites, the TLS certificates, the site's audit chain (re-checked from
//! where the last check left it, so a check does not rehash the whole retention each time). Each check reads what the node already
//! knows; none of them writes to a group or calls another site.

use std::path::PathBuf;
use std::sync::Arc;

use sessionplane_cluster::{Group, GroupStatus};

use crate::federation::watch::{Reach, SiteReachability, PROBED_COMPONENT};
use crate::node_ops::{Check, Status};
use crate::state::directory::DirectoryState;
use crate::state::site::SiteState;
use crate::tls::listeners::NodeCertificates;

/// A replica this far behind (entries) makes its group degraded.
const LAG_LIMIT: u64 = 10_000;
/// Free space under which storage is degraded, then unhealthy.
const LOW_SPACE: u64 = 1 << 30;
const NO_SPACE: u64 = 64 << 20;
/// A certificate expiring within this time makes TLS degraded.
const EXPIRY_WARNING_SECS: i64 = 14 * 24 * 3600;

pub struct HealthChecks {
    pub site: Group<SiteState>,
    pub directory: Group<DirectoryState>,
    pub data_dir: PathBuf,
    pub other_sites: Vec<String>,
    pub reach: Arc<SiteReachability>,
    pub certificates: Arc<NodeCertificates>,
    /// The last audit event found good (its sequence and hash): where the next check goes on.
    pub audit_checked: std::sync::Mutex<Option<(u64, String)>>,
}

const DIRECTORY: &str = "Raft directory group";
const STORAGE: &str = "Storage";
const TLS: &str = "TLS certificates";
const AUDIT: &str = "Audit trail";

impl HealthChecks {
    /// Every check's name.
    pub fn components(&self) -> Vec<String> {
        let mut names = vec![PROBED_COMPONENT.to_string(), DIRECTORY.to_string()];
        names.push(STORAGE.into());
        names.extend(self.other_sites.iter().map(|s| site_component(s)));
        names.push(TLS.into());
        names.push(AUDIT.into());
        names
    }

    pub async fn check_all(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for name in self.components() {
            if let Some(check) = self.check(&name).await {
                checks.push(check);
            }
        }
        checks
    }

    /// One check by name; `None` for a name that is no check.
    pub async fn check(&self, name: &str) -> Option<Check> {
        match name {
            PROBED_COMPONENT => Some(group_check(
                name,
                self.site.status().await,
                Status::Unhealthy,
            )),
            // Logins and the site's own work go on without a directory leader: degraded.
            DIRECTORY => Some(group_check(
                name,
                self.directory.status().await,
                Status::Degraded,
            )),
            STORAGE => Some(self.storage()),
            TLS => Some(self.tls()),
            AUDIT => Some(self.audit().await),
            _ => {
                let site = self
                    .other_sites
                    .iter()
                    .find(|s| site_component(s) == name)?;
                Some(self.remote(name, site))
            }
        }
    }

    fn storage(&self) -> Check {
        let dir = self.data_dir.clone();
        let probe = dir.join(".healthcheck");
        let written = sessionplane_cluster::private_fs::file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&probe)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"ok").and_then(|_| f.sync_all()));
        if let Err(e) = written {
            return Check::new(
                STORAGE,
                Status::Unhealthy,
                Some(format!("cannot write to {}: {e}", dir.display())),
            );
        }
        let _ = std::fs::remove_file(&probe);
        match fs4::available_space(&dir) {
            Ok(free) if free < NO_SPACE => Check::new(
                STORAGE,
                Status::Unhealthy,
                Some(format!("{} MiB free in {}", free >> 20, dir.display())),
            ),
            Ok(free) if free < LOW_SPACE => Check::new(
                STORAGE,
                Status::Degraded,
                Some(format!("{} MiB free in {}", free >> 20, dir.display())),
            ),
            Ok(_) => Check::new(STORAGE, Status::Healthy, None),
            Err(e) => Check::new(
                STORAGE,
                Status::Degraded,
                Some(format!("free space unknown: {e}")),
            ),
        }
    }

    /// The site's audit chain as this node holds it: unhealthy once an event does not match
    /// its hash or its link.
    async fn audit(&self) -> Check {
        let from = self.audit_checked.lock().ok().and_then(|c| c.clone());
        let chain = self.site.state().read(|s| s.audit_chain());
        // Apart from the state and off the runtime: the first check rehashes every event kept.
        let checked = tokio::task::spawn_blocking(move || chain.verify_after(from.as_ref())).await;
        let Ok(check) = checked else {
            return Check::new(
                AUDIT,
                Status::Degraded,
                Some("the chain check stopped".into()),
            );
        };
        if let Some(bad) = check.first_bad {
            let why = check.reason.unwrap_or_default();
            return Check::new(
                AUDIT,
                Status::Unhealthy,
                Some(format!("audit event {bad} fails verification: {why}")),
            );
        }
        if let (Ok(mut cached), Some(last)) = (self.audit_checked.lock(), check.last) {
            *cached = Some(last);
        }
        Check::new(AUDIT, Status::Healthy, None)
    }

    fn remote(&self, name: &str, site: &str) -> Check {
        match self.reach.get(site) {
            Reach::Up => Check::new(name, Status::Healthy, None),
            Reach::Unknown => Check::new(
                name,
                Status::Degraded,
                Some(format!("site {site} not probed yet")),
            ),
            Reach::Ailing(why) => Check::new(
                name,
                Status::Degraded,
                Some(format!(
                    "site {site} answers, but its site group is unhealthy: {why}"
                )),
            ),
            Reach::Down(why) => Check::new(
                name,
                Status::Degraded,
                Some(format!("site {site} cannot be reached: {why}")),
            ),
        }
    }

    fn tls(&self) -> Check {
        let now = (sessionplane_cluster::now_ms() / 1000) as i64;
        let mut expired = Vec::new();
        let mut expiring = Vec::new();
        for (listener, not_after) in self.certificates.expiries() {
            if not_after <= now {
                expired.push(listener);
            } else if not_after - now <= EXPIRY_WARNING_SECS {
                expiring.push(format!("{listener} in {} days", (not_after - now) / 86_400));
            }
        }
        if !expired.is_empty() {
            return Check::new(
                TLS,
                Status::Unhealthy,
                Some(format!("expired: {}", expired.join(", "))),
            );
        }
        match expiring.is_empty() {
            true => Check::new(TLS, Status::Healthy, None),
            false => Check::new(
                TLS,
                Status::Degraded,
                Some(format!("expiring: {}", expiring.join(", "))),
            ),
        }
    }
}

fn site_component(site: &str) -> String {
    format!("Site {site}")
}

/// A group is healthy with a leader and its replicas close behind; without a leader it is
/// `leaderless` (unhealthy for the site group, degraded for the directory).
fn group_check(name: &str, status: GroupStatus, leaderless: Status) -> Check {
    let Some(leader) = status.leader else {
        return Check::new(
            name,
            leaderless,
            Some(format!(
                "group {} has no leader this node knows of (term {})",
                status.group, status.term
            )),
        );
    };
    let last = status.last_log_index.unwrap_or(0);
    let applied = status.last_applied_index.unwrap_or(0);
    if last.saturating_sub(applied) > LAG_LIMIT {
        return Check::new(
            name,
            Status::Degraded,
            Some(format!("this node has applied {applied} of {last} entries")),
        );
    }
    let lagging: Vec<String> = status
        .replication
        .iter()
        .flatten()
        .filter(|(id, matched)| {
            **id != status.node_id && matched.is_none_or(|m| last.saturating_sub(m) > LAG_LIMIT)
        })
        .map(|(id, matched)| match matched {
            Some(m) => format!("node {id} at {m} of {last}"),
            None => format!("node {id} not replicating"),
        })
        .collect();
    match lagging.is_empty() {
        true => Check::new(name, Status::Healthy, None),
        false => Check::new(
            name,
            Status::Degraded,
            Some(format!("leader {leader}: {}", lagging.join(", "))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionplane_cluster::GroupId;

    fn status(leader: Option<u64>, replication: Option<Vec<(u64, Option<u64>)>>) -> GroupStatus {
        GroupStatus {
            group: GroupId::new("site:x").unwrap(),
            node_id: 1,
            initialized: true,
            role: "leader".into(),
            leader,
            term: 3,
            last_log_index: Some(50_000),
            last_applied_index: Some(50_000),
            snapshot_index: None,
            purged_index: None,
            voters: vec![1, 2, 3],
            members: Default::default(),
            replication: replication.map(|r| r.into_iter().collect()),
            last_contact_ms: None,
        }
    }

    #[test]
    fn groups_are_judged_by_leader_and_lag() {
        let no_leader = group_check("g", status(None, None), Status::Unhealthy);
        assert_eq!(no_leader.status, Status::Unhealthy);
        assert!(no_leader.cause.unwrap().contains("no leader"));
        assert_eq!(
            group_check("g", status(None, None), Status::Degraded).status,
            Status::Degraded
        );
        let fine = status(
            Some(1),
            Some(vec![
                (1, Some(50_000)),
                (2, Some(49_990)),
                (3, Some(45_000)),
            ]),
        );
        assert_eq!(
            group_check("g", fine, Status::Unhealthy).status,
            Status::Healthy
        );
        let behind = status(
            Some(1),
            Some(vec![(1, Some(50_000)), (2, Some(100)), (3, None)]),
        );
        let check = group_check("g", behind, Status::Unhealthy);
        assert_eq!(check.status, Status::Degraded);
        let cause = check.cause.unwrap();
        assert!(
            cause.contains("node 2 at 100") && cause.contains("node 3 not replicating"),
            "{cause}"
        );
    }
}
