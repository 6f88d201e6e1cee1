//! A chromedriver child process on a free loopback port, and headless Chromium sessions on it:
//! what the browser tests (`tests/console.rs`, `tests/admin_browser.rs`) drive.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// A chromedriver child process on a free loopback port, killed when dropped.
pub struct Driver {
    child: Child,
    /// Its WebDriver endpoint.
    pub url: String,
}

impl Driver {
    /// Starts `driver` and waits (bounded) until it says it is ready.
    pub async fn start(driver: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let client = super::client_within(Duration::from_secs(2));
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/status", d.url)).send().await
                && r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true)
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not get ready on port {port}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless `chromium` session on `driver`, with `args` after the usual ones; with `logs`, the
/// browser's own console (failed loads, CSP reports, errors) is kept to be read back.
pub async fn headless(driver: &Driver, chromium: &Path, args: &[&str], logs: bool) -> Client {
    let mut all = vec!["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"];
    all.extend_from_slice(args);
    let mut caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": all },
    });
    if logs {
        caps["goog:loggingPrefs"] = json!({"browser": "ALL"});
    }
    let caps = caps.as_object().unwrap().clone();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(caps).connect(&driver.url).await.expect("a Chromium session")
}
