//! Several `phonetree serve` nodes on one PostgreSQL database, as a load balancer in front of them
//! would use them: any webhook of any call may land on any node.
//! - calls whose webhooks go round-robin over three nodes answer as the pure engine says, and end
//!   where it says;
//! - one eventId delivered to two nodes at once is applied once, both get the same bytes; two
//!   different answers to one prompt on different nodes never both apply; delivered to two nodes
//!   while its script waits for the API, its request reaches the API once; delivered to two
//!   nodes while a slow transaction holds the call's row past a store operation's bound, both
//!   answer the engine's bytes once it is free, not the fallback;
//! - a node killed with SIGKILL mid-call loses no acknowledged transition: the calls finish on the
//!   other nodes, every acknowledged eventId is answered again;
//! - a node restarted on a new machine version: calls finish on the version they started on,
//!   whichever node answers (one that never loaded it compiles it from the source in the
//!   database), new calls get the new version;
//! - the database cut off, or hanging (a proxy between node and database): webhooks get the
//!   machine's fallback in bounded time, `/readyz` says 503; the database back: the node recovers
//!   without a restart;
//! - nodes starting together on a new database all migrate it and start.
//!
//! Every test runs on the real PostgreSQL of `common::backends` (a schema of its own) and is
//! skipped, with one line on stderr, where none is reachable (a failure with
//! `PHONETREE_REQUIRE_POSTGRES=1`). Keys are random: the seed is printed,
//! `PHONETREE_MULTINODE_SEED` replays one.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::backends::{self, postgres_url_for};
use common::held::HeldApi;
use common::proxy::{Proxy, upstream_of, url_via};
use common::*;
use phonetree::callflow::Callflow;
use phonetree::engine::{self, CallInfo, CallState, Direction, Event, Phase};
use phonetree::machine::Machine;
use phonetree::node::calls::SCRIPTS_DEADLINE;
use phonetree::store::{Durability, OPERATION_TIMEOUT, REPLIES_KEPT};
use phonetree::webhook::wire;
use tokio::task::JoinSet;

/// The number abc_restaurant answers, and who calls it.
const NUMBER: &str = "+6568888888";
const CALLER: &str = "+6591178965";
/// The callId `Vca::body` sends.
const CALL_ID: &str = "627e25f1-133a-11ef-b08c-e33c09483244";
/// What callers press at a prompt (`-`: nothing).
const KEYS: &[&str] = &["1", "2", "3", "9", "-"];
/// Most answers one call gives before it is left (abc_restaurant's calls end in at most 5).
const INPUTS_PER_CALL_MAX: usize = 6;
/// How long a webhook may take before the test calls the node hung: generous, as 8x8's own wait
/// is a few seconds; it bounds the test, it is not a measurement.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the test waits for something a node should do soon (acknowledge webhooks, recover).
const WAIT_MAX: Duration = Duration::from_secs(20);

/// The seed of this run's keys, printed once.
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = std::env::var("PHONETREE_MULTINODE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
                    | 1
            });
        println!("multinode seed {seed} (PHONETREE_MULTINODE_SEED={seed} replays it)");
        seed
    })
}

/// xorshift64*: a reproducible stream from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        Rng((seed ^ (stream + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// One webhook of a call: its eventId and body, and the engine's answer to it.
struct Webhook {
    body: String,
    /// The reply bytes the engine gives.
    want: Vec<u8>,
    /// The call's state once it is applied.
    then: CallState,
}

/// A caller of abc_restaurant, modelled with the pure engine: what it sends next and what every
/// node must answer.
struct Caller {
    m: Arc<Machine>,
    session: String,
    state: CallState,
    sent: usize,
    rng: Rng,
}

impl Caller {
    fn new(m: Arc<Machine>, session: String, rng: Rng) -> Caller {
        let info = CallInfo {
            session_id: session.clone(),
            direction: Direction::Inbound,
            source: CALLER.into(),
            destination: NUMBER.into(),
            call_id: Some(CALL_ID.into()),
        };
        Caller { state: CallState::new(&m, info, 0), m, session, sent: 0, rng }
    }

    /// Hung up, or answered as many prompts as a call does here.
    fn done(&self) -> bool {
        self.state.ended() || self.sent > INPUTS_PER_CALL_MAX
    }

    /// The next webhook: the call arriving, then a random key (or none) at each prompt.
    fn next(&mut self) -> Webhook {
        let event = if self.state.phase == Phase::New {
            Event::CallStarted
        } else {
            match KEYS[self.rng.below(KEYS.len() as u64) as usize] {
                "-" => Event::NoInput,
                key => Event::Digits(key.into()),
            }
        };
        self.webhook(&event)
    }

    /// The webhook 8x8 sends for `event` at the call's current prompt (a fresh eventId).
    fn webhook(&mut self, event: &Event) -> Webhook {
        self.sent += 1;
        let event_id = format!("{}-e{}", self.session, self.sent);
        let id = (self.state.phase != Phase::New).then(|| signed_id(&action_key(), &self.m, &self.state));
        let dtmf = match event {
            Event::Digits(d) => Some(d.as_str()),
            _ => None,
        };
        let body = Vca {
            session: &self.session,
            event: &event_id,
            dtmf,
            client_action_id: id.as_deref(),
            status: if *event == Event::CallStarted { "CALL_RECEIVED" } else { "DTMF_RECEIVED" },
            direction: "INBOUND",
            source: CALLER,
            destination: NUMBER,
            event_data: false,
        }
        .body();
        let step = engine::step(&self.m, &self.state, event, 0).unwrap();
        let reply = signed(&action_key(), &self.session, step.reply.unwrap_or_else(Callflow::hangup));
        let want = wire::encode(&reply).unwrap();
        Webhook { body, want, then: step.state }
    }

    /// The webhook was answered as the engine says: the call is where the engine put it.
    fn advance(&mut self, w: Webhook) {
        self.state = w.then;
    }

    /// Another caller on the same call, at the same prompt, whose eventIds differ from this one's.
    fn rival(&self) -> Caller {
        Caller {
            m: self.m.clone(),
            session: self.session.clone(),
            state: self.state.clone(),
            sent: self.sent + 100,
            rng: Rng::new(0, 0),
        }
    }

    /// 8x8's session summary arrived and was recorded.
    fn summarised(&mut self) {
        let ended = Event::SessionEnded { status: "COMPLETED".into() };
        self.state = engine::step(&self.m, &self.state, &ended, 0).unwrap().state;
    }
}

/// A reply as text, its id's expiry and MAC left out (they depend on when it was signed).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&unexpired(bytes)).into_owned()
}

/// Asserts two deliveries of one event (`x`, `y`) were both answered with the engine's bytes (not
/// the fallback), one applying it and the other a duplicate.
fn assert_answered_once(x: &Answer, y: &Answer, w: &Webhook, what: &str) {
    assert_eq!((x.status, y.status), (200, 200), "{what}");
    assert_eq!(text(&x.body), text(&w.want), "{what}: not the engine's answer (the fallback?)");
    assert_eq!(text(&y.body), text(&w.want), "{what}: not the engine's answer (the fallback?)");
    let mut hows = [x.how.as_str(), y.how.as_str()];
    hows.sort();
    assert_eq!(hows, ["applied", "duplicate"], "{what}");
}

/// Asserts a webhook's answer is the engine's, applied.
fn assert_applied(a: &Answer, w: &Webhook, what: &str) {
    assert_eq!((a.status, a.how.as_str()), (200, "applied"), "{what}: {}", text(&a.body));
    assert_eq!(text(&a.body), text(&w.want), "{what}: not the engine's answer");
}

/// Sends `event`'s webhook to `url` and asserts it is applied as the engine says.
async fn step_on(client: &reqwest::Client, url: &str, caller: &mut Caller, event: &Event) -> Answer {
    let w = caller.webhook(event);
    let a = try_post(client, url, w.body.clone()).await.unwrap();
    assert_applied(&a, &w, &format!("{} at {url}", caller.session));
    caller.advance(w);
    a
}

/// Nodes on one database, each with its own machines folder and log.
struct Cluster {
    tmp: tempfile::TempDir,
    url: String,
    nodes: Vec<Node>,
}

impl Cluster {
    /// `n` nodes on a fresh schema of the test database; `None` where postgres is skipped.
    async fn start(n: usize) -> Option<Cluster> {
        let tmp = tempfile::tempdir().unwrap();
        let url = postgres_url_for(tmp.path()).await?;
        let nodes = std::thread::scope(|s| {
            let started: Vec<_> = (0..n)
                .map(|k| {
                    let (root, url) = (tmp.path(), &url);
                    s.spawn(move || start_node(root, k, url, None))
                })
                .collect();
            started.into_iter().map(|h| h.join().unwrap()).collect()
        });
        Some(Cluster { tmp, url, nodes })
    }

    /// Starts one more node, with abc_restaurant's text replaced by `abc` when given.
    fn add(&mut self, abc: Option<&str>) {
        let node = start_node(self.tmp.path(), self.nodes.len(), &self.url, abc);
        self.nodes.push(node);
    }

    /// Every node's webhook URL, in node order.
    fn vca_urls(&self) -> Arc<Vec<String>> {
        Arc::new(self.nodes.iter().map(|n| n.url("/webhooks/vca")).collect())
    }

    /// Every final state the test expects is the one stored, read through the `Store` trait.
    async fn assert_stored(&self, finals: &[(String, CallState)]) {
        let store = phonetree::store::open(&self.url, Durability::Fsync).await.unwrap();
        for (session, want) in finals {
            let got = store.load(session, None).await.unwrap().session;
            let mut got = got.unwrap_or_else(|| panic!("{session} was lost")).state;
            (got.started_ms, got.updated_ms) = (0, 0);
            assert_eq!(&got, want, "{session}: not where the engine says");
        }
    }
}

/// Node `k` of the cluster in `root`: its machines (the bundled ones, abc_restaurant's text
/// replaced by `abc` when given) in `root/nK/machines`, its log in `root/nK/node.log`.
fn start_node(root: &Path, k: usize, url: &str, abc: Option<&str>) -> Node {
    let dir = root.join(format!("n{k}"));
    let machines = machines_dir(&dir);
    if let Some(text) = abc {
        std::fs::write(machines.join("abc_restaurant.toml"), text).unwrap();
    }
    on_store(&dir.join("node"), &machines, url)
}

/// A node on the store at `url`, signing ids with `ACTION_KEY` (so that the callers' model knows
/// every reply's bytes).
fn on_store(dir: &Path, machines: &Path, url: &str) -> Node {
    Node::start_with(dir, machines, &[("PHONETREE_STORE", url), ("PHONETREE_ACTION_KEY", ACTION_KEY)])
}

/// Awaits every task, re-raising the first panic with its own message.
async fn join_all<T: 'static>(mut tasks: JoinSet<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(v) => out.push(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("{e}"),
        }
    }
    out
}

/// Waits until `done` holds, at most `WAIT_MAX`; panics with `what` otherwise.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT_MAX, "waited {WAIT_MAX:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Calls through abc_restaurant, every webhook to the next node of three: each reply is the
/// engine's, and each call's stored state is where the engine says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_round_robin_over_three_nodes_answer_as_the_engine_says() {
    const CALLS: usize = 12;
    let Some(c) = Cluster::start(3).await else { return };
    let m = Arc::new(bundled("abc_restaurant"));
    let urls = c.vca_urls();
    let client = client_within(REQUEST_TIMEOUT);
    let mut tasks = JoinSet::new();
    for call in 0..CALLS {
        let (m, urls, client) = (m.clone(), urls.clone(), client.clone());
        tasks.spawn(async move {
            let mut caller = Caller::new(m, format!("rr-{call}"), Rng::new(seed(), call as u64));
            // Each webhook to the next node; calls start on different ones.
            let mut k = call;
            while !caller.done() {
                let w = caller.next();
                let url = &urls[k % urls.len()];
                k += 1;
                let a = try_post(&client, url, w.body.clone()).await.unwrap();
                assert_applied(&a, &w, &format!("{} at {url}", caller.session));
                caller.advance(w);
            }
            // Most calls end with 8x8's summary, to yet another node.
            if call % 4 != 0 {
                let url = urls[k % urls.len()].replace("/vca", "/vss");
                let a = try_post(&client, &url, vss(&caller.session, "COMPLETED")).await.unwrap();
                assert_eq!(a.status, 200, "{}", text(&a.body));
                caller.summarised();
            }
            (caller.session, caller.state)
        });
    }
    let finals = join_all(tasks).await;
    c.assert_stored(&finals).await;
}

/// The same eventId delivered to two nodes at the same moment, at every step of several calls:
/// both get the same bytes (the engine's), one applied it and the other replayed it, and the call
/// moved exactly one step each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_delivered_to_two_nodes_at_once_is_applied_once() {
    const CALLS: usize = 8;
    let Some(c) = Cluster::start(3).await else { return };
    let m = Arc::new(bundled("abc_restaurant"));
    let urls = c.vca_urls();
    let client = client_within(REQUEST_TIMEOUT);
    let pairs = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for call in 0..CALLS {
        let (m, urls, client, pairs) = (m.clone(), urls.clone(), client.clone(), pairs.clone());
        tasks.spawn(async move {
            let mut caller = Caller::new(m, format!("twin-{call}"), Rng::new(seed(), 100 + call as u64));
            let mut k = call;
            while !caller.done() {
                let w = caller.next();
                let (one, two) = (&urls[k % urls.len()], &urls[(k + 1) % urls.len()]);
                k += 1;
                let (x, y) = tokio::join!(
                    try_post(&client, one, w.body.clone()),
                    try_post(&client, two, w.body.clone())
                );
                let (x, y) = (x.unwrap(), y.unwrap());
                assert_answered_once(&x, &y, &w, &format!("{} at {one} and {two}", caller.session));
                pairs.fetch_add(1, Ordering::Relaxed);
                caller.advance(w);
            }
            (caller.session, caller.state)
        });
    }
    let finals = join_all(tasks).await;
    // Each event moved its call one step: the stored state is the engine's after each once.
    c.assert_stored(&finals).await;
    assert!(pairs.load(Ordering::Relaxed) >= CALLS * 2, "only {pairs:?} twin deliveries");
}

/// One event delivered to two nodes while its script waits for the API: the request reaches the
/// API once (the first node claimed it in the database before making it; the second waits for
/// its answer), and both nodes answer the same bytes. Before, each node made the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_on_two_nodes_while_its_script_runs_makes_one_request() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(url) = postgres_url_for(tmp.path()).await else { return };
    let api = HeldApi::start().await;
    let nodes: Vec<Node> = (0..2)
        .map(|k| {
            let dir = tmp.path().join(format!("n{k}"));
            let machines = machines_dir(&dir);
            std::fs::write(machines.join("hold.toml"), api.machine()).unwrap();
            on_store(&dir.join("node"), &machines, &url)
        })
        .collect();
    let body = Vca {
        session: "held-twins",
        event: "e1",
        dtmf: None,
        client_action_id: None,
        status: "CALL_RECEIVED",
        direction: "INBOUND",
        source: CALLER,
        destination: "+6568880079",
        event_data: false,
    }
    .body();
    let client = client_within(REQUEST_TIMEOUT);
    let send = |k: usize| {
        let (client, url, body) = (client.clone(), nodes[k].url("/webhooks/vca"), body.clone());
        tokio::spawn(async move { try_post(&client, &url, body).await.unwrap() })
    };
    let first = send(0);
    wait_until("the first node's request", || api.asked() == 1).await;
    let second = send(1);
    // The second node waits on the first's claim (or, wrongly, makes the request itself).
    let waiting = "another delivery of this webhook is making the script's request";
    wait_until("the second node", || nodes[1].log().contains(waiting) || api.asked() == 2).await;
    api.release.add_permits(2);
    let (x, y) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(api.asked(), 1, "the request was made once, across the nodes");
    assert_eq!(text(&x.body), text(&y.body), "two answers to one event");
    assert_eq!((x.how.as_str(), y.how.as_str()), ("applied", "duplicate"));
    assert!(text(&x.body).contains("All done."), "{}", text(&x.body));
}

/// One event delivered to two nodes at once while a slow transaction holds its session's row
/// longer than a store operation's own bound (`OPERATION_TIMEOUT`): as a starved node's first
/// delivery does between its update and its commit, here the test's own transaction. Once the row
/// is free, both nodes answer the engine's bytes, one applied and one duplicate. Before, each
/// node's commit gave up after 2 s and both callers heard the fallback (what `.ci/loadtest` (b)
/// showed under CPU starvation: `cannot commit a session: no answer from the database within
/// 2000 ms`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_on_two_nodes_behind_a_slow_transaction_is_answered_not_failed() {
    /// How long the session stays held once both nodes wait for it: past the store's bound, and
    /// 2 s short of the webhook's own deadline (room for a loaded machine's way to the commit).
    const HOLD: Duration = OPERATION_TIMEOUT.saturating_add(Duration::from_millis(500));
    const _: () = assert!(HOLD.as_millis() + 2000 <= SCRIPTS_DEADLINE.as_millis());
    let Some(c) = Cluster::start(2).await else { return };
    let m = Arc::new(bundled("abc_restaurant"));
    let urls = c.vca_urls();
    let client = client_within(REQUEST_TIMEOUT);
    let mut caller = Caller::new(m, "held-row".into(), Rng::new(seed(), 300));
    step_on(&client, &urls[0], &mut caller, &Event::CallStarted).await;
    let w = caller.webhook(&Event::Digits("1".into()));
    // The slow transaction: the session's row locked, as an update holds it until its commit.
    let mut holder = backends::connect(&c.url).await.unwrap();
    let held = holder.transaction().await.unwrap();
    let pid: i32 = held.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let rows = held
        .execute("SELECT 1 FROM phonetree_sessions WHERE id = $1 FOR UPDATE", &[&caller.session])
        .await
        .unwrap();
    assert_eq!(rows, 1, "the session is stored");
    let send = |k: usize| {
        let (client, url, body) = (client.clone(), urls[k].clone(), w.body.clone());
        tokio::spawn(async move { try_post(&client, &url, body).await.unwrap() })
    };
    let (first, second) = (send(0), send(1));
    let mut both = Box::pin(async move { (first.await.unwrap(), second.await.unwrap()) });
    // Both nodes' commits wait behind the holder (directly, or behind each other).
    let watcher = backends::connect(&c.url).await.unwrap();
    let waiting = "WITH RECURSIVE w(pid) AS (SELECT $1::int UNION \
                   SELECT a.pid FROM pg_stat_activity a, w WHERE w.pid = ANY(pg_blocking_pids(a.pid))) \
                   SELECT count(*)::int - 1 FROM w";
    let start = Instant::now();
    loop {
        let n: i32 = watcher.query_one(waiting, &[&pid]).await.unwrap().get(0);
        if n >= 2 {
            break;
        }
        assert!(
            start.elapsed() < WAIT_MAX,
            "waited {WAIT_MAX:?} for both nodes to wait on the session ({n})"
        );
        tokio::select! {
            early = &mut both => panic!(
                "answered before both waited on the session: {} {} / {} {}",
                early.0.how, text(&early.0.body), early.1.how, text(&early.1.body)
            ),
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    // The slow transaction takes HOLD: no answer may leave meanwhile (before, the fallback did).
    if let Ok((x, y)) = tokio::time::timeout(HOLD, &mut both).await {
        panic!(
            "answered while another transaction held the session: {} {} / {} {}",
            x.how,
            text(&x.body),
            y.how,
            text(&y.body)
        );
    }
    held.rollback().await.unwrap();
    let (x, y) = both.await;
    assert_answered_once(&x, &y, &w, &format!("{} at both nodes", caller.session));
    caller.advance(w);
    c.assert_stored(&[(caller.session.clone(), caller.state.clone())]).await;
}

/// Two different answers to one prompt, on two nodes at once (with a duplicate of one on a third):
/// exactly one applies; the others get its reply (the duplicate) or the prompt it leads to (the
/// stale answer), and the stored call moved one step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rival_answers_to_one_prompt_on_different_nodes_never_both_apply() {
    const ROUNDS: usize = 24;
    let Some(c) = Cluster::start(3).await else { return };
    let m = Arc::new(bundled("abc_restaurant"));
    let urls = c.vca_urls();
    let client = client_within(REQUEST_TIMEOUT);
    let mut finals = Vec::new();
    for round in 0..ROUNDS {
        let mut caller = Caller::new(m.clone(), format!("rival-{round}"), Rng::new(seed(), 200));
        step_on(&client, &urls[round % 3], &mut caller, &Event::CallStarted).await;
        // At the main menu: 1 (reservations) and 2 (connect_call), from one prompt.
        let mut rival = caller.rival();
        let one = caller.webhook(&Event::Digits("1".into()));
        let two = rival.webhook(&Event::Digits("2".into()));
        let (x, y, z) = tokio::join!(
            try_post(&client, &urls[(round + 1) % 3], one.body.clone()),
            try_post(&client, &urls[(round + 2) % 3], two.body.clone()),
            try_post(&client, &urls[round % 3], one.body.clone()),
        );
        let (x, y, z) = (x.unwrap(), y.unwrap(), z.unwrap());
        let what = format!("round {round}: {} {} {}", x.how, y.how, z.how);
        let applied = [&x, &y, &z].iter().filter(|r| r.how == "applied").count();
        assert_eq!(applied, 1, "{what}");
        assert_eq!(text(&x.body), text(&z.body), "{what}: a duplicate gets the same bytes");
        assert_eq!(text(&x.body), text(&y.body), "{what}: the loser gets the winner's prompt");
        let won = if y.how == "applied" { two } else { one };
        assert_eq!(text(&x.body), text(&won.want), "{what}: not the engine's answer");
        finals.push((caller.session.clone(), won.then));
    }
    c.assert_stored(&finals).await;
}

/// What the callers of the kill test acknowledged, and the calls in progress.
#[derive(Default)]
struct Journal {
    /// (session, node that answered, webhook body, reply), in the order answered.
    acked: Vec<(String, usize, String, Vec<u8>)>,
    /// Calls in progress, and whether the node to be killed answered one of their webhooks.
    open: std::collections::HashMap<String, bool>,
}

/// Calls in progress on three nodes; one node, which answered some of them, is killed with
/// SIGKILL. Webhooks that reach no node (or die with it) are delivered again, with the same
/// eventId, to the next live node, as a load balancer and 8x8's retries would. Every answer is
/// the engine's; at the end every acknowledged eventId, delivered again to a surviving node, is
/// answered (a call's latest `REPLIES_KEPT` with the same bytes) and moves nothing, and every call
/// is stored where the engine says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_call_loses_no_acknowledged_transition() {
    const CALLERS: usize = 6;
    /// Webhooks acknowledged before the kill, and after it before the callers stop.
    const ACKED_BEFORE: usize = 30;
    const ACKED_AFTER: usize = 40;
    /// Calls in progress, partly answered by the node killed, at the kill.
    const CALLS_ACROSS: usize = 2;
    const KILLED: usize = 1;
    let Some(mut c) = Cluster::start(3).await else { return };
    let m = Arc::new(bundled("abc_restaurant"));
    let urls = c.vca_urls();
    let alive: Arc<Vec<AtomicBool>> = Arc::new((0..3).map(|_| AtomicBool::new(true)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let journal = Arc::new(std::sync::Mutex::new(Journal::default()));
    let mut tasks = JoinSet::new();
    for who in 0..CALLERS {
        let (m, urls, alive, stop, journal) =
            (m.clone(), urls.clone(), alive.clone(), stop.clone(), journal.clone());
        tasks.spawn(async move {
            let client = client_within(REQUEST_TIMEOUT);
            let mut rng = Rng::new(seed(), 300 + who as u64);
            let mut finals = Vec::new();
            let mut k = who;
            let mut call = 0;
            while !stop.load(Ordering::SeqCst) {
                call += 1;
                let mut caller =
                    Caller::new(m.clone(), format!("kill-{who}-{call}"), Rng::new(rng.below(u64::MAX), 0));
                while !caller.done() {
                    let w = caller.next();
                    // To the next live node; again to the one after when it gets no answer.
                    let mut answer = None;
                    for _ in 0..3 * urls.len() {
                        k += 1;
                        if !alive[k % urls.len()].load(Ordering::SeqCst) {
                            continue;
                        }
                        if let Ok(a) = try_post(&client, &urls[k % urls.len()], w.body.clone()).await {
                            answer = Some((k % urls.len(), a));
                            break;
                        }
                    }
                    let (node, a) = answer.unwrap_or_else(|| panic!("{}: no node answered", caller.session));
                    // A webhook the killed node applied before it died is a duplicate here.
                    assert_eq!(a.status, 200, "{}", text(&a.body));
                    assert!(a.how == "applied" || a.how == "duplicate", "{}: {}", caller.session, a.how);
                    assert_eq!(text(&a.body), text(&w.want), "{}: not the engine's answer", caller.session);
                    let body = w.body.clone();
                    caller.advance(w);
                    let mut j = journal.lock().unwrap();
                    j.acked.push((caller.session.clone(), node, body, a.body));
                    if caller.done() {
                        j.open.remove(&caller.session);
                    } else {
                        *j.open.entry(caller.session.clone()).or_default() |= node == KILLED;
                    }
                }
                finals.push((caller.session, caller.state));
            }
            finals
        });
    }
    // The kill, once enough calls in progress were answered by the node killed (under the
    // journal's lock: none of them ends meanwhile).
    let mut killed_at = None;
    wait_until("calls in progress on the node to kill", || {
        let j = journal.lock().unwrap();
        let across: Vec<String> = j.open.iter().filter(|(_, on)| **on).map(|(s, _)| s.clone()).collect();
        if j.acked.len() < ACKED_BEFORE || across.len() < CALLS_ACROSS {
            return false;
        }
        c.nodes[KILLED].kill();
        alive[KILLED].store(false, Ordering::SeqCst);
        killed_at = Some((j.acked.len(), across));
        true
    })
    .await;
    let (at_kill, across) = killed_at.unwrap();
    wait_until("webhooks after the kill", || journal.lock().unwrap().acked.len() >= at_kill + ACKED_AFTER)
        .await;
    stop.store(true, Ordering::SeqCst);
    let finals: Vec<_> = join_all(tasks).await.into_iter().flatten().collect();
    let acked = std::mem::take(&mut journal.lock().unwrap().acked);
    // The calls in progress at the kill finished on the other nodes.
    for session in &across {
        let after = acked[at_kill..].iter().filter(|a| &a.0 == session).count();
        assert!(after > 0, "{session} was in progress at the kill and never answered again");
        let (_, state) = finals.iter().find(|(s, _)| s == session).unwrap();
        assert!(state.ended(), "{session} did not finish");
    }
    println!(
        "{} webhooks acknowledged, {at_kill} before the kill; {} calls in progress on the node killed",
        acked.len(),
        across.len()
    );

    let client = client_within(REQUEST_TIMEOUT);
    let survivors: Vec<&String> = (0..3).filter(|&k| k != KILLED).map(|k| &urls[k]).collect();
    let mut later = std::collections::HashMap::<&str, usize>::new();
    for (i, (session, _, body, reply)) in acked.iter().enumerate().rev() {
        let seen = later.entry(session.as_str()).or_default();
        let a = try_post(&client, survivors[i % survivors.len()], body.clone()).await.unwrap();
        assert_eq!(a.status, 200, "{session}: {}", text(&a.body));
        assert_ne!(a.how, "applied", "{session}: an acknowledged event applied again");
        if *seen < REPLIES_KEPT {
            assert_eq!(a.how, "duplicate", "{session}");
            assert_eq!(text(&a.body), text(reply), "{session}: a replayed eventId got other bytes");
        }
        *seen += 1;
    }
    c.assert_stored(&finals).await;
}

/// Calls started on one machine version, in progress while a node restarts on a new version and
/// a third node starts on it: they finish on the old version whichever node answers (the old
/// wording, the old version in every clientActionId), including on the node that never loaded it;
/// new calls get the new version, including on the node that still runs the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_finish_on_their_machine_version_whichever_node_answers() {
    const OLD_WORDING: &str = "Reserving a Table,";
    const NEW_WORDING: &str = "Reserving a table (new wording),";
    const CALLS: usize = 4;
    let Some(mut c) = Cluster::start(2).await else { return };
    let old_text = std::fs::read_to_string(repo().join("machines/abc_restaurant.toml")).unwrap();
    let new_text = old_text.replace(OLD_WORDING, NEW_WORDING);
    let old = Arc::new(compile_text("abc_restaurant.toml", &old_text));
    let new = Arc::new(compile_text("abc_restaurant.toml", &new_text));
    assert_ne!(old.version(), new.version());
    let client = client_within(REQUEST_TIMEOUT);
    // Old calls, at the reservations menu, started on nodes 0 and 1.
    let mut olds: Vec<Caller> =
        (0..CALLS).map(|i| Caller::new(old.clone(), format!("old-{i}"), Rng::new(0, 0))).collect();
    for (i, caller) in olds.iter_mut().enumerate() {
        for (j, event) in [Event::CallStarted, Event::Digits("1".into())].iter().enumerate() {
            step_on(&client, &c.nodes[(i + j) % 2].url("/webhooks/vca"), caller, event).await;
        }
    }
    // Node 0 restarts on the new version; node 2 starts on it and never loads the old one.
    let file = c.nodes[0].machines.join("abc_restaurant.toml");
    std::fs::write(&file, &new_text).unwrap();
    assert!(c.nodes[0].terminate().success());
    c.nodes[0].restart();
    c.add(Some(&new_text));
    let urls = c.vca_urls();
    // The old calls finish on the old version: book_table in the old wording, then booked; their
    // webhooks land on every node, the node that never loaded the old version among them.
    for (i, caller) in olds.iter_mut().enumerate() {
        for (j, key) in ["1", "2"].into_iter().enumerate() {
            let a = step_on(&client, &urls[(i + j) % 3], caller, &Event::Digits(key.into())).await;
            if key == "1" {
                assert!(text(&a.body).contains(OLD_WORDING), "{}: {}", caller.session, text(&a.body));
                let id = a.client_action_id().unwrap();
                assert!(id.contains(&format!(".{}.", old.version().short())), "{id}");
            }
        }
        assert!(caller.state.ended());
    }
    // New calls start on the nodes that run the new version and go on over all three: node 1,
    // still on the old version, compiles the new one from the database.
    let mut news = Vec::new();
    for i in 0..CALLS {
        let mut caller = Caller::new(new.clone(), format!("new-{i}"), Rng::new(0, 0));
        let first = [0, 2][i % 2];
        for (j, event) in
            [Event::CallStarted, Event::Digits("1".into()), Event::Digits("1".into())].iter().enumerate()
        {
            let a = step_on(&client, &urls[(first + j) % 3], &mut caller, event).await;
            if j == 2 {
                assert!(text(&a.body).contains(NEW_WORDING), "{}: {}", caller.session, text(&a.body));
                let id = a.client_action_id().unwrap();
                assert!(id.contains(&format!(".{}.", new.version().short())), "{id}");
            }
        }
        news.push(caller);
    }
    let finals: Vec<_> = olds.into_iter().chain(news).map(|c| (c.session, c.state)).collect();
    c.assert_stored(&finals).await;
}

/// How the database goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// Every connection closed, new ones refused (the database stopped, or restarted).
    Cut,
    /// Connections stay open and new ones are accepted, but nothing is answered (a database that
    /// hangs, or a network that drops its packets); it ends with the connections closed (the
    /// database restarted), as a hang ends.
    Stall,
}

/// The database cut off mid-run (every connection closed, new ones refused, by a proxy between the
/// node and PostgreSQL): webhooks are answered 200 with the machine's fallback within the client's
/// bound, `/readyz` says 503. The database back, without a restart: `/readyz` says 200 and new
/// calls are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_the_fallback_and_the_node_recovers_by_itself() {
    outage_and_recovery(Outage::Cut).await;
}

/// The database stops answering mid-run (the proxy holds every connection open and forwards
/// nothing): webhooks still get the fallback, and `/readyz` 503, in bounded time (before,
/// every webhook waited for the database forever); once the database is back, the node recovers
/// by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_answers_the_fallback_in_bounded_time() {
    outage_and_recovery(Outage::Stall).await;
}

async fn outage_and_recovery(outage: Outage) {
    const CALLERS: usize = 3;
    const APPLIED_BEFORE: usize = 10;
    const FALLBACKS: usize = 3;
    const APPLIED_AFTER: usize = 10;
    /// Phases of the run, as the callers see them.
    const UP: usize = 0;
    const DOWN: usize = 1;
    const RESTORED: usize = 2;
    let t = tempfile::tempdir().unwrap();
    let Some(url) = postgres_url_for(t.path()).await else { return };
    let proxy = Proxy::start(&upstream_of(&url)).await;
    let node = on_store(&t.path().join("node"), &machines_dir(t.path()), &url_via(&url, proxy.addr));
    let m = Arc::new(bundled("abc_restaurant"));
    let fallback = text(&wire::encode(m.fallback()).unwrap());
    let client = client_within(REQUEST_TIMEOUT);
    let ready = |client: reqwest::Client, url: String| async move {
        let r = client.get(&url).send().await.unwrap_or_else(|e| panic!("/readyz: {e:?}"));
        r.status().as_u16()
    };
    let readyz = node.url("/readyz");
    assert_eq!(ready(client.clone(), readyz.clone()).await, 200);

    let phase = Arc::new(AtomicUsize::new(UP));
    // Counts per phase (as seen when the answer came): applied, fallback.
    let applied: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let fallbacks: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let vca = node.url("/webhooks/vca");
    let mut tasks = JoinSet::new();
    for who in 0..CALLERS {
        let (m, vca, client, fallback) = (m.clone(), vca.clone(), client.clone(), fallback.clone());
        let (phase, applied, fallbacks, stop) =
            (phase.clone(), applied.clone(), fallbacks.clone(), stop.clone());
        tasks.spawn(async move {
            let mut call = 0;
            while !stop.load(Ordering::SeqCst) {
                call += 1;
                let mut caller = Caller::new(
                    m.clone(),
                    format!("out-{who}-{call}"),
                    Rng::new(seed(), 400 + who as u64 * 1000 + call),
                );
                while !caller.done() && !stop.load(Ordering::SeqCst) {
                    let w = caller.next();
                    let before = phase.load(Ordering::SeqCst);
                    let a = try_post(&client, &vca, w.body.clone())
                        .await
                        .unwrap_or_else(|e| panic!("{}: no answer: {e}", caller.session));
                    let after = phase.load(Ordering::SeqCst);
                    assert_eq!(a.status, 200, "{}: {}", caller.session, text(&a.body));
                    if a.how == "fallback" {
                        assert_eq!(text(&a.body), fallback, "{}", caller.session);
                        assert!(
                            before != UP || after != UP,
                            "{}: the fallback while the database was up",
                            caller.session
                        );
                        assert_ne!(
                            before, RESTORED,
                            "{}: the fallback after /readyz said 200 again",
                            caller.session
                        );
                        fallbacks[after].fetch_add(1, Ordering::SeqCst);
                        // The fallback hangs up: this call is over.
                        break;
                    }
                    assert_applied(&a, &w, &caller.session);
                    applied[after].fetch_add(1, Ordering::SeqCst);
                    caller.advance(w);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
    }
    let count = |v: &Arc<Vec<AtomicUsize>>, p: usize| v[p].load(Ordering::SeqCst);
    wait_until("calls applied before the outage", || count(&applied, UP) >= APPLIED_BEFORE).await;
    phase.store(DOWN, Ordering::SeqCst);
    match outage {
        Outage::Cut => proxy.cut().await,
        Outage::Stall => proxy.stall().await,
    }
    // `/readyz` reads the health the node probes every few seconds: it turns 503 within a probe.
    let during = tokio::spawn({
        let (client, readyz) = (client.clone(), readyz.clone());
        async move {
            let start = Instant::now();
            loop {
                let status = ready(client.clone(), readyz.clone()).await;
                if status == 503 || start.elapsed() > WAIT_MAX {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    wait_until("fallbacks during the outage", || count(&fallbacks, DOWN) >= FALLBACKS).await;
    assert_eq!(during.await.unwrap(), 503, "/readyz during the outage");
    if outage == Outage::Stall {
        proxy.cut().await;
    }
    proxy.restore().await;
    let start = Instant::now();
    while ready(client.clone(), readyz.clone()).await != 200 {
        assert!(start.elapsed() < WAIT_MAX, "/readyz not 200 {WAIT_MAX:?} after the database came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    phase.store(RESTORED, Ordering::SeqCst);
    wait_until("calls applied after the outage", || count(&applied, RESTORED) >= APPLIED_AFTER).await;
    stop.store(true, Ordering::SeqCst);
    join_all(tasks).await;
    println!(
        "{outage:?}: applied {} before, {} during and {} after the outage; {} fallbacks",
        count(&applied, UP),
        count(&applied, DOWN),
        count(&applied, RESTORED),
        count(&fallbacks, DOWN) + count(&fallbacks, RESTORED)
    );
    drop(node);
}

/// Nodes starting at the same moment on a database phonetree never used: every one migrates (or
/// finds the schema migrated) and starts. At the store level, as `serve` and `migrate` open it, on
/// several fresh schemas: a node creating the schema's first table as another commits it got
/// `type "phonetree_schema" already exists` (42710) and did not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_on_a_new_database_all_start() {
    const ROUNDS: usize = 20;
    const NODES: usize = 8;
    for _ in 0..ROUNDS {
        let t = tempfile::tempdir().unwrap();
        let Some(url) = postgres_url_for(t.path()).await else { return };
        let mut opening = JoinSet::new();
        for _ in 0..NODES {
            let url = url.clone();
            opening.spawn(async move { phonetree::store::migrate(&url).await });
        }
        for opened in join_all(opening).await {
            opened.unwrap_or_else(|e| panic!("a node starting with others: {e}"));
        }
    }
}
