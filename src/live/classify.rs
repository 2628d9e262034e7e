//! Who sent a request: a reader of the site, a health checker, or something else (scanners,
//! bots, people typing the Pi's address). Only readers make the Pi LIVE.

use http::Method;
use serde::Serialize;

/// The class of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TrafficClass {
    Reader,
    HealthCheck,
    Other,
}

impl TrafficClass {
    pub fn index(self) -> usize {
        match self {
            Self::Reader => 0,
            Self::HealthCheck => 1,
            Self::Other => 2,
        }
    }
}

/// The appliance asking its own listener before its slot is marked good (`update::self_check`):
/// a checker, never a reader, or every boot would count one and could turn the Pi LIVE.
pub(crate) const SELF_CHECK_AGENT: &str = "pi-failover-self-check";

/// User-Agent substrings of DNS-failover and uptime checkers (matched case-insensitively).
/// Route 53 has sent both spellings: `Amazon-Route53-Health-Check-Service (ref …)` and the
/// older `Amazon Route 53 Health Check Service; ref:…`.
const HEALTH_CHECKERS: &[&str] = &[
    SELF_CHECK_AGENT,
    "amazon-route53-health-check-service",
    "amazon route 53 health check service",
    "cloudflare-traffic-manager",
    "uptimerobot",
    "pingdom",
];

/// Crawlers and tools: they fetch pages but are not people reading the site.
const BOTS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "curl/",
    "wget/",
    "python-",
    "go-http-client",
    "zgrab",
    "masscan",
    "nmap",
    "censys",
    "expanse",
];

/// Classifies requests against the site's host names and the known checkers.
#[derive(Debug, Clone)]
pub(crate) struct Classifier {
    hostnames: Vec<String>,
    health_path: String,
    health_checkers: Vec<String>,
}

/// What the classifier looks at.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestFacts<'a> {
    /// The TLS server name; `None` over plain HTTP or when the client sent none.
    pub sni: Option<&'a str>,
    pub host: Option<&'a str>,
    pub method: Option<&'a Method>,
    pub user_agent: Option<&'a str>,
    pub path: &'a str,
    pub tls: bool,
}

impl Classifier {
    pub fn new(hostnames: &[String], health_path: &str, extra_health_checkers: &[String]) -> Self {
        Self {
            hostnames: hostnames.iter().map(|h| h.to_ascii_lowercase()).collect(),
            health_path: health_path.to_owned(),
            health_checkers: HEALTH_CHECKERS
                .iter()
                .map(|s| (*s).to_owned())
                .chain(extra_health_checkers.iter().map(|s| s.to_ascii_lowercase()))
                .collect(),
        }
    }

    pub(crate) fn classify(&self, request: &RequestFacts<'_>) -> TrafficClass {
        let agent = request.user_agent.unwrap_or("").to_ascii_lowercase();
        // Checkers come first: Route 53 checks by IP with a Host header, over HTTP or HTTPS.
        // The health path is for checkers whoever asks: nobody reads an empty page.
        if request.path == self.health_path
            || self
                .health_checkers
                .iter()
                .any(|c| agent.contains(c.as_str()))
        {
            return TrafficClass::HealthCheck;
        }
        let host = request.host.map(crate::site::handler::strip_port);
        let named = |name: Option<&str>| name.is_some_and(|n| self.is_site_name(n));
        // A reader came for the site by name: over TLS the SNI and the Host both name it.
        let site_by_name = request.tls && named(request.sni) && named(host);
        let reads = matches!(request.method, Some(m) if m == Method::GET || m == Method::HEAD);
        let is_bot = agent.is_empty() || BOTS.iter().any(|b| agent.contains(b));
        if site_by_name && reads && !is_bot {
            TrafficClass::Reader
        } else {
            TrafficClass::Other
        }
    }

    fn is_site_name(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        self.hostnames.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROWSER: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36";

    fn classify(
        sni: Option<&str>,
        host: Option<&str>,
        method: Method,
        agent: &str,
        tls: bool,
    ) -> TrafficClass {
        let c = Classifier::new(
            &["example.com".into(), "www.example.com".into()],
            "/up.txt",
            &["my-monitor".into()],
        );
        c.classify(&RequestFacts {
            sni,
            host,
            method: Some(&method),
            user_agent: Some(agent).filter(|a| !a.is_empty()),
            path: "/",
            tls,
        })
    }

    #[test]
    fn the_health_path_is_a_health_check_whoever_asks() {
        let c = Classifier::new(&["example.com".into()], "/up.txt", &[]);
        let facts = RequestFacts {
            sni: Some("example.com"),
            host: Some("example.com"),
            method: Some(&Method::GET),
            user_agent: Some(BROWSER),
            path: "/up.txt",
            tls: true,
        };
        assert_eq!(c.classify(&facts), TrafficClass::HealthCheck);
    }

    #[test]
    #[rustfmt::skip]
    fn the_classification_table() {
        use TrafficClass::*;
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Method, &'a str, bool, TrafficClass);
        let site = Some("www.example.com");
        let cases: &[Case] = &[
            // A browser asking for the site by name over HTTPS reads it, whatever the case or port.
            (site, site, Method::GET, BROWSER, true, Reader),
            (site, Some("WWW.Example.com:443"), Method::HEAD, BROWSER, true, Reader),
            (Some("example.com"), Some("example.com."), Method::GET, BROWSER, true, Reader),
            // Health checkers, both Route 53 spellings, others and a configured one, any host.
            (None, Some("203.0.113.7"), Method::GET, "Amazon-Route53-Health-Check-Service (ref 0f1e; report http://amzn.to/1vsZADi)", false, HealthCheck),
            (site, site, Method::GET, "Amazon Route 53 Health Check Service; ref:0f1e-22;report http://amzn.to/1vsZADi", true, HealthCheck),
            (site, site, Method::GET, "Cloudflare-Traffic-Manager/1.0", true, HealthCheck),
            (site, site, Method::HEAD, "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", true, HealthCheck),
            (site, site, Method::GET, "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", true, HealthCheck),
            (site, site, Method::GET, "My-Monitor/3", true, HealthCheck),
            // The appliance's own check before its slot is marked good: the front page by name.
            (site, site, Method::GET, "pi-failover-self-check (slot A)", true, HealthCheck),
            // Not readers: no SNI, a bare IP, another name, plain HTTP, other methods, bots.
            (None, site, Method::GET, BROWSER, true, Other),
            (site, None, Method::GET, BROWSER, true, Other),
            (site, Some("203.0.113.7"), Method::GET, BROWSER, true, Other),
            (Some("evil.test"), Some("evil.test"), Method::GET, BROWSER, true, Other),
            (None, site, Method::GET, BROWSER, false, Other),
            (site, site, Method::POST, BROWSER, true, Other),
            (site, site, Method::GET, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", true, Other),
            (site, site, Method::GET, "curl/7.88.1", true, Other),
            (site, site, Method::GET, "", true, Other),
        ];
        for (sni, host, method, agent, tls, expected) in cases {
            assert_eq!(
                classify(*sni, *host, method.clone(), agent, *tls),
                *expected,
                "sni {sni:?} host {host:?} {method} tls {tls} agent {agent:?}"
            );
        }
    }
}
