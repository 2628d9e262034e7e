//! Messages to the owner: the Pi took over, gave back, needs a look (docs/user-guide.md,
//! "A message on your phone").
//!
//! The history's recorder hands over the events an owner acts on (`EventKind::notifiable`)
//! through a bounded channel it never waits on; this task turns each into a [`Message`],
//! queues it on the data partition ([`queue`]), and delivers the queue oldest first
//! ([`deliver`]): retried with a doubling wait while the receiver is down or answers 5xx,
//! given up when it refuses the message itself (4xx) or after [`GIVE_UP_AFTER`], and never
//! more than `notify.max_per_hour` an hour. Nothing here runs on the site server's path.

pub mod deliver;
pub mod message;
pub mod queue;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, NotifyFormat};
use crate::history::Event;
use crate::status::NotificationsView;
pub use deliver::{DeliveryError, Sender};
pub use message::Message;
use queue::Queue;

/// The first wait after a failed delivery; it doubles up to [`RETRY_MOST`].
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MOST: Duration = Duration::from_secs(30 * 60);
/// A message this old is given up: what it says is history by then.
const GIVE_UP_AFTER: Duration = Duration::from_secs(3 * 86_400);
/// Events waiting for the task; the recorder drops (and logs) beyond it.
pub(crate) const CHANNEL: usize = 64;

/// What the notifier needs, built from `[notify]` (and the host name).
#[cfg_attr(test, derive(Debug))]
#[derive(Clone)]
pub struct NotifySettings {
    pub url: String,
    pub format: NotifyFormat,
    /// Which Pi.
    pub pi: String,
    pub link: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub max_per_hour: u32,
    /// `<data_dir>/notify`.
    pub queue_dir: Option<PathBuf>,
}

impl NotifySettings {
    /// `None` when no `notify.url` is configured.
    pub fn from_config(config: &Config) -> Option<Self> {
        let n = &config.notify;
        Some(Self {
            url: n.url.clone()?,
            format: n.format,
            pi: n
                .name
                .clone()
                .unwrap_or_else(crate::status::system::hostname),
            link: n.status_url.clone(),
            ca_file: n.ca_file.clone(),
            max_per_hour: n.max_per_hour,
            queue_dir: Some(config.storage.data_dir.join("notify")),
        })
    }

    pub fn sender(&self) -> Result<Sender, DeliveryError> {
        Sender::new(&self.url, self.format, self.ca_file.as_deref())
    }
}

fn format_name(format: NotifyFormat) -> &'static str {
    match format {
        NotifyFormat::Generic => "generic",
        NotifyFormat::Ntfy => "ntfy",
        NotifyFormat::Slack => "slack",
        NotifyFormat::Discord => "discord",
    }
}

/// The notifier's view for the status model, before the task has run.
pub(crate) fn initial_view(settings: &NotifySettings, sender: &Sender) -> NotificationsView {
    NotificationsView {
        receiver: sender.host().to_owned(),
        format: format_name(settings.format),
        ..NotificationsView::default()
    }
}

/// Delivers until shutdown. What is not delivered by then stays queued for the next start.
pub async fn run(
    settings: NotifySettings,
    sender: Sender,
    mut events: mpsc::Receiver<Event>,
    view: watch::Sender<NotificationsView>,
    shutdown: CancellationToken,
) {
    // At most a hundred small files, once, before the first message.
    let queue = Arc::new(Mutex::new(Queue::open(settings.queue_dir.as_deref())));
    let mut rate = RateWindow::new(settings.max_per_hour);
    let mut next_try = Instant::now();
    let publish = |view: &watch::Sender<NotificationsView>, queue: &Mutex<Queue>| {
        let queued = queue.lock().unwrap_or_else(PoisonError::into_inner).len();
        view.send_modify(|v| v.queued = queued);
    };
    publish(&view, &queue);
    loop {
        let front = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .front()
            .cloned();
        let due = next_try.max(rate.next_free(Instant::now()));
        tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => {
                let Some(event) = event else { return };
                let message = Message::from_event(&event, &settings.pi, settings.link.as_deref());
                let dropped = change(&queue, Change::Push(message)).await;
                if dropped > 0 {
                    tracing::warn!(dropped, "notification queue full: the oldest messages were dropped");
                    view.send_modify(|v| v.dropped += dropped as u64);
                }
                publish(&view, &queue);
            }
            () = tokio::time::sleep_until(due), if front.is_some() => {
                let Some(front) = front else { continue };
                let result = tokio::select! {
                    () = shutdown.cancelled() => return,
                    result = sender.send(&front.message) => result,
                };
                let age = SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH + Duration::from_secs(front.message.at))
                    .unwrap_or_default();
                match result {
                    Ok(()) => {
                        tracing::info!(kind = %front.message.kind, receiver = sender.host(), "notification sent: {}", front.message.title);
                        rate.sent(Instant::now());
                        next_try = Instant::now();
                        change(&queue, Change::Pop).await;
                        view.send_modify(|v| {
                            v.last_sent = Some(SystemTime::now());
                            v.sent += 1;
                            v.last_error = None;
                        });
                    }
                    Err(e) if e.transient() && age < GIVE_UP_AFTER => {
                        let wait = crate::backoff::doubling(RETRY_FIRST, front.attempts, RETRY_MOST);
                        tracing::warn!(error = %e, retry_in_seconds = wait.as_secs(), "notification not delivered; will retry");
                        next_try = Instant::now() + wait;
                        change(&queue, Change::FailedOnce).await;
                        view.send_modify(|v| v.last_error = Some(e.to_string()));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "notification given up: {}", front.message.title);
                        change(&queue, Change::Pop).await;
                        view.send_modify(|v| {
                            v.last_error = Some(format!("given up: {e}"));
                            v.given_up += 1;
                        });
                    }
                }
                publish(&view, &queue);
            }
        }
    }
}

/// What the task does to its queue: one blocking closure for all three (each distinct
/// closure handed to `spawn_blocking` is another copy of tokio's task code in the binary).
enum Change {
    Push(Message),
    Pop,
    FailedOnce,
}

/// Applies `change` off the runtime's threads (each writes or removes a file and syncs it);
/// returns the messages a push pushed out.
async fn change(queue: &Arc<Mutex<Queue>>, change: Change) -> usize {
    let queue = queue.clone();
    tokio::task::spawn_blocking(move || {
        let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
        match change {
            Change::Push(message) => q.push(message),
            Change::Pop => {
                q.pop();
                0
            }
            Change::FailedOnce => {
                q.failed_once();
                0
            }
        }
    })
    .await
    .unwrap_or(0)
}

/// At most `max` deliveries in any hour: the times of the last ones, and when the next may go.
struct RateWindow {
    max: usize,
    sent: VecDeque<Instant>,
}

impl RateWindow {
    const HOUR: Duration = Duration::from_secs(3600);

    fn new(max_per_hour: u32) -> Self {
        Self {
            max: (max_per_hour as usize).max(1),
            sent: VecDeque::new(),
        }
    }

    /// The earliest the next delivery may go, seen at `now` (`now` when there is room).
    fn next_free(&mut self, now: Instant) -> Instant {
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Self::HOUR)
        {
            self.sent.pop_front();
        }
        match self.sent.front() {
            Some(oldest) if self.sent.len() >= self.max => *oldest + Self::HOUR,
            _ => now,
        }
    }

    fn sent(&mut self, at: Instant) {
        self.sent.push_back(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flapping primary: twelve messages go at once, the thirteenth waits for the first to
    /// be an hour old, and the window slides on from there.
    #[test]
    fn no_more_than_the_hours_allowance_goes_out() {
        let start = Instant::now();
        let mut rate = RateWindow::new(12);
        for i in 0..12 {
            let now = start + Duration::from_secs(i * 60);
            assert_eq!(rate.next_free(now), now, "message {i} goes at once");
            rate.sent(now);
        }
        let now = start + Duration::from_secs(15 * 60);
        assert_eq!(rate.next_free(now), start + RateWindow::HOUR);
        let later = start + RateWindow::HOUR;
        assert_eq!(
            rate.next_free(later),
            later,
            "the first has left the window"
        );
        rate.sent(later);
        assert_eq!(
            rate.next_free(later),
            start + RateWindow::HOUR + Duration::from_secs(60)
        );
    }
}
