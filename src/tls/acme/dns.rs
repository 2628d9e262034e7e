//! Where the DNS-01 challenge values go: a TXT record set named `_acme-challenge.<name>`.
//!
//! The primary may be validating the same name at the same moment (it renews the same site),
//! so the set is shared: a value is added to what is there and only our own value is removed
//! afterwards. A plain UPSERT of our value alone would clobber the primary's, and its
//! renewal would fail. [`txt_change`] is the pure rule; a provider applies it atomically
//! (Route 53: DELETE of the exact set read plus CREATE of the new one, in one batch that fails
//! if the set changed in between, and is then read and tried again).

use std::future::Future;
use std::pin::Pin;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DnsError(pub String);

/// A DNS provider that can add and remove one TXT value.
pub trait DnsProvider: Send + Sync + 'static {
    /// Adds `value` to the TXT set at `name` (fully qualified, without the final dot) and
    /// returns once the provider says the change is live on its authoritative servers.
    fn add_txt<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), DnsError>> + Send + 'a>>;

    /// Removes `value` from the TXT set at `name`, leaving any other value there.
    fn remove_txt<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), DnsError>> + Send + 'a>>;

    /// For the status page: what and where, never a credential.
    fn describe(&self) -> String;
}

/// One change to a TXT set, as DNS APIs take them: the set to delete (exactly as read) and the
/// set to create in its place, either possibly absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxtChange {
    pub delete: Option<Vec<String>>,
    pub create: Option<Vec<String>>,
}

/// The change that adds (`add`) or removes `value` in the set `existing` (values as the API
/// gives them, quoted), or `None` when there is nothing to do.
pub(crate) fn txt_change(existing: &[String], value: &str, add: bool) -> Option<TxtChange> {
    let quoted = format!("\"{value}\"");
    let has = existing.contains(&quoted);
    let before = (!existing.is_empty()).then(|| existing.to_vec());
    match (add, has) {
        (true, true) | (false, false) => None,
        (true, false) => {
            let mut after = existing.to_vec();
            after.push(quoted);
            Some(TxtChange {
                delete: before,
                create: Some(after),
            })
        }
        (false, true) => {
            let after: Vec<String> = existing.iter().filter(|v| **v != quoted).cloned().collect();
            Some(TxtChange {
                delete: before,
                create: (!after.is_empty()).then_some(after),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| format!("\"{v}\"")).collect()
    }

    #[test]
    fn values_of_others_survive_adding_and_removing_ours() {
        /// (the set before, add or remove, the expected (delete, create)).
        type Case<'a> = (
            &'a [&'a str],
            bool,
            Option<(Option<&'a [&'a str]>, Option<&'a [&'a str]>)>,
        );
        let cases: &[Case] = &[
            // Nothing there: create ours alone.
            (&[], true, Some((None, Some(&["ours"])))),
            // The primary's value there: both, the primary's first, in one replacement.
            (
                &["primary"],
                true,
                Some((Some(&["primary"]), Some(&["primary", "ours"]))),
            ),
            // Already there (a retry): nothing to do.
            (&["primary", "ours"], true, None),
            // Removing ours leaves the primary's.
            (
                &["primary", "ours"],
                false,
                Some((Some(&["primary", "ours"]), Some(&["primary"]))),
            ),
            // Ours alone: the set goes.
            (&["ours"], false, Some((Some(&["ours"]), None))),
            // Not there (removed already, or never written): nothing to do.
            (&["primary"], false, None),
            (&[], false, None),
        ];
        for (existing, add, want) in cases {
            let got = txt_change(&set(existing), "ours", *add);
            let want = want.map(|(delete, create)| TxtChange {
                delete: delete.map(set),
                create: create.map(set),
            });
            assert_eq!(got, want, "{existing:?}, add {add}");
        }
    }
}
