//! A webhook receiver over real HTTPS (a leaf from the test's own CA), recording what it
//! gets, and answering as the test says: 200, a 5xx for the first few, or never.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::TestCa;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Ok,
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// 404 always (a wrong URL).
    NotFound,
    /// Reads the request and never answers.
    Hold,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: String,
    pub body: serde_json::Value,
}

pub struct Webhook {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Requests seen, answered or not.
    pub requests: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Webhook {
    /// On a free port of 127.0.0.1, with a certificate for `localhost` issued into `dir`.
    pub async fn start(ca: &TestCa, dir: &std::path::Path, answer: Answer) -> Webhook {
        Self::start_for(ca, dir, answer, &["localhost"]).await
    }

    /// As [`Webhook::start`], with a certificate for `names` (the address a guest reaches it by).
    pub async fn start_for(
        ca: &TestCa,
        dir: &std::path::Path,
        answer: Answer,
        names: &[&str],
    ) -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::start_on(ca, dir, answer, listener, names)
    }

    /// On `port` (a receiver that was down comes up where the Pi expects it).
    pub async fn start_at(
        ca: &TestCa,
        dir: &std::path::Path,
        answer: Answer,
        port: u16,
    ) -> Webhook {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the receiver's port again");
        Self::start_on(ca, dir, answer, listener, &["localhost"])
    }

    fn start_on(
        ca: &TestCa,
        dir: &std::path::Path,
        answer: Answer,
        listener: tokio::net::TcpListener,
        names: &[&str],
    ) -> Webhook {
        let (cert, key) = (dir.join("hook-cert.pem"), dir.join("hook-key.pem"));
        ca.issue_to(names, &cert, &key);
        let acceptor = super::tls_acceptor(&cert, &key);
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0usize));
        let (rx, rq) = (received.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let (received, requests) = (rx.clone(), rq.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (received, requests) = (received.clone(), requests.clone());
                        async move {
                            let n = {
                                let mut r = requests.lock().expect("lock");
                                *r += 1;
                                *r
                            };
                            let path = req.uri().path().to_owned();
                            let content_type = req
                                .headers()
                                .get(http::header::CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let body = req.into_body().collect().await?.to_bytes();
                            let code = match answer {
                                Answer::Hold => {
                                    std::future::pending::<()>().await;
                                    200
                                }
                                Answer::FailFirst(k) if n <= k => 500,
                                Answer::NotFound => 404,
                                _ => 200,
                            };
                            if code == 200 {
                                received.lock().expect("lock").push(Received {
                                    path,
                                    content_type,
                                    body: serde_json::from_slice(&body)
                                        .unwrap_or(serde_json::Value::Null),
                                });
                            }
                            let mut response = http::Response::new(Full::new(Bytes::new()));
                            *response.status_mut() =
                                http::StatusCode::from_u16(code).expect("code");
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Webhook {
            addr,
            received,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}/hook", self.addr.port())
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    pub fn requests(&self) -> usize {
        *self.requests.lock().expect("lock")
    }
}
