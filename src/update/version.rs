//! Which of two versions is newer: Semantic Versioning's precedence (`1.2.10` after `1.2.9`,
//! `1.3.0-rc.1` before `1.3.0`), the form `PI_FAILOVER_VERSION` and every bundle's version
//! take. A bundle is installed only when its version is newer than the running one: an old
//! bundle left in the bucket, or one replayed by someone who can write there, never takes
//! the Pi back to code with known holes.

use std::cmp::Ordering;

/// `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, compared by precedence (the build part is ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    core: Vec<u64>,
    pre: Vec<Identifier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Identifier {
    Number(u64),
    Text(String),
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a version such as 1.2.3 or 1.2.3-rc.1")]
pub struct VersionError(String);

impl std::str::FromStr for Version {
    type Err = VersionError;
    fn from_str(text: &str) -> Result<Self, VersionError> {
        let bad = || VersionError(text.to_owned());
        let text_no_build = text.split('+').next().unwrap_or_default();
        let (core, pre) = match text_no_build.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text_no_build, None),
        };
        let core = core
            .split('.')
            .map(|part| {
                (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| part.parse::<u64>().ok())
                    .flatten()
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        if core.len() != 3 {
            return Err(bad());
        }
        let pre = match pre {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|part| {
                    if part.is_empty()
                        || !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        None
                    } else if part.bytes().all(|b| b.is_ascii_digit()) {
                        part.parse().ok().map(Identifier::Number)
                    } else {
                        Some(Identifier::Text(part.to_owned()))
                    }
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?,
        };
        Ok(Self { core, pre })
    }
}

impl Ord for Identifier {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => a.cmp(b),
            (Self::Number(_), Self::Text(_)) => Ordering::Less,
            (Self::Text(_), Self::Number(_)) => Ordering::Greater,
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Identifier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core.cmp(&other.core).then_with(|| {
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A release comes after its pre-releases.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            }
        })
    }
}

impl std::fmt::Display for Version {
    /// The precedence-relevant form: `1.2.3` or `1.2.3-rc.1` (a build part is dropped).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core: Vec<String> = self.core.iter().map(u64::to_string).collect();
        f.write_str(&core.join("."))?;
        for (i, id) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            match id {
                Identifier::Number(n) => write!(f, "{n}")?,
                Identifier::Text(t) => f.write_str(t)?,
            }
        }
        Ok(())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The ordering example of semver.org's precedence rule, each after the one before.
    #[test]
    fn versions_follow_semver_precedence() {
        let ordered = [
            "0.9.9",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2.9",
            "1.2.10",
            "1.10.0",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
            assert!(v(pair[1]) > v(pair[0]), "{} > {}", pair[1], pair[0]);
        }
        assert_eq!(v("1.2.3+build.5"), v("1.2.3"));
    }

    #[test]
    fn what_is_not_a_version_is_refused() {
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "1.2.x",
            "1.2.3-",
            "1.2.3-a..b",
            "01a.2.3",
            " 1.2.3",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} parsed");
        }
    }
}
