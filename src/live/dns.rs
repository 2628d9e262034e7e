//! Does DNS point at this Pi? Resolves the site's name with the system resolver and compares
//! the answer with the Pi's public addresses from the config.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default, Serialize)]
pub struct DnsStatus {
    pub name: String,
    /// What the name resolved to last time.
    pub addresses: Vec<IpAddr>,
    /// `None` when the lookup failed.
    pub points_here: Option<bool>,
    #[serde(with = "crate::format::json_time_option")]
    pub last_checked: Option<SystemTime>,
    pub error: Option<String>,
}

/// True when any resolved address is one of ours: with a failover record only one answer is
/// served at a time; with multivalue answers, several Pis may share the name.
pub(crate) fn points_here(resolved: &[IpAddr], ours: &[IpAddr]) -> bool {
    resolved.iter().any(|a| ours.contains(a))
}

pub async fn run(
    name: String,
    ours: Vec<IpAddr>,
    interval: Duration,
    status: watch::Sender<DnsStatus>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let looked_up = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::lookup_host((name.as_str(), 443)),
        )
        .await;
        let result = match looked_up {
            Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip()).collect::<Vec<_>>()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("lookup timed out".to_owned()),
        };
        status.send_modify(|s| {
            s.name.clone_from(&name);
            s.last_checked = Some(SystemTime::now());
            match result {
                Ok(mut addresses) => {
                    addresses.sort();
                    addresses.dedup();
                    s.points_here = Some(points_here(&addresses, &ours));
                    s.addresses = addresses;
                    s.error = None;
                }
                Err(e) => {
                    s.points_here = None;
                    s.error = Some(e);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::points_here;

    #[test]
    fn any_of_our_addresses_in_the_answer_means_here() {
        let ip = |s: &str| s.parse().expect("ip");
        let ours = [ip("203.0.113.7"), ip("2001:db8::7")];
        assert!(points_here(&[ip("203.0.113.7")], &ours));
        assert!(points_here(&[ip("198.51.100.1"), ip("2001:db8::7")], &ours));
        assert!(!points_here(&[ip("198.51.100.1")], &ours));
        assert!(!points_here(&[], &ours));
    }
}
