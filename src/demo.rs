//! `pi-failover demo`: the appliance on a built-in default, for a first look with nothing
//! but the binary: a sample site compiled in, a self-signed certificate made at start, and
//! listeners on loopback.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use crate::config::{self, Config};

static SAMPLE_SITE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/src/demo/site");

/// Preferred demo ports; a busy one is replaced by a free one.
pub(crate) const DEMO_HTTPS_PORT: u16 = 8443;
pub(crate) const DEMO_HTTP_PORT: u16 = 8081;
pub(crate) const DEMO_STATUS_PORT: u16 = 8080;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write the demo files under {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("the built-in demo config is invalid: {0}")]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Start(#[from] crate::appliance::StartError),
}

/// Prepares the demo files and starts the appliance on them. A preferred port that is
/// taken (even between the check and the bind, by another demo) is replaced by a free one.
pub async fn start(
    s3: Option<&config::S3Config>,
) -> Result<(DemoFiles, crate::appliance::Appliance), DemoError> {
    let mut files = prepare(s3)?;
    match crate::appliance::Appliance::start(files.config.clone()).await {
        Ok(appliance) => Ok((files, appliance)),
        Err(crate::appliance::StartError::Bind { .. }) => {
            files.config.listen.https.set_port(0);
            let any = config::Listen::On(SocketAddr::from(([127, 0, 0, 1], 0)));
            files.config.listen.http = any;
            files.config.status.listen = any;
            let appliance = crate::appliance::Appliance::start(files.config.clone()).await?;
            Ok((files, appliance))
        }
        Err(e) => Err(e.into()),
    }
}

/// The demo's files on disk; they are removed when this is dropped.
pub struct DemoFiles {
    dir: tempfile::TempDir,
    pub config: Config,
}

impl DemoFiles {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Writes the sample site and a fresh self-signed certificate into a temporary directory
/// and returns a config that serves them on loopback. With `s3`, the site comes from that
/// bucket instead, synced into the temporary directory.
pub(crate) fn prepare(s3: Option<&config::S3Config>) -> Result<DemoFiles, DemoError> {
    // 0700: the directory holds the demo's private key.
    let dir = tempfile::Builder::new()
        .prefix("pi-failover-demo-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(|source| DemoError::Write {
            path: std::env::temp_dir(),
            source,
        })?;
    let site = dir.path().join("site");
    write_dir(&SAMPLE_SITE, &site)?;

    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    // rcgen's default lifetime runs to the year 4096, which the status page would show as
    // some 750,000 days left: give it a real certificate's 90 days instead.
    let mut params = rcgen::CertificateParams::new(names)?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(90);
    let signing_key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&signing_key)?;
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    write(&cert, certificate.pem().as_bytes())?;
    write_private(&key, signing_key.serialize_pem().as_bytes())?;

    let https = free_port_or_any(DEMO_HTTPS_PORT);
    let http = free_port_or_any(DEMO_HTTP_PORT);
    let status = free_port_or_any(DEMO_STATUS_PORT);
    let (root, bucket) = match s3 {
        None => ("root = \"site\"\n", String::new()),
        Some(s3) => {
            let mut table = toml::Table::new();
            table.insert(
                "s3".into(),
                toml::Value::try_from(s3).map_err(|e| DemoError::Write {
                    path: dir.path().to_owned(),
                    source: std::io::Error::other(e),
                })?,
            );
            let s3_text = toml::to_string(&table).unwrap_or_default();
            ("", format!("\n{s3_text}"))
        }
    };
    let text = format!(
        r#"
[site]
{root}hostnames = ["localhost", "127.0.0.1"]

[listen]
https = "{https}"
http = "{http}"

[status]
listen = "{status}"

# The sync and the history write into the demo's own directory, never the Pi's /data.
[storage]
data_dir = "data"

# One person trying the demo is one address: one reader makes it LIVE, quickly.
[live]
clock_check = false
readers = 1
debounce = "2s"

# No Pi hardware here: the status page shows the LED and the OLED's picture.
[led]
backend = "simulated"

[oled]
backend = "simulated"

[[tls.certificates]]
cert = "cert.pem"
key = "key.pem"
{bucket}"#
    );
    let config_path = dir.path().join("pi-failover.toml");
    write(&config_path, text.as_bytes())?;
    let config = crate::settings::load(&config_path)?;
    Ok(DemoFiles { dir, config })
}

fn write_dir(dir: &Dir<'_>, target: &Path) -> Result<(), DemoError> {
    std::fs::create_dir_all(target).map_err(|source| DemoError::Write {
        path: target.to_owned(),
        source,
    })?;
    for file in dir.files() {
        write(
            &target.join(file.path().file_name().unwrap_or_default()),
            file.contents(),
        )?;
    }
    for sub in dir.dirs() {
        write_dir(
            sub,
            &target.join(sub.path().file_name().unwrap_or_default()),
        )?;
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), DemoError> {
    std::fs::write(path, bytes).map_err(|source| DemoError::Write {
        path: path.to_owned(),
        source,
    })
}

/// A key: readable by its owner only (in a 0700 directory).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DemoError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(|source| DemoError::Write {
            path: path.to_owned(),
            source,
        })
}

/// `127.0.0.1:preferred` when that port is free now, else `127.0.0.1:0` (the kernel picks).
fn free_port_or_any(preferred: u16) -> SocketAddr {
    let addr = SocketAddr::from(([127, 0, 0, 1], preferred));
    match TcpListener::bind(addr) {
        Ok(_) => addr,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_demo_key_is_readable_by_its_owner_only() {
        let files = prepare(None).expect("demo files");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&files.dir().join("key.pem")), 0o600);
        assert_eq!(mode(files.dir()), 0o700);
    }
}
