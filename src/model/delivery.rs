//! Where the delivery of a site's feed to one receiver (a webhook, a Shared Signals receiver)
//! stands: the last event delivered, and how the attempts since went. Kept in the site's group,
//! so that whichever node leads the site next goes on from there.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The kinds of receivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SinkKind {
    Webhook,
    Signals,
}

impl SinkKind {
    /// The `type` of its task in `/tasks`.
    pub fn task_type(self) -> &'static str {
        match self {
            Self::Webhook => "webhook-delivery",
            Self::Signals => "signals-delivery",
        }
    }
}

/// A receiver's name as its delivery is kept: its kind and the name it has in the config.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SinkName {
    pub kind: SinkKind,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its id in `/tasks`, chosen when the delivery was first recorded.
    pub delivery_id: Uuid,
    pub sink: SinkName,
    /// The last feed sequence delivered (or passed over as not wanted by the receiver).
    pub delivered_seq: u64,
    /// The events delivered in all.
    pub delivered: u64,
    /// The failed attempts since the last one that succeeded.
    pub failures: u32,
    pub last_error: Option<String>,
    pub started_at_ms: u64,
    pub last_attempt_ms: Option<u64>,
    pub last_success_ms: Option<u64>,
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryOutcome {
    /// The delivery starts after `from_seq` (a receiver first configured).
    Started {
        delivery_id: Uuid,
        from_seq: u64,
    },
    /// The receiver took everything up to `upto_seq` (`events` of them were sent; the others
    /// were not among the events it wants).
    Delivered {
        upto_seq: u64,
        events: u32,
    },
    Failed {
        error: String,
    },
}

impl Delivery {
    pub fn record(&mut self, outcome: DeliveryOutcome, at_ms: u64) {
        match outcome {
            DeliveryOutcome::Started { .. } => {}
            DeliveryOutcome::Delivered { upto_seq, events } => {
                self.delivered_seq = self.delivered_seq.max(upto_seq);
                self.delivered += u64::from(events);
                self.failures = 0;
                self.last_error = None;
                self.last_attempt_ms = Some(at_ms);
                self.last_success_ms = Some(at_ms);
            }
            DeliveryOutcome::Failed { error } => {
                self.failures = self.failures.saturating_add(1);
                self.last_error = Some(error);
                self.last_attempt_ms = Some(at_ms);
            }
        }
    }
}
