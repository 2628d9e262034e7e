//! Running the `rauc` command: its service (root, over D-Bus) does the privileged work
//! (`install`, `status mark-good`); `info` checks a bundle's signature against the keyring the
//! image carries. Every run is bounded: a hung service must not leave a process and a thread
//! behind at every retry.

use std::time::Duration;

/// Why a `rauc` run did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RaucError {
    #[error("cannot run rauc: {0}")]
    Run(std::io::Error),
    /// RAUC's own last words (its stderr's last line).
    #[error("{0}")]
    Refused(String),
    #[error("rauc did not finish within {0:?}")]
    Timeout(Duration),
}

/// Runs `program args` to its end, or kills it at `timeout`; its stdout when `capture` (a
/// JSON document of a few KB: it fits the pipe, so the child never waits on it), else
/// nothing.
pub async fn run_bounded(
    program: &str,
    args: &[&str],
    timeout: Duration,
    capture: bool,
) -> Result<String, RaucError> {
    let program = program.to_owned();
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    tokio::task::spawn_blocking(move || run_blocking(&program, &args, timeout, capture))
        .await
        .map_err(|e| RaucError::Run(std::io::Error::other(e)))?
}

fn run_blocking(
    program: &str,
    args: &[String],
    timeout: Duration,
    capture: bool,
) -> Result<String, RaucError> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        // A few lines at most: RAUC's messages fit the pipe.
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RaucError::Run)?;
    // stdout is drained on its own thread: a larger answer than the pipe holds must not
    // stall the child until the timeout kills it.
    let stdout = child.stdout.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = pipe.by_ref().take(1 << 20).read_to_string(&mut out);
            out
        })
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(RaucError::Run)? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RaucError::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = stdout
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default();
    if status.success() {
        return Ok(out);
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    Err(RaucError::Refused(last.map_or_else(
        || status.to_string(),
        |l| l.trim().to_owned(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_that_hangs_is_killed_at_its_timeout() {
        let started = std::time::Instant::now();
        let result =
            run_bounded("sh", &["-c", "sleep 30"], Duration::from_millis(300), false).await;
        assert!(matches!(result, Err(RaucError::Timeout(_))), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited for the child"
        );
    }

    #[tokio::test]
    async fn a_refusal_says_the_last_line_of_what_the_command_said() {
        let result = run_bounded(
            "sh",
            &[
                "-c",
                "echo first >&2; echo 'not booted from a slot' >&2; exit 1",
            ],
            Duration::from_secs(10),
            false,
        )
        .await;
        match result {
            Err(RaucError::Refused(why)) => assert_eq!(why, "not booted from a slot"),
            other => panic!("{other:?}"),
        }
        let out = run_bounded(
            "sh",
            &["-c", "head -c 200000 /dev/zero | tr '\\0' x"],
            Duration::from_secs(10),
            true,
        )
        .await
        .expect("a long answer");
        assert_eq!(out.len(), 200_000, "stdout larger than a pipe");
    }
}
