//! A script API that holds its answers until the test releases them, and the `hold` line whose
//! first webhook runs a script against it: for tests of what happens while a request is in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// A line whose script is answered by `HeldApi`, which holds every answer until released: the
/// call's first webhook says the hold prompt and runs the script. `API` stands for the API's base
/// URL and `API_HOST` for its `host:port` (see `HeldApi::machine`).
const HOLD: &str = r#"
name = "hold"
start = "lookup"
numbers = ["+6568880079"]
allow_hosts = ["API_HOST"]

[defaults]
voice_profile = "en-US-BenjaminRUS"

[nodes.lookup]
kind = "script"
prompt = "One moment while we look that up."
url = "API/hold?caller={caller}"
timeout_ms = 5000
response_key = "ok"
branches = { true = "good" }
default = "down"
failure = "down"

[nodes.good]
kind = "say"
text = "All done."
next = "bye"

[nodes.down]
kind = "say"
text = "The system is down."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;

/// `hold`'s API: `GET /hold` counts the request, then answers `{"ok": true}` once released.
pub struct HeldApi {
    pub base: String,
    asked: Arc<AtomicUsize>,
    /// Each answer takes a permit (`add_permits` releases them).
    pub release: Arc<Semaphore>,
}

impl HeldApi {
    pub async fn start() -> HeldApi {
        use warp::Filter;
        let (asked, release) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
        let (count, gate) = (asked.clone(), release.clone());
        let route = warp::path!("hold").then(move || {
            let (count, gate) = (count.clone(), gate.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                warp::reply::json(&serde_json::json!({"ok": true}))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        HeldApi { base, asked, release }
    }

    /// Requests received so far.
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }

    /// The `hold` machine's file, calling this API.
    pub fn machine(&self) -> String {
        HOLD.replace("API_HOST", self.base.trim_start_matches("http://")).replace("API", &self.base)
    }
}
