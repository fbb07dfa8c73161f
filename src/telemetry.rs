//! What the node counts for `/metrics` (Prometheus text): events as they happen (logins,
//! revocations, calls to other sites, HTTP requests), and, at each scrape, whatever collectors
//! the node registered to read its state. Owns the registry; knows nothing of how it is served.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The `Content-Type` of [`Telemetry::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How a password check ended.
#[derive(Clone, Copy, Debug)]
pub enum LoginOutcome {
    Ok,
    Failed,
    Banned,
}

#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    logins: Family<Labels, Counter>,
    revocations: Family<Labels, Counter>,
    revocation_seconds: Family<Labels, Histogram>,
    federation_calls: Family<Labels, Counter>,
    http_seconds: Family<Labels, Histogram>,
    incidents: Family<Labels, Counter>,
    contain_seconds: Family<Labels, Histogram>,
    audit_events: Family<Labels, Counter>,
    deliveries: Family<Labels, Counter>,
}

/// 0.5 ms to ~16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Telemetry {
    pub fn new(collectors: Vec<Box<dyn Collector>>) -> Self {
        let mut registry = Registry::with_prefix("sessionplane");
        let logins = Family::<Labels, Counter>::default();
        let revocations = Family::<Labels, Counter>::default();
        let revocation_seconds = Family::<Labels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let federation_calls = Family::<Labels, Counter>::default();
        let http_seconds = Family::<Labels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "logins",
            "Password checks (api, IMAP, SMTP, JMAP) by outcome: ok, failed, banned",
            logins.clone(),
        );
        registry.register(
            "revocations",
            "Sessions ended by an administrator or a user, by kind",
            revocations.clone(),
        );
        registry.register(
            "revocation_seconds",
            "From the request to the revocation committed at every selected site, by kind",
            revocation_seconds.clone(),
        );
        registry.register(
            "federation_calls",
            "Calls to other sites, by site and outcome: answered, refused, unreachable",
            federation_calls.clone(),
        );
        registry.register(
            "http_request_seconds",
            "api requests by method, route and status",
            http_seconds.clone(),
        );
        let incidents = Family::<Labels, Counter>::default();
        let contain_seconds = Family::<Labels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "incidents",
            "Containment calls by outcome: contained, incomplete (a site pending or a node silent), preview",
            incidents.clone(),
        );
        registry.register(
            "contain_seconds",
            "From a containment call to its receipt, by outcome",
            contain_seconds.clone(),
        );
        let audit_events = Family::<Labels, Counter>::default();
        registry.register(
            "audit_events",
            "Audit events this node recorded (as the proposing node), by action and outcome",
            audit_events.clone(),
        );
        let deliveries = Family::<Labels, Counter>::default();
        registry.register(
            "delivery_events",
            "Events this node (as the site leader) delivered to each webhook or signals receiver, and failed attempts, by receiver and outcome: delivered, failed",
            deliveries.clone(),
        );
        for collector in collectors {
            registry.register_collector(collector);
        }
        Self {
            registry,
            logins,
            revocations,
            revocation_seconds,
            federation_calls,
            http_seconds,
            incidents,
            contain_seconds,
            audit_events,
            deliveries,
        }
    }

    /// `count` events delivered to `receiver` (`outcome` delivered), or a failed attempt.
    pub fn delivery(&self, receiver: &str, outcome: &'static str, count: u64) {
        let labels = vec![
            ("receiver", receiver.to_string()),
            ("outcome", outcome.to_string()),
        ];
        self.deliveries.get_or_create(&labels).inc_by(count);
    }

    /// One containment call, by outcome (`contained`, `incomplete`, `preview`).
    pub fn incident(&self, outcome: &'static str, elapsed: Duration) {
        let labels = vec![("outcome", outcome.to_string())];
        self.incidents.get_or_create(&labels).inc();
        self.contain_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// One audit event of `action` with `outcome` recorded.
    pub fn audit_event(&self, action: &str, outcome: &str) {
        let labels = vec![
            ("action", action.to_string()),
            ("outcome", outcome.to_string()),
        ];
        self.audit_events.get_or_create(&labels).inc();
    }

    pub fn login(&self, outcome: LoginOutcome) {
        let outcome = match outcome {
            LoginOutcome::Ok => "ok",
            LoginOutcome::Failed => "failed",
            LoginOutcome::Banned => "banned",
        };
        self.logins
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    /// `count` sessions ended by one request of `kind`, which took `elapsed`.
    pub fn revocation(&self, kind: &'static str, count: u64, elapsed: Duration) {
        let labels = vec![("kind", kind.to_string())];
        self.revocations.get_or_create(&labels).inc_by(count);
        self.revocation_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn federation_call(&self, site: &str, outcome: &'static str) {
        let labels = vec![("site", site.to_string()), ("outcome", outcome.to_string())];
        self.federation_calls.get_or_create(&labels).inc();
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = vec![
            ("method", method.to_string()),
            ("route", route.to_string()),
            ("status", status.to_string()),
        ];
        self.http_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Everything, in Prometheus's text format (0.0.4).
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_and_rendered() {
        let telemetry = Telemetry::default();
        telemetry.login(LoginOutcome::Ok);
        telemetry.login(LoginOutcome::Failed);
        telemetry.login(LoginOutcome::Failed);
        telemetry.revocation("kill", 1, Duration::from_millis(3));
        telemetry.federation_call("east", "unreachable");
        telemetry.http_request("GET", "/healthcheck", 200, Duration::from_millis(1));
        telemetry.incident("contained", Duration::from_millis(8));
        telemetry.audit_event("user.create", "ok");
        let text = telemetry.render().unwrap();
        assert!(
            text.contains("sessionplane_logins_total{outcome=\"failed\"} 2"),
            "{text}"
        );
        assert!(text.contains("sessionplane_revocations_total{kind=\"kill\"} 1"));
        assert!(text.contains("sessionplane_revocation_seconds_count{kind=\"kill\"} 1"));
        assert!(text.contains(
            "sessionplane_federation_calls_total{site=\"east\",outcome=\"unreachable\"} 1"
        ));
        assert!(
            text.contains(
                "sessionplane_audit_events_total{action=\"user.create\",outcome=\"ok\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("sessionplane_http_request_seconds_count{method=\"GET\",route=\"/healthcheck\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("sessionplane_incidents_total{outcome=\"contained\"} 1"));
        assert!(text.contains("sessionplane_contain_seconds_count{outcome=\"contained\"} 1"));
    }
}
