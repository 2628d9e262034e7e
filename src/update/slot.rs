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
    let run = tokio::task::spawn_blocking(|| {
        std::process::Command::new("rauc")
            .args(["status", "mark-good"])
            .stdin(std::process::Stdio::null())
            .output()
    });
    let output = tokio::time::timeout(RAUC_TIMEOUT, run)
        .await
        .map_err(|_| SlotError::Timeout(RAUC_TIMEOUT))?
        .map_err(|e| SlotError::Run(std::io::Error::other(e)))?
        .map_err(SlotError::Run)?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        Err(SlotError::Refused(
            last.unwrap_or("no message").trim().to_owned(),
        ))
    }
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
}
