//! HTTPS for the gateway, so clients may reach it without a TLS-terminating proxy and the
//! audit log can say how each call arrived (`tlsDetails`, as CloudTrail records it).
//!
//! `TlsListener` accepts TCP connections and runs each TLS handshake in a task of its own,
//! so one slow or hostile client cannot hold up the others; finished handshakes are handed
//! to axum with the connection's [`Peer`]: the remote address and the negotiated protocol
//! and cipher suite. Plain HTTP serving yields the same `Peer` without TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    /// Protocol and cipher suite, when the connection is TLS.
    pub tls: Option<NegotiatedTls>,
}

/// What a TLS handshake settled on, with CloudTrail's names.
#[derive(Debug, Clone)]
pub(crate) struct NegotiatedTls {
    pub version: String,
    pub cipher_suite: String,
}

impl NegotiatedTls {
    /// The record's `tlsDetails`, with the `Host` header the client sent.
    pub(crate) fn details(&self, host: &str) -> kms_audit_log::TlsDetails {
        kms_audit_log::TlsDetails {
            tls_version: self.version.clone(),
            cipher_suite: self.cipher_suite.clone(),
            client_provided_host_header: host.to_owned(),
        }
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self { addr: *stream.remote_addr(), tls: None }
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The server configuration from a PEM certificate chain and a PEM private key (PKCS#8,
/// PKCS#1 or SEC1).
pub(crate) fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| anyhow::anyhow!("reading TLS certificates from {}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("reading the TLS private key from {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("TLS certificate and key do not fit: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TLS connections; handshakes run concurrently in tasks of their own.
pub(crate) struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
}

impl TlsListener {
    pub(crate) fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, addr) = tokio::select! {
                    () = tx.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!(error = %e, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let peer = Peer { addr, tls: negotiated(tls.get_ref().1) };
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local, ready })
    }
}

fn negotiated(connection: &rustls::ServerConnection) -> Option<NegotiatedTls> {
    let version = match connection.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "unknown",
    };
    let suite = connection.negotiated_cipher_suite()?.suite();
    // rustls names TLS 1.3 suites `TLS13_*`; CloudTrail uses the IANA `TLS_*` names.
    let name = suite.as_str().map_or_else(|| format!("{suite:?}"), str::to_owned);
    let cipher_suite =
        name.strip_prefix("TLS13_").map_or(name.clone(), |rest| format!("TLS_{rest}"));
    Some(NegotiatedTls { version: version.to_owned(), cipher_suite })
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task only stops when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer { addr: self.local, tls: None })
    }
}
