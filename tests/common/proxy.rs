//! A loopback TCP proxy that a test cuts and restores: a database outage as a node sees it.
//!
//! `cut` closes every connection through the proxy and stops listening (a new connection is
//! refused); `restore` listens again on the same port and forwards as before.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// How long `restore` keeps trying to listen on the proxy's port again.
const REBIND_WAIT_MAX: Duration = Duration::from_secs(5);

pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Tasks>>,
}

#[derive(Default)]
struct Tasks {
    accept: Option<AbortHandle>,
    conns: Vec<AbortHandle>,
    /// Counts `cut`s: a connection accepted before a cut but registered after it is closed too.
    cuts: u64,
}

impl Proxy {
    /// Forwards every connection to `upstream` (`host:port`), on a free loopback port.
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            upstream: upstream.to_string(),
            tasks: Arc::default(),
        };
        proxy.listen(listener);
        proxy
    }

    fn listen(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let cuts = self.tasks.lock().unwrap().cuts;
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let (mut client, mut server) = (client, server);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut tasks = tasks.lock().unwrap();
                if tasks.cuts != cuts {
                    conn.abort();
                    return;
                }
                tasks.conns.retain(|c| !c.is_finished());
                tasks.conns.push(conn.abort_handle());
            }
        });
        self.tasks.lock().unwrap().accept = Some(accept.abort_handle());
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        let mut tasks = self.tasks.lock().unwrap();
        tasks.cuts += 1;
        if let Some(accept) = tasks.accept.take() {
            accept.abort();
        }
        for conn in tasks.conns.drain(..) {
            conn.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let start = std::time::Instant::now();
        let listener = loop {
            // The aborted accept task drops the old listener at its next poll: until then the
            // port is taken.
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) if start.elapsed() < REBIND_WAIT_MAX => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.listen(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// `url` (`scheme://user@host:port/…`) with its host and port replaced by `addr`.
pub fn url_via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let user = authority.rfind('@').map_or("", |at| &authority[..=at]);
    format!("{scheme}://{user}{addr}{path}")
}

/// The `host:port` a postgres URL names (its first host; port 5432 unless it says another).
pub fn upstream_of(url: &str) -> String {
    let config: tokio_postgres::Config = url.parse().expect("a postgres URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("the test database is not on a TCP host: {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}
