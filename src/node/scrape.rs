//! What `/metrics` reads from the node's state at each scrape: the site's sessions,
//! websocket connections and channels, and each Raft group's term, role, log positions and
//! replication lag. Reads only; a scrape never writes to a group.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use sessionplane_cluster::{now_ms, Group, GroupStatus};

use crate::state::directory::DirectoryState;
use crate::state::site::SiteState;

pub struct StateCollector {
    pub site_name: String,
    pub site: Group<SiteState>,
    pub directory: Group<DirectoryState>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCollector")
    }
}

type Labels = Vec<(&'static str, String)>;

/// One family read at the scrape: its name, help and type, and a metric per label set.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    rows: Vec<(Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in rows {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge family: a value per label set.
fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, i64)>,
) -> Result<(), std::fmt::Error> {
    let rows = rows
        .into_iter()
        .map(|(l, v)| (l, ConstGauge::new(v)))
        .collect();
    family(encoder, name, help, MetricType::Gauge, rows)
}

/// One counter family (its name without `_total`): a value per label set.
fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let rows = rows
        .into_iter()
        .map(|(l, v)| (l, ConstCounter::new(v)))
        .collect();
    family(encoder, name, help, MetricType::Counter, rows)
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl StateCollector {
    fn groups(&self) -> Vec<(String, GroupStatus)> {
        vec![
            (self.site.id().to_string(), self.site.status_now()),
            (self.directory.id().to_string(), self.directory.status_now()),
        ]
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let site = || vec![("site", self.site_name.clone())];
        let (sessions, connections, channels, locks) = self.site.state().read(|s| {
            let mut by_protocol = std::collections::BTreeMap::<String, i64>::new();
            for channel in s.channels().values() {
                *by_protocol
                    .entry(format!("{:?}", channel.protocol))
                    .or_default() += 1;
            }
            let now = now_ms();
            let locks = s.locks_in_force(now);
            (s.live_count(now), s.connection_count(), by_protocol, locks)
        });
        gauges(
            &mut encoder,
            "locks_in_force",
            "Locks in force at this site",
            vec![(site(), clamp(locks as u64))],
        )?;
        gauges(
            &mut encoder,
            "sessions",
            "Live sessions of this site",
            vec![(site(), clamp(sessions))],
        )?;
        gauges(
            &mut encoder,
            "websocket_connections",
            "Websocket connections registered at this site",
            vec![(site(), clamp(connections as u64))],
        )?;
        let channel_rows = channels
            .into_iter()
            .map(|(protocol, n)| {
                let mut labels = site();
                labels.push(("protocol", protocol.to_uppercase()));
                (labels, n)
            })
            .collect();
        gauges(
            &mut encoder,
            "channels",
            "Mail channels (IMAP, SMTP, JMAP) of this site",
            channel_rows,
        )?;

        let groups = self.groups();
        let per_group = |value: &dyn Fn(&GroupStatus) -> i64| -> Vec<(Labels, i64)> {
            groups
                .iter()
                .map(|(group, m)| (vec![("group", group.clone())], value(m)))
                .collect()
        };
        gauges(
            &mut encoder,
            "raft_term",
            "Current term, per group",
            per_group(&|m| clamp(m.term)),
        )?;
        gauges(
            &mut encoder,
            "raft_leader",
            "The leader's node id as this node knows it (-1: none), per group",
            per_group(&|m| m.leader.map_or(-1, clamp)),
        )?;
        gauges(
            &mut encoder,
            "raft_is_leader",
            "1 when this node leads the group",
            per_group(&|m| i64::from(m.leader == Some(m.node_id))),
        )?;
        gauges(
            &mut encoder,
            "raft_last_log_index",
            "Last entry in this node's log, per group",
            per_group(&|m| m.last_log_index.map_or(0, clamp)),
        )?;
        gauges(
            &mut encoder,
            "raft_last_applied_index",
            "Last entry applied by this node, per group",
            per_group(&|m| m.last_applied_index.map_or(0, clamp)),
        )?;
        let lag = groups
            .iter()
            .flat_map(|(group, m)| {
                let last = m.last_log_index.unwrap_or(0);
                let me = m.node_id;
                m.replication
                    .iter()
                    .flatten()
                    .filter(move |(id, _)| **id != me)
                    .map(move |(id, matched)| {
                        let behind = last.saturating_sub(matched.unwrap_or(0));
                        (
                            vec![("group", group.clone()), ("follower", id.to_string())],
                            clamp(behind),
                        )
                    })
            })
            .collect();
        gauges(
            &mut encoder,
            "raft_replication_lag",
            "Leader only: entries each follower is behind, per group",
            lag,
        )?;
        let reads = self.site.read_counts();
        let group = || vec![("group", self.site.id().to_string())];
        counters(
            &mut encoder,
            "leased_reads",
            "Token checks this node answered from its own copy of the site, under its read lease",
            vec![(group(), reads.leased)],
        )?;
        counters(
            &mut encoder,
            "read_barriers",
            "Read barriers of the site group this node completed (the lease's renewals, token \
             checks without a lease, listings)",
            vec![(group(), reads.barriers)],
        )?;
        Ok(())
    }
}
