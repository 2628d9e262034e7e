//! Whether a new certificate may replace the one in use. A renewal that goes wrong (a copy cut
//! short, the wrong file deployed, a certificate for another site, a stale backup restored)
//! must never reach readers: the certificate in use stays, and the reason is logged and shown
//! on the status page. Each rule is named for the mistake it stops. Pure: the facts come from
//! `describe`, the time from the caller, so the table test below covers every rule.
//!
//! The key matching the certificate is checked where the pair is loaded (rustls'
//! `CertifiedKey::from_der`); a chain that does not parse never gets here.

use std::time::SystemTime;

/// What the rules need to know of one certificate chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// DNS names of the leaf (subjectAltName, else the subject's CN), lower case.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Each certificate's issuer is the subject of the next one (leaf first, as
    /// `fullchain.pem` is written); `None` when it is, else the position that breaks it.
    pub chain_break: Option<usize>,
}

/// Why a candidate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A certificate issued for later (a clock far off on the primary, a pre-dated deploy).
    #[error("not valid yet (valid from {})", httpdate::fmt_http_date(*.0))]
    NotYetValid(SystemTime),
    /// An old certificate copied back: readers would get an error at once.
    #[error("expired on {}", httpdate::fmt_http_date(*.0))]
    Expired(SystemTime),
    /// Intermediates missing their order (or a different site's chain pasted after the leaf):
    /// some clients cannot build the path.
    #[error("the chain is out of order at certificate {0} (each one must be issued by the next; write the leaf first, as fullchain.pem is)")]
    ChainOutOfOrder(usize),
    /// A certificate for another site or without a name the one in use has.
    #[error("does not cover {0}, which the certificate in use covers")]
    MissingHostname(String),
    /// A stale backup or a delayed copy: never go back to an earlier expiry.
    #[error("expires on {} , before the certificate in use ({})", httpdate::fmt_http_date(*.candidate), httpdate::fmt_http_date(*.in_use))]
    OlderThanInUse {
        candidate: SystemTime,
        in_use: SystemTime,
    },
}

/// Does `name` fall under `pattern` (an exact name, or `*.example.com` for one label)?
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// Whether `facts` covers `name`.
pub fn covers(facts: &Facts, name: &str) -> bool {
    facts
        .names
        .iter()
        .any(|pattern| name_matches(pattern, name))
}

/// May `candidate` replace `in_use` at `now`? `hostnames` are the site's names: the candidate
/// must cover each that the certificate in use covers.
pub(crate) fn vet(
    candidate: &Facts,
    in_use: Option<&Facts>,
    hostnames: &[String],
    now: SystemTime,
) -> Result<(), Rejection> {
    if now < candidate.not_before {
        return Err(Rejection::NotYetValid(candidate.not_before));
    }
    if now >= candidate.not_after {
        return Err(Rejection::Expired(candidate.not_after));
    }
    if let Some(at) = candidate.chain_break {
        return Err(Rejection::ChainOutOfOrder(at));
    }
    let Some(in_use) = in_use else {
        return Ok(());
    };
    if let Some(lost) = hostnames
        .iter()
        .find(|name| covers(in_use, name) && !covers(candidate, name))
    {
        return Err(Rejection::MissingHostname(lost.clone()));
    }
    if candidate.not_after < in_use.not_after {
        return Err(Rejection::OlderThanInUse {
            candidate: candidate.not_after,
            in_use: in_use.not_after,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const DAY: u64 = 86_400;

    fn at(days: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(days * DAY)
    }

    fn facts(names: &[&str], from: u64, until: u64) -> Facts {
        Facts {
            names: names.iter().map(std::string::ToString::to_string).collect(),
            not_before: at(from),
            not_after: at(until),
            chain_break: None,
        }
    }

    #[test]
    fn each_rule_refuses_its_mistake_and_a_good_renewal_passes() {
        let hosts = vec!["example.com".to_string(), "www.example.com".to_string()];
        let in_use = facts(&["example.com", "www.example.com"], 100, 190);
        let now = at(150);
        let out_of_order = Facts {
            chain_break: Some(1),
            ..facts(&["example.com", "www.example.com"], 140, 230)
        };
        let cases: [(&str, Facts, Result<(), Rejection>); 8] = [
            (
                "a renewal",
                facts(&["example.com", "www.example.com"], 140, 230),
                Ok(()),
            ),
            (
                "a wildcard renewal",
                facts(&["example.com", "*.example.com"], 140, 230),
                Ok(()),
            ),
            ("the same certificate again", in_use.clone(), Ok(())),
            (
                "issued for later",
                facts(&["example.com", "www.example.com"], 160, 250),
                Err(Rejection::NotYetValid(at(160))),
            ),
            (
                "an expired copy",
                facts(&["example.com", "www.example.com"], 40, 130),
                Err(Rejection::Expired(at(130))),
            ),
            (
                "chain out of order",
                out_of_order,
                Err(Rejection::ChainOutOfOrder(1)),
            ),
            (
                "www dropped",
                facts(&["example.com"], 140, 230),
                Err(Rejection::MissingHostname("www.example.com".into())),
            ),
            (
                "a stale backup",
                facts(&["example.com", "www.example.com"], 90, 180),
                Err(Rejection::OlderThanInUse {
                    candidate: at(180),
                    in_use: at(190),
                }),
            ),
        ];
        for (what, candidate, want) in cases {
            assert_eq!(vet(&candidate, Some(&in_use), &hosts, now), want, "{what}");
        }
    }

    #[test]
    fn at_start_only_the_certificate_itself_is_checked() {
        let hosts = vec!["example.com".to_string()];
        let other_site = facts(&["other.example"], 100, 200);
        assert_eq!(vet(&other_site, None, &hosts, at(150)), Ok(()));
        assert_eq!(
            vet(&other_site, None, &hosts, at(250)),
            Err(Rejection::Expired(at(200)))
        );
    }

    #[test]
    fn a_name_the_certificate_in_use_lacked_need_not_be_covered() {
        let hosts = vec!["example.com".to_string(), "new.example.com".to_string()];
        let in_use = facts(&["example.com"], 100, 190);
        let candidate = facts(&["example.com"], 140, 230);
        assert_eq!(vet(&candidate, Some(&in_use), &hosts, at(150)), Ok(()));
    }

    #[test]
    fn wildcards_match_one_label() {
        assert!(name_matches("example.com", "EXAMPLE.com"));
        assert!(name_matches("*.example.com", "www.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("example.com", "www.example.com"));
    }
}
