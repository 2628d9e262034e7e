//! One certificate chain and its key, from PEM bytes to what the resolver serves and `vet`
//! judges. Where the bytes came from (a file on the card, an object in S3, an ACME order) is
//! only a label for the messages.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{vet, CertInfo, TlsError};

/// A parsed chain with the key that belongs to it.
pub(crate) struct Pair {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
    pub facts: vet::Facts,
}

/// Parses `cert_pem` (the leaf first, then its intermediates) and `key_pem`, and checks that
/// the key belongs to the leaf. `cert_from` and `key_from` name them in errors.
pub(crate) fn parse(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_from: &str,
    key_from: &str,
    provider: &CryptoProvider,
) -> Result<Pair, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            from: cert_from.to_owned(),
            detail: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            from: cert_from.to_owned(),
        });
    };
    let (info, facts) = describe(&chain, leaf, cert_from)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
        from: key_from.to_owned(),
        detail: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Mismatch {
            cert: cert_from.to_owned(),
            key: key_from.to_owned(),
            detail: e.to_string(),
        })?;
    Ok(Pair {
        key: Arc::new(certified),
        info,
        facts,
    })
}

fn describe(
    chain: &[CertificateDer<'_>],
    leaf: &CertificateDer<'_>,
    from: &str,
) -> Result<(CertInfo, vet::Facts), TlsError> {
    use x509_parser::prelude::*;
    let bad = |e: &dyn std::fmt::Display| TlsError::BadCertificate {
        from: from.to_owned(),
        detail: e.to_string(),
    };
    let (_, cert) = parse_x509_certificate(leaf).map_err(|e| bad(&e))?;
    let parsed = chain
        .iter()
        .map(|der| parse_x509_certificate(der).map(|(_, c)| c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let chain_break = parsed
        .windows(2)
        .position(|pair| pair[0].issuer().as_raw() != pair[1].subject().as_raw())
        .map(|at| at + 1);
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_ascii_lowercase))
            .collect();
    }
    let time =
        |t: ASN1Time| UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0));
    let not_before = time(cert.validity().not_before);
    let not_after = time(cert.validity().not_after);
    let facts = vet::Facts {
        names: names.clone(),
        not_before,
        not_after,
        chain_break,
    };
    let info = CertInfo {
        from: from.to_owned(),
        names,
        not_before,
        not_after,
    };
    Ok((info, facts))
}
