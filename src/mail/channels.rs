//! The channels this node holds: what an applied disconnect closes here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::state::site::SiteEffects;

/// A channel's order to end; `done` is dropped once the channel has closed (see
/// [`crate::mail::ChannelHandle`]), which tells whoever waits for it.
#[derive(Debug)]
pub struct Disconnect {
    pub done: Option<mpsc::Sender<()>>,
}

#[derive(Default)]
pub struct LocalChannels {
    held: Mutex<HashMap<Uuid, mpsc::Sender<Disconnect>>>,
    sequence: AtomicU64,
}

impl LocalChannels {
    /// The next channel sequence number of this start (the `S` of the channel's pid).
    pub fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Holds a channel; the receiver hears once when it must end.
    pub fn hold(&self, channel_id: Uuid) -> mpsc::Receiver<Disconnect> {
        let (closer, closed) = mpsc::channel(1);
        self.lock().insert(channel_id, closer);
        closed
    }

    /// Forgets a channel; whether it was still held (not disconnected meanwhile).
    pub fn release(&self, channel_id: Uuid) -> bool {
        self.lock().remove(&channel_id).is_some()
    }

    pub fn holds(&self, channel_id: Uuid) -> bool {
        self.lock().contains_key(&channel_id)
    }

    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Tells each held channel among `channels` to end.
    pub fn disconnect(&self, channels: &[Uuid]) {
        self.disconnect_reporting(channels, None);
    }

    /// Tells each held channel among `channels` to end, each handed a clone of `done` to drop
    /// once it has closed; how many this node held.
    pub fn disconnect_reporting(&self, channels: &[Uuid], done: Option<&mpsc::Sender<()>>) -> u64 {
        let mut held = self.lock();
        let mut count = 0;
        for id in channels {
            if let Some(closer) = held.remove(id) {
                count += 1;
                let _ = closer.try_send(Disconnect {
                    done: done.cloned(),
                });
            }
        }
        count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, mpsc::Sender<Disconnect>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SiteEffects for LocalChannels {
    fn channels_disconnected(&self, channels: &[Uuid]) {
        self.disconnect(channels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disconnect_reaches_held_channels_once() {
        let channels = LocalChannels::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut closed_a = channels.hold(a);
        let mut closed_b = channels.hold(b);
        channels.channels_disconnected(&[a, Uuid::now_v7()]);
        assert!(closed_a.try_recv().is_ok());
        assert!(closed_b.try_recv().is_err());
        assert!(
            !channels.release(a),
            "a disconnected channel is no longer held"
        );
        assert!(channels.release(b));
        assert_eq!(channels.count(), 0);
    }
}
