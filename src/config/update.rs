//! `[update]`: where signed update bundles come from (docs/user-guide.md, "Updating a Pi you
//! cannot reach"). Optional: without it the Pi never looks for updates, and still marks the
//! slot it booted good once it serves.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{key_error, ConfigError, S3Config};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// The private prefix the owner uploads bundles under, e.g. "updates/": the Pi fetches
    /// `<prefix><compatible>.raucb` (`pi-failover-rpi4-64.raucb` on a Pi 4 card). Never under
    /// the site's prefix.
    pub prefix: String,
    /// Another bucket for the bundles, reached with `[s3]`'s endpoint and credentials.
    /// Without it: the site's bucket.
    pub bucket: Option<String>,
    /// How long a freshly installed slot has, from its boot, to serve and sync before it is
    /// rebooted (three such boots and the Pi is back on the slot it came from).
    #[serde(default = "default_trial", with = "humantime_serde")]
    pub trial: Duration,
    /// Largest bundle downloaded; a larger object is refused before a byte is fetched.
    #[serde(default = "default_max_bundle_bytes")]
    pub max_bundle_bytes: u64,
}

fn default_trial() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_max_bundle_bytes() -> u64 {
    // Two slots' worth of kernel (20 MiB) and root (64 MiB), signed: nothing real is larger.
    96 << 20
}

/// Shortest trial: a boot under qemu takes 20 s to HTTPS, a Pi's about 15 s, and the first
/// sync needs a moment more.
const MIN_TRIAL: Duration = Duration::from_secs(30);

impl UpdateConfig {
    /// The bucket the bundles are in.
    pub fn bucket<'a>(&'a self, s3: &'a S3Config) -> &'a str {
        self.bucket.as_deref().unwrap_or(&s3.bucket)
    }
}

pub(super) fn validate_update(
    update: &UpdateConfig,
    s3: Option<&S3Config>,
    file: &Path,
) -> Result<(), ConfigError> {
    let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
    let Some(s3) = s3 else {
        return Err(err(
            "update",
            "[update] needs the [s3] table: bundles are fetched with its endpoint, region and credentials".into(),
            "add the [s3] table, or remove [update]",
        ));
    };
    if update.prefix.is_empty() || update.prefix.starts_with('/') || !update.prefix.ends_with('/') {
        return Err(err(
            "update.prefix",
            format!("`{}` is not a key prefix", update.prefix),
            "write a prefix ending in a slash, without a leading one, e.g. \"updates/\"",
        ));
    }
    if update.bucket(s3) == s3.bucket && update.prefix.starts_with(&s3.prefix) {
        return Err(err(
            "update.prefix",
            format!(
                "s3://{}/{} lies under the site's prefix `{}`: the sync would publish the bundles as part of the site",
                s3.bucket, update.prefix, s3.prefix
            ),
            "keep bundles outside the site: a prefix beside the site's (site under \"site/\", bundles under \"updates/\"), or update.bucket",
        ));
    }
    if update.trial < MIN_TRIAL {
        return Err(err(
            "update.trial",
            format!(
                "{} is too short for a new slot to boot, serve and sync",
                humantime::format_duration(update.trial)
            ),
            "use minutes, e.g. \"15m\"",
        ));
    }
    if update.max_bundle_bytes < (8 << 20) {
        return Err(err(
            "update.max_bundle_bytes",
            format!(
                "{} bytes is smaller than any bundle",
                update.max_bundle_bytes
            ),
            "leave it out (96 MiB), or use at least 8388608",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const SITE: &str = r#"
        [site]
        hostnames = ["example.com"]
        [[tls.certificates]]
        cert = "fullchain.pem"
        key = "privkey.pem"
        [s3]
        bucket = "site"
        prefix = "site/"
        region = "eu-west-1"
    "#;

    fn check(update: &str) -> Result<crate::config::Config, String> {
        let text = format!("{SITE}\n[update]\n{update}\n");
        let file = Path::new("/boot/pi-failover.toml");
        let config = crate::config::parse(&text, file).map_err(|e| e.to_string())?;
        config.validate(file).map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn a_prefix_beside_the_site_is_taken_with_its_defaults() {
        let config = check(r#"prefix = "updates/""#).expect("valid");
        let update = config.update.expect("[update]");
        assert_eq!(update.trial, std::time::Duration::from_secs(900));
        assert_eq!(update.max_bundle_bytes, 96 << 20);
        let s3 = config.s3.expect("[s3]");
        assert_eq!(update.bucket(&s3), "site");
    }

    /// Each wrong value is named with its key and a fix.
    #[test]
    fn wrong_values_name_their_key() {
        for (update, key) in [
            (r#"prefix = "site/updates/""#, "update.prefix"),
            (r#"prefix = "updates""#, "update.prefix"),
            (r#"prefix = "/updates/""#, "update.prefix"),
            (r#"prefix = """#, "update.prefix"),
            ("prefix = \"updates/\"\ntrial = \"5s\"", "update.trial"),
            (
                "prefix = \"updates/\"\nmax_bundle_bytes = 1000",
                "update.max_bundle_bytes",
            ),
        ] {
            let e = check(update).expect_err(update);
            assert!(e.contains(key) && e.contains("Fix"), "{update}: {e}");
        }
        // Another bucket may use any prefix.
        check("prefix = \"site/updates/\"\nbucket = \"bundles\"").expect("another bucket");
    }

    #[test]
    fn update_without_s3_is_refused() {
        let text = r#"
            [site]
            root = "/srv/site"
            hostnames = ["example.com"]
            [[tls.certificates]]
            cert = "fullchain.pem"
            key = "privkey.pem"
            [update]
            prefix = "updates/"
        "#;
        let file = Path::new("/boot/pi-failover.toml");
        let e = crate::config::parse(text, file)
            .expect("parses")
            .validate(file)
            .expect_err("no [s3]")
            .to_string();
        assert!(e.contains("[s3]"), "{e}");
    }
}
