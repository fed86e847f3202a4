//! A TLS listener for axum: handshakes run in their own tasks (bounded in time), so a slow or
//! silent client holds no other back; the certificate and key are read again from their files
//! when they change (cert-manager and kubelet-mounted Secrets rotate them in place).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// How often the files are looked at for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(10);
/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate chain and key read from PEM files, read again when either file changes.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, [Option<SystemTime>; 2])>,
    checked: Mutex<Instant>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain = read_pem_certs(cert)?;
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    Ok(Arc::new(certified))
}

impl CertFiles {
    /// Reads `cert` (a PEM chain, leaf first) and `key` (a PEM private key).
    ///
    /// # Errors
    /// An unreadable file, no certificate, a key of an unsupported type, or a key that does not
    /// match the certificate.
    pub fn open(cert: &Path, key: &Path) -> Result<Self, String> {
        let loaded = load(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new((loaded, [modified(cert), modified(key)])),
            checked: Mutex::new(Instant::now()),
        })
    }

    fn reload_if_changed(&self) {
        {
            let mut checked = self
                .checked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if checked.elapsed() < RELOAD_CHECK {
                return;
            }
            *checked = Instant::now();
        }
        let stamps = [modified(&self.cert), modified(&self.key)];
        let unchanged = self.current.read().map(|c| c.1 == stamps).unwrap_or(false);
        if unchanged {
            return;
        }
        match load(&self.cert, &self.key) {
            Ok(loaded) => {
                tracing::info!(cert = %self.cert.display(), "TLS certificate read again after a change");
                if let Ok(mut current) = self.current.write() {
                    *current = (loaded, stamps);
                }
            }
            // A half-written rotation: the old pair serves until the files are whole.
            Err(e) => {
                tracing::warn!(error.message = %e, "changed TLS certificate not usable yet; serving the previous one");
            }
        }
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.reload_if_changed();
        self.current.read().ok().map(|c| Arc::clone(&c.0))
    }
}

/// Accepts TCP connections and hands axum the ones whose TLS handshake completed.
pub struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serves `certs` on `tcp`; with `client_ca`, clients must present a certificate it signed.
    ///
    /// # Errors
    /// The listener's address cannot be read, or the client CA bundle holds no usable
    /// certificate.
    pub fn new(
        tcp: TcpListener,
        certs: Arc<CertFiles>,
        client_ca: Option<Vec<CertificateDer<'static>>>,
    ) -> Result<Self, String> {
        let local = tcp.local_addr().map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(cas) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in cas {
                    roots.add(ca).map_err(|e| format!("client CA: {e}"))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("client CA: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(certs);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, then go on.
                        tracing::warn!(error.message = %e, "accepting a TLS connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Small answers go out at once (without it, Nagle's algorithm meets the
                // client's delayed ACK: 40 ms per request on Linux).
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(peer = %peer, error.message = %e, "TCP_NODELAY not set");
                }
                let (acceptor, handshaken) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = handshaken.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error.message = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Self {
            handshaken: rx,
            local,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The certificates of a PEM bundle (a client CA).
///
/// # Errors
/// An unreadable file, or no certificate in it.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}
