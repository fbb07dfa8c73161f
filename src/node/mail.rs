//! Wiring the mail listeners: their certificates (configured per listener, or the node's pair,
//! or a self-signed pair generated once into `<data_dir>/tls/`), their settings, and the
//! registry the certificate reload acts on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::StartError;
use crate::config::Config;
use crate::mail::listener::{MailListener, Serve};
use crate::mail::upstream::MailUpstream;
use crate::mail::{imap, smtp, MailBackend, ProtocolSettings};
use crate::net::limits::{Caps, ConnectionLimiter};
use crate::tls::listeners::{NodeCertificates, TlsListener};
use crate::tls::{self, CertificateFiles, ReloadableCert};

/// The certificate files a listener uses.
pub(super) fn files_for(config: &Config, listener: &str) -> Result<CertificateFiles, StartError> {
    if let Some(own) = config.tls.listeners.get(listener) {
        return Ok(CertificateFiles {
            cert: own.cert_file.clone(),
            key: own.key_file.clone(),
        });
    }
    if let (Some(cert), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) {
        return Ok(CertificateFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    let advertised = config.advertised_cluster();
    let host = advertised
        .rsplit_once(':')
        .map_or(advertised.as_str(), |(h, _)| h)
        .to_string();
    let names = vec![config.node_name.clone(), "localhost".into(), host];
    tls::ensure_self_signed(&config.data_dir.join("tls"), &names)
        .map_err(|e| StartError::Tls(e.to_string()))
}

fn settings(
    config: &Config,
    idle_secs: u64,
    tls: &Arc<ReloadableCert>,
    upstream: &Option<Arc<MailUpstream>>,
) -> Arc<ProtocolSettings> {
    let m = &config.mail;
    let hostname = match m.hostname.is_empty() {
        true => config.node_name.clone(),
        false => m.hostname.clone(),
    };
    Arc::new(ProtocolSettings {
        hostname,
        tls: Some(tls::acceptor(tls.clone())),
        allow_plaintext_auth: m.allow_plaintext_auth,
        idle_timeout: Duration::from_secs(idle_secs),
        max_line_bytes: m.max_line_bytes,
        max_literal_bytes: m.max_literal_bytes,
        handshake_timeout: Duration::from_secs(m.handshake_timeout_secs),
        upstream: upstream.clone(),
        max_message_bytes: m.max_message_bytes,
    })
}

/// The bound mail sockets, by listener name.
pub type MailSockets = BTreeMap<&'static str, TcpListener>;

pub struct MailWiring {
    pub listeners: Vec<MailListener>,
    pub certificates: NodeCertificates,
    pub addrs: BTreeMap<&'static str, SocketAddr>,
}

/// The listeners of the protocols this node serves: IMAP and SMTP submission, each with
/// STARTTLS and with implicit TLS.
pub fn wire(
    config: &Config,
    sockets: MailSockets,
    backend: Arc<dyn MailBackend>,
    caps: Caps,
) -> Result<MailWiring, StartError> {
    let mut wiring = MailWiring {
        listeners: Vec::new(),
        certificates: NodeCertificates::default(),
        addrs: BTreeMap::new(),
    };
    // The mail listeners share their caps: a node holds so many mail connections in all.
    let limiter = ConnectionLimiter::new("mail", caps);
    let upstream = mail_upstream(config)?;
    for (name, socket) in sockets {
        let (serve, implicit, idle): (Serve, bool, u64) = match name {
            "imap" => (serve_imap, false, config.mail.imap_idle_timeout_secs),
            "imaps" => (serve_imap, true, config.mail.imap_idle_timeout_secs),
            "smtp" => (serve_smtp, false, config.mail.smtp_idle_timeout_secs),
            "smtps" => (serve_smtp, true, config.mail.smtp_idle_timeout_secs),
            _ => continue,
        };
        let cert = ReloadableCert::load(files_for(config, name)?)
            .map_err(|e| StartError::Tls(format!("{name}: {e}")))?;
        let addr = socket
            .local_addr()
            .map_err(|e| StartError::Tls(format!("{name}: {e}")))?;
        wiring.addrs.insert(name, addr);
        wiring.certificates.listeners.push(TlsListener {
            name,
            port: addr.port(),
            cert: cert.clone(),
        });
        wiring.listeners.push(MailListener {
            name,
            listener: socket,
            implicit_tls: implicit.then(|| tls::acceptor(cert.clone())),
            settings: settings(config, idle, &cert, &upstream),
            backend: backend.clone(),
            serve,
            limiter: limiter.clone(),
        });
    }
    Ok(wiring)
}

/// The mail servers of `[mail.upstream]`, if any. What the submission server offers is asked
/// once now, so that the first client's `EHLO` already hears it.
fn mail_upstream(config: &Config) -> Result<Option<Arc<MailUpstream>>, StartError> {
    if !config.mail.upstream.is_configured() {
        return Ok(None);
    }
    let upstream = Arc::new(MailUpstream::new(&config.mail.upstream).map_err(StartError::Mail)?);
    if !config.mail.upstream.verify_certificates {
        tracing::warn!("mail.upstream: the mail servers' certificates are not verified");
    }
    let probe = upstream.clone();
    let helo = match config.mail.hostname.is_empty() {
        true => config.node_name.clone(),
        false => config.mail.hostname.clone(),
    };
    tokio::spawn(async move {
        if let Err(error) = probe.probe_smtp(&helo).await {
            tracing::warn!(%error, "the submission server upstream did not answer its probe");
        }
    });
    Ok(Some(upstream))
}

fn serve_smtp(
    stream: crate::mail::MailStream,
    remote: SocketAddr,
    settings: Arc<ProtocolSettings>,
    backend: Arc<dyn MailBackend>,
) -> crate::mail::BoxFuture<'static, ()> {
    Box::pin(smtp::serve(stream, remote, settings, backend))
}

fn serve_imap(
    stream: crate::mail::MailStream,
    remote: SocketAddr,
    settings: Arc<ProtocolSettings>,
    backend: Arc<dyn MailBackend>,
) -> crate::mail::BoxFuture<'static, ()> {
    Box::pin(imap::serve(stream, remote, settings, backend))
}
