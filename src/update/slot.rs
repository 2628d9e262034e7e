//! The slot the system booted from, and RAUC's marking of it.

use std::time::Duration;

/// Why RAUC did not mark the slot.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("cannot run rauc: {0}")]
    Run(std::io::Error),
    #[error("rauc status mark-good: {0}")]
    Refused(String),
    #[error("rauc status mark-good did not finish within {0:?}")]
    Timeout(Duration),
}

const RAUC_TIMEOUT: Duration = Duration::from_secs(60);

/// The slot the boot script booted (`rauc.slot=A` on the kernel's command line), if any.
pub fn booted() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    from_cmdline(&cmdline)
}

fn from_cmdline(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|word| word.strip_prefix("rauc.slot="))
        .filter(|slot| !slot.is_empty())
        .map(str::to_owned)
}

/// `rauc status mark-good`: RAUC's service (as root, over D-Bus) gives the booted slot its
/// tries back.
pub async fn mark_good() -> Result<(), SlotError> {
    tokio::task::spawn_blocking(|| run_bounded("rauc", &["status", "mark-good"], RAUC_TIMEOUT))
        .await
        .map_err(|e| SlotError::Run(std::io::Error::other(e)))?
}

/// Runs `program` to its end, or kills it at `timeout`: a RAUC service that hangs must not
/// leave a process and a thread behind at every retry.
fn run_bounded(program: &str, args: &[&str], timeout: Duration) -> Result<(), SlotError> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A few lines at most: RAUC's messages fit the pipe, so the child never waits on it.
        .stderr(Stdio::piped())
        .spawn()
        .map_err(SlotError::Run)?;
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(SlotError::Run)? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SlotError::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    Err(SlotError::Refused(last.map_or_else(
        || status.to_string(),
        |l| l.trim().to_owned(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_booted_slot_is_the_last_rauc_slot_word() {
        let cases = [
            (
                "ro rootwait root=PARTUUID=5049f0a1-03 rauc.slot=A",
                Some("A"),
            ),
            ("rauc.slot=A quiet rauc.slot=B", Some("B")),
            ("console=ttyAMA0 root=/dev/mmcblk0p2", None),
            ("rauc.slot= ro", None),
            ("xrauc.slot=A", None),
        ];
        for (cmdline, want) in cases {
            assert_eq!(from_cmdline(cmdline).as_deref(), want, "{cmdline}");
        }
    }

    #[test]
    fn a_command_that_hangs_is_killed_at_its_timeout() {
        let started = std::time::Instant::now();
        let result = run_bounded("sh", &["-c", "sleep 30"], Duration::from_millis(300));
        assert!(matches!(result, Err(SlotError::Timeout(_))), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited for the child"
        );
    }

    #[test]
    fn a_refusal_says_the_last_line_of_what_the_command_said() {
        let result = run_bounded(
            "sh",
            &[
                "-c",
                "echo first >&2; echo 'not booted from a slot' >&2; exit 1",
            ],
            Duration::from_secs(10),
        );
        match result {
            Err(SlotError::Refused(why)) => assert_eq!(why, "not booted from a slot"),
            other => panic!("{other:?}"),
        }
        assert!(run_bounded("sh", &["-c", "exit 0"], Duration::from_secs(10)).is_ok());
    }
}
