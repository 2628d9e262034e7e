//! The TLS face as someone else's client sees it.
//!
//! With `system-tests`, sslscan (Debian's, on OpenSSL: not the rustls the appliance is built
//! on) probes the HTTPS listener for every protocol version, cipher suite, key-exchange group,
//! and renegotiation, and reads the certificate, as a reader's or an auditor's scanner would.
//! Without the feature, the chain a Let's Encrypt style `fullchain.pem` holds is checked with
//! the tests' rustls client, and TLS compression with a hand-built hello offering DEFLATE.

use crate::common;

use common::{Client, Fixture};
use pi_failover::config::CertificateConfig;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;

#[tokio::test]
async fn a_full_chain_file_is_sent_whole_and_in_order() {
    // root → intermediate → leaf, as Let's Encrypt issues; the client trusts only the root,
    // so the handshake only succeeds if the intermediate from the file is sent too.
    let ca_params = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params
    };
    let root_key = KeyPair::generate().expect("root key");
    let root_params = ca_params("tls_scan root");
    let root = root_params.self_signed(&root_key).expect("root");
    let root_issuer = Issuer::new(root_params, root_key);
    let mid_key = KeyPair::generate().expect("intermediate key");
    let mid_params = ca_params("tls_scan intermediate");
    let mid = mid_params
        .signed_by(&mid_key, &root_issuer)
        .expect("intermediate");
    let mid_issuer = Issuer::new(mid_params, mid_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &mid_issuer)
        .expect("leaf");

    let f = Fixture::new();
    f.site_file("index.html", "hi");
    let fullchain = f.path("fullchain.pem");
    std::fs::write(&fullchain, format!("{}{}", leaf.pem(), mid.pem())).expect("fullchain");
    let key = f.path("privkey.pem");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("key");
    let app = f
        .start_with(|c| {
            c.tls.certificates = vec![CertificateConfig::files(fullchain.clone(), key.clone())];
        })
        .await;

    let client = Client::new(vec![root.der().clone()]);
    let tls = client
        .connect(app.https_addr(), "localhost", &[b"http/1.1"])
        .await;
    let sent: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .expect("a chain")
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    assert_eq!(
        sent,
        [leaf.der().clone(), mid.der().clone()],
        "leaf then intermediate, exactly as in the file (the root is the client's own)"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_tls12_client_offering_deflate_is_answered_without_compression() {
    // CRIME needs the server to pick a compression method; no TLS library a scanner links
    // against offers one any more, so the ClientHello is written by hand.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = Fixture::new();
    let app = f.start().await;
    let mut tcp = tokio::net::TcpStream::connect(app.https_addr())
        .await
        .expect("connect");
    tcp.write_all(&tls12_client_hello(
        "example.test",
        &[DEFLATE, NULL_COMPRESSION],
    ))
    .await
    .expect("send ClientHello");
    let mut header = [0u8; 5];
    tcp.read_exact(&mut header).await.expect("a record back");
    let mut record = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
    tcp.read_exact(&mut record).await.expect("the whole record");
    assert_eq!(
        (header[0], record[0]),
        (HANDSHAKE, SERVER_HELLO),
        "a ServerHello, not an alert: {record:?}"
    );
    // ServerHello: type(1) length(3) version(2) random(32) session_id(1+n) suite(2) method(1)
    let session_id_len = usize::from(record[38]);
    let at = 39 + session_id_len;
    let suite = u16::from_be_bytes([record[at], record[at + 1]]);
    assert!(
        OFFERED_SUITES.contains(&suite),
        "an offered suite: {suite:#06x}"
    );
    let method = record[at + 2];
    assert_eq!(
        method, NULL_COMPRESSION,
        "the server chose compression {method}"
    );
    app.shutdown().await;
}

const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const NULL_COMPRESSION: u8 = 0;
const DEFLATE: u8 = 1;
/// ECDHE with AES-GCM or ChaCha20-Poly1305, for ECDSA and RSA certificates.
const OFFERED_SUITES: [u16; 6] = [0xc02b, 0xc02c, 0xcca9, 0xc02f, 0xc030, 0xcca8];

/// A TLS 1.2 ClientHello with the ECDHE AEAD suites and extensions rustls needs, offering
/// the given compression methods.
fn tls12_client_hello(sni: &str, compression: &[u8]) -> Vec<u8> {
    fn u16_len(bytes: &[u8]) -> [u8; 2] {
        u16::try_from(bytes.len()).expect("short").to_be_bytes()
    }
    let mut extensions = Vec::new();
    let mut extension = |kind: u16, data: &[u8]| {
        extensions.extend(kind.to_be_bytes());
        extensions.extend(u16_len(data));
        extensions.extend(data);
    };
    let mut name = vec![0];
    name.extend(u16_len(sni.as_bytes()));
    name.extend(sni.as_bytes());
    let mut server_name = u16_len(&name).to_vec();
    server_name.extend(name);
    extension(0x0000, &server_name);
    extension(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]); // groups: x25519, secp256r1
    extension(0x000b, &[1, 0]); // EC point formats: uncompressed
    extension(0x000d, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]); // ECDSA P-256, RSA
    extension(0xff01, &[0]); // renegotiation_info, empty: a first handshake

    let mut hello = vec![0x03, 0x03]; // TLS 1.2
    hello.extend([0x5a; 32]); // random
    hello.push(0); // no session id
    let suites: Vec<u8> = OFFERED_SUITES
        .iter()
        .flat_map(|s| s.to_be_bytes())
        .collect();
    hello.extend(u16_len(&suites));
    hello.extend(suites);
    hello.push(u8::try_from(compression.len()).expect("few"));
    hello.extend(compression);
    hello.extend(u16_len(&extensions));
    hello.extend(extensions);

    let mut handshake = vec![CLIENT_HELLO];
    handshake.extend(&u32::try_from(hello.len()).expect("short").to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![HANDSHAKE, 0x03, 0x01];
    record.extend(u16_len(&handshake));
    record.extend(handshake);
    record
}

#[cfg(feature = "system-tests")]
mod sslscan {
    use super::common::{self, Fixture};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    /// The site's name as SNI, as a reader's browser sends it.
    const SNI: &str = "example.test";

    /// sslscan's two views of the certificate: the PEM with OpenSSL's dump, and a summary.
    const FULL: &str = "full";
    const SHORT: &str = "short";

    /// One XML element of sslscan's report: its tag, attributes, text (CDATA unwrapped) and
    /// the `type` of the `<certificate>` it sits in, if any.
    #[derive(Debug)]
    struct Element {
        tag: String,
        attrs: Vec<(String, String)>,
        text: String,
        certificate: Option<String>,
    }

    impl Element {
        fn attr(&self, name: &str) -> &str {
            self.attrs
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, v)| v.as_str())
        }
    }

    /// sslscan's report, read with an XML parser (quick-xml, already in the tests' tree).
    struct Report {
        xml: String,
        elements: Vec<Element>,
    }

    impl Report {
        fn parse(xml: String) -> Self {
            use quick_xml::events::{BytesStart, Event};

            fn element(e: &BytesStart, certificate: Option<&String>) -> Element {
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.expect("a well-formed attribute");
                        let value = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .expect("an attribute's value");
                        (
                            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                            value.into_owned(),
                        )
                    })
                    .collect();
                Element {
                    tag: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    attrs,
                    text: String::new(),
                    certificate: certificate.cloned(),
                }
            }

            let mut elements = Vec::new();
            // Indices into `elements` of the elements open at this point of the document.
            let mut open: Vec<usize> = Vec::new();
            let mut certificate = None;
            let mut reader = quick_xml::Reader::from_str(&xml);
            loop {
                let event = reader
                    .read_event()
                    .unwrap_or_else(|e| panic!("sslscan's XML: {e}\n{xml}"));
                let text = match event {
                    Event::Start(e) => {
                        let el = element(&e, certificate.as_ref());
                        if el.tag == "certificate" {
                            certificate = Some(el.attr("type").to_owned());
                        }
                        open.push(elements.len());
                        elements.push(el);
                        continue;
                    }
                    Event::Empty(e) => {
                        elements.push(element(&e, certificate.as_ref()));
                        continue;
                    }
                    Event::End(e) => {
                        open.pop();
                        if e.name().as_ref() == b"certificate" {
                            certificate = None;
                        }
                        continue;
                    }
                    Event::Text(t) => t.decode().expect("UTF-8 text").into_owned(),
                    Event::CData(t) => t.decode().expect("UTF-8 CDATA").into_owned(),
                    Event::GeneralRef(r) => {
                        let name = r.decode().expect("UTF-8 reference");
                        quick_xml::escape::unescape(&format!("&{name};"))
                            .expect("a known entity")
                            .into_owned()
                    }
                    Event::Eof => break,
                    _ => continue,
                };
                if let Some(&i) = open.last() {
                    elements[i].text.push_str(&text);
                }
            }
            Self { xml, elements }
        }

        fn all(&self, tag: &str) -> Vec<&Element> {
            self.elements.iter().filter(|e| e.tag == tag).collect()
        }

        fn one(&self, tag: &str) -> &Element {
            let found = self.all(tag);
            assert_eq!(found.len(), 1, "one <{tag}> in the report:\n{}", self.xml);
            found[0]
        }

        /// The text of `<tag>` inside `<certificate type="{certificate}">`.
        fn text(&self, certificate: &str, tag: &str) -> String {
            self.elements
                .iter()
                .find(|e| e.tag == tag && e.certificate.as_deref() == Some(certificate))
                .unwrap_or_else(|| {
                    panic!("no <{tag}> in the {certificate} certificate:\n{}", self.xml)
                })
                .text
                .trim()
                .to_owned()
        }
    }

    /// Runs sslscan against the fixture's appliance; the appliance keeps serving on this
    /// runtime while sslscan's many handshakes come in.
    async fn scan() -> (Fixture, Report) {
        let sslscan = common::require_tool("sslscan");
        let f = Fixture::new();
        f.site_file("index.html", "<p>hello</p>");
        let app = f.start().await;
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            tokio::process::Command::new(&sslscan)
                .args([
                    "--xml=-",
                    "--no-colour",
                    "--show-certificate",
                    "--no-heartbleed",
                ])
                .arg(format!("--sni-name={SNI}"))
                .arg(app.https_addr().to_string())
                .output(),
        )
        .await
        .expect("sslscan finishes within a minute")
        .expect("run sslscan");
        app.shutdown().await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "sslscan failed ({}): {}\n{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let xml = stdout.find("<?xml").map_or_else(
            || panic!("no XML report from sslscan:\n{stdout}"),
            |start| stdout[start..].to_owned(),
        );
        // Shown with --nocapture: what the scanner saw, for the record.
        println!("{xml}");
        let report = Report::parse(xml);
        assert_eq!(
            report.one("ssltest").attr("sniname"),
            SNI,
            "the scan used the site's name"
        );
        (f, report)
    }

    #[tokio::test]
    async fn a_real_scanner_finds_only_tls12_and_tls13_with_forward_secret_aead_suites_and_the_fixture_certificate(
    ) {
        let (f, report) = scan().await;
        only_tls12_and_tls13_are_enabled(&report);
        every_accepted_suite_is_forward_secret_and_aead(&report);
        key_exchange_uses_only_modern_groups(&report);
        renegotiation_is_off(&report);
        the_certificate_is_the_fixtures_leaf(&f, &report);
    }

    fn only_tls12_and_tls13_are_enabled(report: &Report) {
        let protocols: Vec<(String, bool)> = report
            .all("protocol")
            .iter()
            .map(|p| {
                (
                    format!("{} {}", p.attr("type"), p.attr("version")),
                    p.attr("enabled") == "1",
                )
            })
            .collect();
        for name in ["ssl 2", "ssl 3", "tls 1.0", "tls 1.1", "tls 1.2", "tls 1.3"] {
            let enabled = protocols
                .iter()
                .find(|(p, _)| p == name)
                .unwrap_or_else(|| panic!("sslscan did not test {name}:\n{}", report.xml))
                .1;
            let wanted = matches!(name, "tls 1.2" | "tls 1.3");
            assert_eq!(
                enabled,
                wanted,
                "{name} must be {}",
                if wanted { "enabled" } else { "disabled" }
            );
        }
    }

    fn every_accepted_suite_is_forward_secret_and_aead(report: &Report) {
        let ciphers = report.all("cipher");
        for version in ["TLSv1.2", "TLSv1.3"] {
            assert!(
                ciphers.iter().any(|c| c.attr("sslversion") == version),
                "no {version} suite accepted:\n{}",
                report.xml
            );
        }
        for cipher in ciphers {
            let name = cipher.attr("cipher");
            let version = cipher.attr("sslversion");
            // TLS 1.3 suites are all ephemeral (EC)DHE; in 1.2 only ECDHE- names are.
            let forward_secret = version == "TLSv1.3" || name.starts_with("ECDHE-");
            let aead = name.contains("GCM")
                || name.contains("CHACHA20-POLY1305")
                || name == "TLS_CHACHA20_POLY1305_SHA256";
            let weak = [
                "CBC", "RC4", "DES", "NULL", "EXP", "anon", "ADH", "AECDH", "MD5",
            ]
            .iter()
            .any(|w| name.contains(w));
            assert!(
                matches!(version, "TLSv1.2" | "TLSv1.3") && forward_secret && aead && !weak,
                "{version} {name} is accepted but is not a forward-secret AEAD suite"
            );
            // sslscan calls 128-bit keys "acceptable" and 256-bit ones "strong".
            assert!(
                matches!(cipher.attr("strength"), "strong" | "acceptable"),
                "sslscan rates {version} {name} as {}",
                cipher.attr("strength")
            );
        }
    }

    fn key_exchange_uses_only_modern_groups(report: &Report) {
        let groups = report.all("group");
        assert!(!groups.is_empty(), "no group enumerated:\n{}", report.xml);
        for group in groups {
            // sslscan writes "secp256r1 (NIST P-256)".
            let name = group.attr("name").split(' ').next().unwrap_or("");
            assert!(
                matches!(name, "x25519" | "secp256r1" | "secp384r1"),
                "key exchange offered on {} ({} bits)",
                group.attr("name"),
                group.attr("bits")
            );
        }
    }

    fn renegotiation_is_off(report: &Report) {
        // rustls implements no renegotiation at all, so neither the secure (RFC 5746) nor
        // the insecure client-initiated kind is possible.
        assert_eq!(
            report.one("renegotiation").attr("supported"),
            "0",
            "renegotiation"
        );
        // Compression is not checked here: Debian's OpenSSL is built without zlib, so
        // sslscan cannot offer it. The plain test
        // `a_tls12_client_offering_deflate_is_answered_without_compression` offers it by hand.
    }

    fn the_certificate_is_the_fixtures_leaf(f: &Fixture, report: &Report) {
        let configured: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(f.path("cert.pem"))
                .expect("fixture cert.pem")
                .collect::<Result<_, _>>()
                .expect("PEM");
        // The fixture configures the leaf alone (no intermediate): that is the whole chain.
        assert_eq!(configured.len(), 1, "the fixture's cert.pem is one leaf");
        let presented =
            CertificateDer::from_pem_slice(report.text(FULL, "certificate-blob").as_bytes())
                .expect("sslscan shows the presented certificate as PEM");
        assert_eq!(
            presented, configured[0],
            "the scanner was shown the fixture's leaf, byte for byte"
        );

        let (_, leaf) = x509_parser::parse_x509_certificate(&configured[0]).expect("X.509");
        let cn = |name: &x509_parser::x509::X509Name| {
            name.iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .expect("a CN")
                .to_owned()
        };
        assert_eq!(report.text(SHORT, "subject"), cn(leaf.subject()), "subject");
        assert_eq!(
            report.text(SHORT, "issuer"),
            "pi-failover test CA",
            "issued by the fixture's test CA"
        );
        let altnames = report.text(SHORT, "altnames");
        for name in ["DNS:localhost", "DNS:example.test"] {
            assert!(altnames.contains(name), "SAN {name} in {altnames:?}");
        }
        assert_eq!(
            report.text(SHORT, "self-signed"),
            "false",
            "not self-signed"
        );
        assert_eq!(report.text(SHORT, "expired"), "false", "not expired");
    }
}
