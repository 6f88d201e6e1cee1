//! A stand-in for 8x8's Send Callflow API (`POST {base}/api/v1/subaccounts/{sub}/callflows`) on a
//! loopback port: it keeps every request it receives and answers each as the test says. Used by
//! the tests of placed calls (`outbound`) and of callbacks (`callbacks`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warp::Filter;

/// The sub-account the stand-in's nodes are configured with.
pub const SUBACCOUNT: &str = "acct_x";
/// How long `wait_for` waits for the requests it expects.
const WAIT_MAX: Duration = Duration::from_secs(20);

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: String,
    pub content_type: String,
    pub body: Value,
}

type Answer = dyn Fn(usize) -> (u16, Value) + Send + Sync;

pub struct SendCallflow {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl SendCallflow {
    /// Answers request number `n` (from 1) with `answer(n)`: a status and a JSON body.
    pub async fn start(answer: impl Fn(usize) -> (u16, Value) + Send + Sync + 'static) -> SendCallflow {
        let answer: Arc<Answer> = Arc::new(answer);
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let count = Arc::new(AtomicUsize::new(0));
        let route = warp::any()
            .and(warp::method())
            .and(warp::path::full())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::header::optional::<String>("content-type"))
            .and(warp::body::bytes())
            .map(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      auth: Option<String>,
                      ctype: Option<String>,
                      body: warp::hyper::body::Bytes| {
                    log.lock().unwrap().push(Received {
                        method: method.to_string(),
                        path: path.as_str().to_string(),
                        authorization: auth.unwrap_or_default(),
                        content_type: ctype.unwrap_or_default(),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                    let (status, body) = answer(count.fetch_add(1, Ordering::SeqCst) + 1);
                    warp::reply::with_status(
                        warp::reply::json(&body),
                        warp::http::StatusCode::from_u16(status).unwrap(),
                    )
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        SendCallflow { base, received }
    }

    /// Answers every request with `status` and `body`.
    pub async fn answering(status: u16, body: Value) -> SendCallflow {
        SendCallflow::start(move |_| (status, body.clone())).await
    }

    /// Answers every request 200 with a new session id: `{prefix}1`, `{prefix}2`, ...
    pub async fn creating(prefix: &'static str) -> SendCallflow {
        SendCallflow::start(move |n| (200, created(&format!("{prefix}{n}")))).await
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// What a node needs to place calls through the stand-in (to `+65` numbers).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PHONETREE_8X8_BASE_URL", self.base.clone()),
            ("PHONETREE_8X8_SUBACCOUNT", SUBACCOUNT.into()),
            ("PHONETREE_8X8_API_KEY", "key-123".into()),
            ("PHONETREE_CALL_ALLOW_PREFIX", "+65".into()),
        ]
    }

    /// Waits until the stand-in has received `n` requests (panics past `WAIT_MAX`), then `settle`
    /// longer, so that a request too many would be seen; returns what it received.
    pub async fn wait_for(&self, n: usize, settle: Duration) -> Vec<Received> {
        let start = Instant::now();
        while self.received().len() < n {
            assert!(
                start.elapsed() < WAIT_MAX,
                "{} request(s) received, waited for {n}",
                self.received().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(settle).await;
        self.received()
    }
}

/// 8x8's answer to a call it created.
pub fn created(session: &str) -> Value {
    json!({"sessionId": session, "sessionStatus": "CREATED", "callFlowRequestId": "89b545a5",
        "statusCode": 1, "statusMessage": "Created"})
}
