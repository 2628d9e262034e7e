//! The `pi-failover` command as a user runs it: `check-config` on the shipped example and on
//! broken files, `demo` end to end, and signals to `run`.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::process::{Running, BIN};
use common::{Client, Fixture};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pi-failover.toml")
}

/// The example as a user lays it out on the boot partition: the config, fullchain.pem and
/// privkey.pem side by side, and the site root pointed at a real directory.
fn boot_partition_with_example(f: &Fixture) -> PathBuf {
    let boot = f.path("boot");
    std::fs::create_dir_all(&boot).expect("boot dir");
    let text = std::fs::read_to_string(example()).expect("example");
    let text = text.replace(
        "data_dir = \"/data\"",
        &format!("data_dir = \"{}\"", f.path("data").display()),
    );
    std::fs::write(boot.join("pi-failover.toml"), text).expect("write config");
    std::fs::write(
        boot.join("aws-credentials"),
        "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n",
    )
    .expect("credentials");
    f.ca.issue_to(
        &["example.com", "www.example.com"],
        &boot.join("fullchain.pem"),
        &boot.join("privkey.pem"),
    );
    boot.join("pi-failover.toml")
}

#[test]
fn the_shipped_example_is_a_valid_config() {
    let path = example();
    let text = std::fs::read_to_string(&path).expect("example");
    let config = pi_failover::config::parse(&text, &path).expect("example parses");
    config.validate(&path).expect("example validates");
    assert_eq!(config.site.powered_by, "raspberry-pi");
}

#[test]
fn check_config_accepts_the_example_and_prints_the_effective_config() {
    let f = Fixture::new();
    let config = boot_partition_with_example(&f);
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(stdout.contains("powered_by = \"raspberry-pi\""), "{stdout}");
    assert!(stdout.contains("fullchain.pem"), "{stdout}");
    // The resource budget the limits imply (issue 13).
    assert!(
        stdout.contains("# budget: descriptors: at most")
            && stdout.contains("# budget: connection memory: at most"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("BEGIN"),
        "no key material is printed: {stdout}"
    );
}

fn check_config_error(text: &str) -> String {
    let f = Fixture::new();
    let path = f.path("pi-failover.toml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success(), "a broken config must fail");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(&path.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("Fix:"), "says how to fix it: {stderr}");
    stderr
}

#[test]
fn check_config_names_the_file_the_key_and_the_fix() {
    let base = |extra: &str| {
        format!(
            "[site]\nroot = \".\"\nhostnames = [\"example.com\"]\n{extra}\n[[tls.certificates]]\ncert = \"c.pem\"\nkey = \"k.pem\"\n"
        )
    };
    let e = check_config_error(&base("powerd_by = \"x\""));
    assert!(e.contains("site.powerd_by"), "{e}");
    let e = check_config_error(
        &base("hostnames_extra = 1").replace("[site]", "[site]\nhealth_path = 5"),
    );
    assert!(e.contains("site.health_path"), "{e}");
    let e =
        check_config_error(&base("").replace("[\"example.com\"]", "[\"https://example.com/\"]"));
    assert!(e.contains("site.hostnames"), "{e}");
    let e = check_config_error(&base(""));
    assert!(e.contains("tls.certificates[0].cert"), "{e}");
    let e = check_config_error("[site\n");
    assert!(e.contains("line 1"), "{e}");
    let e = check_config_error(&format!(
        "{}[limits]\nmax_buffered_bytes_per_connection = 1000\n",
        base("")
    ));
    assert!(
        e.contains("limits.max_buffered_bytes_per_connection"),
        "{e}"
    );
    let e = check_config_error(&base("redirect_hosts = [\"https://shop.example.com\"]"));
    assert!(e.contains("site.redirect_hosts"), "{e}");
}

/// A configuration whose descriptor budget does not fit the process's limit is refused at
/// start, naming the limits to lower, rather than failing `accept` and `open` under load.
#[test]
fn run_refuses_a_budget_the_descriptor_limit_cannot_hold() {
    let f = Fixture::new();
    let config = plain_https_config(&f);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{BIN}' run --config '{}'",
            config.display()
        ))
        .output()
        .expect("run");
    assert!(!out.status.success(), "started with 256 descriptors");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("descriptors") && stderr.contains("limits.max_connections"),
        "{stderr}"
    );
}

#[test]
fn check_config_rejects_a_key_that_does_not_match_the_certificate() {
    let f = Fixture::new();
    let config = boot_partition_with_example(&f);
    let other = f.path("other");
    std::fs::create_dir_all(&other).expect("dir");
    f.ca.issue_to(&["example.com"], &other.join("c.pem"), &other.join("k.pem"));
    std::fs::copy(other.join("k.pem"), f.path("boot/privkey.pem")).expect("copy");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tls.certificates") && stderr.contains("privkey.pem"),
        "{stderr}"
    );
}

/// A one-page site over HTTPS only, on a free port; the certificate files are watched once
/// an hour, so only SIGHUP reloads them within a test.
fn plain_https_config(f: &Fixture) -> std::path::PathBuf {
    f.site_file("index.html", "hi");
    let config = f.path("run.toml");
    std::fs::write(
        &config,
        "[site]\nroot = \"site\"\nhostnames = [\"localhost\"]\n[listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"off\"\n\
         [status]\nlisten = \"off\"\n[storage]\ndata_dir = \"data\"\n[tls]\nwatch_interval = \"1h\"\n[[tls.certificates]]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
    )
    .expect("config");
    config
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `pi-failover demo` printed: its temporary directory and HTTPS port.
struct DemoInfo {
    dir: PathBuf,
    https_port: u16,
    http_port: u16,
    status_port: u16,
}

fn start_demo() -> (Running, DemoInfo) {
    start_demo_with(&[])
}

fn start_demo_with(args: &[&std::ffi::OsStr]) -> (Running, DemoInfo) {
    let mut child = Command::new(BIN)
        .arg("demo")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut dir = None;
    let mut https_port = None;
    let mut http_port = None;
    let mut status_port = None;
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(rest) = line.split("from ").nth(1).filter(|_| dir.is_none()) {
            dir = Some(PathBuf::from(rest.trim()));
        }
        let port_after = |prefix: &str| {
            line.split(prefix)
                .nth(1)?
                .split('/')
                .next()?
                .parse::<u16>()
                .ok()
        };
        if line.contains("site:") {
            https_port = port_after("https://localhost:");
        }
        if line.contains("health:") {
            http_port = port_after("http://localhost:");
        }
        if line.contains("status:") {
            status_port = port_after("http://localhost:");
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let info = DemoInfo {
        dir: dir.expect("demo printed its directory"),
        https_port: https_port.expect("demo printed the HTTPS URL"),
        http_port: http_port.expect("demo printed the health URL"),
        status_port: status_port.expect("demo printed the status URL"),
    };
    (Running(child), info)
}

#[tokio::test]
async fn demo_serves_the_sample_site_over_https_and_stops_cleanly_on_sigterm() {
    let (mut demo, info) = start_demo();
    let cert = CertificateDer::from_pem_file(info.dir.join("cert.pem")).expect("demo cert");
    let client = Client::new(vec![cert]);
    let addr = ([127, 0, 0, 1], info.https_port).into();

    let home = client.get(addr, "/").await;
    assert_eq!(home.status, 200);
    assert_eq!(home.header("x-powered-by"), Some("raspberry-pi"));
    assert!(String::from_utf8_lossy(&home.body).contains("badge.js"));
    assert_eq!(client.get(addr, "/about").await.status, 301);
    assert_eq!(client.get(addr, "/assets/js/badge.js").await.status, 200);
    assert_eq!(client.get(addr, "/missing").await.status, 404);
    let health = common::plain_get(
        ([127, 0, 0, 1], info.http_port).into(),
        "/up.txt",
        "localhost",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    signal(&demo.0, libc::SIGTERM);
    let status = wait_exit(&mut demo.0, Duration::from_secs(15));
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    assert!(!info.dir.exists(), "the demo removes its temporary files");
}

#[tokio::test]
async fn the_demo_goes_live_when_one_person_reads_it_and_its_simulated_indicators_follow() {
    let (_demo, info) = start_demo();
    let cert = CertificateDer::from_pem_file(info.dir.join("cert.pem")).expect("demo cert");
    let client = Client::new(vec![cert]);
    let site = ([127, 0, 0, 1], info.https_port).into();
    let status_at = ([127, 0, 0, 1], info.status_port).into();
    let status = || async {
        let json = common::plain_get(status_at, "/api/status", "localhost").await;
        let body = json.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        serde_json::from_str::<serde_json::Value>(&body).expect("status JSON")
    };
    let first = status().await;
    assert_eq!(first["mode"], "STANDBY", "nobody has read it yet");
    // 90 days from now, counted in whole days left (89 a moment later).
    let days_left = first["tls"][0]["days_left"].as_i64().unwrap_or(0);
    assert!(
        (89..=90).contains(&days_left),
        "the demo's certificate lives as long as a real one: {days_left} days"
    );

    // One person with a browser: a page and its script, a few times, for a few seconds
    // (the demo's debounce is 2 s).
    let browser = [(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
    )];
    let mut tab = client.h1(site).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let live = loop {
        for path in ["/", "/assets/js/badge.js"] {
            let r = tab.send(common::request("GET", path, &browser)).await;
            assert_eq!(r.status, 200, "{path}");
        }
        let now = status().await;
        if now["mode"] == "LIVE" {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo never went LIVE: {now}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(live["indicators"]["led"], "simulated");
    assert!(
        live["indicators"]["oled"]
            .as_str()
            .is_some_and(|o| o.starts_with("simulated")),
        "{live}"
    );
    let page = common::plain_get(status_at, "/", "localhost").await;
    assert!(page.contains("LIVE") && page.contains("oled.png"), "{page}");
}

#[test]
fn indicators_off_darkens_the_led_even_when_the_rest_of_the_config_is_broken() {
    let f = Fixture::new();
    let led = f.path("leds/status");
    std::fs::create_dir_all(&led).expect("led dir");
    std::fs::write(led.join("brightness"), "1").expect("lit");
    std::fs::write(led.join("trigger"), "[mmc0] none").expect("trigger");
    let mut c = f.config();
    c.led.backend = pi_failover::config::LedBackend::Sysfs;
    c.led.path = led.clone();
    c.oled.backend = pi_failover::config::OledBackend::I2c;
    c.oled.bus = f.path("no-such-i2c-bus");
    let config = f.path("pi-failover.toml");
    std::fs::write(&config, c.to_toml()).expect("config");
    // The certificate went missing: the LED must go off all the same.
    std::fs::remove_file(f.path("cert.pem")).expect("remove the certificate");

    let out = Command::new(BIN)
        .args(["indicators-off", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(
        std::fs::read_to_string(led.join("brightness")).expect("read"),
        "0"
    );
    assert_eq!(
        std::fs::read_to_string(led.join("trigger")).expect("read"),
        "none",
        "the kernel's trigger no longer drives it"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the OLED's bus is missing: {stderr}");
    assert!(
        stderr.contains("OLED") && stderr.contains("no-such-i2c-bus"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_can_be_pointed_at_a_bucket_by_config() {
    let f = Fixture::new();
    let s3 = common::s3::S3Server::start().await;
    s3.bucket.put_body("index.html", "<h1>from the bucket</h1>");
    // The user's own config: only its [s3] section is used by the demo.
    let config = f.s3_config(&s3);
    drop(config);
    let path = f.path("pi-failover.toml");
    let (_demo, info) = start_demo_with(&[std::ffi::OsStr::new("--config"), path.as_os_str()]);
    let cert = CertificateDer::from_pem_file(info.dir.join("cert.pem")).expect("demo cert");
    let client = Client::new(vec![cert]);
    let addr = ([127, 0, 0, 1], info.https_port).into();
    let mut body = Vec::new();
    for _ in 0..100 {
        let r = client.get(addr, "/").await;
        if r.status == 200 {
            body = r.body.to_vec();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body, b"<h1>from the bucket</h1>");
    assert!(
        info.dir
            .join("data/site/current/files/index.html")
            .is_file(),
        "synced into the demo's directory"
    );
    assert!(!f.path("data").exists(), "never into the user's data_dir");
}

#[tokio::test]
async fn sighup_reloads_the_certificate_of_a_running_appliance() {
    let f = Fixture::new();
    let (running, served) = common::process::run_appliance(&plain_https_config(&f));
    let addr = served
        .recv_timeout(Duration::from_secs(10))
        .expect("the appliance serves");
    let client = f.client();
    let peer = |tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        tls.get_ref().1.peer_certificates().expect("chain")[0]
            .clone()
            .into_owned()
    };
    let before = peer(&client.connect(addr, "localhost", &[]).await);
    f.ca.issue_to(&["localhost"], &f.path("cert.pem"), &f.path("key.pem"));
    let renewed = CertificateDer::from_pem_file(f.path("cert.pem")).expect("pem");
    assert_ne!(before, renewed);
    signal(&running.0, libc::SIGHUP);
    let mut seen = before;
    for _ in 0..50 {
        seen = peer(&client.connect(addr, "localhost", &[]).await);
        if seen == renewed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen, renewed,
        "SIGHUP made new handshakes use the renewed certificate"
    );
}

/// Once its listeners are bound, `pi-failover run` holds no capability on any of its threads:
/// on the card it starts with CAP_NET_BIND_SERVICE and CAP_NET_ADMIN (the status port's packet
/// filter) and must not keep them while facing the internet. Run as root (as CI runs), the old
/// code kept root's whole set.
#[tokio::test]
async fn a_running_appliance_holds_no_capabilities() {
    let f = Fixture::new();
    let (running, served) = common::process::run_appliance(&plain_https_config(&f));
    served
        .recv_timeout(Duration::from_secs(10))
        .expect("the appliance serves");
    let tasks = format!("/proc/{}/task", running.0.id());
    let threads: Vec<_> = std::fs::read_dir(&tasks)
        .expect("its threads")
        .map(|t| t.expect("thread").path())
        .collect();
    assert!(threads.len() > 1, "the runtime's threads are there too");
    for thread in threads {
        let status = std::fs::read_to_string(thread.join("status")).expect("status");
        for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
            let value = status
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{set}:")))
                .map_or_else(|| panic!("no {set} in {}", thread.display()), str::trim);
            assert_eq!(
                u64::from_str_radix(value, 16).expect("hex"),
                0,
                "{set} of {}",
                thread.display()
            );
        }
    }
}

/// A certificate-renewal hook may send SIGHUP at any moment after the appliance starts,
/// including the very one it says it is serving: SIGHUP's default action is to kill.
#[tokio::test]
async fn a_sighup_the_moment_it_says_serving_does_not_kill_it() {
    let f = Fixture::new();
    let (mut running, served) = common::process::run_appliance(&plain_https_config(&f));
    let addr = served
        .recv_timeout(Duration::from_secs(10))
        .expect("the appliance serves");
    signal(&running.0, libc::SIGHUP);
    f.client().connect(addr, "localhost", &[]).await;
    assert!(
        running.0.try_wait().expect("wait").is_none(),
        "the appliance is still running after SIGHUP"
    );
}

#[cfg(feature = "system-tests")]
#[test]
fn curl_sees_the_demos_headers() {
    let curl = common::require_tool("curl");
    let (_demo, info) = start_demo();
    let url = format!("https://localhost:{}/", info.https_port);
    let out = Command::new(curl)
        .args(["-skI", "--http1.1", &url])
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    for header in [
        "x-powered-by: raspberry-pi",
        "strict-transport-security: max-age=",
        "x-content-type-options: nosniff",
        "etag: \"",
        "last-modified: ",
    ] {
        assert!(head.contains(header), "missing {header}: {head}");
    }
    let out = Command::new(common::require_tool("curl"))
        .args(["-skI", "--http2", &url])
        .output()
        .expect("curl h2");
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/2 200"), "HEAD over h2 works: {head}");
    assert!(head.contains("content-length: "), "{head}");
}

#[test]
fn render_oled_writes_the_panel_pixels_of_each_screen_and_refuses_an_unknown_size() {
    use pi_failover::indicators::frame::Frame;
    use pi_failover::indicators::screen::{self, PanelSize, Tick};
    use pi_failover::live::mode::Mode;
    let f = Fixture::new();
    let render = |mode: &str, size: &str| {
        let out = f.path(&format!("{mode}-{size}.png"));
        let run = Command::new(BIN)
            .args([
                "render-oled",
                "--mode",
                mode,
                "--size",
                size,
                "--scale",
                "1",
                "--out",
            ])
            .arg(&out)
            .output()
            .expect("run");
        (run, out)
    };
    let now = std::time::SystemTime::now();
    for (size, panel) in [
        ("128x64", PanelSize::W128H64),
        ("128x32", PanelSize::W128H32),
    ] {
        for (name, expected) in [
            (
                "live",
                screen::render(
                    &pi_failover::status::Status::example(Mode::Live, now),
                    panel,
                    Tick::default(),
                    now,
                ),
            ),
            ("stopping", screen::stopping(panel, Tick::default())),
        ] {
            let (run, out) = render(name, size);
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
            let png = std::fs::read(&out).expect("the PNG");
            assert_eq!(
                Frame::from_png(&png).expect("a 1-bit picture"),
                expected,
                "{name} {size}: the glass shows the drawn screen"
            );
        }
    }
    let (run, _) = render("live", "96x16");
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("128x64 or 128x32"),
        "names the sizes there are"
    );
}

/// `check-config` on the example with `[s3]` lines replaced: (success, stdout, stderr).
fn check_example_with(replace: &[(&str, &str)]) -> (bool, String, String) {
    let f = Fixture::new();
    let config = boot_partition_with_example(&f);
    let mut text = std::fs::read_to_string(&config).expect("config");
    for (from, to) in replace {
        assert!(text.contains(from), "the example has {from}");
        text = text.replace(from, to);
    }
    std::fs::write(&config, text).expect("write");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_explains_bandwidth_and_timeouts_that_cannot_work() {
    let (ok, _, stderr) = check_example_with(&[("bandwidth_limit = 0", "bandwidth_limit = 1000")]);
    assert!(
        !ok && stderr.contains("s3.bandwidth_limit") && stderr.contains("Fix:"),
        "{stderr}"
    );
    let (ok, _, stderr) =
        check_example_with(&[("stall_timeout = \"30s\"", "stall_timeout = \"0s\"")]);
    assert!(!ok && stderr.contains("s3.stall_timeout"), "{stderr}");
    // A thin uplink works, and check-config says what it means for a large site.
    let (ok, stdout, stderr) =
        check_example_with(&[("bandwidth_limit = 0", "bandwidth_limit = 125000")]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("note: s3.bandwidth_limit") && stdout.contains("s3.stall_timeout"),
        "{stdout}"
    );
}

/// Shells and init scripts hand the service a soft limit of 1,024 descriptors, as many as the
/// default connection cap: the appliance takes its hard limit at start.
#[tokio::test]
async fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
    use std::os::unix::process::CommandExt;
    let f = Fixture::new();
    let (running, served) =
        common::process::run_appliance_with(&plain_https_config(&f), |command| {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    let mut limit = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    limit.rlim_cur = limit.rlim_cur.min(256);
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        });
    served
        .recv_timeout(Duration::from_secs(10))
        .expect("the appliance serves");
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", running.0.id())).expect("its limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("the descriptor line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    assert_eq!(soft, hard, "{line}");
    assert_ne!(soft, "256", "{line}");
}
