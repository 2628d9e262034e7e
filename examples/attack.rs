//! One attack of issue 13 against one server, measured: a reader fetches the index page over
//! a fresh HTTPS connection every 100 ms from another address while the attack runs, and the
//! server's processes are sampled for resident memory and descriptors. Prints one TSV line.
//! Run by `bench/attack.sh` (see bench/README.md), which starts nginx and pi-failover in turn.
//!
//! usage: attack <name> <https addr> <http addr> <pid,pid,...> <seconds>
//!   names: zero-window, never-read, idle-ping, silent-tcp, none

#[path = "../bench/attack_client.rs"]
mod attack_client;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use attack_client::{
    footprint, h2_attack, http_get, https_get, silent_tcp, H2Attack, Held, Target,
};

const ATTACKER: &str = "127.0.0.1";
const READER: &str = "127.0.0.2";
const CHECKER: &str = "127.0.0.3";

fn arg(args: &[String], i: usize, what: &str) -> String {
    args.get(i)
        .cloned()
        .unwrap_or_else(|| panic!("missing argument {i}: {what}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = arg(&args, 1, "attack");
    let https: SocketAddr = arg(&args, 2, "https address")
        .parse()
        .expect("https address");
    let http: SocketAddr = arg(&args, 3, "http address").parse().expect("http address");
    let pids: Vec<u32> = arg(&args, 4, "pids")
        .split(',')
        .map(|p| p.parse().expect("pid"))
        .collect();
    let seconds: u64 = arg(&args, 5, "seconds").parse().expect("seconds");
    let target = Target {
        https,
        http: Some(http),
        host: "localhost".into(),
    };

    let (idle_kb, idle_fds) = footprint(&pids);
    let held: Vec<Held> = match name.as_str() {
        "zero-window" => vec![
            h2_attack(
                &target,
                ATTACKER,
                16,
                "/big.bin",
                H2Attack::ZeroWindow {
                    streams: 64,
                    ping_every: Duration::from_secs(3),
                },
            )
            .await,
        ],
        "never-read" => vec![
            h2_attack(
                &target,
                ATTACKER,
                150,
                "/big.bin",
                H2Attack::NeverRead { streams: 64 },
            )
            .await,
        ],
        "idle-ping" => vec![
            h2_attack(
                &target,
                ATTACKER,
                64,
                "/",
                H2Attack::IdlePing {
                    ping_every: Duration::from_secs(3),
                },
            )
            .await,
        ],
        "silent-tcp" => vec![silent_tcp(&target, ATTACKER, 200)],
        "none" => vec![],
        other => panic!("unknown attack {other}"),
    };

    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    let (mut failed, mut health_failed) = (0usize, 0usize);
    let (mut peak_kb, mut peak_fds) = footprint(&pids);
    let limit = Duration::from_secs(2);
    while Instant::now() < until {
        let tick = tokio::time::sleep(Duration::from_millis(100));
        match https_get(&target, READER, "/index.html", limit).await {
            Some(latency) => latencies.push(latency),
            None => failed += 1,
        }
        if http_get(&target, CHECKER, "/up.txt", limit).await.is_none() {
            health_failed += 1;
        }
        let (kb, fds) = footprint(&pids);
        peak_kb = peak_kb.max(kb);
        peak_fds = peak_fds.max(fds);
        tick.await;
    }
    let attackers_closed: usize = held.iter().map(Held::closed).sum();
    let attackers: usize = held.iter().map(Held::opened).sum();
    drop(held);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after_kb, _) = footprint(&pids);

    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() - 1) as f64 * p).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    // attack p50_ms p99_ms reader_ok reader_failed health_failed idle_kb peak_kb after_kb
    // idle_fds peak_fds attackers attackers_closed
    println!(
        "{name}\t{:.2}\t{:.2}\t{}\t{failed}\t{health_failed}\t{idle_kb}\t{peak_kb}\t{after_kb}\t{idle_fds}\t{peak_fds}\t{attackers}\t{attackers_closed}",
        pct(0.5),
        pct(0.99),
        latencies.len(),
    );
}
