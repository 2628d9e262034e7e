//! The update agent of an established slot: looks for the owner's bundle after every sync,
//! vets a new one, installs it into the other slot when the Pi is quiet, and asks for the
//! reboot into it.
//!
//! One look ([`Agent::check`]):
//! 1. a conditional GET of `<prefix><compatible>.raucb` (`fetch`): unchanged (304) or absent
//!    (404) is the end of it;
//! 2. the new object is vetted (`bundle`): a refusal is recorded with its reason and the
//!    object's ETag, so it is not downloaded again, and the bundle deleted;
//! 3. an accepted bundle waits while the Pi is LIVE or DRAINING (readers are never dropped
//!    for an install; the status says it waits and why), unless the owner asked for it now;
//! 4. the attempt is recorded as installing (a power cut now is found by the next boot), the
//!    trial marker written, `rauc install` run; then recorded as installed;
//! 5. once quiet again, the appliance is asked to exit for the reboot into the new slot.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::bundle::{self, Own};
use super::fetch::{self, Fetched, Source};
use super::journal::{unix_now, Journal, NOW_REQUEST, TRIAL_MARKER};
use super::rauc::run_bounded;
use super::state::{self, Attempt, Phase, Role, MAX_INSTALLS};
use super::{UpdateSettings, CHECK_TIMEOUT};
use crate::sync::SyncStatus;

/// How long `rauc install` may take (a Pi 3 writes 64 MiB to a slow card in a few minutes).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often the owner's request file is looked for.
const NOW_POLL: Duration = Duration::from_secs(2);

pub struct Agent {
    pub settings: UpdateSettings,
    pub own: Own,
    pub client: aws_sdk_s3::Client,
    pub journal: Arc<Journal>,
    pub busy: watch::Receiver<bool>,
    pub sync: watch::Receiver<SyncStatus>,
    pub reboot: CancellationToken,
    pub shutdown: CancellationToken,
    /// This boot's role: a slot on trial looks for nothing until it is committed; after an
    /// install in this very boot, only the reboot is left to do.
    pub role: Role,
}

/// Runs the agent until shutdown, or until it asked for the reboot.
pub async fn run(mut agent: Agent) {
    match agent.role {
        Role::RebootPending => {
            agent.reboot_when_quiet().await;
            return;
        }
        Role::Trial => {
            let mut status = agent.journal.subscribe();
            tokio::select! {
                () = agent.shutdown.cancelled() => return,
                committed = status.wait_for(|s| s.role == Some("established")) => {
                    if committed.is_err() {
                        return;
                    }
                }
            }
        }
        Role::Established => {}
    }
    loop {
        let source = agent.source();
        let stop = agent.shutdown.clone();
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = tokio::time::timeout(CHECK_TIMEOUT, agent.check(&source)) => {
                outcome.unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")))
            }
        };
        match outcome {
            Ok(true) => {
                agent.reboot_when_quiet().await;
                return;
            }
            Ok(false) => agent.journal.checked(source.location(), None),
            Err(e) => {
                tracing::warn!(source = %source.location(), error = %e, "update check failed");
                agent.journal.checked(source.location(), Some(e));
            }
        }
        if !agent.next_trigger().await {
            return;
        }
    }
}

impl Agent {
    fn source(&self) -> Source {
        Source {
            bucket: self.settings.bucket.clone(),
            key: format!("{}{}.raucb", self.settings.prefix, self.own.compatible),
            max_bytes: self.settings.max_bundle_bytes,
            min_free_bytes: self.settings.min_free_bytes,
        }
    }

    fn now_requested(&self) -> bool {
        self.journal.path(NOW_REQUEST).exists()
    }

    fn clear_now_request(&self) {
        let _ = std::fs::remove_file(self.journal.path(NOW_REQUEST));
    }

    /// Waits for the next look (`next_look`). `false` at shutdown.
    async fn next_trigger(&mut self) -> bool {
        let now_file = self.journal.path(NOW_REQUEST);
        next_look(
            &mut self.sync,
            self.settings.interval,
            || now_file.exists(),
            &self.shutdown,
        )
        .await
    }

    /// One look (module doc). `Ok(true)`: installed, reboot wanted.
    async fn check(&mut self, source: &Source) -> Result<bool, String> {
        let state = self.journal.state();
        let dir = self.journal.dir();
        let started = std::time::Instant::now();
        let fetched = fetch::fetch(&self.client, source, state.seen_etag.as_deref(), &dir)
            .await
            .map_err(|e| e.to_string())?;
        let (path, etag, bytes) = match fetched {
            Fetched::Unchanged | Fetched::Absent => {
                if self.now_requested() {
                    tracing::info!(source = %source.location(), "update --now: no new bundle to install");
                    self.clear_now_request();
                }
                return Ok(false);
            }
            Fetched::Downloaded { path, etag, bytes } => (path, etag, bytes),
        };
        tracing::info!(source = %source.location(), bytes, download_seconds = started.elapsed().as_secs_f64(), "a new bundle: checking it");
        let result = self.vet_and_install(&path, &etag).await;
        let _ = std::fs::remove_file(&path);
        result
    }

    async fn vet_and_install(
        &mut self,
        path: &std::path::Path,
        etag: &str,
    ) -> Result<bool, String> {
        let state = self.journal.state();
        let manifest = bundle::info(path, None).await;
        let vetted = manifest.as_ref().map_err(Clone::clone).and_then(|m| {
            bundle::vet(m, &self.own, &state.rolled_back)?;
            let tries = state
                .attempt
                .as_ref()
                .filter(|a| a.version == m.version)
                .map_or(0, |a| a.installs);
            if tries >= MAX_INSTALLS {
                return Err(format!(
                    "its install was begun {tries} times and never finished; upload a new bundle"
                ));
            }
            Ok(tries)
        });
        let version = manifest
            .as_ref()
            .map_or_else(|_| "?".to_owned(), |m| m.version.clone());
        let from = self.journal.booted().to_owned();
        let to = other_slot(&from);
        let boot_id = self.journal.boot_id().to_owned();
        let sync_before = state::sync_outcome(self.sync.borrow().last_error.as_deref());
        let attempt = |phase: Phase, reason: Option<String>, installs: u32| Attempt {
            version: version.clone(),
            from_slot: from.clone(),
            to_slot: to.clone(),
            phase,
            boot_id: boot_id.clone(),
            at: unix_now(),
            reason,
            installs,
            sync_before: sync_before.clone(),
            complaint: None,
        };
        let installs = match vetted {
            Ok(tries) => tries + 1,
            Err(why) => {
                tracing::warn!(version = %version, reason = %why, "bundle refused");
                let refused = attempt(Phase::Refused, Some(why.clone()), 0);
                self.journal
                    .record(|s| {
                        s.seen_etag = Some(etag.to_owned());
                        s.attempt = Some(refused);
                    })
                    .map_err(|e| e.to_string())?;
                if self.now_requested() {
                    self.clear_now_request();
                }
                return Ok(false);
            }
        };

        if !self
            .wait_quiet(&format!("{version} is downloaded and checked"))
            .await
        {
            return Ok(false);
        }
        self.journal
            .record(|s| {
                s.seen_etag = Some(etag.to_owned());
                s.attempt = Some(attempt(Phase::Installing, None, installs));
            })
            .map_err(|e| e.to_string())?;
        let marker = format!("{to} {}\n", self.settings.trial.as_secs());
        state::write_whole(&self.journal.dir(), TRIAL_MARKER, marker.as_bytes())
            .map_err(|e| format!("cannot write the trial marker: {e}"))?;
        tracing::info!(version = %version, slot = %to, "installing the update");
        self.journal
            .set_waiting(Some(format!("installing {version} into slot {to}")));
        let started = std::time::Instant::now();
        let bundle = path.to_string_lossy();
        let installed = run_bounded("rauc", &["install", &bundle], INSTALL_TIMEOUT, false).await;
        self.journal.set_waiting(None);
        match installed {
            Ok(_) => {
                tracing::info!(version = %version, slot = %to, install_seconds = started.elapsed().as_secs_f64(), "installed; rebooting into it once quiet");
                self.journal
                    .record(|s| s.attempt = Some(attempt(Phase::Installed, None, installs)))
                    .map_err(|e| e.to_string())?;
                tokio::spawn(self.journal.clone().refresh_slots());
                Ok(true)
            }
            Err(e) => {
                let why = format!("rauc install: {e}");
                tracing::error!(version = %version, reason = %why, "the install failed");
                let _ = std::fs::remove_file(self.journal.path(TRIAL_MARKER));
                self.journal
                    .record(|s| {
                        // Tried again at the next look, up to MAX_INSTALLS.
                        s.seen_etag = None;
                        s.attempt = Some(attempt(Phase::Failed, Some(why.clone()), installs));
                    })
                    .map_err(|e| e.to_string())?;
                Err(why)
            }
        }
    }

    /// Waits until the Pi is neither LIVE nor DRAINING, or the owner asks for it now; the
    /// status says what waits. `false` at shutdown.
    async fn wait_quiet(&mut self, what: &str) -> bool {
        let journal = self.journal.clone();
        let now_file = journal.path(NOW_REQUEST);
        until_quiet(
            &mut self.busy,
            || now_file.exists(),
            |waiting| journal.set_waiting(waiting),
            what,
            &self.shutdown,
        )
        .await
    }

    async fn reboot_when_quiet(&mut self) {
        let to = other_slot(self.journal.booted());
        if self
            .wait_quiet(&format!("installed into slot {to}; the reboot into it"))
            .await
        {
            self.clear_now_request();
            tracing::info!(slot = %to, "rebooting into the new slot");
            self.journal
                .set_waiting(Some(format!("rebooting into slot {to}")));
            self.reboot.cancel();
        }
    }
}

/// Waits for the next look for a bundle: a sync ended, the owner asked (`now_requested`, looked
/// at every [`NOW_POLL`]), or `interval` passed. `false` at shutdown.
async fn next_look<T>(
    sync: &mut watch::Receiver<T>,
    interval: Duration,
    now_requested: impl Fn() -> bool,
    shutdown: &CancellationToken,
) -> bool {
    let mut poll = tokio::time::interval(NOW_POLL);
    poll.tick().await;
    let deadline = tokio::time::sleep(interval);
    tokio::pin!(deadline);
    // Once the sync is gone (the appliance shutting down), only the interval, the owner and
    // the shutdown count: an arm that waited forever here once held the shutdown for its
    // whole grace period.
    let mut sync_open = true;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = &mut deadline => return true,
            changed = sync.changed(), if sync_open => {
                if changed.is_ok() {
                    return true;
                }
                sync_open = false;
            }
            _ = poll.tick() => {
                if now_requested() {
                    tracing::info!("the owner asked for an update now");
                    return true;
                }
            }
        }
    }
}

/// Waits until `busy` (LIVE or DRAINING) is false or the owner asks for the update now
/// (`now_requested`), telling `waiting` what waits and why meanwhile. `false` at shutdown.
async fn until_quiet(
    busy: &mut watch::Receiver<bool>,
    now_requested: impl Fn() -> bool,
    waiting: impl Fn(Option<String>),
    what: &str,
    shutdown: &CancellationToken,
) -> bool {
    let mut poll = tokio::time::interval(NOW_POLL);
    loop {
        if now_requested() || !*busy.borrow_and_update() {
            waiting(None);
            return true;
        }
        waiting(Some(format!(
            "{what}; waiting: the Pi is serving readers (LIVE or DRAINING)"
        )));
        tokio::select! {
            () = shutdown.cancelled() => return false,
            _ = busy.changed() => {}
            _ = poll.tick() => {}
        }
    }
}

/// The slot RAUC installs into: the other of the two.
fn other_slot(booted: &str) -> String {
    if booted == "A" { "B" } else { "A" }.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// An update that arrives while the Pi is LIVE waits, saying so, until it is not; the
    /// owner's request ends the wait at once; shutdown ends it without installing.
    #[tokio::test(start_paused = true)]
    async fn an_update_waits_while_readers_are_served() {
        let (busy_tx, mut busy) = watch::channel(true);
        let said = std::sync::Arc::new(Mutex::new(Vec::new()));
        let now = std::sync::Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let waiter = {
            let (said, now, stop) = (said.clone(), now.clone(), stop.clone());
            tokio::spawn(async move {
                until_quiet(
                    &mut busy,
                    || now.load(Ordering::Relaxed),
                    |w| said.lock().expect("lock").push(w),
                    "0.2.0 is downloaded and checked",
                    &stop,
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!waiter.is_finished(), "installed while LIVE");
        assert!(said.lock().expect("lock").last().is_some_and(|w| w
            .as_deref()
            .is_some_and(|w| w.contains("waiting: the Pi is serving readers"))));
        busy_tx.send(false).expect("send");
        assert!(waiter.await.expect("join"), "the Pi is quiet: go");
        assert_eq!(
            said.lock().expect("lock").last(),
            Some(&None),
            "no longer waiting"
        );

        // The owner asks: no wait.
        let (_busy_tx, mut busy) = watch::channel(true);
        now.store(true, Ordering::Relaxed);
        assert!(
            until_quiet(
                &mut busy,
                || now.load(Ordering::Relaxed),
                |_| {},
                "x",
                &stop
            )
            .await
        );

        // Shutdown: no install.
        now.store(false, Ordering::Relaxed);
        stop.cancel();
        assert!(
            !until_quiet(
                &mut busy,
                || now.load(Ordering::Relaxed),
                |_| {},
                "x",
                &stop
            )
            .await
        );
    }

    /// The next look comes after a sync, on the owner's request or at the interval; once the
    /// sync is gone, a shutdown still ends the wait at once.
    #[tokio::test(start_paused = true)]
    async fn the_next_look_follows_syncs_the_owner_and_the_interval_and_ends_at_shutdown() {
        let hour = Duration::from_secs(3600);
        let stop = CancellationToken::new();
        let (sync_tx, mut sync) = watch::channel(0u32);
        let started = tokio::time::Instant::now();
        let (looked, ()) = tokio::join!(next_look(&mut sync, hour, || false, &stop), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            sync_tx.send(1).expect("send");
        });
        assert!(looked && started.elapsed() < hour, "after a sync");
        let started = tokio::time::Instant::now();
        assert!(next_look(&mut sync, hour, || true, &stop).await);
        assert!(started.elapsed() <= NOW_POLL, "on the owner's request");
        let started = tokio::time::Instant::now();
        assert!(next_look(&mut sync, hour, || false, &stop).await);
        assert!(started.elapsed() >= hour, "at the interval");

        drop(sync_tx);
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { next_look(&mut sync, hour, || false, &stop).await }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        stop.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(
            matches!(ended, Ok(Ok(false))),
            "the shutdown did not end the wait once the sync was gone"
        );
    }
}
