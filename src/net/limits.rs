//! One listener's connection caps: at most `max` connections at once, at most `per_source` of
//! them from one address (an IPv6 client counts by its /64, which one host usually holds
//! whole). A connection holds a `Permit` for its whole life, upgrades included; dropping it
//! frees the place. A connection over a cap gets no permit and is closed at once by its
//! listener; refusals are logged at debug, and at most once per `WARN_EVERY` as a warning with
//! their count, so that a flood does not flood the log too.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const WARN_EVERY: Duration = Duration::from_secs(10);

/// A listener's caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub max: usize,
    pub per_source: usize,
}

#[derive(Clone)]
pub struct ConnectionLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    listener: &'static str,
    caps: Caps,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    open: usize,
    by_source: HashMap<IpAddr, usize>,
    refused_since_warning: u64,
    warned_at: Option<Instant>,
}

/// A connection's place in its listener; freed on drop.
pub struct Permit {
    inner: Arc<Inner>,
    source: IpAddr,
}

impl ConnectionLimiter {
    pub fn new(listener: &'static str, caps: Caps) -> Self {
        Self {
            inner: Arc::new(Inner {
                listener,
                caps,
                state: Mutex::default(),
            }),
        }
    }

    /// A place for a connection from `remote`, or `None` when a cap is reached.
    pub fn try_acquire(&self, remote: IpAddr) -> Option<Permit> {
        let source = source_of(remote);
        let mut state = self.inner.lock();
        let from_source = state.by_source.get(&source).copied().unwrap_or(0);
        let refusal = match () {
            _ if state.open >= self.inner.caps.max => Some("listener full"),
            _ if from_source >= self.inner.caps.per_source => Some("too many from this address"),
            _ => None,
        };
        if let Some(reason) = refusal {
            self.inner.refused(&mut state, remote, reason);
            return None;
        }
        state.open += 1;
        state.by_source.insert(source, from_source + 1);
        Some(Permit {
            inner: self.inner.clone(),
            source,
        })
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refused(&self, state: &mut State, remote: IpAddr, reason: &str) {
        tracing::debug!(listener = self.listener, %remote, reason, "connection refused");
        state.refused_since_warning += 1;
        let now = Instant::now();
        let due = match state.warned_at {
            Some(at) => now.duration_since(at) >= WARN_EVERY,
            None => true,
        };
        if due {
            tracing::warn!(
                listener = self.listener,
                refused = state.refused_since_warning,
                last = %remote,
                reason,
                max = self.caps.max,
                per_source = self.caps.per_source,
                "connections refused over the listener's caps"
            );
            state.refused_since_warning = 0;
            state.warned_at = Some(now);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.open = state.open.saturating_sub(1);
        if let Some(count) = state.by_source.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.by_source.remove(&self.source);
            }
        }
    }
}

/// The address a connection counts against: IPv4 (mapped or not) as is, IPv6 by its /64.
fn source_of(remote: IpAddr) -> IpAddr {
    match remote.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_source_and_in_all_and_free_on_drop() {
        let limiter = ConnectionLimiter::new(
            "test",
            Caps {
                max: 3,
                per_source: 2,
            },
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limiter.try_acquire(a).unwrap();
        let _second = limiter.try_acquire(a).unwrap();
        assert!(limiter.try_acquire(a).is_none(), "per source");
        let _third = limiter.try_acquire(b).unwrap();
        assert!(limiter.try_acquire(b).is_none(), "in all");
        drop(first);
        assert!(limiter.try_acquire(a).is_some());
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64() {
        let limiter = ConnectionLimiter::new(
            "test",
            Caps {
                max: 10,
                per_source: 1,
            },
        );
        let _one = limiter.try_acquire("2001:db8::1".parse().unwrap()).unwrap();
        assert!(limiter
            .try_acquire("2001:db8::2".parse().unwrap())
            .is_none());
        assert!(limiter
            .try_acquire("2001:db8:0:1::2".parse().unwrap())
            .is_some());
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        let _v4 = limiter.try_acquire(mapped).unwrap();
        assert!(limiter.try_acquire("192.0.2.9".parse().unwrap()).is_none());
    }
}
