//! The site's audit trail: the hash chain of the events recorded at this site, in log order.
//!
//! An event comes with the change it records (`SiteCommand::Audited`: the inner command is
//! applied, then the event is recorded with the outcome the inner reply gives, in the same
//! entry), alone when there is no change (`SiteCommand::RecordAudit`: a refused call, a failed
//! login), or copied from the directory's audit outbox (`SiteCommand::CopyDirectoryAudit`: a
//! change to users, groups or domains, recorded in the directory entry that made it). An event
//! that cannot be recorded refuses its change: fail closed.
//!
//! The proposing node decides everything the hash covers but the link (event id, time, actor,
//! …); apply links the event after the chain's head, so every replica computes the same hash.
//! Retention purges the oldest events in batches; the `prev_hash` of the first event kept is
//! the chain's anchor, from which [`SiteState::verify_audit`] re-checks every event kept.
//!
//! Owns the audit maps of [`SiteState`]; reads the sessions only to name the domain of a
//! session an event's change ends.

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use super::{SiteCommand, SiteReply, SiteState};
use crate::model::audit::{Actor, AuditEvent, NewAuditEvent, Outcome, GENESIS_HASH};

/// Where a listing of events starts: the events strictly older than this one (in the order
/// (time, event id), newest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditCursor {
    pub time_ms: u64,
    pub event_id: Uuid,
}

impl std::fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.time_ms, self.event_id)
    }
}

impl std::str::FromStr for AuditCursor {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("page_token {raw:?} is not a token this listing gave");
        let (time, id) = raw.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            time_ms: time.parse().map_err(|_| bad())?,
            event_id: Uuid::try_parse(id).map_err(|_| bad())?,
        })
    }
}

/// Which events a listing wants.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// `login@domain`, a user id, a service's sub, or who a federated call was made for.
    pub actor: Option<String>,
    /// An exact action, or a prefix ending in `.*` (`user.*`).
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<Outcome>,
    /// Only events whose actor or target lies in this domain (a domain administrator's view).
    pub domain: Option<String>,
    pub after: Option<AuditCursor>,
}

impl AuditFilter {
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.since_ms.is_none_or(|t| event.time_ms >= t)
            && self.until_ms.is_none_or(|t| event.time_ms <= t)
            && self
                .actor
                .as_deref()
                .is_none_or(|a| actor_is(&event.actor, a))
            && self
                .action
                .as_deref()
                .is_none_or(|a| action_is(&event.action, a))
            && self.target.as_deref().is_none_or(|t| event.target == t)
            && self.outcome.is_none_or(|o| event.outcome == o)
            && self.domain.as_deref().is_none_or(|d| in_domain(event, d))
    }
}

fn actor_is(actor: &Actor, wanted: &str) -> bool {
    match actor {
        Actor::User {
            user_id,
            login,
            domain,
            ..
        } => {
            user_id.to_string() == wanted
                || format!("{login}@{domain}").eq_ignore_ascii_case(wanted)
        }
        Actor::Service { sub } => sub == wanted || format!("service:{sub}") == wanted,
        Actor::Federated { on_behalf_of, .. } => on_behalf_of.eq_ignore_ascii_case(wanted),
        Actor::None => false,
    }
}

pub(super) fn action_is(action: &str, wanted: &str) -> bool {
    match wanted.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => action == wanted,
    }
}

/// Whether an event concerns `domain`: its actor is a user of it, or its target is the domain
/// or one of its addresses, or its details name it.
pub fn in_domain(event: &AuditEvent, domain: &str) -> bool {
    let of = |address: &str| {
        address.eq_ignore_ascii_case(domain)
            || address
                .rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
    };
    let actor =
        matches!(&event.actor, Actor::User { domain: d, .. } if d.eq_ignore_ascii_case(domain));
    let detail = event.details.get("domain").and_then(Value::as_str);
    actor || of(&event.target) || detail.is_some_and(of)
}

/// What re-checking the chain found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainCheck {
    /// The events checked.
    pub events: u64,
    /// The first event whose content or link does not match its hash.
    pub first_bad: Option<Uuid>,
    pub reason: Option<String>,
    /// The last good event checked (its sequence and hash): where a later check may go on.
    pub last: Option<(u64, String)>,
}

impl ChainCheck {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

impl SiteState {
    /// Applies `command`, then records `event` with the outcome its reply gives, in this one
    /// entry; an event that cannot be recorded refuses the command (which is then not applied).
    pub(super) fn audited(
        &mut self,
        entry: sessionplane_cluster::Applying,
        event: NewAuditEvent,
        command: SiteCommand,
    ) -> SiteReply {
        if let Err(e) = event.check() {
            return SiteReply::Invalid(format!("refused: its audit event cannot be recorded: {e}"));
        }
        let subject_domain = self.subject_domain(&command);
        let bans_only = matches!(command, SiteCommand::ReserveLoginAttempt { .. });
        let reply = self.execute(entry, command);
        let Some(outcome) = judge(&reply, bans_only) else {
            return reply;
        };
        let mut event = event.with_outcome(outcome);
        add_result(&mut event, &reply);
        if let Some(domain) = subject_domain {
            event.set_detail("domain", Value::String(domain));
        }
        self.record_audit(event);
        reply
    }

    /// Records an event with no change of its own.
    pub(super) fn record_alone(&mut self, event: NewAuditEvent) -> SiteReply {
        if let Err(e) = event.check() {
            return SiteReply::Invalid(format!("the audit event cannot be recorded: {e}"));
        }
        SiteReply::AuditRecorded(self.record_audit(event))
    }

    /// Records an event of the directory's outbox (`seq` and before are done: copying one
    /// twice, or out of order, does nothing).
    pub(super) fn copy_directory_audit(&mut self, seq: u64, event: NewAuditEvent) -> SiteReply {
        if seq <= self.directory_audit_done {
            return SiteReply::AuditRecorded(self.audit_next_seq);
        }
        self.directory_audit_done = seq;
        self.record_alone(event)
    }

    /// Links `event` after the head; its sequence.
    fn record_audit(&mut self, event: NewAuditEvent) -> u64 {
        let head = self.audit_head().to_string();
        let event = event.chained(&head);
        self.audit_next_seq += 1;
        let seq = self.audit_next_seq;
        self.audit_by_time
            .insert((event.time_ms, event.event_id, seq));
        self.audit_head = Some(event.hash.clone());
        if self.audit.is_empty() {
            self.audit_anchor = Some(head);
        }
        self.audit.insert(seq, Arc::new(event));
        self.feed_audit(seq);
        seq
    }

    /// Forgets at most `limit` events older than `keep_ms` at `at_ms`, oldest first; the
    /// anchor becomes the `prev_hash` of the first event kept.
    pub(super) fn purge_audit(&mut self, at_ms: u64, keep_ms: u64, limit: u32) -> SiteReply {
        let before = at_ms.saturating_sub(keep_ms);
        let mut purged = 0;
        while purged < limit {
            let Some((seq, event)) = self.audit.get_min().map(|(s, e)| (*s, e.clone())) else {
                break;
            };
            if event.time_ms >= before {
                break;
            }
            self.audit.remove(&seq);
            self.audit_by_time
                .remove(&(event.time_ms, event.event_id, seq));
            self.audit_anchor = Some(event.hash.clone());
            purged += 1;
        }
        SiteReply::AuditPurged(purged)
    }

    /// Whether some event is older than `keep_ms` at `now_ms`.
    pub fn has_expired_audit(&self, now_ms: u64, keep_ms: u64) -> bool {
        self.audit
            .get_min()
            .is_some_and(|(_, e)| e.time_ms < now_ms.saturating_sub(keep_ms))
    }

    /// The hash the next event links to.
    pub fn audit_head(&self) -> &str {
        self.audit_head.as_deref().unwrap_or(GENESIS_HASH)
    }

    /// The last directory audit outbox event copied into this site's chain.
    pub fn directory_audit_done(&self) -> u64 {
        self.directory_audit_done
    }

    pub fn audit_len(&self) -> usize {
        self.audit.len()
    }

    /// At most `limit` events matching `filter`, newest first (by time, then event id).
    pub fn audit_events(&self, filter: &AuditFilter, limit: usize) -> Vec<Arc<AuditEvent>> {
        let upper = filter.after.map(|c| (c.time_ms, c.event_id, 0)).unwrap_or((
            u64::MAX,
            Uuid::max(),
            u64::MAX,
        ));
        self.audit_by_time
            .range(..upper)
            .rev()
            .filter_map(|(_, _, seq)| self.audit.get(seq))
            .filter(|e| filter.matches(e))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Re-checks every event kept: its hash against its content, its link against the event
    /// before it (the anchor for the first), and the head against the last.
    pub fn verify_audit(&self) -> ChainCheck {
        self.audit_chain().verify_after(None)
    }

    /// As [`Self::verify_audit`], but going on after `from` (the `last` of an earlier check)
    /// when that event is still kept; from the anchor otherwise.
    pub fn verify_audit_after(&self, from: Option<&(u64, String)>) -> ChainCheck {
        self.audit_chain().verify_after(from)
    }

    /// A copy of the chain (cheap: the map is persistent), to check without holding the state.
    pub fn audit_chain(&self) -> AuditChain {
        AuditChain {
            events: self.audit.clone(),
            anchor: self.audit_anchor.clone(),
            head: self.audit_head.clone(),
        }
    }

    /// The domain of the session a command ends, named in its event (so that the event shows
    /// in that domain's trail).
    fn subject_domain(&self, command: &SiteCommand) -> Option<String> {
        match command {
            SiteCommand::DeleteSession { session_id, .. } => {
                self.sessions.get(session_id).map(|s| s.domain.to_string())
            }
            _ => None,
        }
    }

    /// Restores the chain from a snapshot's events, in sequence order.
    pub(super) fn restore_audit(&mut self, parts: AuditParts) {
        for (seq, event) in parts.events {
            self.audit_by_time
                .insert((event.time_ms, event.event_id, seq));
            self.audit.insert(seq, Arc::new(event));
        }
        self.audit_next_seq = parts.next_seq;
        self.audit_head = parts.head;
        self.audit_anchor = parts.anchor;
        self.directory_audit_done = parts.directory_done;
    }
}

/// A site's chain as it stood when copied: what a check walks, apart from the live state.
#[derive(Clone, Debug, Default)]
pub struct AuditChain {
    events: imbl::OrdMap<u64, Arc<AuditEvent>>,
    anchor: Option<String>,
    head: Option<String>,
}

impl AuditChain {
    /// Re-checks every event after `from` (the `last` of an earlier check) when that event is
    /// still kept, from the anchor otherwise: each hash against its content, each link against
    /// the event before it, and the head against the last.
    pub fn verify_after(&self, from: Option<&(u64, String)>) -> ChainCheck {
        let anchor = self.anchor.as_deref().unwrap_or(GENESIS_HASH);
        let resume =
            from.filter(|(seq, hash)| self.events.get(seq).is_some_and(|e| &e.hash == hash));
        let (start, mut expected) = match resume {
            Some((seq, hash)) => (seq.saturating_add(1), hash.clone()),
            None => (0, anchor.to_string()),
        };
        let mut check = ChainCheck {
            last: resume.cloned(),
            ..ChainCheck::default()
        };
        for (seq, event) in self.events.range(start..) {
            check.events += 1;
            let fault = if event.prev_hash != expected {
                Some("its prev_hash is not the hash of the event before it")
            } else if event.computed_hash() != event.hash {
                Some("its content does not match its hash")
            } else {
                None
            };
            if let Some(why) = fault {
                check.first_bad = Some(event.event_id);
                check.reason = Some(why.to_string());
                return check;
            }
            expected = event.hash.clone();
            check.last = Some((*seq, event.hash.clone()));
        }
        if let (Some((_, last)), Some(head)) = (&check.last, &self.head) {
            if last != head {
                check.first_bad = self.events.get_max().map(|(_, e)| e.event_id);
                check.reason = Some("the chain's head is not the last event's hash".into());
            }
        }
        check
    }
}

/// The chain as a snapshot holds it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AuditParts {
    pub events: Vec<(u64, AuditEvent)>,
    pub next_seq: u64,
    pub head: Option<String>,
    pub anchor: Option<String>,
    pub directory_done: u64,
}

/// The outcome an event takes from the reply of its change; `None`: nothing to record (an
/// event attached to a login reservation records only a ban).
fn judge(reply: &SiteReply, bans_only: bool) -> Option<Outcome> {
    match reply {
        SiteReply::LoginBanned(_) => Some(Outcome::Refused),
        _ if bans_only => None,
        SiteReply::Invalid(_) | SiteReply::NotFound => Some(Outcome::Failed),
        SiteReply::CallerSessionEnded | SiteReply::OutsideDomain(_) => Some(Outcome::Refused),
        _ => Some(Outcome::Ok),
    }
}

/// What the change did, in the event's details.
fn add_result(event: &mut NewAuditEvent, reply: &SiteReply) {
    let (key, value) = match reply {
        SiteReply::Deleted(ids) => ("sessions_ended", Value::from(ids.len())),
        SiteReply::ChannelsClosed(n) => ("channels_closed", Value::from(*n)),
        SiteReply::Task(task) => ("task_id", Value::from(task.task_id.to_string())),
        SiteReply::NotFound => ("error", Value::from("not found")),
        SiteReply::Invalid(why) => ("error", Value::from(why.as_str())),
        SiteReply::CallerSessionEnded => ("error", Value::from("the caller's session had ended")),
        SiteReply::OutsideDomain(d) => (
            "error",
            Value::from(format!("outside the caller's domain: {d}")),
        ),
        SiteReply::LoginBanned(f) => ("failures", Value::from(f.count)),
        _ => return,
    };
    event.set_detail(key, value);
}
