//! The `s3` certificate source: the primary renews its certificate (certbot, lego, acme.sh,
//! Caddy) and a deploy hook uploads `fullchain.pem` and `privkey.pem` to a private prefix; the
//! Pi fetches them at start and after every site sync.
//!
//! Each fetch is two conditional GETs (`If-None-Match` the ETags of the installed pair), so an
//! unchanged certificate costs two 304s and no download. A pair that changed is checked by the
//! resolver (parses, key matches, `vet`) before it is written: a refused pair is never
//! installed, its ETags are remembered so it is not downloaded again, and the certificate in
//! use stays. An accepted pair is installed whole ([`super::store`]) and swapped in.
//!
//! Between the hook's two uploads a fetch can see a new chain with the old key: the resolver
//! refuses the mismatch and the next fetch, seeing the new key too, installs the pair.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::slot::Source;
use super::store::{self, CERT_FILE, KEY_FILE};
use super::CertResolver;

/// Larger than any certificate chain or key (a chain with RSA-4096 intermediates is ~10 KB):
/// a wrong object at the location is refused without filling memory.
const MAX_OBJECT_BYTES: usize = 256 * 1024;

/// One fetch, both objects, at most this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("s3://{bucket}/{key}: {reason}")]
    Object {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error(transparent)]
    Refused(#[from] super::TlsError),
    #[error("the pair last refused is still there: {0}")]
    StillRefused(String),
    #[error("cannot store the certificate in {dir}: {source}")]
    Store {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer within {}s", FETCH_TIMEOUT.as_secs())]
    Timeout,
}

/// What a fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// Both objects are the installed ones (two 304s).
    Unchanged,
    /// A new pair was accepted, installed and is being served.
    Installed,
}

/// The ETags of an installed pair, kept beside it (`source.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ETags {
    fullchain: String,
    privkey: String,
}

/// A pair the source has seen: the one installed, or the last one refused.
#[derive(Clone)]
struct Known {
    etags: ETags,
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Fetches one `s3` certificate.
pub struct S3Certificate {
    index: usize,
    bucket: String,
    prefix: String,
    dir: PathBuf,
    /// The last pair the resolver refused, with why: asked for conditionally, so the same
    /// refused pair is not downloaded again.
    refused: Option<(Known, String)>,
}

impl S3Certificate {
    /// The `s3` certificates among the resolver's slots.
    pub fn all(resolver: &CertResolver) -> Vec<Self> {
        resolver
            .slots()
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| match (&slot.source, &slot.managed_dir) {
                (Source::S3 { bucket, prefix }, Some(dir)) => Some(Self {
                    index,
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    dir: dir.clone(),
                    refused: None,
                }),
                _ => None,
            })
            .collect()
    }

    /// One fetch: conditional GETs, then check, install and swap in a changed pair.
    pub async fn fetch(
        &mut self,
        client: &Client,
        resolver: &CertResolver,
    ) -> Result<Fetched, FetchError> {
        let baseline = match &self.refused {
            Some((known, _)) => Some(known.clone()),
            None => self.installed(resolver),
        };
        let etags = baseline.as_ref().map(|k| &k.etags);
        let cert = self
            .get(client, CERT_FILE, etags.map(|e| &e.fullchain))
            .await?;
        let key = self
            .get(client, KEY_FILE, etags.map(|e| &e.privkey))
            .await?;
        let unchanged = cert.is_none() && key.is_none();
        let (Some((cert, cert_etag)), Some((key, key_etag))) = (
            cert.or_else(|| {
                baseline
                    .as_ref()
                    .map(|k| (k.cert.clone(), k.etags.fullchain.clone()))
            }),
            key.or_else(|| {
                baseline
                    .as_ref()
                    .map(|k| (k.key.clone(), k.etags.privkey.clone()))
            }),
        ) else {
            // A 304 needs a baseline, and there is one whenever an ETag was sent.
            return Ok(Fetched::Unchanged);
        };
        if unchanged {
            return match &self.refused {
                Some((_, why)) => Err(FetchError::StillRefused(why.clone())),
                None => Ok(Fetched::Unchanged),
            };
        }
        let known = Known {
            etags: ETags {
                fullchain: cert_etag,
                privkey: key_etag,
            },
            cert,
            key,
        };
        if let Err(e) = resolver.check(self.index, &known.cert, &known.key) {
            tracing::error!(source = %self.location(), error = %e, "fetched certificate refused; still serving the previous one");
            self.refused = Some((known, e.to_string()));
            return Err(e.into());
        }
        self.refused = None;
        let dir = self.dir.clone();
        let source = serde_json::to_string(&known.etags).unwrap_or_default();
        let stored = tokio::task::spawn_blocking(move || {
            store::install(&dir, &known.cert, &known.key, &source)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        stored.map_err(|source| FetchError::Store {
            dir: self.dir.clone(),
            source,
        })?;
        resolver.reload_slot(self.index)?;
        tracing::info!(source = %self.location(), "new certificate fetched and in use");
        Ok(Fetched::Installed)
    }

    /// The installed pair, when it is the one served: a pair on disk that failed to load at
    /// start must be downloaded again, not answered with 304s.
    fn installed(&self, resolver: &CertResolver) -> Option<Known> {
        if !resolver.is_serving(self.index) {
            return None;
        }
        let etags = serde_json::from_str(&store::installed_source(&self.dir)?).ok()?;
        let (cert, key) = store::installed(&self.dir)?;
        Some(Known {
            etags,
            cert: std::fs::read(cert).ok()?,
            key: std::fs::read(key).ok()?,
        })
    }

    /// `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// An object's body and ETag, or `None` when it still has `etag` (304 Not Modified).
    async fn get(
        &self,
        client: &Client,
        name: &str,
        etag: Option<&String>,
    ) -> Result<Option<(Vec<u8>, String)>, FetchError> {
        let key = format!("{}{name}", self.prefix);
        let fail = |reason: String| FetchError::Object {
            bucket: self.bucket.clone(),
            key: key.clone(),
            reason,
        };
        let response = client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .set_if_none_match(etag.cloned())
            .send()
            .await;
        let output = match response {
            Ok(output) => output,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 304) => {
                return Ok(None)
            }
            Err(e) => {
                let hint = match e.raw_response().map(|r| r.status().as_u16()) {
                    Some(404) => "; upload it from the primary (see the deploy hook in examples/)",
                    Some(403) => "; the Pi's credentials need s3:GetObject on this prefix (docs/user-guide.md)",
                    _ => "",
                };
                return Err(fail(format!("{}{hint}", crate::aws::error::describe(&e))));
            }
        };
        let etag = output.e_tag().unwrap_or_default().to_owned();
        if output
            .content_length()
            .is_some_and(|len| len > MAX_OBJECT_BYTES as i64)
        {
            return Err(fail(format!(
                "larger than {MAX_OBJECT_BYTES} bytes: not a certificate or key"
            )));
        }
        let mut body = output.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            fail(format!(
                "body interrupted: {}",
                crate::aws::error::with_causes(&e)
            ))
        })? {
            if bytes.len() + chunk.len() > MAX_OBJECT_BYTES {
                return Err(fail(format!(
                    "larger than {MAX_OBJECT_BYTES} bytes: not a certificate or key"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some((bytes, etag)))
    }
}

/// Fetches every `s3` certificate at once, then after each change of `syncs` (a site sync
/// finished) or every `interval` should the sync stall, until `stop`.
pub async fn run<T>(
    resolver: Arc<CertResolver>,
    client: Client,
    mut certificates: Vec<S3Certificate>,
    mut syncs: watch::Receiver<T>,
    interval: Duration,
    stop: CancellationToken,
) {
    if certificates.is_empty() {
        return;
    }
    loop {
        for certificate in &mut certificates {
            let at = SystemTime::now();
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                outcome = tokio::time::timeout(FETCH_TIMEOUT, certificate.fetch(&client, &resolver)) => {
                    outcome.unwrap_or(Err(FetchError::Timeout))
                }
            };
            if let Err(e) = &outcome {
                tracing::warn!(source = %certificate.location(), error = %e, "certificate fetch failed; keeping the one in use");
            }
            resolver.record_attempt(
                certificate.index,
                outcome.map(drop).map_err(|e| e.to_string()),
                at + interval,
            );
        }
        let sync_finished = async {
            if syncs.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = sync_finished => {}
            () = tokio::time::sleep(interval) => {}
        }
    }
}
