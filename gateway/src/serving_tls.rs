//! The agents' port over TLS: the certificate and key the operator issues for the namespace
//! (mounted from its Secret), re-read when the files change, so a rotated certificate is served
//! from the next handshake on without a restart and without dropping connections in flight.
//!
//! The files are polled ([`ServingFiles::reload_if_changed`], from the gateway's reload loop)
//! rather than read during a handshake: a kubelet replaces a Secret volume's files atomically,
//! and a pair that does not parse or whose key is not the certificate's (caught mid-copy outside
//! a kubelet) is refused while the previous one keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chaperone_config::tls::{CurrentCertificate, TlsError, certified_key};
use rustls::ServerConfig;

/// Why the serving certificate files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ServingFilesError {
    #[error("reading the TLS {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the TLS certificate {cert} and key {key} are unusable: {source}")]
    Unusable { cert: PathBuf, key: PathBuf, source: TlsError },
}

/// The certificate and key files the agents' port serves, and what was read from them last.
#[derive(Debug)]
pub struct ServingFiles {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<CurrentCertificate>,
    seen: (Option<SystemTime>, Option<SystemTime>),
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, ServingFilesError> {
    std::fs::read(path).map_err(|source| ServingFilesError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

impl ServingFiles {
    /// Reads the certificate chain (PEM, leaf first) at `cert` and its private key (PEM) at
    /// `key`; refused if either is missing, does not parse, or the two do not match.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, ServingFilesError> {
        let seen = (modified(cert), modified(key));
        let current =
            CurrentCertificate::from_pem(&read(cert, "certificate")?, &read(key, "private key")?)
                .map_err(|source| ServingFilesError::Unusable {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            })?;
        Ok(Self { cert: cert.to_owned(), key: key.to_owned(), current, seen })
    }

    /// The rustls configuration of the agents' port: every handshake gets the certificate
    /// read last.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.clone().server_config()
    }

    /// Re-reads the files if either changed since they were last read. `Ok(true)`: the new pair
    /// is served from the next handshake on; `Ok(false)`: nothing changed; an error: the new pair
    /// is unusable and the previous one is still served (it is read again at its next change).
    pub fn reload_if_changed(&mut self) -> Result<bool, ServingFilesError> {
        let now = (modified(&self.cert), modified(&self.key));
        if now == self.seen {
            return Ok(false);
        }
        self.seen = now;
        let key =
            certified_key(&read(&self.cert, "certificate")?, &read(&self.key, "private key")?)
                .map_err(|source| ServingFilesError::Unusable {
                    cert: self.cert.clone(),
                    key: self.key.clone(),
                    source,
                })?;
        self.current.replace_key(key);
        Ok(true)
    }
}
