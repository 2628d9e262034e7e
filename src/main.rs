//! The `pi-failover` command: parses the command line, sets up logging, and turns errors
//! into messages and exit codes. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pi_failover::appliance::{Appliance, Listeners};
use pi_failover::budget::Budget;
use pi_failover::config::{self, DEFAULT_CONFIG_PATH};
#[cfg(feature = "demo")]
use pi_failover::demo;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;

/// The allocator of the Pi's binary (static musl). musl's own made the 15 KB page cost 2.6x
/// the CPU it costs under glibc's; mimalloc's thread-local free lists give that back
/// (docs/benchmarks.md, "HTTP/2 and the Pi's allocator"). Tuned for a small machine: memory is
/// committed as it is used, not a whole arena at once, and handed back to the kernel as soon as
/// it is free; by default its peak at 256 HTTP/2 connections was 37 MB, tuned 25 MB (musl's
/// own: 25 MB).
#[cfg(target_env = "musl")]
mod allocator {
    use std::ffi::{c_int, c_long};

    #[global_allocator]
    static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

    // mimalloc.h's `mi_option_e` (v3, as libmimalloc-sys 0.1.49 builds it; Cargo.lock pins it).
    const ARENA_EAGER_COMMIT: c_int = 4;
    const PURGE_DELAY: c_int = 15;

    extern "C" {
        fn mi_option_set(option: c_int, value: c_long);
    }

    /// Before the runtime's threads start: later arenas and pages follow these options.
    pub fn tune() {
        // SAFETY: mimalloc's options are plain integers, settable at any time.
        unsafe {
            mi_option_set(ARENA_EAGER_COMMIT, 0);
            mi_option_set(PURGE_DELAY, 0);
        }
    }
}
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Parser)]
#[command(
    name = "pi-failover",
    version,
    about = "Standby HTTPS origin of a static website, for a Raspberry Pi"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance.
    Run {
        /// The config file (on the appliance: the SD card's FAT partition).
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Validate a config file and print the effective config (secrets redacted).
    CheckConfig {
        /// The config file to check.
        #[arg(default_value = DEFAULT_CONFIG_PATH)]
        path: PathBuf,
    },
    /// Sync the site from S3 into a new generation (the appliance also does this on its
    /// interval). A running appliance picks the new generation up at its next sync or SIGHUP.
    Sync {
        /// Run one sync and exit (the only mode: the appliance runs the periodic one).
        #[arg(long, required = true)]
        once: bool,
        /// List and plan only; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Draw the OLED screen for a mode into a PNG, through the real display driver and a
    /// software SSD1306: the pixels a panel would show (for docs and for checking a layout).
    #[cfg(feature = "demo")]
    RenderOled {
        #[arg(long, value_enum)]
        mode: ModeArg,
        /// The panel: 128x64 or 128x32.
        #[arg(long, default_value = "128x64")]
        size: String,
        /// Screen pixels per panel pixel.
        #[arg(long, default_value_t = 4)]
        scale: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Switch the status LED off and blank the OLED. The image's run script calls this after
    /// the appliance exits, however it exited: a crash or the OOM killer leave them showing
    /// the last mode otherwise.
    IndicatorsOff {
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// The clock (the Pi has no real-time clock): the NTP servers for the image's ntpd, and
    /// the HTTPS `Date` fallback for sites that block NTP.
    Clock {
        #[command(subcommand)]
        action: ClockAction,
    },
    /// Messages to the owner (`[notify]`).
    Notify {
        /// Send one test message to `notify.url` now and say whether it arrived.
        #[arg(long, required = true)]
        test: bool,
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Signed updates (`[update]`): ask the running appliance to look for the owner's bundle
    /// now and, if there is a new one, install it and reboot into it without waiting for a
    /// moment when no readers are served. Follow it on the status page.
    Update {
        #[arg(long, required = true)]
        now: bool,
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Serve a built-in sample site over HTTPS on localhost with a self-signed certificate.
    #[cfg(feature = "demo")]
    Demo {
        /// Sync the site from the `[s3]` bucket of this config file instead of serving the
        /// sample site (the rest of the file is not used).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClockAction {
    /// Print `clock.ntp_servers`, one per line (the image's /etc/init.d/S48ntpd asks).
    NtpServers {
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Ask the `clock.https_date` servers for the time and print how far this clock is off.
    /// Sets nothing.
    Check {
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Run the HTTPS fallback beside ntpd (as root: it sets the clock), recording the
    /// clock's source in `clock.state_file` for the status page.
    Watch {
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// A program to run after the clock was stepped (the image saves the time).
        #[arg(long)]
        after_step: Option<String>,
    },
}

fn main() -> ExitCode {
    #[cfg(target_env = "musl")]
    allocator::tune();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => match run(config) {
            // The run script reboots on this status (the update agent installed a new slot).
            Ok(pi_failover::appliance::Exit::Reboot) => return ExitCode::from(REBOOT_EXIT),
            other => other.map(drop),
        },
        Command::CheckConfig { path } => check_config(path),
        Command::Sync {
            once: _,
            dry_run,
            config,
        } => sync(config, dry_run),
        #[cfg(feature = "demo")]
        Command::RenderOled {
            mode,
            size,
            scale,
            out,
        } => render_oled(mode, &size, scale, out),
        Command::IndicatorsOff { config } => indicators_off(&config),
        Command::Clock { action } => clock(action),
        Command::Notify { test: _, config } => notify_test(&config),
        Command::Update { now: _, config } => update_now(&config),
        #[cfg(feature = "demo")]
        Command::Demo { config } => demo(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pi-failover: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    // `RUST_LOG` wins when it parses (a broken one is reported below, not obeyed); `log.level`
    // was checked by the config's validation. `Targets` rather than `EnvFilter`: the same
    // `target=level,…` lists without a regex engine (about 300 KB of the Pi's 8 MiB binary).
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .map(|v| config::log_filter(&v).map_err(|why| (v, why)));
    let filter = match &from_env {
        Some(Ok(filter)) => filter.clone(),
        _ => config::log_filter(level)
            .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO)),
    };
    // Plain text: the Pi's log is a file and a serial console (no ANSI colours in the binary).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .finish()
        .with(filter)
        .init();
    if let Some(Err((value, why))) = from_env {
        tracing::warn!(RUST_LOG = %value, "ignored: {why}; using log.level");
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one and refuses to start when the
/// configuration's budget does not fit in it. Init scripts and shells hand the service a soft
/// limit of 1,024 while `limits.max_connections` alone defaults to 1,024: at the limit `accept`
/// and `open` fail and every reader, the health check included, gets nothing (issue 13). The
/// hard limit is the most an unprivileged process may take; raising it is the image's job.
fn raise_descriptor_limit(budget: &Budget) -> anyhow::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the descriptor limit");
        return Ok(());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            limit = raised;
        } else {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot raise the descriptor limit");
        }
    }
    // `rlim_t` is u64 on the Pi's targets and here, but not by definition.
    #[allow(clippy::useless_conversion)]
    let open_files = u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX);
    anyhow::ensure!(
        open_files >= budget.descriptors(),
        "the configuration needs up to {} descriptors but the process may open {open_files}. \
         Fix: lower limits.max_connections, limits.max_handshakes, limits.reserved_connections \
         or limits.max_open_files, or raise the hard limit (ulimit -Hn, LimitNOFILE).\n{budget}",
        budget.descriptors()
    );
    tracing::info!(
        open_files,
        budget = budget.descriptors(),
        "descriptor limit"
    );
    Ok(())
}

/// `pi-failover notify --test`: one message, sent now (not queued), with the receiver's
/// verdict.
fn notify_test(path: &std::path::Path) -> anyhow::Result<()> {
    let config = pi_failover::settings::load(path)?;
    init_logging(&config.log.level);
    let settings = pi_failover::notify::NotifySettings::from_config(&config).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: notify.url is not set. Fix: add a [notify] section with url = \"https://…\" \
             (docs/user-guide.md, \"A message on your phone\")",
            path.display()
        )
    })?;
    let sender = settings.sender()?;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let message = pi_failover::notify::Message::test(&settings.pi, settings.link.as_deref(), at);
    runtime()?
        .block_on(sender.send(&message))
        .with_context(|| format!("the test message did not arrive at {}", sender.host()))?;
    println!("sent: {} accepted the test message", sender.host());
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Blocking work here is file I/O and compression for a handful of downloads at a time;
    // tokio's default of 512 blocking threads would only multiply allocator arenas and stacks.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(16)
        .build()
        .context("cannot start the async runtime")
}

/// `pi-failover run`'s exit status when the Pi should reboot into a freshly installed slot
/// (EX_TEMPFAIL: the image's run script reboots on it).
const REBOOT_EXIT: u8 = 75;

fn run(path: PathBuf) -> anyhow::Result<pi_failover::appliance::Exit> {
    let config = pi_failover::settings::load(&path)?;
    init_logging(&config.log.level);
    raise_descriptor_limit(&pi_failover::settings::budget(&config))?;
    // The privileged steps, then no privileges: still one thread here (src/privileges.rs).
    let listeners = Listeners::bind(&config)?;
    match pi_failover::privileges::drop_all() {
        Ok(()) => tracing::debug!("capabilities dropped"),
        Err(e) => tracing::warn!(error = %e, "cannot drop capabilities; serving with them"),
    }
    runtime()?.block_on(async {
        let appliance = Appliance::start_on(config, listeners).await?;
        anyhow::Ok(appliance.run_until_signal().await)
    })
}

/// `pi-failover update --now`: leaves the request where the appliance's update agent looks
/// every two seconds (`update::journal::NOW_REQUEST`).
fn update_now(path: &std::path::Path) -> anyhow::Result<()> {
    let config = pi_failover::settings::load(path)?;
    anyhow::ensure!(
        config.update.is_some(),
        "{}: there is no [update] table, so the appliance looks for no updates. Fix: add [update] with the prefix the owner uploads bundles under (docs/user-guide.md, \"Updating a Pi you cannot reach\")",
        path.display()
    );
    let request = pi_failover::update::request_now(&config.storage.data_dir)?;
    println!(
        "asked the appliance to look for an update now ({}); a new bundle is installed and rebooted into without waiting for readers to leave. Follow it on the status page (Updates).",
        request.display()
    );
    Ok(())
}

#[cfg(feature = "demo")]
#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Live,
    Draining,
    Standby,
    Attention,
    Error,
    /// The screen shown while the appliance drains its connections on the way down.
    Stopping,
}

fn indicators_off(file: &std::path::Path) -> anyhow::Result<()> {
    // Not `config::load`: a certificate that went missing must not keep the LED lit.
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config = config::parse(&text, file)?;
    config.validate(file)?;
    let problems = pi_failover::indicators::switch_off(&config);
    for problem in &problems {
        eprintln!("pi-failover: {problem}");
    }
    anyhow::ensure!(
        problems.is_empty(),
        "not every indicator could be switched off"
    );
    Ok(())
}

/// The config for the clock's commands: parsed and validated, but not `config::load` (a
/// certificate file gone missing must not stop the clock being set).
fn clock_settings(file: &std::path::Path) -> anyhow::Result<pi_failover::clock::ClockSettings> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config = config::parse(&text, file)?;
    config.validate(file)?;
    config.clock.check_files(file)?;
    init_logging(&config.log.level);
    Ok(pi_failover::clock::ClockSettings::new(&config))
}

fn clock(action: ClockAction) -> anyhow::Result<()> {
    use pi_failover::clock::watch;
    match action {
        ClockAction::NtpServers { config } => {
            for server in clock_settings(&config)?.ntp_servers {
                println!("{server}");
            }
            Ok(())
        }
        ClockAction::Check { config } => {
            let settings = clock_settings(&config)?;
            anyhow::ensure!(
                !settings.https_date.is_empty(),
                "{}: no HTTPS time source: set clock.https_date (or [s3], whose endpoint is the default)",
                config.display()
            );
            let state =
                runtime()?.block_on(watch::check(&settings, false, &watch::Hooks::default()));
            match (&state.url, state.offset_seconds) {
                (Some(url), Some(offset)) => {
                    println!("{url}: this clock is {offset:+.0} s from the server's Date");
                    Ok(())
                }
                _ => anyhow::bail!(
                    "no time from any clock.https_date server: {}",
                    state.last_error.unwrap_or_default()
                ),
            }
        }
        ClockAction::Watch { config, after_step } => {
            let settings = clock_settings(&config)?;
            let hooks = watch::Hooks {
                after_step: after_step.map(|program| vec![program]),
            };
            runtime()?.block_on(watch::run(&settings, &hooks));
            Ok(())
        }
    }
}

#[cfg(feature = "demo")]
fn render_oled(mode: ModeArg, size: &str, scale: u32, out: PathBuf) -> anyhow::Result<()> {
    use pi_failover::indicators::{oled::Panel, screen, ssd1306_model};
    use pi_failover::live::mode::Mode;
    let mode = match mode {
        ModeArg::Live => Some(Mode::Live),
        ModeArg::Draining => Some(Mode::Draining),
        ModeArg::Standby => Some(Mode::Standby),
        ModeArg::Attention => Some(Mode::Attention),
        ModeArg::Error => Some(Mode::Error),
        ModeArg::Stopping => None,
    };
    let size = match size {
        "128x64" => screen::PanelSize::W128H64,
        "128x32" => screen::PanelSize::W128H32,
        other => anyhow::bail!("--size {other}: the panels are 128x64 or 128x32"),
    };
    let now = std::time::SystemTime::now();
    let tick = screen::Tick::default();
    let drawn = match mode {
        Some(mode) => screen::render(
            &pi_failover::status::Status::example(mode, now),
            size,
            tick,
            now,
        ),
        None => screen::stopping(size, tick),
    };
    let name = mode.map_or("STOPPING", |m| m.as_str());
    let bus = ssd1306_model::ModelBus::new(ssd1306_model::Ssd1306Model::new(0x3C, size.height()));
    let mut panel = Panel::open(bus.clone(), 0x3C, size, false)?;
    panel.show(&drawn)?;
    let png = bus.model().glass().to_png(scale)?;
    std::fs::write(&out, png).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "{}: the {name} screen, {}x{} panel pixels",
        out.display(),
        drawn.width(),
        drawn.height()
    );
    Ok(())
}

fn check_config(path: PathBuf) -> anyhow::Result<()> {
    let config = pi_failover::settings::load(&path)?;
    // Certificates are checked too: a bad key found at the co-location is a trip there.
    pi_failover::tls::CertResolver::load(
        pi_failover::settings::certificate_slots(&config)?,
        &config.site.hostnames,
    )
    .with_context(|| {
        format!(
            "{}: key `tls.certificates`: a certificate or key is not usable. Fix: copy the \
                 certificate chain (fullchain.pem) and the private key made with it",
            path.display()
        )
    })?;
    println!("# {}: OK.", path.display());
    for note in config.advisories() {
        println!("# note: {note}");
    }
    for line in pi_failover::settings::budget(&config).to_string().lines() {
        println!("# budget: {line}");
    }
    println!("# Effective configuration:");
    print!("{}", config.to_toml());
    Ok(())
}

fn sync(path: PathBuf, dry_run: bool) -> anyhow::Result<()> {
    let config = pi_failover::settings::load(&path)?;
    init_logging(&config.log.level);
    runtime()?.block_on(async {
        let syncer = pi_failover::sync::Syncer::new(&config)
            .await?
            .with_context(|| {
                format!(
                    "{}: there is no [s3] section, so nothing to sync",
                    path.display()
                )
            })?;
        let report = syncer.sync_once(dry_run).await?;
        print!("{report}");
        anyhow::Ok(())
    })
}

#[cfg(feature = "demo")]
fn demo(config: Option<PathBuf>) -> anyhow::Result<()> {
    let s3 = match &config {
        Some(path) => Some(pi_failover::settings::load(path)?.s3.with_context(|| {
            format!(
                "{}: there is no [s3] section to sync the demo from",
                path.display()
            )
        })?),
        None => None,
    };
    init_logging("info");
    runtime()?.block_on(async {
        let (files, appliance) = demo::start(s3.as_ref()).await?;
        let https = appliance.https_addr();
        println!("pi-failover demo: serving the sample site from {}", files.dir().display());
        println!("  site:   https://localhost:{}/   (self-signed certificate: accept the browser's warning)", https.port());
        if let Some(http) = appliance.http_addr() {
            println!("  health: http://localhost:{}/up.txt   (any other plain-HTTP path redirects to HTTPS)", http.port());
        }
        if let Some(status) = appliance.status_addr() {
            println!("  status: http://localhost:{}/   (the mode, the history graphs filling as you browse; JSON at /api/status and /api/history, metrics at /metrics)", status.port());
        }
        println!("  try:    curl -kI https://localhost:{}/", https.port());
        println!(
            "  LIVE:   open the site in a browser, or curl -k -A Mozilla/5.0 https://localhost:{}/ (plain curl counts as a bot)",
            https.port()
        );
        println!("Press Ctrl-C to stop.");
        appliance.run_until_signal().await;
        anyhow::Ok(())
    })
}
