//! Where the delivery of the feed to each receiver stands (`model::delivery`): what the site
//! leader's deliverers record after each attempt, so that the next leader goes on after the
//! last event delivered (at least once: an attempt whose record was lost is made again).
//!
//! Owns the deliveries of [`SiteState`]; reads the feed only to say how far behind each is.

use std::sync::Arc;

use super::{SiteReply, SiteState};
use crate::model::delivery::{Delivery, DeliveryOutcome, SinkName};

impl SiteState {
    pub fn deliveries(&self) -> imbl::OrdMap<SinkName, Arc<Delivery>> {
        self.deliveries.clone()
    }

    pub fn delivery(&self, sink: &SinkName) -> Option<Arc<Delivery>> {
        self.deliveries.get(sink).cloned()
    }

    /// The lowest sequence some receiver still waits for past (none: no receiver).
    pub fn least_delivered(&self) -> Option<u64> {
        self.deliveries.values().map(|d| d.delivered_seq).min()
    }

    pub(super) fn record_delivery(
        &mut self,
        at_ms: u64,
        sink: SinkName,
        outcome: DeliveryOutcome,
    ) -> SiteReply {
        if let DeliveryOutcome::Started {
            delivery_id,
            from_seq,
        } = &outcome
        {
            if !self.deliveries.contains_key(&sink) {
                let delivery = Delivery {
                    delivery_id: *delivery_id,
                    sink: sink.clone(),
                    delivered_seq: *from_seq,
                    delivered: 0,
                    failures: 0,
                    last_error: None,
                    started_at_ms: at_ms,
                    last_attempt_ms: None,
                    last_success_ms: None,
                };
                self.deliveries.insert(sink.clone(), Arc::new(delivery));
            }
        }
        match self.deliveries.get_mut(&sink) {
            Some(delivery) => {
                Arc::make_mut(delivery).record(outcome, at_ms);
                SiteReply::Delivery(Box::new((**delivery).clone()))
            }
            None => SiteReply::NotFound,
        }
    }

    /// Forgets a receiver's delivery (it left the config).
    pub(super) fn forget_delivery(&mut self, sink: &SinkName) -> SiteReply {
        match self.deliveries.remove(sink) {
            Some(delivery) => SiteReply::Delivery(Box::new((*delivery).clone())),
            None => SiteReply::NotFound,
        }
    }
}
