//! Downloading a bundle from the owner's private S3 location: one conditional GET
//! (`If-None-Match` the last bundle looked at), so an unchanged bucket costs a 304 at every
//! sync. A changed object is refused before a byte is fetched when it is larger than
//! `update.max_bundle_bytes` or than the data partition can hold beside `s3.min_free_bytes`;
//! it streams into `bundle.raucb.part`, checked against both as it comes, and is renamed to
//! `bundle.raucb` only once whole and on disk.

use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use tokio::io::AsyncWriteExt;

/// Where the bundle comes from and the budgets it must fit.
#[derive(Debug, Clone)]
pub struct Source {
    pub bucket: String,
    pub key: String,
    pub max_bytes: u64,
    /// Space the data partition keeps free whatever comes (`s3.min_free_bytes`).
    pub min_free_bytes: u64,
}

impl Source {
    /// `s3://bucket/key`.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// What a fetch found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The object is the one last looked at (304).
    Unchanged,
    /// No bundle there (404): nothing to do.
    Absent,
    /// A new object, whole at `path`.
    Downloaded {
        path: PathBuf,
        etag: String,
        bytes: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{location}: {reason}")]
    Object { location: String, reason: String },
    #[error("{location} is {size} bytes, more than update.max_bundle_bytes ({max})")]
    TooLarge {
        location: String,
        size: u64,
        max: u64,
    },
    #[error("not enough free space for the bundle: {size} bytes plus s3.min_free_bytes ({min_free}), {available} free")]
    NoSpace {
        size: u64,
        min_free: u64,
        available: u64,
    },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The bundle's name in the update directory once whole.
pub const BUNDLE: &str = "bundle.raucb";

/// One conditional GET of `source` into `dir`.
pub async fn fetch(
    client: &Client,
    source: &Source,
    seen_etag: Option<&str>,
    dir: &Path,
) -> Result<Fetched, FetchError> {
    let location = source.location();
    let fail = |reason: String| FetchError::Object {
        location: location.clone(),
        reason,
    };
    let response = client
        .get_object()
        .bucket(&source.bucket)
        .key(&source.key)
        .set_if_none_match(seen_etag.map(str::to_owned))
        .send()
        .await;
    let output = match response {
        Ok(output) => output,
        Err(e) => {
            return match e.raw_response().map(|r| r.status().as_u16()) {
                Some(304) => Ok(Fetched::Unchanged),
                Some(404) => Ok(Fetched::Absent),
                Some(403) => Err(fail(format!(
                    "{}; the Pi's credentials need s3:GetObject on the update prefix (docs/user-guide.md)",
                    crate::aws::error::describe(&e)
                ))),
                _ => Err(fail(crate::aws::error::describe(&e))),
            };
        }
    };
    let etag = output.e_tag().unwrap_or_default().to_owned();
    let declared = output
        .content_length()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    check_budget(source, &location, declared, dir)?;

    let part = dir.join(format!("{BUNDLE}.part"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| FetchError::Io { path, source }
    };
    let mut file = tokio::fs::File::create(&part).await.map_err(io(&part))?;
    let mut body = output.body;
    let mut bytes = 0u64;
    loop {
        let chunk = match body.try_next().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                drop(file);
                let _ = tokio::fs::remove_file(&part).await;
                return Err(fail(format!(
                    "body interrupted: {}",
                    crate::aws::error::with_causes(&e)
                )));
            }
        };
        bytes += chunk.len() as u64;
        // A server that declared less than it sends is held to the same budgets.
        if bytes > declared {
            if let Err(e) = check_budget(source, &location, bytes, dir) {
                drop(file);
                let _ = tokio::fs::remove_file(&part).await;
                return Err(e);
            }
        }
        file.write_all(&chunk).await.map_err(io(&part))?;
    }
    file.sync_all().await.map_err(io(&part))?;
    drop(file);
    let path = dir.join(BUNDLE);
    tokio::fs::rename(&part, &path).await.map_err(io(&path))?;
    Ok(Fetched::Downloaded { path, etag, bytes })
}

fn check_budget(source: &Source, location: &str, size: u64, dir: &Path) -> Result<(), FetchError> {
    if size > source.max_bytes {
        return Err(FetchError::TooLarge {
            location: location.to_owned(),
            size,
            max: source.max_bytes,
        });
    }
    let stat = rustix::fs::statvfs(dir).map_err(|e| FetchError::Io {
        path: dir.to_owned(),
        source: e.into(),
    })?;
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    // What is already written of this bundle counts as used.
    let written = std::fs::metadata(dir.join(format!("{BUNDLE}.part"))).map_or(0, |m| m.len());
    if available.saturating_add(written) < size.saturating_add(source.min_free_bytes) {
        return Err(FetchError::NoSpace {
            size,
            min_free: source.min_free_bytes,
            available,
        });
    }
    Ok(())
}
