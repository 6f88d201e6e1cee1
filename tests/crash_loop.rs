//! The crash-kill loop: the real `phonetree serve` binary takes webhooks from many concurrent calls
//! while it is killed with SIGKILL at random moments and restarted on the same data dir. Callers
//! retry a webhook that got no answer with the same `eventId`, as 8x8 does. Checked:
//! - every answer is the one the pure engine gives for the call's inputs so far: no acknowledged
//!   transition is lost and no call moves backwards (a lost state would answer a later webhook as
//!   stale, with an older prompt); a webhook delivered again after its node was killed while its
//!   script's request was in flight may instead take the script's failure branch (the request
//!   is made at most once, and may have reached the API);
//! - every acknowledged `eventId`, delivered again at the end, gets the identical bytes;
//! - the store opens cleanly after every kill (the node starts) and at the end every session
//!   decodes, at the state the engine says.
//!
//! Half of the callers use the order line (`order_status`), whose script node asks a loopback
//! API mid-call: its requests are claimed and its answers journaled before they are applied, so
//! they survive the kills too.
//!
//! Bounded: `KILLS` kills, `CALLERS` concurrent callers. The seed is printed; set
//! `PHONETREE_CRASH_SEED` to replay one.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use common::*;
use phonetree::callflow::{ActionKey, Callflow};
use phonetree::engine::{self, CallInfo, CallState, Direction, Event, Phase};
use phonetree::machine::Machine;
use phonetree::webhook::wire;
use warp::Filter;

const KILLS: usize = 6;
const CALLERS: usize = 16;
/// Most answers one call gives before it hangs up on its own.
const INPUTS_PER_CALL_MAX: usize = 6;
/// Attempts at delivering one webhook while the node is down (each 20 ms apart): a restart takes
/// well under a second.
const DELIVERY_ATTEMPTS_MAX: usize = 500;

/// xorshift64*: a reproducible stream from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One acknowledged webhook: where it went, what was sent, what came back.
struct Acked {
    session: String,
    url_path: &'static str,
    body: Vec<u8>,
    reply: Vec<u8>,
}

/// POSTs until the node answers (it may be down, or die mid-request).
async fn deliver(client: &reqwest::Client, addr: &RwLock<String>, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let (status, bytes, _) = deliver_counted(client, addr, path, body).await;
    (status, bytes)
}

/// `deliver`, also saying whether it took more than one attempt.
async fn deliver_counted(
    client: &reqwest::Client,
    addr: &RwLock<String>,
    path: &str,
    body: &[u8],
) -> (u16, Vec<u8>, bool) {
    for attempt in 0..DELIVERY_ATTEMPTS_MAX {
        let url = format!("http://{}{path}", addr.read().unwrap());
        if let Ok(r) = client.post(&url).body(body.to_vec()).send().await {
            let status = r.status().as_u16();
            if let Ok(bytes) = r.bytes().await {
                // The id's expiry and MAC depend on when it was signed: compared without them.
                return (status, unexpired(&bytes), attempt > 0);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the node did not come back");
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap()
}

/// What the loopback order API answers for an order number: its first digit is the status code.
fn order_json(order: &str) -> String {
    let code = order.chars().next().and_then(|c| c.to_digit(10)).unwrap_or(0);
    format!(r#"{{"data": {{"code": {code}, "eta": "on day {}"}}}}"#, order.len())
}

/// The reply and state the engine gives, with the API's answers for any script on the way.
fn expected(key: &ActionKey, m: &Machine, state: &CallState, event: &Event) -> (CallState, Vec<u8>) {
    expected_with(key, m, state, event, |r| {
        let order = r.url.split('?').next().unwrap().rsplit('/').next().unwrap().to_string();
        engine::Answer::Http { status: 200, body: order_json(&order).into_bytes() }
    })
}

/// The reply and state the engine gives when the script's request was claimed by a delivery its
/// node's kill cut short: the failure branch, without a request.
fn expected_lapsed(key: &ActionKey, m: &Machine, state: &CallState, event: &Event) -> (CallState, Vec<u8>) {
    expected_with(key, m, state, event, |_| engine::Answer::Failed { reason: "claimed, not answered".into() })
}

fn expected_with(
    key: &ActionKey,
    m: &Machine,
    state: &CallState,
    event: &Event,
    answer: impl Fn(&engine::Request) -> engine::Answer,
) -> (CallState, Vec<u8>) {
    let mut answers = Vec::new();
    let step = loop {
        match engine::step_with(m, state, event, 0, &answers).unwrap() {
            engine::Stepped::Done(step) => break *step,
            engine::Stepped::Needs(r) => answers.push(answer(&r)),
        }
    };
    let reply = signed(key, &state.call.session_id, step.reply.unwrap_or_else(Callflow::hangup));
    (step.state, wire::encode(&reply).unwrap())
}

/// A phone line under test: the machine, the number callers dial, the keys they press.
struct Line {
    m: Machine,
    number: &'static str,
    keys: &'static [&'static str],
    /// What the node signs ids with: its store's key, made before it first starts.
    key: ActionKey,
}

/// One caller: calls after calls until told to stop; every answer checked against the engine.
async fn caller(
    who: usize,
    seed: u64,
    line: Arc<Line>,
    addr: Arc<RwLock<String>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    finals: Arc<Mutex<HashMap<String, CallState>>>,
) {
    let mut rng = Rng(seed ^ (who as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let client = http_client();
    let m = &line.m;
    let mut call_no = 0;
    let mut event_no = 0;
    while !stop.load(Ordering::SeqCst) {
        call_no += 1;
        let session = format!("c{who}-{call_no}");
        let info = CallInfo {
            session_id: session.clone(),
            direction: Direction::Inbound,
            source: "+6591178965".into(),
            destination: line.number.into(),
            call_id: Some("627e25f1-133a-11ef-b08c-e33c09483244".into()),
        };
        let mut state = CallState::new(m, info, 0);
        let mut event = Event::CallStarted;
        for _ in 0..=INPUTS_PER_CALL_MAX {
            event_no += 1;
            let event_id = format!("{session}-e{event_no}");
            let id = (state.phase != Phase::New).then(|| signed_id(&line.key, m, &state));
            let dtmf = match &event {
                Event::Digits(d) => Some(d.clone()),
                _ => None,
            };
            let v = Vca {
                session: &session,
                event: &event_id,
                dtmf: dtmf.as_deref(),
                client_action_id: id.as_deref(),
                status: if event == Event::CallStarted { "CALL_RECEIVED" } else { "DTMF_RECEIVED" },
                direction: "INBOUND",
                source: "+6591178965",
                destination: line.number,
                event_data: false,
            };
            let body = v.body().into_bytes();
            let (mut want_state, mut want) = expected(&line.key, m, &state, &event);
            let (status, got, retried) = deliver_counted(&client, &addr, "/webhooks/vca", &body).await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
            // Delivered again after a kill that cut its script's request short: the failure
            // branch, the request not made twice.
            let lapsed = expected_lapsed(&line.key, m, &state, &event);
            if retried && got == lapsed.1 && got != want {
                (want_state, want) = lapsed;
            }
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{session}: {event} answered out of line (a lost or replayed-wrong transition), seed {seed}"
            );
            acked.lock().unwrap().push(Acked {
                session: session.clone(),
                url_path: "/webhooks/vca",
                body,
                reply: got,
            });
            state = want_state;
            if state.ended() {
                break;
            }
            event = match rng.below(line.keys.len() as u64 + 1) {
                0 => Event::NoInput,
                // A fresh order number (status 1 to 3), so most lookups reach the API, not the cache.
                k if line.keys[k as usize - 1] == "ORDER#" => {
                    Event::Digits(format!("{}{:05}#", 1 + rng.below(3), rng.below(100_000)))
                }
                k => Event::Digits(line.keys[k as usize - 1].into()),
            };
        }
        // Most calls end with 8x8's summary; some are left open (as if it never came).
        if rng.below(4) > 0 {
            let (status, _) =
                deliver(&client, &addr, "/webhooks/vss", vss(&session, "COMPLETED").as_bytes()).await;
            assert_eq!(status, 200);
            state = expected(&line.key, m, &state, &Event::SessionEnded { status: "COMPLETED".into() }).0;
        }
        finals.lock().unwrap().insert(session, state);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let seed = std::env::var("PHONETREE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    println!("crash loop seed {seed} (PHONETREE_CRASH_SEED={seed} replays it)");
    let t = tempfile::tempdir().unwrap();
    // The order line's API, on loopback: answers by order number.
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let api = warp::path!("orders" / String).map(move |order: String| {
        counter.fetch_add(1, Ordering::SeqCst);
        order_json(&order)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(api).incoming(listener).run());
    let dir = machines_dir(t.path());
    let order_file = dir.join("order_status.toml");
    let order_text = std::fs::read_to_string(&order_file)
        .unwrap()
        .replace("127.0.0.1:8090", api_base.trim_start_matches("http://"));
    std::fs::write(&order_file, &order_text).unwrap();
    // The node takes the key the store keeps; a restarted node finds the same one there.
    let key = store_action_key(&t.path().join("data")).await;
    let mut node = Node::start(&t.path().join("data"), &dir);
    let abc = Arc::new(Line {
        m: bundled("abc_restaurant"),
        number: "+6568888888",
        keys: &["1", "2", "3", "9", "12"],
        key: key.clone(),
    });
    let orders = Arc::new(Line {
        m: compile_text("order_status.toml", &order_text),
        number: "+6568880002",
        keys: &["ORDER#", "ORDER#", "111111", "12#", "1", "2"],
        key,
    });
    let addr = Arc::new(RwLock::new(node.addr.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let finals = Arc::new(Mutex::new(HashMap::new()));
    let callers: Vec<_> = (0..CALLERS)
        .map(|who| {
            tokio::spawn(caller(
                who,
                seed,
                if who % 2 == 1 { orders.clone() } else { abc.clone() },
                addr.clone(),
                stop.clone(),
                acked.clone(),
                finals.clone(),
            ))
        })
        .collect();

    let mut rng = Rng(seed);
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
        let before = acked.lock().unwrap().len();
        node.kill();
        node.restart(); // panics unless the store opens and the node listens again
        *addr.write().unwrap() = node.addr.clone();
        println!("kill {kill}: after {before} acknowledged webhooks");
    }
    // The last restarted node acknowledges webhooks before the callers stop (a condition, not a
    // sleep: it holds however busy the machine is).
    let last = acked.lock().unwrap().len();
    let start = std::time::Instant::now();
    while acked.lock().unwrap().len() < last + CALLERS {
        assert!(start.elapsed() < Duration::from_secs(60), "the last restarted node acknowledged nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        c.await.unwrap();
    }

    // Every acknowledged eventId, delivered again: a session's latest (the journal keeps
    // REPLIES_KEPT of them) get the identical bytes; older ones are answered but never applied
    // again (the final states below are unchanged).
    let client = http_client();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.len() > 100, "only {} webhooks acknowledged", acked.len());
    let mut later: HashMap<&str, usize> = HashMap::new();
    for a in acked.iter().rev() {
        let seen = later.entry(a.session.as_str()).or_default();
        let (status, again) = deliver(&client, &addr, a.url_path, &a.body).await;
        assert_eq!(status, 200);
        if *seen < phonetree::store::REPLIES_KEPT {
            assert_eq!(
                again,
                a.reply,
                "a replayed eventId got other bytes: {}",
                String::from_utf8_lossy(&a.body)
            );
        }
        *seen += 1;
    }

    // The store after a clean stop: every call where the engine says it is.
    assert!(node.terminate().success());
    assert!(!node.log().contains("clientActionId refused"), "every id verified across the restarts");
    let store = phonetree::store::SledStore::open(&node.data).unwrap();
    let finals = std::mem::take(&mut *finals.lock().unwrap());
    for (session, want) in finals.iter() {
        let got = phonetree::store::Store::load(&store, session, None).await.unwrap().session;
        let mut got = got.unwrap_or_else(|| panic!("{session} lost")).state;
        (got.started_ms, got.updated_ms) = (0, 0);
        assert_eq!(&got, want, "{session}");
    }
    assert!(asked.load(Ordering::SeqCst) > 0, "the order line's script never asked its API");
    println!(
        "{} webhooks acknowledged over {} calls and {KILLS} kills; the order API was asked {} times",
        acked.len(),
        finals.len(),
        asked.load(Ordering::SeqCst)
    );
}
