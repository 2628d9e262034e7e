//! A real ACME CA and a real Route 53 API for the `acme` source's tests:
//!
//! - Debian's `pebble`, its HTTPS certificate from a test CA that only the appliance's
//!   `directory_ca` trusts, asking `pebble-challtestsrv` for DNS;
//! - `moto_server` answering Route 53's API, which the appliance writes its TXT records to,
//!   behind a proxy (test code only) that, before it answers a ChangeResourceRecordSets,
//!   copies the `_acme-challenge` TXT sets it finds in moto into challtestsrv: a change is
//!   visible to pebble once Route 53 has answered it, as Route 53's INSYNC promises of its
//!   servers. The copying can be paused: a challenge the CA never sees.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::types::{ChangeAction, RrType};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::{require_tool, Client, TestCa};

pub const ZONE: &str = "example.test.";

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

async fn wait_listening(addr: SocketAddr, what: &str) {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not listen on {addr} within 10 s");
}

fn spawn(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Child {
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    command
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

/// pebble and its DNS server.
pub struct Pebble {
    pebble: std::sync::Mutex<Option<Child>>,
    _challtestsrv: Child,
    pub directory: String,
    management: SocketAddr,
    challtest: SocketAddr,
    /// The test CA that signed pebble's own HTTPS certificate (`directory_ca`).
    pub directory_ca: PathBuf,
    ca: TestCa,
    _dir: tempfile::TempDir,
}

impl Pebble {
    /// Certificates valid for `validity`; every order needs its challenges answered (no
    /// authorization reuse), validated at once (no random sleeps), no nonce rejected.
    pub async fn start(validity: Duration) -> Self {
        Self::start_with(validity, None).await
    }

    /// As [`Pebble::start`]; with `eab`, accounts need External Account Binding with that
    /// key ID and base64url HMAC key.
    pub async fn start_with(validity: Duration, eab: Option<(&str, &str)>) -> Self {
        let pebble_bin = require_tool("pebble");
        let challtest_bin = require_tool("pebble-challtestsrv");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        ca.issue_to(&["127.0.0.1"], &cert, &key);
        let directory_ca = dir.path().join("directory-ca.pem");
        std::fs::write(&directory_ca, ca.cert_pem()).expect("CA pem");

        let dns_port = free_udp_port();
        let challtest: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let challtestsrv = spawn(
            &challtest_bin,
            &[
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-management",
                &challtest.to_string(),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ],
            &[],
        );
        wait_listening(challtest, "pebble-challtestsrv").await;

        let listen: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": cert,
                "privateKey": key,
                "httpPort": free_tcp_port(),
                "tlsPort": free_tcp_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": eab.is_some(),
                "externalAccountMACKeys": eab.map_or_else(|| serde_json::json!({}), |(kid, key)| serde_json::json!({ kid: key })),
                "certificateValidityPeriod": validity.as_secs(),
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("pebble config");
        let pebble = spawn(
            &pebble_bin,
            &[
                "-config",
                &config_path.display().to_string(),
                "-dnsserver",
                &format!("127.0.0.1:{dns_port}"),
                "-strict",
                "false",
            ],
            &[
                ("PEBBLE_VA_NOSLEEP", "1"),
                ("PEBBLE_WFE_NONCEREJECT", "0"),
                ("PEBBLE_AUTHZREUSE", "0"),
            ],
        );
        wait_listening(listen, "pebble").await;
        wait_listening(management, "pebble's management").await;
        Self {
            pebble: std::sync::Mutex::new(Some(pebble)),
            _challtestsrv: challtestsrv,
            directory: format!("https://{listen}/dir"),
            management,
            challtest,
            directory_ca,
            ca,
            _dir: dir,
        }
    }

    /// pebble's root of this run: what readers' clients trust in the tests.
    pub async fn root(&self) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        let client = Client::new(vec![self.ca.cert_der()]);
        let mut tls = client
            .connect(self.management, "127.0.0.1", &[b"http/1.1"])
            .await;
        tls.write_all(b"GET /roots/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .expect("ask for the root");
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response);
        let pem = &text[text.find("-----BEGIN").expect("a PEM root")..];
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("root PEM")
    }

    /// Stops the CA: the directory then refuses connections.
    pub fn stop(&self) {
        let child = self
            .pebble
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut pebble) = child {
            let _ = pebble.start_kill();
        }
    }

    /// Sets challtestsrv's TXT answers for `name` to `values` exactly.
    async fn set_txt(&self, name: &str, values: &[String]) {
        let host = format!("{}.", name.trim_end_matches('.'));
        post(
            self.challtest,
            "/clear-txt",
            &serde_json::json!({ "host": host }),
        )
        .await;
        for value in values {
            let value = value.trim_matches('"');
            post(
                self.challtest,
                "/set-txt",
                &serde_json::json!({ "host": host, "value": value }),
            )
            .await;
        }
    }
}

async fn post(to: SocketAddr, path: &str, body: &serde_json::Value) {
    let body = body.to_string();
    let mut tcp = TcpStream::connect(to).await.expect("challtestsrv");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("post");
    let mut response = Vec::new();
    let _ = tcp.read_to_end(&mut response).await;
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "challtestsrv {path}: {}",
        String::from_utf8_lossy(&response)
    );
}

/// moto's Route 53 with one hosted zone, `example.test.`, behind the copying proxy.
pub struct Route53 {
    _moto: Child,
    /// The proxy's URL: what the appliance is configured with.
    pub endpoint: String,
    pub zone_id: String,
    client: aws_sdk_route53::Client,
    /// While set, changes are not copied to pebble's DNS.
    pub paused: Arc<AtomicBool>,
    /// While set, a change is made in moto but never answered: an appliance stopped then is
    /// stopped with its value in DNS (a power cut mid-order).
    pub hold: Arc<AtomicBool>,
    proxy: Option<tokio::task::JoinHandle<()>>,
}

impl Route53 {
    pub async fn start(pebble: Arc<Pebble>) -> Arc<Self> {
        let moto = require_tool("moto_server");
        let port = free_tcp_port();
        // moto/sitecustomize.py mends two of moto's Route 53 checks (see there); Python loads
        // it at start-up from PYTHONPATH.
        let mends = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/moto");
        let child = spawn(
            &moto,
            &["-H", "127.0.0.1", "-p", &port.to_string()],
            &[("PYTHONPATH", mends)],
        );
        let moto_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(moto_addr, "moto_server").await;
        let credentials = aws_sdk_route53::config::Credentials::new("AK", "SK", None, None, "test");
        let config = aws_sdk_route53::config::Builder::new()
            .behavior_version_latest()
            .region(aws_sdk_route53::config::Region::new("us-east-1"))
            .credentials_provider(credentials)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .endpoint_url(format!("http://{moto_addr}"))
            .build();
        let client = aws_sdk_route53::Client::from_conf(config);
        let zone = client
            .create_hosted_zone()
            .name(ZONE)
            .caller_reference(format!("pi-failover-test-{port}"))
            .send()
            .await
            .expect("create the hosted zone");
        let zone_id = zone
            .hosted_zone()
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
            .expect("zone id");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let mut route53 = Self {
            _moto: child,
            endpoint,
            zone_id,
            client,
            paused: Arc::default(),
            hold: Arc::default(),
            proxy: None,
        };
        let copier = Copier {
            client: route53.client.clone(),
            zone_id: route53.zone_id.clone(),
            pebble,
            paused: route53.paused.clone(),
            hold: route53.hold.clone(),
        };
        route53.check_mended().await;
        route53.proxy = Some(tokio::spawn(proxy(listener, moto_addr, Arc::new(copier))));
        Arc::new(route53)
    }

    /// Every TXT set in the zone: name (without the final dot) to values, quoted.
    pub async fn txt_sets(&self) -> BTreeMap<String, Vec<String>> {
        txt_sets(&self.client, &self.zone_id).await
    }

    /// Writes a TXT set as another party would (the primary validating the same name).
    pub async fn put_txt(&self, name: &str, values: &[&str]) {
        self.change(ChangeAction::Upsert, name, values)
            .await
            .expect("put TXT");
    }

    async fn change(
        &self,
        action: ChangeAction,
        name: &str,
        values: &[&str],
    ) -> Result<(), String> {
        use aws_sdk_route53::types::{Change, ChangeBatch, ResourceRecord, ResourceRecordSet};
        let records = values
            .iter()
            .map(|v| {
                ResourceRecord::builder()
                    .value(format!("\"{v}\""))
                    .build()
                    .expect("record")
            })
            .collect();
        let set = ResourceRecordSet::builder()
            .name(format!("{name}."))
            .r#type(RrType::Txt)
            .ttl(60)
            .set_resource_records(Some(records))
            .build()
            .expect("set");
        let change = Change::builder()
            .action(action)
            .resource_record_set(set)
            .build()
            .expect("change");
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .change_batch(
                ChangeBatch::builder()
                    .changes(change)
                    .build()
                    .expect("batch"),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }

    /// Fails unless moto runs with moto/sitecustomize.py's mends: a set created, deleted and
    /// created again while a set sorting after it exists (the resumed ACME order), and a DELETE
    /// whose values no longer match (a stale read).
    async fn check_mended(&self) {
        use ChangeAction::{Create, Delete};
        let (a, b) = ("_mend-check.example.test", "_mend-check.z.example.test");
        for (action, name, values) in [(Create, a, "x"), (Create, b, "x"), (Delete, a, "x")] {
            self.change(action, name, &[values])
                .await
                .expect("moto change");
        }
        self.change(Create, a, &["x"])
            .await
            .expect("moto with the mends of tests/it/common/moto/sitecustomize.py (PYTHONPATH)");
        assert!(
            self.change(Delete, a, &["stale"]).await.is_err(),
            "moto deletes a set whose values do not match: tests/it/common/moto/sitecustomize.py not loaded"
        );
        for name in [a, b] {
            self.change(Delete, name, &["x"])
                .await
                .expect("moto change");
        }
    }
}

impl Drop for Route53 {
    fn drop(&mut self) {
        if let Some(proxy) = self.proxy.take() {
            proxy.abort();
        }
    }
}

async fn txt_sets(
    client: &aws_sdk_route53::Client,
    zone_id: &str,
) -> BTreeMap<String, Vec<String>> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .send()
        .await
        .expect("list record sets");
    out.resource_record_sets()
        .iter()
        .filter(|set| *set.r#type() == aws_sdk_route53::types::RrType::Txt)
        .map(|set| {
            (
                set.name().trim_end_matches('.').to_owned(),
                set.resource_records()
                    .iter()
                    .map(|r| r.value().to_owned())
                    .collect(),
            )
        })
        .collect()
}

/// Copies moto's `_acme-challenge` TXT sets into challtestsrv.
struct Copier {
    client: aws_sdk_route53::Client,
    zone_id: String,
    pebble: Arc<Pebble>,
    paused: Arc<AtomicBool>,
    hold: Arc<AtomicBool>,
}

impl Copier {
    async fn copy(&self, copied: &tokio::sync::Mutex<BTreeMap<String, Vec<String>>>) {
        if self.paused.load(Ordering::Relaxed) {
            return;
        }
        let mut copied = copied.lock().await;
        let now: BTreeMap<String, Vec<String>> = txt_sets(&self.client, &self.zone_id)
            .await
            .into_iter()
            .filter(|(name, _)| name.starts_with("_acme-challenge."))
            .collect();
        for name in copied.keys().chain(now.keys()) {
            if copied.get(name) != now.get(name) {
                let values = now.get(name).cloned().unwrap_or_default();
                self.pebble.set_txt(name, &values).await;
            }
        }
        *copied = now;
    }
}

/// Forwards each request to moto; a ChangeResourceRecordSets is copied to challtestsrv before
/// its answer goes back.
async fn proxy(listener: tokio::net::TcpListener, moto: SocketAddr, copier: Arc<Copier>) {
    use http_body_util::{BodyExt, Full};
    let copied = Arc::new(tokio::sync::Mutex::new(BTreeMap::new()));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (copier, copied) = (copier.clone(), copied.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let (copier, copied) = (copier.clone(), copied.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let changes = parts.method == hyper::Method::POST
                            && parts.uri.path().ends_with("/rrset");
                        let upstream = TcpStream::connect(moto).await.expect("moto");
                        let (mut sender, conn) = hyper::client::conn::http1::handshake(
                            hyper_util::rt::TokioIo::new(upstream),
                        )
                        .await
                        .expect("moto handshake");
                        tokio::spawn(conn);
                        let forwarded = hyper::Request::from_parts(parts, Full::new(body));
                        let response = sender.send_request(forwarded).await.expect("moto answers");
                        let (parts, body) = response.into_parts();
                        let body = body.collect().await?.to_bytes();
                        if changes {
                            copier.copy(&copied).await;
                            if copier.hold.load(Ordering::Relaxed) {
                                std::future::pending::<()>().await;
                            }
                        }
                        Ok::<_, hyper::Error>(hyper::Response::from_parts(parts, Full::new(body)))
                    }
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
        });
    }
}
