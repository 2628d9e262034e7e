//! The real `pi-failover` binary as a child process, for the tests that need a process: a
//! signal, a SIGKILL, a restart.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

pub const BIN: &str = env!("CARGO_BIN_EXE_pi-failover");

/// A child killed when the test ends, pass or fail.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// SIGKILL: the power cut.
    pub fn cut(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reap");
    }
}

/// `pi-failover run --config CONFIG`, and its HTTPS address once it serves (from its log).
pub fn run_appliance(config: &Path) -> (Running, Receiver<SocketAddr>) {
    run_appliance_with(config, |_| {})
}

/// As [`run_appliance`], with the command adjusted first (its environment, limits).
pub fn run_appliance_with(
    config: &Path,
    adjust: impl FnOnce(&mut Command),
) -> (Running, Receiver<SocketAddr>) {
    let mut command = Command::new(BIN);
    adjust(&mut command);
    let mut child = command
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    // Drains the log for the child's whole life: a full pipe would block it.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(port) = line
                .split("https=127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|port| port.parse::<u16>().ok())
            {
                let _ = tx.send(SocketAddr::from(([127, 0, 0, 1], port)));
            }
        }
    });
    (Running(child), rx)
}
