//! The booted-image test (`--features image-tests`): SD-card images, one per board
//! (`image/qemu/build.sh`), from Debian's arm64 6.12 kernel and BusyBox, the real rootfs
//! overlay and init scripts, and the static aarch64 binary that `.ci/run` measures, booted
//! under qemu-system-aarch64 10.
//!
//! The user's files go on the FAT partition with `image/qemu/user-files.sh` (mtools), as a
//! user writes them; the guest syncs from this process's S3 server (`common::s3`), reached
//! through qemu's user network, and fetches its certificate from a private prefix of the same
//! bucket (`source = "s3"`, nothing on the card). NTP is unreachable: the clock comes from the
//! test's HTTPS `Date` server and the status says it is coarse. Scenarios:
//!
//! - `-M virt` (the Pi 3 card): first boot (HTTPS on the health path, the time from power-on
//!   to the first 200 printed; synced files byte for byte with `X-Powered-By: raspberry-pi`;
//!   plain HTTP; the status page; U-Boot's boot script booted slot A and counted the try;
//!   slot B and the data partition made, the latter formatted), a power cut (SIGKILL
//!   to qemu) followed by a boot with a failing S3 server that still serves the last good
//!   site, and a clean shutdown (`poweroff` on the serial console) that leaves the data
//!   filesystem clean;
//! - `-M raspi3b` (the Pi 3 card): the USB NIC is plugged in (QMP) only once the network
//!   script waits for it; first boot, a clean shutdown (the guest halts: qemu's raspi3b cannot
//!   power off), a second boot;
//! - `-M raspi4b` (the Pi 4 card, its DTB fitted to qemu by `boot.sh`): first boot, the health
//!   path over IPv6 from the guest's console (on the global address from qemu's router
//!   advertisements), a clean shutdown.
//!
//! Needs the aarch64 binary (`cargo build --profile pi --target aarch64-unknown-linux-musl --no-default-features`)
//! and the tools the scripts use; a missing one fails the test with the command that installs
//! it. Consoles and qemu's output stay in `target/qemu-image/runs/<test>/` for a post-mortem.
#![cfg(feature = "image-tests")]

use crate::common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::s3::{Fault, S3Server, StoredObject};
use common::webhook::{Answer, Webhook};
use common::{free_port, Client, Reply, TestCa};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// The site's name: the certificate's and the config's.
const SITE: &str = "www.example.test";
/// The site's prefix in the bucket; the certificate is beside it, under [`CERT_PREFIX`], as the
/// user guide lays out a bucket for `source = "s3"`.
const SITE_PREFIX: &str = "site/";
const CERT_PREFIX: &str = "tls/www.example.test/";
/// Where the owner uploads update bundles (`[update] prefix`), beside the site.
const UPDATE_PREFIX: &str = "updates/";
/// The RAUC compatible of the test cards (both boards' test rootfs says the Pi 3's).
const COMPATIBLE: &str = "pi-failover-rpi3-64";
/// Where the guest finds this machine's services (`image/qemu/boot.sh --host-service`).
const GUEST_SERVICE_ADDR: &str = "10.0.2.100";
/// The guest's global IPv6 prefix: qemu's router advertisements (`image/qemu/boot.sh`).
const GUEST_IPV6_PREFIX: &str = "2001:db8:1:";
/// The serial console's root password, and its hash as the owner puts it on the card
/// (`openssl passwd -6 -salt pifailovertest console-test-password`): without it root is locked.
const CONSOLE_PASSWORD: &str = "console-test-password";
const CONSOLE_PASSWORD_HASH: &str = "$6$pifailovertest$X4qFkMkxRxZvoWgWOcIlqwHBgOj1vFtN1GY384Y.Btjk3yGBvoxE/EB5oU5E/b8NsUNlOU3lKKhWjE8SEjqZp/\n";
/// How far ahead of the host the guest's HTTPS clock source runs: NTP is unreachable from the
/// guest, so its clock watcher takes the time from that server's `Date` and steps.
const CLOCK_AHEAD: Duration = Duration::from_secs(120);
/// The card the image is written to: larger than the image, as a real card is, and a power
/// of two, as qemu's raspi3b wants.
const CARD_BYTES: u64 = 512 << 20;
/// Generous: software emulation on a busy two-core machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const SYNC_TIMEOUT: Duration = Duration::from_secs(240);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(180);

/// One guest at a time: software emulation keeps the cores busy (raspi3b has four vCPUs).
static ONE_GUEST: Mutex<()> = Mutex::new(());
/// The cards `build.sh` made, by board (`rpi3-64`, `rpi4-64`).
static IMAGES: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
/// The MAC of the USB NIC plugged in late: `image/qemu/boot.sh`'s own (a Raspberry Pi one).
const PI_MAC: &str = "b8:27:eb:00:00:01";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn work_dir() -> PathBuf {
    std::env::var_os("PI_FAILOVER_QEMU_WORK")
        .map_or_else(|| repo().join("target/qemu-image"), PathBuf::from)
}

/// The static aarch64 binary that goes into the image.
fn aarch64_binary() -> PathBuf {
    let bin = std::env::var_os("PI_FAILOVER_AARCH64_BIN").map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo().join("target"), PathBuf::from);
            target.join("aarch64-unknown-linux-musl/pi/pi-failover")
        },
        PathBuf::from,
    );
    assert!(
        bin.is_file(),
        "{} does not exist: the image test needs the Pi's binary. Build it first:\n  \
         rustup target add aarch64-unknown-linux-musl\n  \
         apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross\n  \
         cargo build --locked --profile pi --target aarch64-unknown-linux-musl\n\
         (or point PI_FAILOVER_AARCH64_BIN at one)",
        bin.display()
    );
    bin
}

/// Every tool the scripts run. Opted in and missing one, the test fails: it never skips.
fn require_tools() {
    let tools = [
        ("apt-get", "apt"),
        ("dpkg-deb", "dpkg"),
        ("genimage", "genimage"),
        ("mkdosfs", "dosfstools"),
        ("mcopy", "mtools"),
        ("mksquashfs", "squashfs-tools"),
        ("cpio", "cpio"),
        ("gzip", "gzip"),
        ("xz", "xz-utils"),
        ("readelf", "binutils"),
        ("socat", "socat"),
        ("fdtput", "device-tree-compiler"),
        ("mkimage", "u-boot-tools"),
        ("mkenvimage", "u-boot-tools"),
        ("rauc", "rauc"),
        ("openssl", "openssl"),
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<(&str, &str)> = tools
        .into_iter()
        .filter(|(tool, _)| !std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
        .collect();
    assert!(
        missing.is_empty(),
        "the image test needs {}: apt-get install --no-install-recommends {} \
         (.ci/run installs them)",
        missing.iter().map(|m| m.0).collect::<Vec<_>>().join(", "),
        missing.iter().map(|m| m.1).collect::<Vec<_>>().join(" ")
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The image of `board`'s card, built once per test run with the others (fetching the Debian
/// packages the first time).
fn image(board: &str) -> PathBuf {
    let images = IMAGES.get_or_init(|| {
        require_tools();
        let bin = aarch64_binary();
        let started = Instant::now();
        let out = run(Command::new(repo().join("image/qemu/build.sh"))
            .arg("--binary")
            .arg(&bin)
            .env("PI_FAILOVER_QEMU_WORK", work_dir()));
        let images: Vec<(String, PathBuf)> = out
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(board, path)| (board.to_owned(), PathBuf::from(path)))
            .collect();
        assert!(
            !images.is_empty() && images.iter().all(|(_, path)| path.is_file()),
            "build.sh printed no images: {out}"
        );
        eprintln!(
            "image_boot: built {} cards in {:.1} s",
            images.len(),
            started.elapsed().as_secs_f64()
        );
        images
    });
    images.iter().find(|(b, _)| b == board).map_or_else(
        || panic!("build.sh made no card for {board}: {images:?}"),
        |(_, path)| path.clone(),
    )
}

/// A card written from `board`'s image, as `dd` writes one: the image, then the rest of the
/// card.
fn write_card(dir: &Path, board: &str) -> PathBuf {
    let card = dir.join("card.img");
    std::fs::copy(image(board), &card).expect("copy image");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&card)
        .and_then(|f| f.set_len(CARD_BYTES))
        .expect("card size");
    card
}

/// A directory for one test's cards and consoles, emptied first and kept afterwards.
fn run_dir(name: &str) -> PathBuf {
    let dir = work_dir().join("runs").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("run dir");
    dir
}

/// The site in the bucket: pages, a stylesheet and a binary file.
struct Site {
    files: Vec<(&'static str, Vec<u8>)>,
}

impl Site {
    fn seed(s3: &S3Server) -> Self {
        let home = b"<!doctype html><title>pi-failover</title><h1>The standby copy</h1>\n".to_vec();
        let about = b"<!doctype html><title>About</title><p>Synced from S3 to a Pi.</p>\n".to_vec();
        let css = b"body { font-family: sans-serif; }\n".to_vec();
        // 200 KB that compress badly, so several TLS records and TCP windows go through.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let data: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let files = vec![
            ("index.html", home),
            ("about/index.html", about),
            ("css/site.css", css),
            ("files/data.bin", data),
        ];
        for (key, body) in &files {
            let object = StoredObject::new(body.clone());
            let object = match key.rsplit('.').next() {
                Some("html") => object.content_type("text/html"),
                Some("css") => object.content_type("text/css"),
                _ => object.content_type("application/octet-stream"),
            };
            s3.bucket.put(&format!("{SITE_PREFIX}{key}"), object);
        }
        Self { files }
    }

    fn url(key: &str) -> String {
        format!("/{}", key.trim_end_matches("index.html"))
    }
}

/// The user's files, checked with `pi-failover check-config` and written to the card's FAT
/// partition with `image/qemu/user-files.sh`. No certificate on the card: the primary's
/// renewal hook uploaded it beside the site (`source = "s3"`), and the Pi fetches it at its
/// first boot and keeps it on its data partition. `date_port`: the guest's HTTPS clock
/// source (`clock.https_date`), the test's `common::date_server`; root's console password.
/// `hook_port`: the owner's webhook receiver (`[notify]`), trusting the same test CA.
fn configure_card(
    card: &Path,
    dir: &Path,
    ca: &TestCa,
    s3: &S3Server,
    date_port: u16,
    hook_port: u16,
    updates: bool,
) {
    let files = dir.join("user-files");
    std::fs::create_dir_all(&files).expect("user files dir");
    let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    ca.issue_to(&[SITE], &cert, &key);
    for (path, name) in [(&cert, "fullchain.pem"), (&key, "privkey.pem")] {
        s3.bucket.put(
            &format!("{CERT_PREFIX}{name}"),
            StoredObject::new(std::fs::read(path).expect("pem")),
        );
    }
    s3.write_credentials(&files.join("aws-credentials"));
    std::fs::write(files.join("console-password"), CONSOLE_PASSWORD_HASH).expect("hash");
    std::fs::write(files.join("clock-ca.pem"), ca.cert_pem()).expect("clock CA");
    let config = format!(
        r#"# Written by tests/it/image_boot.rs, as a user edits the card's example.
[site]
hostnames = ["{SITE}"]

[s3]
bucket = "{bucket}"
prefix = "{SITE_PREFIX}"
endpoint = "http://{GUEST_SERVICE_ADDR}:{port}"
path_style = true
region = "us-east-1"
credentials_file = "aws-credentials"
interval = "{interval}"
jitter = "0s"
request_timeout = "10s"

[[tls.certificates]]
source = "s3"
prefix = "{CERT_PREFIX}"

[clock]
https_date = ["https://{GUEST_SERVICE_ADDR}:{date_port}/"]
ca_file = "clock-ca.pem"
fallback_after = "10s"

# One reader (the test's browser-like request) makes it LIVE; the test's other requests
# carry no User-Agent and are not readers.
[live]
readers = 1
debounce = "2s"

[notify]
url = "https://{GUEST_SERVICE_ADDR}:{hook_port}/hook"
ca_file = "clock-ca.pem"
name = "pi-under-qemu"
{update}"#,
        bucket = common::s3::BUCKET,
        port = s3.addr.port(),
        // With updates, a sync (and a look for a bundle) every 15 s.
        interval = if updates { "15s" } else { "1h" },
        update = if updates {
            format!("\n[update]\nprefix = \"{UPDATE_PREFIX}\"\ntrial = \"90s\"\n")
        } else {
            String::new()
        },
    );
    std::fs::write(files.join("pi-failover.toml"), config).expect("config");
    run(Command::new(env!("CARGO_BIN_EXE_pi-failover"))
        .arg("check-config")
        .arg(files.join("pi-failover.toml")));
    run(Command::new(repo().join("image/qemu/user-files.sh"))
        .arg(card)
        .arg("--config")
        .arg(files.join("pi-failover.toml"))
        .arg("--credentials")
        .arg(files.join("aws-credentials"))
        .arg("--console-password")
        .arg(files.join("console-password"))
        .arg("--file")
        .arg(files.join("clock-ca.pem")));
}

#[derive(Clone, Copy)]
struct Ports {
    https: u16,
    http: u16,
    status: u16,
}

/// When the guest's network device appears.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nic {
    /// Present when Linux starts. On the raspi machines it is plugged in as U-Boot hands
    /// over to the kernel: qemu's DWC2 USB host cannot give Linux back a device U-Boot's
    /// `usb start` has enumerated (Linux then finds it "Not connected"); a Pi's real
    /// controller is reset between the two.
    AtPowerOn,
    /// Plugged in once the network script says it is waiting for it: a USB Ethernet chip
    /// that registers late (`--late-nic`, raspi machines only).
    Late,
}

/// A running qemu (`image/qemu/boot.sh`, which becomes qemu). Dropping it pulls the plug.
struct Guest {
    name: String,
    state: PathBuf,
    child: Child,
    ports: Ports,
    powered_on: Instant,
    console: Option<UnixStream>,
    /// `poweroff` makes qemu exit (`virt`), or only halts the guest (`raspi3b`).
    powers_off: bool,
}

impl Guest {
    fn boot(machine: &str, card: &Path, state: &Path, services: &[u16], nic: Nic) -> Self {
        std::fs::create_dir_all(state).expect("state dir");
        let ports = Ports {
            https: free_port(),
            http: free_port(),
            status: free_port(),
        };
        let out = std::fs::File::create(state.join("qemu.out")).expect("qemu.out");
        let err = out.try_clone().expect("qemu.out");
        let child = Command::new(repo().join("image/qemu/boot.sh"))
            .args(["--machine", machine])
            .arg("--card")
            .arg(card)
            .arg("--state")
            .arg(state)
            .args(["--https", &ports.https.to_string()])
            .args(["--http", &ports.http.to_string()])
            .args(["--status", &ports.status.to_string()])
            .args(
                services
                    .iter()
                    .flat_map(|port| ["--host-service".to_owned(), port.to_string()]),
            )
            .args((nic == Nic::Late || machine != "virt").then_some("--late-nic"))
            .env("PI_FAILOVER_QEMU_WORK", work_dir())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start image/qemu/boot.sh");
        let mut guest = Self {
            name: format!(
                "{machine} ({})",
                state.file_name().unwrap().to_string_lossy()
            ),
            state: state.to_owned(),
            child,
            ports,
            powered_on: Instant::now(),
            console: None,
            powers_off: machine == "virt",
        };
        guest.attach_console();
        guest
    }

    /// Connects to the serial console and reads it from then on: qemu 10 holds the guest's
    /// serial output (and so the guest) until a client reads it; the log file gets it all.
    fn attach_console(&mut self) {
        let path = self.state.join("console.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match UnixStream::connect(&path) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() > deadline => {
                    self.fail(&format!("{}: {e}", path.display()))
                }
                Err(_) => {
                    if let Some(status) = self.exited() {
                        self.fail(&format!("qemu exited ({status}) before its console opened"));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        let mut drain = stream.try_clone().expect("console stream");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(drain.read(&mut buf), Ok(n) if n > 0) {}
        });
        self.console = Some(stream);
    }

    /// Plugs the USB NIC in, through qemu's machine protocol (`boot.sh --late-nic`).
    fn plug_in_nic(&mut self) {
        let path = self.state.join("qmp.sock");
        let mut qmp = UnixStream::connect(&path)
            .unwrap_or_else(|e| self.fail(&format!("{}: {e}", path.display())));
        qmp.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("QMP timeout");
        let commands = format!(
            "{{\"execute\":\"qmp_capabilities\"}}\n\
             {{\"execute\":\"device_add\",\"arguments\":{{\"driver\":\"usb-net\",\
             \"id\":\"nic\",\"netdev\":\"net0\",\"mac\":\"{PI_MAC}\"}}}}\n"
        );
        if let Err(e) = qmp.write_all(commands.as_bytes()) {
            self.fail(&format!("QMP: {e}"));
        }
        // The greeting, then one answer per command.
        let mut replies = String::new();
        let mut buf = [0u8; 4096];
        while replies.matches("\"return\"").count() + replies.matches("\"error\"").count() < 2 {
            match qmp.read(&mut buf) {
                Ok(n) if n > 0 => replies.push_str(&String::from_utf8_lossy(&buf[..n])),
                other => self.fail(&format!("QMP: {other:?} after {replies}")),
            }
        }
        if replies.contains("\"error\"") {
            self.fail(&format!("QMP refused the NIC: {replies}"));
        }
    }

    fn https(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.https))
    }

    fn console_log(&self) -> String {
        let bytes = std::fs::read(self.state.join("console.log")).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Fails the test with the end of the console and qemu's own output.
    fn fail(&self, what: &str) -> ! {
        let console = self.console_log();
        let lines: Vec<&str> = console.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        let qemu = std::fs::read_to_string(self.state.join("qemu.out")).unwrap_or_default();
        panic!(
            "{}: {what}\n--- console (last 60 lines; all of it in {}) ---\n{tail}\n\
             --- qemu ---\n{qemu}",
            self.name,
            self.state.join("console.log").display()
        );
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for qemu")
    }

    /// The guest reboots itself: qemu runs with `-no-reboot`, so it exits, and the next
    /// boot is the test's. Fails after `timeout`.
    async fn wait_reboot(mut self, why: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.exited().is_none() {
            if Instant::now() > deadline {
                self.fail(&format!("did not reboot within {timeout:?} ({why})"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!(
            "image_boot: {}: rebooted ({why}) {:.1} s after power-on",
            self.name,
            self.powered_on.elapsed().as_secs_f64()
        );
    }

    /// Waits for the console to show `needle` after byte `from`; returns where it ends.
    async fn wait_console(&mut self, needle: &str, from: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.console_log();
            if let Some(at) = log.get(from..).and_then(|s| s.find(needle)) {
                return from + at + needle.len();
            }
            if let Some(status) = self.exited() {
                self.fail(&format!(
                    "qemu exited ({status}) before the console showed {needle:?}"
                ));
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "the console did not show {needle:?} within {timeout:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls the health path over HTTPS until it answers 200; prints how long that took.
    async fn wait_for_https(&mut self, client: &Client, phase: &str) {
        let deadline = self.powered_on + BOOT_TIMEOUT;
        loop {
            let last = match https_get(client, self.https(), "/up.txt").await {
                Ok(reply) if reply.status == 200 => break,
                Ok(reply) => format!("status {}", reply.status),
                Err(e) => e,
            };
            if let Some(status) = self.exited() {
                self.fail(&format!(
                    "qemu exited ({status}) before HTTPS answered ({last})"
                ));
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "no HTTPS 200 on /up.txt within {BOOT_TIMEOUT:?} ({last})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!(
            "image_boot: {}, {phase}: power-on to first HTTPS 200 on /up.txt: {:.1} s",
            self.name,
            self.powered_on.elapsed().as_secs_f64()
        );
    }

    /// Polls until every file of `site` is served byte for byte, with the appliance's header.
    async fn wait_for_site(&mut self, client: &Client, site: &Site, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for (key, body) in &site.files {
            let url = Site::url(key);
            loop {
                let last = match https_get(client, self.https(), &url).await {
                    Ok(reply) if reply.status == 200 && reply.body[..] == body[..] => {
                        assert_eq!(
                            reply.header("x-powered-by"),
                            Some("raspberry-pi"),
                            "{}: {url} without X-Powered-By: raspberry-pi",
                            self.name
                        );
                        break;
                    }
                    Ok(reply) => format!(
                        "status {}, {} bytes (want {})",
                        reply.status,
                        reply.body.len(),
                        body.len()
                    ),
                    Err(e) => e,
                };
                if Instant::now() > deadline {
                    self.fail(&format!(
                        "{url} not served as synced within {timeout:?}: {last}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    async fn check_plain_http(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.http));
        let reply = common::plain_get(addr, "/up.txt", SITE).await;
        if !reply.starts_with("HTTP/1.1 200") {
            self.fail(&format!("plain HTTP /up.txt: {reply}"));
        }
    }

    /// Polls `/api/status` (from the host: slirp makes it 10.0.2.2, a private address allowed
    /// without a token) until `wanted` finds what it looks for in the JSON, or fails after
    /// `within` with `what` and the last answer. The model is recomputed every second, so the
    /// page may trail the guest by that much.
    async fn wait_for_status<T>(
        &mut self,
        within: Duration,
        what: &str,
        wanted: impl Fn(&serde_json::Value) -> Option<T>,
    ) -> T {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.status));
        let deadline = Instant::now() + within;
        loop {
            let json: serde_json::Value = match http_get(addr, "/api/status").await {
                Ok(reply) if reply.status == 200 => serde_json::from_slice(&reply.body)
                    .unwrap_or_else(|e| self.fail(&format!("/api/status is not JSON: {e}"))),
                Ok(reply) => self.fail(&format!("status page: status {}", reply.status)),
                Err(e) => self.fail(&format!("status page: {e}")),
            };
            if let Some(found) = wanted(&json) {
                return found;
            }
            if Instant::now() > deadline {
                self.fail(&format!("/api/status: {what}: {json}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The history journal and the message queue live on `/data`, in directories the service
    /// user may write (the data partition's script makes them: the service cannot create
    /// directories in `/data` itself). After the power cut the history read back from the
    /// card holds the first boot's events and says the run before ended uncleanly.
    async fn check_history_kept_across_the_power_cut(&mut self) {
        let console = self.console_log();
        if let Some(line) = console
            .lines()
            .find(|l| l.contains("memory only") || l.contains("Permission denied"))
        {
            self.fail(&format!("the appliance cannot write its data: {line}"));
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.status));
        let json: serde_json::Value = match http_get(addr, "/api/history").await {
            Ok(reply) if reply.status == 200 => serde_json::from_slice(&reply.body)
                .unwrap_or_else(|e| self.fail(&format!("/api/history is not JSON: {e}"))),
            Ok(reply) => self.fail(&format!("/api/history: status {}", reply.status)),
            Err(e) => self.fail(&format!("/api/history: {e}")),
        };
        let kinds: Vec<&str> = json
            .get("events")
            .and_then(|e| e.as_array())
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| e.get("kind").and_then(|k| k.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let boots = kinds.iter().filter(|k| **k == "boot").count();
        if !json
            .get("not_written")
            .is_some_and(serde_json::Value::is_null)
            || boots < 2
            || !kinds.contains(&"unclean_shutdown")
        {
            self.fail(&format!(
                "the history did not survive the power cut on /data (two boots and an \
                 unclean shutdown expected): not_written {:?}, events {kinds:?}",
                json.get("not_written")
            ));
        }
        println!(
            "image_boot: {}: the history kept {} events across the power cut",
            self.name,
            kinds.len()
        );
    }

    /// The status page reports a ready standby serving a generation.
    async fn check_status_page(&mut self) {
        // Serving a synced site, nobody reading: STANDBY, or ATTENTION while the guest's clock
        // is unsynchronised (no NTP server is reachable from the test); never ERROR.
        let (mode, reason, generation) = self
            .wait_for_status(
                Duration::from_secs(10),
                "not a ready standby serving a generation",
                |json| {
                    let mode = json.get("mode")?.as_str()?;
                    let generation = json.pointer("/site/generation")?.as_str()?;
                    let reason = json.get("reason").and_then(|r| r.as_str()).unwrap_or("");
                    matches!(mode, "STANDBY" | "ATTENTION")
                        .then(|| (mode.to_owned(), reason.to_owned(), generation.to_owned()))
                },
            )
            .await;
        println!(
            "image_boot: {}: the status page says {mode} ({reason}), generation {generation}",
            self.name
        );
    }

    /// One request for `/` as a browser makes it: a reader (with `[live] readers = 1`, the
    /// Pi goes LIVE).
    async fn read_as_a_browser(&mut self, t: &Setup) {
        let config = t
            .client
            .tls_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let tls = t
            .client
            .connect_with(self.https(), SITE, config)
            .await
            .unwrap_or_else(|e| self.fail(&format!("TLS: {e}")));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap_or_else(|e| self.fail(&format!("HTTP: {e}")));
        tokio::spawn(conn);
        let request = Request::builder()
            .uri("/")
            .header("host", SITE)
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux aarch64) Firefox/120.0",
            )
            .body(Empty::<Bytes>::new())
            .expect("request");
        let reply = sender
            .send_request(request)
            .await
            .unwrap_or_else(|e| self.fail(&format!("GET /: {e}")));
        assert_eq!(reply.status(), 200);
    }

    /// A reader arrives: the Pi goes LIVE and one message leaves the guest for the owner's
    /// webhook, over HTTPS, naming the Pi and the mode.
    async fn check_notification_on_live(&mut self, t: &Setup) {
        let started = Instant::now();
        self.read_as_a_browser(t).await;
        let live = || -> Vec<serde_json::Value> {
            t.hook
                .received()
                .into_iter()
                .map(|r| r.body)
                .filter(|b| b["mode"] == "LIVE")
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while live().is_empty() {
            if Instant::now() > deadline {
                let got: Vec<_> = t.hook.received().into_iter().map(|r| r.body).collect();
                self.fail(&format!(
                    "no notification of LIVE reached the webhook within 60 s of a reader; it got {got:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let got = live();
        assert_eq!(got.len(), 1, "one message for one event: {got:?}");
        assert_eq!(got[0]["pi"], "pi-under-qemu", "{}", got[0]);
        // The boot's settling (ERROR before the first sync, ATTENTION until the clock is set)
        // is in the history but was not sent.
        let all: Vec<_> = t.hook.received().into_iter().map(|r| r.body).collect();
        assert_eq!(all.len(), 1, "only LIVE was sent: {all:?}");
        println!(
            "image_boot: {}: a reader to a notification of LIVE at the webhook: {:.1} s",
            self.name,
            started.elapsed().as_secs_f64()
        );
    }

    /// NTP is unreachable from the guest: its clock watcher takes the time from the test's
    /// HTTPS `Date` server ([`CLOCK_AHEAD`] ahead), steps the clock, and the status page says
    /// the clock is coarse, with the offset.
    async fn check_coarse_clock(&mut self) {
        let offset = self
            .wait_for_status(Duration::from_secs(120), "never a coarse clock", |json| {
                json.pointer("/system/clock_coarse/offset_seconds")?
                    .as_f64()
            })
            .await;
        // The guest starts at most at the host's time (virt has an RTC; raspi3b none, so it
        // starts from the image's build time, further behind): the step is at least the
        // server's lead, and not wildly more.
        let ahead = CLOCK_AHEAD.as_secs_f64();
        if !(ahead - 10.0..ahead + 900.0).contains(&offset) {
            self.fail(&format!(
                "the clock was {offset} s off by the status, the Date server {ahead} s ahead"
            ));
        }
        println!(
            "image_boot: {}: coarse clock, stepped {offset:+.0} s",
            self.name
        );
    }

    /// Types into the serial console.
    fn type_on_console(&mut self, text: &str) {
        let Some(stream) = self.console.as_mut() else {
            self.fail("the console is not attached")
        };
        if let Err(e) = stream.write_all(text.as_bytes()) {
            self.fail(&format!("typing on the console: {e}"));
        }
    }

    /// Logs in as root on the serial console; returns where the shell's prompt ends.
    async fn log_in(&mut self) -> usize {
        let from = self.console_log().len();
        self.type_on_console("\n");
        let at = self
            .wait_console("login:", from, Duration::from_secs(60))
            .await;
        // Root is locked unless the card holds a password hash (S03console).
        self.type_on_console("root\n");
        let at = self
            .wait_console("Password:", at, Duration::from_secs(60))
            .await;
        self.type_on_console(&format!("{CONSOLE_PASSWORD}\n"));
        self.wait_console("# ", at, Duration::from_secs(60)).await
    }

    /// The appliance has had RAUC mark `slot` good: the boot state gives it 3 tries again
    /// (the boot took one), `BOOT_ORDER` unchanged, within a minute and a half of serving.
    async fn wait_marked_good(&self, slot: &str, card: &Path) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let state = boot_state(card)
                .unwrap_or_else(|| self.fail("the boot state at 1 MiB fails its CRC"));
            if state.get(&format!("BOOT_{slot}_LEFT")).map(String::as_str) == Some("3")
                && state.get("BOOT_ORDER").is_some_and(|o| o.starts_with(slot))
                && self.console_log().contains("marked good")
            {
                return;
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "slot {slot} serves but was not marked good within 90 s: {state:?}"
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Runs `script` in the shell of a logged-in console and returns what it printed. The
    /// markers are split in the typed line, so its echo never matches them.
    async fn run_on_console(&mut self, script: &str, timeout: Duration) -> String {
        let from = self.console_log().len();
        self.type_on_console(&format!("echo '=''=begin'; {script}; echo '=''=end'\n"));
        let begin = self
            .wait_console("==begin", from, Duration::from_secs(30))
            .await;
        let end = self.wait_console("==end", begin, timeout).await;
        let log = self.console_log();
        log.get(begin..end.saturating_sub("==end".len()))
            .unwrap_or_default()
            .to_owned()
    }

    /// IPv6 readers: from the guest's console (qemu's user network forwards IPv4 only), the
    /// appliance's plain-HTTP listener answers the health path on the global address the
    /// guest configured itself from qemu's router advertisements ([`GUEST_IPV6_PREFIX`]).
    async fn check_ipv6(&mut self) {
        let at = self.log_in().await;
        // The markers are split in the typed line, so its echo never matches them.
        // The address is taken once duplicate address detection has passed (a tentative
        // address receives nothing: a connection to it hangs); the request is tried a few
        // times, the listing of the addresses printed for the failure message.
        self.type_on_console(concat!(
            "for i in $(seq 60); do a=$(ip -6 addr show dev eth0 | ",
            "sed -n '/scope global/{/tentative/d;s/.*inet6 \\([0-9a-f:]*\\)\\/.*/\\1/p}' | ",
            "head -n 1); [ -n \"$a\" ] && break; sleep 1; done; echo \"v6\"\"-42: [$a]\"; ",
            "for i in 1 2 3 4 5; do r=$(printf 'GET /up.txt HTTP/1.1\\r\\nHost: www.example.test",
            "\\r\\nConnection: close\\r\\n\\r\\n' | nc -w 10 \"$a\" 80 | head -n 1); ",
            "[ -n \"$r\" ] && break; sleep 2; done; echo \"$r\"; ip -6 addr show dev eth0; ",
            "echo \"v6\"\"-done-42\"\n"
        ));
        let from = self
            .wait_console("v6-42: [", at, Duration::from_secs(60))
            .await;
        let done = self
            .wait_console("v6-done-42", from, Duration::from_secs(120))
            .await;
        let log = self.console_log();
        let answer = log.get(from..done).unwrap_or_default().to_owned();
        let addr = answer.split(']').next().unwrap_or_default().to_owned();
        if !addr.starts_with(GUEST_IPV6_PREFIX) || !answer.contains("HTTP/1.1 200") {
            self.fail(&format!(
                "over IPv6 ({addr}) the health path did not answer 200: {answer:?}"
            ));
        }
        println!("image_boot: {}: HTTP 200 over IPv6 at [{addr}]", self.name);
        self.type_on_console("exit\n");
    }

    /// A power cut: qemu is killed, nothing in the guest runs again.
    fn pull_the_plug(mut self) {
        self.child.kill().expect("kill qemu");
        self.child.wait().expect("reap qemu");
    }

    /// What an operator on the serial console does: log in as root and run `poweroff`. BusyBox
    /// init then runs rcK (pi-failover is stopped gracefully), unmounts, and powers off; on
    /// `virt` qemu exits. qemu's raspis cannot power off (on a Pi the bcm2835 watchdog driver
    /// does it, and qemu's model of that device resets the board as soon as it is started, so
    /// the test kernel goes without it): there the kernel halts ("System halted", or with 6.12
    /// "Power off not available: System halted instead") and the test pulls the plug.
    async fn shut_down(mut self) {
        let at = self.log_in().await;
        let asked = Instant::now();
        self.type_on_console("poweroff\n");
        if self.powers_off {
            let deadline = asked + SHUTDOWN_TIMEOUT;
            let status = loop {
                if let Some(status) = self.exited() {
                    break status;
                }
                if Instant::now() > deadline {
                    self.fail(&format!(
                        "still running {SHUTDOWN_TIMEOUT:?} after poweroff"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            if !status.success() {
                self.fail(&format!("qemu exited with {status} after poweroff"));
            }
        } else {
            self.wait_console("System halted", at, SHUTDOWN_TIMEOUT)
                .await;
            self.child.kill().expect("kill qemu");
            self.child.wait().expect("reap qemu");
        }
        // rcK's S99pi-failover stop sends SIGTERM and waits; the run script logs the exit.
        // (Log lines interleave with rcK's own output on the console.)
        let log = self.console_log();
        let shutdown = log.get(at..).unwrap_or_default();
        if !shutdown.contains("Stopping pi-failover:")
            || !shutdown.contains("pi-failover: exited with status 0")
            || shutdown.contains("FAIL (still running")
        {
            self.fail("rcK did not stop pi-failover gracefully (SIGTERM, exit status 0)");
        }
        println!(
            "image_boot: {}: poweroff to {}: {:.1} s",
            self.name,
            if self.powers_off { "power-off" } else { "halt" },
            asked.elapsed().as_secs_f64()
        );
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One GET over a fresh TLS connection with SNI and Host `SITE`, trusting only the test CA.
async fn https_get(client: &Client, addr: SocketAddr, path: &str) -> Result<Reply, String> {
    let exchange = async {
        let config = client.tls_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let tls = client
            .connect_with(addr, SITE, config)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(TokioIo::new(tls), path, SITE).await
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// One GET over plain HTTP.
/// A plain-HTTP GET of the status page, named by its address as a browser on the LAN does
/// (the page answers other names only with its token: DNS rebinding).
async fn http_get(addr: SocketAddr, path: &str) -> Result<Reply, String> {
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        exchange(TokioIo::new(tcp), path, &addr.to_string()).await
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}

async fn exchange<T>(io: TokioIo<T>, path: &str, host: &str) -> Result<Reply, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    let request = Request::builder()
        .uri(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        version: parts.version,
    })
}

/// The data partition (7, the third logical partition: S04data makes it on the first boot) as
/// the card holds it now.
struct DataPartition {
    /// Sectors of the card it spans to, from the partition table.
    end_sector: u64,
    ext4: bool,
    /// The journal must be replayed: the filesystem was in use when the power went.
    needs_recovery: bool,
}

/// Partition `number` (1-4 primary, 5 and up logical) of an MBR disk: its first sector and
/// length, or `None` when the table has no such partition.
fn mbr_partition(file: &mut std::fs::File, number: usize) -> Option<(u64, u64)> {
    let sector = |file: &mut std::fs::File, at: u64| {
        let mut block = [0u8; 512];
        std::io::Seek::seek(file, std::io::SeekFrom::Start(at * 512)).expect("seek");
        file.read_exact(&mut block).expect("read a partition table");
        block
    };
    let le32 = |b: &[u8]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let entry = |block: &[u8; 512], i: usize| {
        let e = &block[446 + i * 16..446 + (i + 1) * 16];
        (e[4], le32(&e[8..12]), le32(&e[12..16]))
    };
    let mbr = sector(file, 0);
    if number <= 4 {
        let (kind, start, sectors) = entry(&mbr, number - 1);
        return (kind != 0).then_some((start, sectors));
    }
    // The logical partitions: a chain of EBRs inside the extended partition, each
    // holding one partition (relative to itself) and the link to the next (relative to
    // the extended partition's start).
    let (_, extended, _) = (0..4)
        .map(|i| entry(&mbr, i))
        .find(|(kind, _, _)| matches!(kind, 0x05 | 0x0f | 0x85))?;
    let mut ebr_at = extended;
    for logical in 5.. {
        let ebr = sector(file, ebr_at);
        let (_, start, sectors) = entry(&ebr, 0);
        if logical == number {
            return Some((ebr_at + start, sectors));
        }
        let (kind, next, _) = entry(&ebr, 1);
        if kind == 0 {
            return None;
        }
        ebr_at = extended + next;
    }
    None
}

/// The boot state as U-Boot's boot script and fw_setenv keep it (image/boot.cmd): a 16 KiB
/// U-Boot environment at 1 MiB into the card, a CRC32 of the rest, then `name=value` strings
/// ending in NULs. `None` when the CRC does not match.
fn boot_state(card: &Path) -> Option<std::collections::BTreeMap<String, String>> {
    let mut file = std::fs::File::open(card).expect("open card");
    let mut block = vec![0u8; 0x4000];
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(1 << 20)).expect("seek");
    file.read_exact(&mut block).expect("read the boot state");
    let crc = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
    if crc32fast::hash(&block[4..]) != crc {
        return None;
    }
    Some(
        block[4..]
            .split(|b| *b == 0)
            .take_while(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let pair = String::from_utf8_lossy(pair);
                let (k, v) = pair.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect(),
    )
}

fn data_partition(card: &Path) -> DataPartition {
    let mut file = std::fs::File::open(card).expect("open card");
    let Some((start, sectors)) = mbr_partition(&mut file, 7) else {
        return DataPartition {
            end_sector: 0,
            ext4: false,
            needs_recovery: false,
        };
    };
    let mut sb = [0u8; 1024];
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start * 512 + 1024))
        .expect("seek superblock");
    file.read_exact(&mut sb).expect("read superblock");
    let ext4 = sb[0x38..0x3A] == [0x53, 0xEF];
    let incompat = u32::from_le_bytes([sb[0x60], sb[0x61], sb[0x62], sb[0x63]]);
    DataPartition {
        end_sector: start + sectors,
        ext4,
        needs_recovery: ext4 && incompat & 0x4 != 0,
    }
}

/// Runs one scenario alone: the heavy tests one at a time, one guest at a time (software
/// emulation keeps the cores busy), on a runtime of its own.
fn one_guest(scenario: impl std::future::Future<Output = ()>) {
    let _alone = common::exclusive_blocking();
    let _one = ONE_GUEST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(scenario);
}

/// The last `key=value` the appliance logged on the console (`?` when none).
fn logged(console: &str, key: &str) -> String {
    let field = format!(" {key}=");
    console
        .rsplit(&field)
        .next()
        .filter(|_| console.contains(&field))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?")
        .to_owned()
}

/// The bundle's key in the bucket: `<prefix><compatible>.raucb`.
fn update_key() -> String {
    format!("{UPDATE_PREFIX}{COMPATIBLE}.raucb")
}

/// The test image's root filesystem, stamped as `version` (`/etc/pi-failover-build`, where the
/// appliance reads its own version); `broken`: its `pi-failover` exits at once, as a build
/// that cannot start would.
fn rootfs_variant(dir: &Path, version: &str, broken: bool) -> PathBuf {
    let tree = dir.join(format!("rootfs-{version}"));
    let _ = std::fs::remove_dir_all(&tree);
    run(Command::new("unsquashfs")
        .args(["-q", "-n", "-d"])
        .arg(&tree)
        .arg(work_dir().join("build/rootfs.squashfs")));
    let stamp = tree.join("etc/pi-failover-build");
    let stamped: String = std::fs::read_to_string(&stamp)
        .expect("the image's build stamp")
        .lines()
        .map(|line| {
            if line.starts_with("VERSION=") {
                format!("VERSION={version}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    std::fs::write(&stamp, stamped).expect("stamp");
    if broken {
        use std::os::unix::fs::PermissionsExt;
        let bin = tree.join("usr/bin/pi-failover");
        std::fs::write(
            &bin,
            "#!/bin/sh\necho 'pi-failover: this build cannot start (the image test'\''s broken update)' >&2\nexit 1\n",
        )
        .expect("broken binary");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = dir.join(format!("rootfs-{version}.squashfs"));
    run(Command::new("mksquashfs").arg(&tree).arg(&out).args([
        "-comp",
        "zstd",
        "-all-root",
        "-noappend",
        "-quiet",
    ]));
    let _ = std::fs::remove_dir_all(&tree);
    out
}

/// The owner's signing key of the test images (`image/qemu/build.sh` makes it; the images
/// carry its certificate as their RAUC keyring).
fn owner_keys() -> PathBuf {
    work_dir().join("keys")
}

/// A signing key the images do not trust, made in `dir`.
fn stranger_keys(dir: &Path) -> PathBuf {
    let keys = dir.join("stranger");
    std::fs::create_dir_all(&keys).expect("stranger dir");
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=not the owner"])
        .arg("-keyout")
        .arg(keys.join("owner.key.pem"))
        .arg("-out")
        .arg(keys.join("owner.cert.pem")));
    keys
}

struct Setup {
    machine: &'static str,
    /// The card's board: `rpi4-64` on raspi4b, else the Pi 3's (virt boots it too).
    board: &'static str,
    dir: PathBuf,
    card: PathBuf,
    s3: S3Server,
    site: Site,
    client: Client,
    /// The guest's HTTPS clock source (its port on the host).
    date_port: u16,
    /// The owner's webhook receiver (`[notify]`).
    hook: Webhook,
}

impl Setup {
    /// `run`: the scenario's directory under `runs/`.
    async fn new(machine: &'static str, run: &str) -> Self {
        Self::with(machine, run, false).await
    }

    /// [`Setup::new`] with `[update]` on the card, and a sync every 15 s.
    async fn with_updates(machine: &'static str, run: &str) -> Self {
        Self::with(machine, run, true).await
    }

    async fn with(machine: &'static str, run: &str, updates: bool) -> Self {
        let dir = run_dir(run);
        let board = if machine == "raspi4b" {
            "rpi4-64"
        } else {
            "rpi3-64"
        };
        let card = write_card(&dir, board);
        let s3 = S3Server::start().await;
        let site = Site::seed(&s3);
        let ca = TestCa::new();
        let now = std::time::SystemTime::now();
        let day = Duration::from_secs(86_400);
        let date_port = common::date_server(
            &dir,
            &ca,
            &[GUEST_SERVICE_ADDR],
            (now - day, now + 30 * day),
            CLOCK_AHEAD,
        )
        .await;
        let hook = Webhook::start_for(&ca, &dir, Answer::Ok, &[GUEST_SERVICE_ADDR]).await;
        configure_card(&card, &dir, &ca, &s3, date_port, hook.addr.port(), updates);
        let client = Client::new(vec![ca.cert_der()]);
        Self {
            machine,
            board,
            dir,
            card,
            s3,
            site,
            client,
            date_port,
            hook,
        }
    }

    /// An update bundle (`image/bundle.sh`) of this card's kernel partition and `rootfs`,
    /// carrying `version`, for boards `compatible`, signed by `signer` (a directory with
    /// `owner.cert.pem` and `owner.key.pem`).
    fn bundle(
        &self,
        name: &str,
        rootfs: &Path,
        version: &str,
        compatible: &str,
        signer: &Path,
    ) -> Vec<u8> {
        let kernel = image(self.board).with_file_name("kernel.vfat");
        let out = self.dir.join("bundles").join(format!("{name}.raucb"));
        std::fs::create_dir_all(out.parent().expect("bundles dir")).expect("bundles dir");
        run(Command::new(repo().join("image/bundle.sh"))
            .arg("--kernel")
            .arg(&kernel)
            .arg("--rootfs")
            .arg(rootfs)
            .args(["--compatible", compatible, "--version", version])
            .arg("--cert")
            .arg(signer.join("owner.cert.pem"))
            .arg("--key")
            .arg(signer.join("owner.key.pem"))
            .arg("--out")
            .arg(&out));
        let bytes = std::fs::read(&out).expect("bundle");
        let _ = std::fs::remove_file(&out);
        bytes
    }

    /// The owner uploads `bundle` where the card's `[update]` looks.
    fn publish(&self, bundle: Vec<u8>) {
        self.s3.bucket.put(&update_key(), StoredObject::new(bundle));
    }

    async fn boot(&self, n: u32) -> Guest {
        self.boot_with(n, Nic::AtPowerOn).await
    }

    async fn boot_with(&self, n: u32, nic: Nic) -> Guest {
        let mut guest = Guest::boot(
            self.machine,
            &self.card,
            &self.dir.join(format!("boot-{n}")),
            &[self.s3.addr.port(), self.date_port, self.hook.addr.port()],
            nic,
        );
        guest.name = format!("{} ({} card, boot {n})", self.machine, self.board);
        if nic == Nic::AtPowerOn && self.machine != "virt" {
            guest.wait_console("Starting kernel", 0, BOOT_TIMEOUT).await;
            guest.plug_in_nic();
        }
        guest
    }

    /// The first boot of the fresh card: the data partition is grown to the end of the card
    /// and formatted, the site is synced and served over HTTPS, plain HTTP and the status
    /// page answer. With a late NIC, the network script waits for it and brings it up when
    /// it appears.
    async fn first_boot(&self, nic: Nic) -> Guest {
        let mut guest = self.boot_with(1, nic).await;
        if nic == Nic::Late {
            let at = guest
                .wait_console("waiting for eth0", 0, BOOT_TIMEOUT)
                .await;
            guest.plug_in_nic();
            guest
                .wait_console("eth0 appeared after", at, Duration::from_secs(60))
                .await;
        }
        guest.wait_for_https(&self.client, "first boot").await;
        guest
            .wait_for_site(&self.client, &self.site, SYNC_TIMEOUT)
            .await;
        guest.check_plain_http().await;
        guest.check_status_page().await;
        guest.check_coarse_clock().await;
        // The run script hands the appliance CAP_NET_ADMIN for the status port's packet
        // filter (Linux 6.12 refuses it to others); without it the appliance says so.
        if guest
            .console_log()
            .contains("no packet filter on the status port")
        {
            guest.fail("the status port's packet filter was not attached");
        }
        self.check_slots(&guest).await;
        let data = data_partition(&self.card);
        if !(data.ext4 && data.end_sector * 512 >= CARD_BYTES - (4 << 20)) {
            guest.fail(&format!(
                "the data partition was not grown to the card's end and formatted \
                 (ends at {} MiB of {}, ext4: {})",
                (data.end_sector * 512) >> 20,
                CARD_BYTES >> 20,
                data.ext4
            ));
        }
        guest
    }

    /// Slot B was made beside slot A on the first boot, the same sizes; U-Boot's boot
    /// script booted A, and the appliance, serving and synced, had RAUC mark A good (its 3
    /// tries back, the one this boot took included).
    async fn check_slots(&self, guest: &Guest) {
        let mut file = std::fs::File::open(&self.card).expect("open card");
        let slot = |file: &mut std::fs::File, n| {
            mbr_partition(file, n)
                .unwrap_or_else(|| guest.fail(&format!("the card has no partition {n}")))
        };
        let (kernel_a, root_a) = (slot(&mut file, 2), slot(&mut file, 3));
        let (kernel_b, root_b) = (slot(&mut file, 5), slot(&mut file, 6));
        if kernel_a.1 != kernel_b.1 || root_a.1 != root_b.1 {
            guest.fail(&format!(
                "slot B's partitions are not slot A's sizes: kernel {} / {} sectors, root {} / {}",
                kernel_a.1, kernel_b.1, root_a.1, root_b.1
            ));
        }
        if !guest
            .console_log()
            .contains("root=PARTUUID=5049f0a1-03 rauc.slot=A")
        {
            guest.fail("U-Boot's boot script did not boot slot A");
        }
        guest.wait_marked_good("A", &self.card).await;
    }

    /// A clean shutdown leaves a clean filesystem.
    async fn shut_down_cleanly(&self, guest: Guest) {
        guest.shut_down().await;
        let data = data_partition(&self.card);
        assert!(
            data.ext4 && !data.needs_recovery,
            "after a clean shutdown the data filesystem must be clean (unmounted, no journal \
             to replay)"
        );
    }
}

/// `-M virt`: first boot, sync, HTTPS; a power cut; a boot with S3 failing that serves the
/// last good site; a clean shutdown.
#[test]
fn virt_boots_syncs_survives_a_power_cut_and_shuts_down() {
    one_guest(async {
        let t = Setup::new("virt", "virt").await;
        let mut guest = t.first_boot(Nic::AtPowerOn).await;
        guest.check_notification_on_live(&t).await;

        // Power cut while serving.
        guest.pull_the_plug();
        assert!(
            data_partition(&t.card).needs_recovery,
            "the data filesystem was mounted when the power went, so its journal needs \
             replaying; the card says it does not"
        );

        // The bucket changes, but S3 fails every download: the next boot must serve the
        // last good site from the data partition.
        let (home_key, home) = &t.site.files[0];
        t.s3.bucket.put(
            &format!("{SITE_PREFIX}{home_key}"),
            StoredObject::new(b"<!doctype html><p>Never synced</p>\n".to_vec())
                .content_type("text/html"),
        );
        t.s3.bucket.fail_always(Some(Fault::InternalError));
        let mut guest = t.boot(2).await;
        guest
            .wait_for_https(&t.client, "after a power cut, S3 failing")
            .await;
        guest.wait_console("sync failed", 0, SYNC_TIMEOUT).await;
        let reply = https_get(&t.client, guest.https(), "/")
            .await
            .unwrap_or_else(|e| guest.fail(&format!("GET /: {e}")));
        assert_eq!(reply.status, 200, "GET / after the failed sync");
        assert_eq!(
            &reply.body[..],
            &home[..],
            "after the power cut and a failed sync, / must be the last good page"
        );
        assert_eq!(reply.header("x-powered-by"), Some("raspberry-pi"));
        guest.check_status_page().await;
        guest.check_history_kept_across_the_power_cut().await;
        t.shut_down_cleanly(guest).await;
    });
}

/// `-M virt`, updates from the bucket (issue 16), end to end: bundles the owner uploads
/// beside the site, fetched after each sync, vetted, installed by RAUC into the other slot,
/// rebooted into, committed or rolled back by the boot counter.
///
/// 1. Slot A refuses a bundle signed by a stranger, a tampered one and an older version: each
///    refusal on `/api/status` with its reason, the boot state untouched.
/// 2. A reader makes the Pi LIVE; a good bundle (0.2.0) then waits, and the status says why.
///    The owner types `pi-failover update --now`; the power is cut half a second into the
///    install. The next boot (A) finds the install interrupted, installs again at once (no
///    readers), and reboots.
/// 3. Slot B's first boot: the power is cut as it starts its trial. Its second: it serves,
///    syncs, is marked good and the update committed.
/// 4. A broken bundle (0.3.0, its appliance cannot start) goes into A; A on trial reboots
///    three times, U-Boot goes back to B, which serves and reports "update to 0.3.0 rolled
///    back" as ATTENTION, and does not fetch or install that bundle again.
#[test]
fn virt_updates_itself_from_the_bucket_and_rolls_back_a_broken_update() {
    one_guest(async {
        let t = Setup::with_updates("virt", "virt-update").await;
        let owner = owner_keys();
        let good_root = rootfs_variant(&t.dir, "0.2.0", false);
        let good = t.bundle("good", &good_root, "0.2.0", COMPATIBLE, &owner);
        let stranger = t.bundle(
            "stranger",
            &good_root,
            "0.2.0",
            COMPATIBLE,
            &stranger_keys(&t.dir),
        );
        let older_root = rootfs_variant(&t.dir, "0.0.9", false);
        let older = t.bundle("older", &older_root, "0.0.9", COMPATIBLE, &owner);
        let _ = std::fs::remove_file(&older_root);
        // A byte of the signature changed after signing (RAUC's bundle ends with the CMS
        // signature and its 8-byte length).
        let mut tampered = good.clone();
        let at = tampered.len() - 8 - 64;
        tampered[at] ^= 0x55;
        let mut guest = t.first_boot(Nic::AtPowerOn).await;
        let boot_order = |want: &str, guest: &Guest, when: &str| {
            let state = boot_state(&t.card).unwrap_or_default();
            if state.get("BOOT_ORDER").map(String::as_str) != Some(want) {
                guest.fail(&format!("{when}: the boot order is not {want}: {state:?}"));
            }
        };

        // 1. Refused, each with its reason; nothing changes.
        for (what, bundle, reason) in [
            (
                "signed by a stranger",
                stranger,
                "not a bundle signed by the owner",
            ),
            ("tampered", tampered, "not a bundle signed by the owner"),
            ("older", older, "not newer than the running"),
        ] {
            let before = guest
                .wait_for_status(Duration::from_secs(5), "no update status", |json| {
                    json.get("update").map(|u| u.get("last_attempt").cloned())
                })
                .await;
            t.publish(bundle);
            let got = guest
                .wait_for_status(
                    Duration::from_secs(120),
                    &format!("the bundle {what} was not refused for `{reason}`"),
                    |json| {
                        let a = json.pointer("/update/last_attempt")?;
                        let why = a.get("reason")?.as_str()?;
                        (Some(a) != before.as_ref()
                            && a.get("result")? == "refused"
                            && why.contains(reason))
                        .then(|| why.to_owned())
                    },
                )
                .await;
            println!(
                "image_boot: {}: the bundle {what} was refused: {got}",
                guest.name
            );
            boot_order("A B", &guest, &format!("after the bundle {what}"));
        }

        // 2. LIVE: the good bundle waits.
        guest.read_as_a_browser(&t).await;
        guest
            .wait_for_status(Duration::from_secs(60), "not LIVE after a reader", |json| {
                (json.get("mode")? == "LIVE").then_some(())
            })
            .await;
        t.publish(good.clone());
        let waiting = guest
            .wait_for_status(
                Duration::from_secs(120),
                "the good bundle does not say it waits while the Pi is LIVE",
                |json| {
                    let waiting = json.pointer("/update/waiting")?.as_str()?;
                    waiting
                        .contains("serving readers")
                        .then(|| waiting.to_owned())
                },
            )
            .await;
        println!("image_boot: {}: while LIVE: {waiting}", guest.name);
        // Another sync later it still waits, nothing installed.
        tokio::time::sleep(Duration::from_secs(20)).await;
        boot_order("A B", &guest, "while LIVE");
        if guest.console_log().contains("installing the update") {
            guest.fail("the update was installed while the Pi was LIVE");
        }
        let at = guest.log_in().await;
        let asked = Instant::now();
        let said = guest
            .run_on_console("pi-failover update --now", Duration::from_secs(60))
            .await;
        if !said.contains("asked the appliance to look for an update now") {
            guest.fail(&format!("pi-failover update --now: {said}"));
        }
        guest
            .wait_console("installing the update", at, Duration::from_secs(120))
            .await;
        println!(
            "image_boot: {}: update --now to the install's start: {:.1} s",
            guest.name,
            asked.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        guest.pull_the_plug();

        // The install was interrupted: slot A boots, installs again (quiet now), reboots.
        let mut guest = t.boot(2).await;
        guest.wait_console("rauc.slot=A", 0, BOOT_TIMEOUT).await;
        let at = guest
            .wait_console("the last update did not finish", 0, BOOT_TIMEOUT)
            .await;
        guest
            .wait_console(
                "installed; rebooting into it once quiet",
                at,
                Duration::from_secs(300),
            )
            .await;
        println!(
            "image_boot: {}: power-on to the update fetched, checked and installed: {:.1} s \
             (download {} s of {} bytes, install {} s)",
            guest.name,
            guest.powered_on.elapsed().as_secs_f64(),
            logged(&guest.console_log(), "download_seconds"),
            logged(&guest.console_log(), "bytes"),
            logged(&guest.console_log(), "install_seconds"),
        );
        guest
            .wait_reboot("into the new slot", Duration::from_secs(120))
            .await;
        let state = boot_state(&t.card).unwrap_or_default();
        if (
            state.get("BOOT_ORDER").map(String::as_str),
            state.get("BOOT_B_LEFT").map(String::as_str),
        ) != (Some("B A"), Some("3"))
        {
            panic!("after the install, B is not first with 3 tries: {state:?}");
        }

        // 3. Slot B's first boot: the power goes as soon as the appliance says the slot is
        // on trial, before it can have served, synced and been marked good. Its second boot
        // commits.
        let mut guest = t.boot(3).await;
        guest
            .wait_console("this slot is on trial", 0, BOOT_TIMEOUT)
            .await;
        if !guest
            .console_log()
            .contains("root=PARTUUID=5049f0a1-06 rauc.slot=B")
        {
            guest.fail("U-Boot's boot script did not boot slot B");
        }
        guest.pull_the_plug();
        let state = boot_state(&t.card).unwrap_or_default();
        assert_eq!(
            state.get("BOOT_B_LEFT").map(String::as_str),
            Some("2"),
            "slot B's first boot was not counted, or B was marked good before the power cut: {state:?}"
        );
        let mut guest = t.boot(4).await;
        guest
            .wait_for_https(&t.client, "slot B after a power cut in its first boot")
            .await;
        guest.wait_for_site(&t.client, &t.site, SYNC_TIMEOUT).await;
        guest.wait_marked_good("B", &t.card).await;
        guest
            .wait_for_status(
                Duration::from_secs(60),
                "the update to 0.2.0 is not committed",
                |json| {
                    let u = json.get("update")?;
                    (u.get("booted")? == "B"
                        && u.get("version")? == "0.2.0"
                        && u.get("role")? == "established"
                        && u.pointer("/last_attempt/result")? == "committed")
                        .then_some(())
                },
            )
            .await;
        println!(
            "image_boot: {}: power-on to the update committed: {:.1} s",
            guest.name,
            guest.powered_on.elapsed().as_secs_f64()
        );
        // Both slots as RAUC sees them: B booted and good, holding 0.2.0.
        let slots = guest
            .wait_for_status(
                Duration::from_secs(30),
                "the slots are not reported",
                |json| {
                    let slots = json.pointer("/update/slots")?.as_array()?.clone();
                    let b = slots.iter().find(|s| s["name"] == "B")?;
                    (slots.len() == 2
                        && b["state"] == "booted"
                        && b["boot_status"] == "good"
                        && b["version"] == "0.2.0")
                        .then_some(slots)
                },
            )
            .await;
        println!("image_boot: {}: slots {slots:?}", guest.name);

        // 4. A broken update goes into A and rolls back.
        let broken_root = rootfs_variant(&t.dir, "0.3.0", true);
        let broken = t.bundle("broken", &broken_root, "0.3.0", COMPATIBLE, &owner);
        let _ = std::fs::remove_file(&broken_root);
        let _ = std::fs::remove_file(&good_root);
        t.publish(broken);
        guest
            .wait_console(
                "installed; rebooting into it once quiet",
                0,
                Duration::from_secs(180),
            )
            .await;
        guest
            .wait_reboot("into the broken update", Duration::from_secs(120))
            .await;
        for n in 5..=7 {
            let mut guest = t.boot(n).await;
            guest.wait_console("rauc.slot=A", 0, BOOT_TIMEOUT).await;
            guest
                .wait_console("is on trial and pi-failover exited", 0, BOOT_TIMEOUT)
                .await;
            guest
                .wait_reboot("a trial that failed", Duration::from_secs(120))
                .await;
        }
        let mut guest = t.boot(8).await;
        guest
            .wait_for_https(&t.client, "slot B after the rollback")
            .await;
        if !guest.console_log().contains("rauc.slot=B") {
            guest.fail("U-Boot did not go back to slot B after three failed boots of A");
        }
        let reason = guest
            .wait_for_status(Duration::from_secs(60), "no rollback reported", |json| {
                let reason = json.get("reason")?.as_str()?;
                (json.get("mode")? == "ATTENTION"
                    && reason.contains("update to 0.3.0 rolled back")
                    && json.pointer("/update/last_attempt/result")? == "rolled-back")
                    .then(|| reason.to_owned())
            })
            .await;
        println!("image_boot: {}: ATTENTION: {reason}", guest.name);
        // Not retried: two syncs later the bundle was not downloaded again, nothing installed.
        let fetched = t.s3.bucket.downloads_of(&update_key());
        tokio::time::sleep(Duration::from_secs(35)).await;
        if t.s3.bucket.downloads_of(&update_key()) != fetched
            || guest.console_log().contains("installing the update")
        {
            guest.fail("the rolled-back bundle was fetched or installed again");
        }
        t.shut_down_cleanly(guest).await;
    });
}

/// `-M raspi3b` with the Pi 3 device tree, the same card: its USB NIC is plugged in only
/// once the network script waits for it (a Pi 3's Ethernet chip sits on USB and can register
/// late); first boot, sync, HTTPS, a clean shutdown, a second boot with the NIC present.
#[test]
fn raspi3b_waits_for_a_late_nic_and_serves_the_synced_site() {
    one_guest(async {
        let t = Setup::new("raspi3b", "raspi3b").await;
        let guest = t.first_boot(Nic::Late).await;
        t.shut_down_cleanly(guest).await;

        // A later boot: no partition to grow or format, the site already on the card.
        let mut guest = t.boot(2).await;
        guest.wait_for_https(&t.client, "second boot").await;
        guest.wait_for_site(&t.client, &t.site, SYNC_TIMEOUT).await;
    });
}

/// `-M raspi4b` (qemu 9.0 and later) with the Pi 4's card: its config.txt and device tree,
/// the same root filesystem: first boot, sync, HTTPS, the status page, the health path over
/// IPv6 (the default listeners are dual-stack), a clean shutdown.
#[test]
fn raspi4b_boots_the_pi4_card_and_answers_over_ipv6() {
    one_guest(async {
        let t = Setup::new("raspi4b", "raspi4b").await;
        let mut guest = t.first_boot(Nic::AtPowerOn).await;
        guest.check_ipv6().await;
        t.shut_down_cleanly(guest).await;
    });
}
