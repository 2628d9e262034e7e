//! Whether a downloaded bundle may be installed: `rauc info` checks its signature against the
//! keyring the image carries (a stranger's or a tampered bundle stops there), then the
//! manifest must name this board and a version newer than the running one that has not been
//! rolled back before. Each refusal says why, in words for the status page.
//!
//! RAUC's own install checks the signature and the board again, and every block against the
//! signed root hash as it reads it (verity bundles): this vetting is so the Pi refuses early,
//! says why, and never reboots for a bundle it should not take.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::rauc::run_bounded;
use super::version::Version;

/// What this slot is: the board it was built for and the version it runs.
#[derive(Debug, Clone)]
pub struct Own {
    /// `/etc/rauc/system.conf`'s `compatible`: `pi-failover-rpi3-64` and so on.
    pub compatible: String,
    pub version: Version,
}

const SYSTEM_CONF: &str = "/etc/rauc/system.conf";
const BUILD_FILE: &str = "/etc/pi-failover-build";

impl Own {
    /// Read from the image: RAUC's system.conf and the build stamp (post-build.sh); the
    /// crate's version when the stamp is missing.
    pub fn read() -> Result<Self, String> {
        let conf = std::fs::read_to_string(SYSTEM_CONF)
            .map_err(|e| format!("{SYSTEM_CONF}: {e} (not an image with RAUC?)"))?;
        let compatible = ini_value(&conf, "compatible")
            .ok_or_else(|| format!("{SYSTEM_CONF} names no `compatible`"))?;
        let version = own_version()
            .parse()
            .map_err(|e| format!("{BUILD_FILE}: {e}"))?;
        Ok(Self {
            compatible,
            version,
        })
    }
}

/// The version this slot runs: the image's build stamp (post-build.sh writes `VERSION=` from
/// the package's version), else the crate's.
pub fn own_version() -> String {
    let stamp = std::fs::read_to_string(BUILD_FILE).unwrap_or_default();
    ini_value(&stamp, "VERSION").unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
}

/// `key=value` in an INI-like or shell-variable file, the first one.
fn ini_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// What a bundle's signed manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub compatible: String,
    pub version: String,
}

/// `rauc info`: verifies the signature against `keyring` (the image's, from system.conf,
/// when `None`) and reads the manifest.
pub async fn info(bundle: &Path, keyring: Option<&Path>) -> Result<Manifest, String> {
    let bundle = bundle.to_string_lossy();
    let mut args = vec!["info", "--output-format=json"];
    let keyring = keyring.map(|k| format!("--keyring={}", k.display()));
    if let Some(keyring) = &keyring {
        args.push(keyring);
    }
    args.push(&bundle);
    let json = run_bounded("rauc", &args, Duration::from_secs(120), true)
        .await
        .map_err(|e| format!("not a bundle signed by the owner's key: {e}"))?;
    parse_info(&json)
}

/// The manifest from `rauc info --output-format=json`.
pub fn parse_info(json: &str) -> Result<Manifest, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("rauc info said no JSON: {e}"))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("the bundle's manifest has no {name}"))
    };
    Ok(Manifest {
        compatible: field("compatible")?,
        version: field("version")?,
    })
}

/// The checks after the signature: this board, newer, not rolled back before. The version
/// to install, or why not.
pub fn vet(
    manifest: &Manifest,
    own: &Own,
    rolled_back: &BTreeMap<String, String>,
) -> Result<Version, String> {
    if manifest.compatible != own.compatible {
        return Err(format!(
            "made for {}, this Pi is {}",
            manifest.compatible, own.compatible
        ));
    }
    let version: Version = manifest
        .version
        .parse()
        .map_err(|e| format!("the bundle's version: {e}"))?;
    if version <= own.version {
        return Err(format!(
            "version {} is not newer than the running {}",
            manifest.version, own.version
        ));
    }
    if let Some(why) = rolled_back.get(&manifest.version) {
        return Err(format!(
            "version {} was installed before and rolled back ({why}); upload a newer one",
            manifest.version
        ));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Own {
        Own {
            compatible: "pi-failover-rpi3-64".into(),
            version: "0.2.0".parse().expect("version"),
        }
    }

    fn manifest(compatible: &str, version: &str) -> Manifest {
        Manifest {
            compatible: compatible.into(),
            version: version.into(),
        }
    }

    #[test]
    fn only_a_newer_version_for_this_board_not_rolled_back_passes() {
        let mut rolled_back = BTreeMap::new();
        rolled_back.insert("0.3.0".to_owned(), "slot B never served".to_owned());
        let cases = [
            ("pi-failover-rpi3-64", "0.2.1", None),
            ("pi-failover-rpi3-64", "0.10.0", None),
            (
                "pi-failover-rpi4-64",
                "0.2.1",
                Some("made for pi-failover-rpi4-64"),
            ),
            ("pi-failover-rpi3-64", "0.2.0", Some("not newer")),
            ("pi-failover-rpi3-64", "0.1.9", Some("not newer")),
            ("pi-failover-rpi3-64", "0.2.0-rc.1", Some("not newer")),
            (
                "pi-failover-rpi3-64",
                "0.3.0",
                Some("rolled back (slot B never served)"),
            ),
            (
                "pi-failover-rpi3-64",
                "latest",
                Some("the bundle's version"),
            ),
        ];
        for (compatible, version, refusal) in cases {
            let got = vet(&manifest(compatible, version), &own(), &rolled_back);
            match (refusal, got) {
                (None, Ok(v)) => assert_eq!(v, version.parse().expect("version")),
                (Some(want), Err(why)) => assert!(why.contains(want), "{version}: {why}"),
                (want, got) => panic!("{compatible} {version}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn rauc_info_json_is_read_defensively() {
        let json = r#"{"compatible":"pi-failover-rpi3-64","version":"0.2.0","description":null,"build":null,"hooks":[],"images":[]}"#;
        assert_eq!(
            parse_info(json).expect("parses"),
            manifest("pi-failover-rpi3-64", "0.2.0")
        );
        assert!(parse_info(r#"{"compatible":"x"}"#)
            .expect_err("no version")
            .contains("version"));
        assert!(parse_info("rauc-Message: ...").is_err());
    }

    #[test]
    fn the_build_stamp_and_system_conf_are_read_as_written() {
        let conf = "[system]\ncompatible=pi-failover-rpi4-64\nbootloader=uboot\n";
        assert_eq!(
            ini_value(conf, "compatible").as_deref(),
            Some("pi-failover-rpi4-64")
        );
        let stamp = "VERSION=0.2.0\nGIT=abc\nBUILD_EPOCH=1\n";
        assert_eq!(ini_value(stamp, "VERSION").as_deref(), Some("0.2.0"));
        assert_eq!(ini_value(stamp, "MISSING"), None);
    }
}
