//! A loopback TCP proxy that a test cuts and restores: a database outage as a node sees it.
//!
//! `cut` closes every connection through the proxy and stops listening (a new connection is
//! refused); `stall` keeps every connection open but forwards nothing more, and holds new ones
//! open without forwarding them (a database that hangs, or a network that drops packets, as seen
//! from the client); `restore` (after `cut`, which also ends a stall) listens again on the same
//! port and forwards as before.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long `restore` keeps trying to listen on the proxy's port again, and `stall` waits for the
/// connections to stop forwarding.
const WAIT_MAX: Duration = Duration::from_secs(5);

pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Tasks>>,
    stalled: tokio::sync::watch::Sender<bool>,
    /// Connections forwarding at the moment.
    forwarding: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Tasks {
    accept: Option<JoinHandle<()>>,
    conns: Vec<JoinHandle<()>>,
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
            stalled: tokio::sync::watch::Sender::new(false),
            forwarding: Arc::default(),
        };
        proxy.listen(listener);
        proxy
    }

    fn listen(&self, listener: TcpListener) {
        let (upstream, tasks, forwarding) =
            (self.upstream.clone(), self.tasks.clone(), self.forwarding.clone());
        let cuts = self.tasks.lock().unwrap().cuts;
        let stalled = self.stalled.subscribe();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let conn =
                    tokio::spawn(forward(client, upstream.clone(), stalled.clone(), forwarding.clone()));
                let mut tasks = tasks.lock().unwrap();
                if tasks.cuts != cuts {
                    conn.abort();
                    return;
                }
                tasks.conns.retain(|c| !c.is_finished());
                tasks.conns.push(conn);
            }
        });
        self.tasks.lock().unwrap().accept = Some(accept);
    }

    /// Forwards nothing more, on the connections open and on new ones, and closes none; returns
    /// once no connection forwards.
    pub async fn stall(&self) {
        self.stalled.send_replace(true);
        let start = Instant::now();
        while self.forwarding.load(Ordering::SeqCst) > 0 {
            assert!(start.elapsed() < WAIT_MAX, "connections still forwarding after {WAIT_MAX:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Closes every connection and refuses new ones (ending a stall); returns once they are
    /// closed.
    pub async fn cut(&self) {
        for task in self.abort() {
            let _ = task.await;
        }
        self.stalled.send_replace(false);
    }

    /// Aborts the listener and every connection; their sockets close as their tasks end.
    fn abort(&self) -> Vec<JoinHandle<()>> {
        let mut tasks = self.tasks.lock().unwrap();
        tasks.cuts += 1;
        let mut all: Vec<JoinHandle<()>> = tasks.conns.drain(..).collect();
        all.extend(tasks.accept.take());
        all.iter().for_each(JoinHandle::abort);
        all
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) if start.elapsed() < WAIT_MAX => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.listen(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.abort();
    }
}

/// One connection: forwarded both ways until either side closes or the proxy stalls, then held
/// open (forwarding nothing) until its task is aborted.
async fn forward(
    mut client: TcpStream,
    upstream: String,
    mut stalled: tokio::sync::watch::Receiver<bool>,
    forwarding: Arc<AtomicUsize>,
) {
    // Counted before the stall is looked at: `stall` never misses a connection about to forward.
    let counted = Forwarding::new(forwarding);
    let now = *stalled.borrow();
    if now {
        drop(counted);
        return std::future::pending().await;
    }
    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
    let stall = async move {
        let _ = stalled.wait_for(|s| *s).await;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        () = stall => {}
    }
    drop(counted);
    std::future::pending().await
}

/// One connection counted as forwarding while this lives.
struct Forwarding(Arc<AtomicUsize>);

impl Forwarding {
    fn new(count: Arc<AtomicUsize>) -> Forwarding {
        count.fetch_add(1, Ordering::SeqCst);
        Forwarding(count)
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
