//! The certificate set, chosen per handshake by SNI, each certificate replaceable at any time.
//!
//! New handshakes read the set through an `ArcSwap`, so a reload is one pointer swap:
//! connections already open keep the session they negotiated, new ones get the new
//! certificate. A candidate that fails (a half-written file, a key that does not match, or one
//! `vet` refuses) is logged, kept for the status page, and the certificate in use stays: a
//! broken renewal must never take the site down. Each configured certificate (a slot) is
//! reloaded on its own, so one broken renewal holds back no other.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;

use super::parse::{parse, Pair};
use super::slot::{CertSlot, SourceHealth};
use super::{vet, CertInfo, TlsError};

/// What the status page shows of one configured certificate.
#[derive(Debug, Clone)]
pub struct SlotView {
    /// `files` or `s3`.
    pub source: &'static str,
    /// A path or an `s3://` location; never a secret.
    pub origin: String,
    /// The certificate being served from this slot, if any.
    pub serving: Option<CertInfo>,
    /// Why the last candidate was refused (the one in use was kept), until one is accepted.
    pub refused: Option<String>,
    /// For the sources the appliance fetches: how fetching goes.
    pub health: Option<SourceHealth>,
}

pub struct CertResolver {
    slots: Vec<CertSlot>,
    /// `site.hostnames`: a renewal must keep covering those the certificate in use covers.
    hostnames: Vec<String>,
    provider: Arc<CryptoProvider>,
    /// Per slot, what handshakes are served now.
    current: ArcSwap<Vec<Option<Arc<Pair>>>>,
    /// Per slot. SIGHUP, the file watcher and a fetching source can reload at once: under one
    /// lock the stamps, the files read and the pair stored belong together, so a reload that
    /// read the old files cannot store them after one that read the renewal.
    state: Mutex<Vec<SlotState>>,
}

#[derive(Default)]
struct SlotState {
    /// The files of the last attempt, so one broken renewal is reported once.
    tried: Vec<FileStamp>,
    refused: Option<String>,
    health: SourceHealth,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("certificates", &self.infos())
            .finish()
    }
}

impl CertResolver {
    /// Loads every configured certificate. A `files` certificate that cannot be read or whose
    /// key does not match is an error at start; one that is expired, early or out of order is
    /// served with a warning (there is nothing better to serve). A fetched certificate not
    /// there yet (the first start) or broken on disk leaves its slot empty until its source
    /// brings one: the appliance starts, answers the health path, and says why HTTPS waits.
    pub fn load(slots: Vec<CertSlot>, hostnames: &[String]) -> Result<Self, TlsError> {
        let provider = super::provider();
        let now = SystemTime::now();
        let mut loaded = Vec::with_capacity(slots.len());
        for slot in &slots {
            let pair = match (slot.files_now(), slot.managed_dir.is_some()) {
                (Some(files), false) => Some(read_pair(&files, &provider)?),
                (Some(files), true) => read_pair(&files, &provider)
                    .inspect_err(|e| {
                        tracing::warn!(source = %slot.origin(), error = %e,
                        "the stored certificate is unusable; fetching it again");
                    })
                    .ok(),
                (None, _) => {
                    tracing::info!(source = %slot.origin(), "no certificate fetched yet");
                    None
                }
            };
            if let Some(pair) = &pair {
                warn_if_expiring(&pair.info);
                if let Err(reason) = vet::vet(&pair.facts, None, hostnames, now) {
                    tracing::warn!(cert = %pair.info.from, %reason, "certificate in use has a problem");
                }
            }
            loaded.push(pair.map(Arc::new));
        }
        for name in hostnames {
            if slots.iter().all(|s| s.managed_dir.is_none())
                && !loaded.iter().flatten().any(|c| vet::covers(&c.facts, name))
            {
                tracing::warn!(hostname = %name, "no certificate covers this site.hostnames entry; readers asking for it get a certificate error");
            }
        }
        let state = slots
            .iter()
            .map(|slot| SlotState {
                tried: stamps(slot),
                ..SlotState::default()
            })
            .collect();
        Ok(Self {
            slots,
            hostnames: hostnames.to_vec(),
            provider,
            current: ArcSwap::from_pointee(loaded),
            state: Mutex::new(state),
        })
    }

    /// The configured certificates, in order.
    pub fn slots(&self) -> &[CertSlot] {
        &self.slots
    }

    /// What is being served now.
    pub fn infos(&self) -> Vec<CertInfo> {
        self.current
            .load()
            .iter()
            .flatten()
            .map(|c| c.info.clone())
            .collect()
    }

    /// Whether slot `index` serves a certificate.
    pub(crate) fn is_serving(&self, index: usize) -> bool {
        self.current.load().get(index).is_some_and(Option::is_some)
    }

    /// Slot `index`'s certificate being served, with its leaf (for ACME Renewal Information).
    pub fn serving(&self, index: usize) -> Option<(CertInfo, CertificateDer<'static>)> {
        let current = self.current.load();
        let pair = current.get(index)?.as_ref()?;
        Some((pair.info.clone(), pair.key.cert.first()?.clone()))
    }

    /// Whether `leaf` is the certificate some slot serves now: what the appliance's check
    /// of its own HTTPS listener trusts (`update::self_check`), and nothing else.
    pub(crate) fn serves_leaf(&self, leaf: &[u8]) -> bool {
        self.current
            .load()
            .iter()
            .flatten()
            .any(|pair| pair.key.cert.first().is_some_and(|c| c.as_ref() == leaf))
    }

    /// Tells the status when slot `index`'s source will try next.
    pub(crate) fn schedule(&self, index: usize, next: SystemTime) {
        if let Some(state) = self.lock().get_mut(index) {
            state.health.next_attempt = Some(next);
        }
    }

    /// Every slot, for the status page.
    pub fn views(&self) -> Vec<SlotView> {
        let current = self.current.load();
        let state = self.lock();
        self.slots
            .iter()
            .enumerate()
            .map(|(i, slot)| SlotView {
                source: slot.kind(),
                origin: slot.origin(),
                serving: current
                    .get(i)
                    .and_then(Option::as_ref)
                    .map(|c| c.info.clone()),
                refused: state.get(i).and_then(|s| s.refused.clone()),
                health: slot
                    .managed_dir
                    .as_ref()
                    .and(state.get(i).map(|s| s.health.clone())),
            })
            .collect()
    }

    /// Why the last reload of some certificate was refused (`None` once each succeeded).
    pub fn refused(&self) -> Option<String> {
        self.lock().iter().find_map(|s| s.refused.clone())
    }

    /// Reads every certificate's files again and swaps in those that changed and pass. The
    /// first failure is returned; the others are logged. Each failed slot keeps its pair.
    pub fn reload(&self) -> Result<(), TlsError> {
        let mut state = self.lock();
        let mut first = None;
        for index in 0..self.slots.len() {
            if let Err(e) = self.reload_holding(&mut state, index) {
                tracing::error!(error = %e, "new certificate rejected; still serving the previous one");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Reloads the certificates whose files' size, time or inode changed since the last try.
    pub(crate) fn reload_if_changed(&self) {
        let mut state = self.lock();
        for index in 0..self.slots.len() {
            if state[index].tried != stamps(&self.slots[index]) {
                if let Err(e) = self.reload_holding(&mut state, index) {
                    tracing::error!(error = %e, "new certificate rejected; still serving the previous one");
                }
            }
        }
    }

    /// Reloads one certificate now (a fetching source after installing a new pair).
    pub(crate) fn reload_slot(&self, index: usize) -> Result<(), TlsError> {
        let mut state = self.lock();
        self.reload_holding(&mut state, index)
    }

    /// Whether `cert_pem` and `key_pem` may replace slot `index`'s certificate, without
    /// swapping them in: a fetching source asks before it installs a pair on disk. A refusal is
    /// recorded for the status page.
    pub fn check(&self, index: usize, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let origin = self
            .slots
            .get(index)
            .map(CertSlot::origin)
            .unwrap_or_default();
        let result = parse(
            cert_pem,
            key_pem,
            &format!("{origin}{}", super::store::CERT_FILE),
            &format!("{origin}{}", super::store::KEY_FILE),
            &self.provider,
        )
        .and_then(|pair| self.vet_against_current(index, &pair));
        if let Err(e) = &result {
            if let Some(state) = self.lock().get_mut(index) {
                state.refused = Some(e.to_string());
            }
        }
        result
    }

    /// Records a fetching source's attempt for the status page.
    pub(crate) fn record_attempt(
        &self,
        index: usize,
        outcome: Result<(), String>,
        next: SystemTime,
    ) {
        if let Some(state) = self.lock().get_mut(index) {
            state.health.record(SystemTime::now(), outcome, next);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<SlotState>> {
        // A panic in another reload left only stamps and messages behind: carry on with them.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reload_holding(&self, state: &mut [SlotState], index: usize) -> Result<(), TlsError> {
        let (Some(slot), Some(slot_state)) = (self.slots.get(index), state.get_mut(index)) else {
            return Ok(());
        };
        slot_state.tried = stamps(slot);
        let Some(files) = slot.files_now() else {
            // A fetched certificate not installed yet: nothing to read.
            return Ok(());
        };
        let result = read_pair(&files, &self.provider).and_then(|pair| {
            self.vet_against_current(index, &pair)?;
            Ok(pair)
        });
        slot_state.refused = result.as_ref().err().map(ToString::to_string);
        let pair = result?;
        tracing::info!(cert = %pair.info.from, names = ?pair.info.names,
            not_after = %httpdate::fmt_http_date(pair.info.not_after), "certificate loaded");
        warn_if_expiring(&pair.info);
        let mut next = Vec::clone(&self.current.load());
        if let Some(place) = next.get_mut(index) {
            *place = Some(Arc::new(pair));
        }
        self.current.store(Arc::new(next));
        Ok(())
    }

    fn vet_against_current(&self, index: usize, candidate: &Pair) -> Result<(), TlsError> {
        let current = self.current.load();
        let in_use = current
            .get(index)
            .and_then(Option::as_ref)
            .map(|c| &c.facts);
        vet::vet(&candidate.facts, in_use, &self.hostnames, SystemTime::now()).map_err(|reason| {
            TlsError::Refused {
                from: candidate.info.from.clone(),
                reason,
            }
        })
    }
}

fn read_pair(
    (cert, key): &(PathBuf, PathBuf),
    provider: &CryptoProvider,
) -> Result<Pair, TlsError> {
    parse(
        &read(cert)?,
        &read(key)?,
        &cert.display().to_string(),
        &key.display().to_string(),
        provider,
    )
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        from: path.display().to_string(),
        source,
    })
}

fn warn_if_expiring(info: &CertInfo) {
    if info.expires_within(Duration::from_secs(14 * 24 * 3600)) {
        tracing::warn!(cert = %info.from, names = ?info.names,
            not_after = %httpdate::fmt_http_date(info.not_after),
            "certificate expires within 14 days (or has expired)");
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.load();
        let mut serving = current.iter().flatten();
        if let Some(sni) = hello.server_name() {
            if let Some(found) = serving.clone().find(|c| vet::covers(&c.facts, sni)) {
                return Some(found.key.clone());
            }
        }
        // Before any certificate has arrived there is none to offer: the handshake fails with
        // an alert, and the status page says why.
        serving.next().map(|c| c.key.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamps(slot: &CertSlot) -> Vec<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let Some((cert, key)) = slot.files_now() else {
        return Vec::new();
    };
    [cert, key]
        .iter()
        .map(|path| match std::fs::metadata(path) {
            Ok(m) => FileStamp {
                modified: m.modified().ok(),
                len: m.len(),
                inode: m.ino(),
            },
            Err(_) => FileStamp {
                modified: None,
                len: 0,
                inode: 0,
            },
        })
        .collect()
}
