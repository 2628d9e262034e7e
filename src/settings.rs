//! The validated configuration turned into each subsystem's settings, and the checks that
//! need a subsystem's own rules (ripgrep's `flags/hiargs.rs`). `config` is a leaf that knows
//! only its schema; this layer sits above the subsystems it builds for (`site`, `tls`,
//! `budget`, the listeners) and below the appliance and the command line, which load a config
//! only through [`load`] or check one with [`check`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{self, key_error, CertificateConfig, CertificateSource, Config, ConfigError};

/// Reads, parses and checks the config file: its schema and values ([`Config::validate`]),
/// what the subsystems' own rules say of them ([`check`]), then the files it names (last, so
/// the schema can be checked on a laptop without them).
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let config = config::parse(&config::read(file)?, file)?;
    config.validate(file)?;
    check(&config, file)?;
    config.check_files(file)?;
    Ok(config)
}

/// What only the subsystems can say of a config [`Config::validate`] accepted: the health
/// path as the request resolver reads it, extra headers the server manages itself, the
/// send buffer against the pacer's chunk, the status networks against the packet filter's
/// size, and every certificate entry as the TLS module takes it.
pub fn check(config: &Config, file: &Path) -> Result<(), ConfigError> {
    let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
    let site = &config.site;
    if !site.health_path.starts_with('/')
        || crate::site::resolve::request_key(&site.health_path).is_err()
    {
        return Err(err(
            "site.health_path",
            format!("`{}` is not a plain absolute path", site.health_path),
            "write a path such as \"/up.txt\"",
        ));
    }
    for name in site.headers.keys() {
        let managed = http::HeaderName::from_bytes(name.as_bytes())
            .is_ok_and(|header| crate::site::policy::is_managed_header(&header));
        if managed {
            return Err(err(
                &format!("site.headers.{name}"),
                format!("`{name}` is set by the server itself"),
                "remove it; X-Powered-By and HSTS have their own keys under [site]",
            ));
        }
    }
    let buffered = config.limits.max_buffered_bytes_per_connection;
    if buffered < crate::pacing::CHUNK_SIZE {
        return Err(err(
            "limits.max_buffered_bytes_per_connection",
            format!("{buffered} bytes is less than one 16384-byte chunk, so no file could be sent"),
            "use at least 16384; 65536 is the default",
        ));
    }
    let networks = config.status.allow.len();
    if networks > crate::listener::admit::MAX_NETWORKS {
        return Err(err(
            "status.allow",
            format!(
                "{networks} networks; the status port's packet filter takes at most {}",
                crate::listener::admit::MAX_NETWORKS
            ),
            "merge neighbouring networks into wider prefixes, or set status.token and reach the page from anywhere with it",
        ));
    }
    validate_certificates(config, file)
}

/// The certificates as the TLS module takes them. [`check`] has reported any error this
/// returns, with the file's name.
pub fn certificate_slots(config: &Config) -> Result<Vec<crate::tls::CertSlot>, SlotError> {
    config
        .tls
        .certificates
        .iter()
        .enumerate()
        .map(|(i, c)| certificate_slot(config, i, c))
        .collect()
}

/// The most descriptors and connection memory this configuration may use.
pub fn budget(config: &Config) -> crate::budget::Budget {
    let downloads = config.s3.as_ref().map_or(0, |s3| s3.concurrency);
    crate::budget::Budget::of(&config.limits, downloads)
}

/// `[update]` as the update agent takes it: the bucket resolved, the free space the sync keeps
/// and its interval. `None` without `[update]` (or without `[s3]`, which validation refuses).
pub fn update_settings(config: &Config) -> Option<crate::update::UpdateSettings> {
    let (update, s3) = (config.update.as_ref()?, config.s3.as_ref()?);
    Some(crate::update::UpdateSettings {
        bucket: update.bucket(s3).to_owned(),
        prefix: update.prefix.clone(),
        max_bundle_bytes: update.max_bundle_bytes,
        min_free_bytes: s3.min_free_bytes,
        trial: update.trial,
        interval: s3.interval,
    })
}

/// An `acme` entry's settings, or the key that is wrong, the problem and the fix.
fn acme_settings(
    config: &Config,
    cert: &CertificateConfig,
) -> Result<crate::tls::acme::AcmeSettings, (&'static str, String, &'static str)> {
    use crate::tls::acme::{LETS_ENCRYPT, LETS_ENCRYPT_STAGING};
    let names = cert
        .names
        .clone()
        .unwrap_or_else(|| config.site.hostnames.clone());
    if names.is_empty() {
        return Err((
            "names",
            "no name to certify".into(),
            "list the site's names, or set site.hostnames",
        ));
    }
    for name in &names {
        let bare = name.strip_prefix("*.").unwrap_or(name);
        let valid = !bare.is_empty()
            && bare.len() <= 253
            && bare.contains('.')
            && bare.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid {
            return Err((
                "names",
                format!("`{name}` is not a public DNS name a CA can certify"),
                "use names such as \"example.com\" or \"*.example.com\"",
            ));
        }
    }
    let directory = match cert.directory.as_deref() {
        None | Some("letsencrypt") => LETS_ENCRYPT.to_owned(),
        Some("letsencrypt-staging") => LETS_ENCRYPT_STAGING.to_owned(),
        Some(url) if url.starts_with("https://") => url.to_owned(),
        Some(other) => {
            return Err((
                "directory",
                format!("`{other}` is not an ACME directory"),
                "use \"letsencrypt\", \"letsencrypt-staging\" or the directory's https:// URL",
            ))
        }
    };
    let eab = match (&cert.eab_kid, &cert.eab_hmac_key) {
        (None, None) => None,
        (Some(kid), Some(key)) => {
            use base64::Engine;
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key.trim_end_matches('='))
                .map_err(|e| {
                    (
                        "eab_hmac_key",
                        format!("not base64url: {e}"),
                        "paste the HMAC key exactly as the CA shows it",
                    )
                })?;
            Some((kid.clone(), key))
        }
        (Some(_), None) => {
            return Err((
                "eab_hmac_key",
                "missing: eab_kid needs it".into(),
                "give both eab_kid and eab_hmac_key, or neither",
            ))
        }
        (None, Some(_)) => {
            return Err((
                "eab_kid",
                "missing: eab_hmac_key needs it".into(),
                "give both eab_kid and eab_hmac_key, or neither",
            ))
        }
    };
    let contact = match cert.contact.as_deref() {
        None => Vec::new(),
        Some(address) if address.contains('@') && !address.contains(char::is_whitespace) => {
            vec![if address.starts_with("mailto:") {
                address.to_owned()
            } else {
                format!("mailto:{address}")
            }]
        }
        Some(other) => {
            return Err((
                "contact",
                format!("`{other}` is not an e-mail address"),
                "give an address such as \"owner@example.com\", or remove the key",
            ))
        }
    };
    if let Some(endpoint) = &cert.route53_endpoint {
        if !endpoint.starts_with("https://") && !endpoint.starts_with("http://") {
            return Err((
                "route53_endpoint",
                format!("`{endpoint}` is not a URL"),
                "give an http(s):// URL, or remove it to use AWS's",
            ));
        }
    }
    Ok(crate::tls::acme::AcmeSettings {
        names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        directory,
        directory_ca: cert.directory_ca.clone(),
        contact,
        eab,
        hosted_zone_id: cert.hosted_zone_id.clone().unwrap_or_default(),
        route53_endpoint: cert.route53_endpoint.clone(),
    })
}

/// Why a `[[tls.certificates]]` entry cannot become a certificate: the key, the problem and
/// the fix.
#[derive(Debug, thiserror::Error)]
#[error("key `{key}`: {problem}. Fix: {fix}")]
pub struct SlotError {
    key: String,
    problem: String,
    fix: &'static str,
}

impl SlotError {
    fn new(key: String, problem: String, fix: &'static str) -> Self {
        Self { key, problem, fix }
    }
}

/// Entry `i` as the TLS module takes it, when it has the keys its source needs and no others,
/// and an `s3` location the site sync can never reach (the sync would publish the key).
fn certificate_slot(
    config: &Config,
    i: usize,
    cert: &CertificateConfig,
) -> Result<crate::tls::CertSlot, SlotError> {
    let at = |what: &str| format!("tls.certificates[{i}].{what}");
    let present = [
        ("cert", cert.cert.is_some()),
        ("key", cert.key.is_some()),
        ("bucket", cert.bucket.is_some()),
        ("prefix", cert.prefix.is_some()),
        ("names", cert.names.is_some()),
        ("directory", cert.directory.is_some()),
        ("directory_ca", cert.directory_ca.is_some()),
        ("contact", cert.contact.is_some()),
        ("eab_kid", cert.eab_kid.is_some()),
        ("eab_hmac_key", cert.eab_hmac_key.is_some()),
        ("hosted_zone_id", cert.hosted_zone_id.is_some()),
        ("route53_endpoint", cert.route53_endpoint.is_some()),
    ];
    let (needs, name): (&[&str], &str) = match cert.source {
        CertificateSource::Files => (&["cert", "key"], "files"),
        CertificateSource::S3 => (&["prefix"], "s3"),
        CertificateSource::Acme => (&["hosted_zone_id"], "acme"),
    };
    let allowed: &[&str] = match cert.source {
        CertificateSource::Files => &["cert", "key"],
        CertificateSource::S3 => &["bucket", "prefix"],
        CertificateSource::Acme => &[
            "names",
            "directory",
            "directory_ca",
            "contact",
            "eab_kid",
            "eab_hmac_key",
            "hosted_zone_id",
            "route53_endpoint",
        ],
    };
    for (key, is_set) in present {
        if needs.contains(&key) && !is_set {
            return Err(SlotError::new(
                at(key),
                format!("missing: `source = \"{name}\"` needs it"),
                match cert.source {
                    CertificateSource::Files => "give the PEM file's path, or choose `source = \"s3\"`",
                    CertificateSource::S3 => "give the prefix the primary's deploy hook uploads fullchain.pem and privkey.pem under, e.g. \"tls/example.com/\"",
                    CertificateSource::Acme => "give the ID of the Route 53 hosted zone holding the site's names (Route 53 console, Hosted zones, e.g. \"Z0123456789ABCDEFGHIJ\")",
                },
            ));
        }
        if is_set && !allowed.contains(&key) {
            return Err(SlotError::new(
                at(key),
                format!("not used by `source = \"{name}\"`"),
                "remove it, or set `source` to the kind of certificate it belongs to",
            ));
        }
    }
    Ok(match cert.source {
        CertificateSource::Files => crate::tls::CertSlot::files(
            cert.cert.clone().unwrap_or_default(),
            cert.key.clone().unwrap_or_default(),
        ),
        CertificateSource::S3 => {
            let Some(s3) = &config.s3 else {
                return Err(SlotError::new(
                    at("source"),
                    "`s3` needs the [s3] table: the certificate is fetched with its endpoint, region and credentials, after each sync".into(),
                    "add the [s3] table, or put the certificate on the card with `source = \"files\"`",
                ));
            };
            let bucket = cert.bucket.as_deref().unwrap_or(&s3.bucket);
            let prefix = cert.prefix.as_deref().unwrap_or_default();
            if bucket == s3.bucket
                && ["fullchain.pem", "privkey.pem"]
                    .iter()
                    .any(|name| format!("{prefix}{name}").starts_with(&s3.prefix))
            {
                return Err(SlotError::new(
                    at("prefix"),
                    format!(
                        "s3://{bucket}/{prefix} lies under the site's prefix `{}`: the sync would download the private key and serve it to anyone",
                        s3.prefix
                    ),
                    "keep certificates outside the site: another bucket, or a prefix beside the site's (site under \"site/\", certificates under \"tls/\")",
                ));
            }
            crate::tls::CertSlot::s3(
                bucket.to_owned(),
                prefix.to_owned(),
                &config.storage.data_dir,
            )
        }
        CertificateSource::Acme => {
            let settings = acme_settings(config, cert)
                .map_err(|(key, problem, fix)| SlotError::new(at(key), problem, fix))?;
            crate::tls::CertSlot::acme(settings, &config.storage.data_dir)
        }
    })
}

/// Every entry makes a certificate, and no two share a place on the data partition.
fn validate_certificates(config: &Config, file: &Path) -> Result<(), ConfigError> {
    let mut seen = BTreeMap::new();
    for (i, cert) in config.tls.certificates.iter().enumerate() {
        let slot = certificate_slot(config, i, cert)
            .map_err(|e| key_error(file, &e.key, e.problem, e.fix))?;
        let Some(dir) = slot.managed_dir else {
            continue;
        };
        if let Some(other) = seen.insert(dir, i) {
            let key = match cert.source {
                CertificateSource::S3 => "prefix",
                _ => "names",
            };
            return Err(key_error(
                file,
                &format!("tls.certificates[{i}].{key}"),
                format!("the same certificate as tls.certificates[{other}]"),
                "list each certificate once",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        let c = config::parse(text, Path::new("/boot/pi-failover.toml"))?;
        c.validate(Path::new("/boot/pi-failover.toml"))?;
        Ok(c)
    }

    use crate::config::tests::MINIMAL;

    #[test]
    fn acme_entries_are_checked_with_the_key_and_the_fix() {
        let file = Path::new("/card/pi-failover.toml");
        for (entry, key) in [
            ("names = [\"not a name\"]", "tls.certificates[0].names"),
            (
                "directory = \"http://ca.example/dir\"",
                "tls.certificates[0].directory",
            ),
            ("contact = \"nobody\"", "tls.certificates[0].contact"),
            ("eab_kid = \"k\"", "tls.certificates[0].eab_hmac_key"),
            (
                "eab_kid = \"k\"\neab_hmac_key = \"not base64!\"",
                "tls.certificates[0].eab_hmac_key",
            ),
            (
                "route53_endpoint = \"moto:5000\"",
                "tls.certificates[0].route53_endpoint",
            ),
        ] {
            let text = format!(
                "[site]\nroot = \"/srv/site\"\nhostnames = [\"example.com\"]\n[[tls.certificates]]\nsource = \"acme\"\nhosted_zone_id = \"Z1\"\n{entry}\n"
            );
            let c = parse_str(&text).expect("parses");
            let e = check(&c, file).expect_err(entry);
            assert_eq!(e.key(), Some(key), "{entry}: {e}");
            assert!(certificate_slots(&c).is_err(), "{entry}");
        }
        let twice = "[site]\nroot = \"/srv/site\"\nhostnames = [\"example.com\"]\n[[tls.certificates]]\nsource = \"acme\"\nhosted_zone_id = \"Z1\"\n[[tls.certificates]]\nsource = \"acme\"\nhosted_zone_id = \"Z2\"\n";
        let c = parse_str(twice).expect("parses");
        let e = check(&c, file).expect_err("the same names twice");
        assert_eq!(e.key(), Some("tls.certificates[1].names"), "{e}");
    }

    #[test]
    fn a_status_allow_list_longer_than_the_packet_filter_takes_is_refused_with_the_fix() {
        let nets: Vec<String> = (0..=crate::listener::admit::MAX_NETWORKS)
            .map(|i| format!("\"10.{i}.0.0/16\""))
            .collect();
        let text = format!("{MINIMAL}\n[status]\nallow = [{}]\n", nets.join(", "));
        let c = parse_str(&text).expect("parses");
        let message = check(&c, Path::new("pi-failover.toml"))
            .expect_err("too many networks")
            .to_string();
        assert!(
            message.contains("status.allow") && message.contains("wider prefixes"),
            "{message}"
        );
        let fits = format!("{MINIMAL}\n[status]\nallow = [{}]\n", nets[1..].join(", "));
        let c = parse_str(&fits).expect("parses");
        check(&c, Path::new("pi-failover.toml")).expect("64 networks fit");
    }
}
