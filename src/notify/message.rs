//! A message to the owner and the bodies the receivers expect: our own JSON, ntfy's JSON
//! publishing, Slack's and Discord's webhooks. Built once when the event happens (a message
//! queued across a reboot says what it said then).

use serde::Serialize;

use crate::config::NotifyFormat;
use crate::history::{Event, EventKind};
use crate::live::mode::Mode;

#[cfg_attr(test, derive(Debug))]
#[derive(Clone, PartialEq)]
pub struct Message {
    /// Which Pi (`notify.name`, or the host name).
    pub pi: String,
    /// Unix seconds of the event.
    pub at: u64,
    /// The event's kind (`mode`, `sync_failing`, `certificate_expiring`, or `test`).
    pub kind: String,
    /// The mode the event moved to, for a mode change.
    pub mode: Option<Mode>,
    pub title: String,
    pub text: String,
    /// The status page (`notify.status_url`).
    pub link: Option<String>,
    /// How urgent: `high` for LIVE, ERROR and a certificate about to expire.
    pub urgent: bool,
}

impl Message {
    pub(crate) fn from_event(event: &Event, pi: &str, link: Option<&str>) -> Self {
        let (headline, mode, urgent) = match &event.kind {
            EventKind::Mode { to, from, .. } => {
                let words = match (to, from) {
                    (Mode::Live, _) => "LIVE: serving readers",
                    (Mode::Standby, Some(Mode::Live | Mode::Draining)) => "back to STANDBY",
                    (Mode::Standby, _) => "STANDBY",
                    (Mode::Draining, _) => "DRAINING",
                    (Mode::Attention, _) => "ATTENTION: needs a look",
                    (Mode::Error, _) => "ERROR: cannot serve",
                };
                (words, Some(*to), matches!(to, Mode::Live | Mode::Error))
            }
            EventKind::SyncFailing { .. } => ("the sync is failing", None, false),
            EventKind::CertificateExpiring { .. } => ("certificate expiring", None, true),
            other => (other.name(), None, false),
        };
        Self {
            pi: pi.to_owned(),
            at: event.at,
            kind: event.kind.name().to_owned(),
            mode,
            title: format!("{pi}: {headline}"),
            text: event.text.clone(),
            link: link.map(str::to_owned),
            urgent,
        }
    }

    /// `pi-failover notify --test`.
    pub fn test(pi: &str, link: Option<&str>, at: u64) -> Self {
        Self {
            pi: pi.to_owned(),
            at,
            kind: "test".to_owned(),
            mode: None,
            title: format!("{pi}: test message"),
            text: "pi-failover can reach you: this is how it will say that it takes over."
                .to_owned(),
            link: link.map(str::to_owned),
            urgent: false,
        }
    }

    /// The request body for `format`, and its content type. `url` is the configured one
    /// (ntfy's topic is its last segment).
    pub fn body(&self, format: NotifyFormat, url: &str) -> Vec<u8> {
        let at = crate::format::rfc3339(self.at);
        // Typed bodies rather than `serde_json::Value`: the Pi's binary links no `Value`
        // (8 MiB budget).
        let bytes = match format {
            NotifyFormat::Generic => serde_json::to_vec(&GenericBody {
                schema: 1,
                pi: &self.pi,
                at: &at,
                kind: &self.kind,
                mode: self.mode,
                title: &self.title,
                text: &self.text,
                link: self.link.as_deref(),
                urgent: self.urgent,
            }),
            NotifyFormat::Ntfy => serde_json::to_vec(&NtfyBody {
                topic: crate::config::topic_of(url).unwrap_or_default(),
                title: &self.title,
                message: &self.text,
                priority: if self.urgent { 4 } else { 3 },
                tags: [self.tag()],
                click: self.link.as_deref(),
            }),
            NotifyFormat::Slack => serde_json::to_vec(&SlackBody {
                text: match &self.link {
                    Some(link) => format!("*{}*\n{}\n<{link}|status page>", self.title, self.text),
                    None => format!("*{}*\n{}", self.title, self.text),
                },
            }),
            NotifyFormat::Discord => {
                let mut content = match &self.link {
                    Some(link) => format!("**{}**\n{}\n{link}", self.title, self.text),
                    None => format!("**{}**\n{}", self.title, self.text),
                };
                // Discord refuses content over 2000 characters.
                if let Some((cut, _)) = content.char_indices().nth(1990) {
                    content.truncate(cut);
                    content.push('…');
                }
                serde_json::to_vec(&DiscordBody {
                    username: "pi-failover",
                    content,
                })
            }
        };
        bytes.unwrap_or_default()
    }

    /// ntfy's emoji tag.
    fn tag(&self) -> &'static str {
        match (self.mode, self.kind.as_str()) {
            (Some(Mode::Live), _) => "rotating_light",
            (Some(Mode::Standby), _) => "white_check_mark",
            (Some(Mode::Error), _) => "x",
            (Some(_), _) | (None, "sync_failing" | "certificate_expiring") => "warning",
            _ => "information_source",
        }
    }

    /// Where ntfy's JSON publishing posts: the server's root, not the topic's URL.
    pub(crate) fn post_url(format: NotifyFormat, url: &str) -> String {
        match (format, crate::config::topic_of(url)) {
            (NotifyFormat::Ntfy, Some(topic)) => {
                let base = url.trim_end_matches('/');
                let base = &base[..base.len() - topic.len()];
                base.to_owned()
            }
            _ => url.to_owned(),
        }
    }
}

#[derive(Serialize)]
struct GenericBody<'a> {
    schema: u32,
    pi: &'a str,
    at: &'a str,
    kind: &'a str,
    mode: Option<Mode>,
    title: &'a str,
    text: &'a str,
    link: Option<&'a str>,
    urgent: bool,
}

#[derive(Serialize)]
struct NtfyBody<'a> {
    topic: &'a str,
    title: &'a str,
    message: &'a str,
    priority: u8,
    tags: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    click: Option<&'a str>,
}

#[derive(Serialize)]
struct SlackBody {
    text: String,
}

#[derive(Serialize)]
struct DiscordBody {
    username: &'static str,
    content: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Served;

    fn live() -> Event {
        Event::new(
            1_800_000_000,
            EventKind::Mode {
                from: Some(Mode::Standby),
                to: Mode::Live,
                reason: "7 readers in the last minute".into(),
                served: None,
            },
            "STANDBY → LIVE: 7 readers in the last minute",
        )
    }

    fn json(m: &Message, format: NotifyFormat, url: &str) -> serde_json::Value {
        serde_json::from_slice(&m.body(format, url)).expect("JSON")
    }

    #[test]
    fn every_format_says_which_pi_what_happened_and_links_the_status_page() {
        let m = Message::from_event(&live(), "pi-fra", Some("http://10.0.0.5:8081/"));
        assert_eq!(m.title, "pi-fra: LIVE: serving readers");
        let g = json(&m, NotifyFormat::Generic, "https://hook.example/x");
        assert_eq!(g["pi"], "pi-fra");
        assert_eq!(g["mode"], "LIVE");
        assert_eq!(g["at"], "2027-01-15T08:00:00Z");
        assert_eq!(g["link"], "http://10.0.0.5:8081/");
        let n = json(&m, NotifyFormat::Ntfy, "https://ntfy.sh/my-pi");
        assert_eq!(n["topic"], "my-pi");
        assert_eq!(n["priority"], 4);
        assert_eq!(n["click"], "http://10.0.0.5:8081/");
        assert_eq!(
            Message::post_url(NotifyFormat::Ntfy, "https://ntfy.sh/my-pi"),
            "https://ntfy.sh/"
        );
        let s = json(
            &m,
            NotifyFormat::Slack,
            "https://hooks.slack.com/services/x",
        );
        let text = s["text"].as_str().expect("text");
        assert!(text.starts_with("*pi-fra: LIVE: serving readers*\nSTANDBY → LIVE"));
        assert!(text.ends_with("<http://10.0.0.5:8081/|status page>"));
        let d = json(
            &m,
            NotifyFormat::Discord,
            "https://discord.com/api/webhooks/x",
        );
        assert!(d["content"].as_str().expect("content").contains("**pi-fra"));
    }

    #[test]
    fn back_to_standby_is_a_relief_not_an_alarm() {
        let back = Event::new(
            1,
            EventKind::Mode {
                from: Some(Mode::Draining),
                to: Mode::Standby,
                reason: "the primary is back".into(),
                served: Some(Served {
                    seconds: 3600,
                    reader_requests: 12,
                    peak_readers: 3,
                }),
            },
            "text",
        );
        let m = Message::from_event(&back, "pi", None);
        assert_eq!(m.title, "pi: back to STANDBY");
        assert!(!m.urgent);
        assert_eq!(
            json(&m, NotifyFormat::Ntfy, "https://ntfy.sh/t")["tags"][0],
            "white_check_mark"
        );
    }

    #[test]
    fn a_long_message_fits_discord() {
        let mut m = Message::test("pi", None, 0);
        m.text = "é".repeat(5000);
        let d = json(
            &m,
            NotifyFormat::Discord,
            "https://discord.com/api/webhooks/x",
        );
        assert!(d["content"].as_str().expect("content").chars().count() <= 2000);
    }
}
