//! Route and set nodes for real: a business-hours machine through the `phonetree` binary with a
//! fixed clock (`simulate --at`), `check` covering every rule, and a PIN machine through the real
//! `phonetree serve` against a loopback API that checks PINs — an agent after exactly three wrong
//! PINs, counted by a `set` node's `add` and decided by a `route` on the counter.

use crate::common;

use std::collections::HashMap;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::*;
use warp::Filter;

fn phonetree(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phonetree")).args(args).current_dir(repo()).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const HOURS: &str = "tests/data/routes/business_hours.toml";

#[test]
fn simulate_at_a_fixed_time_takes_the_rule_of_that_time() {
    // 2026-11-23 is a Monday; 2026-12-25 a Friday, and a holiday.
    let cases = [
        ("2026-11-23T10:00:00+08:00", "[hours] rule 2 (mon-fri 09:00-18:00) -> main_menu", "We are open."),
        ("2026-11-23T20:00:00+08:00", "[hours] else -> closed", "We are closed. Our hours"),
        (
            "2026-12-25T10:00:00+08:00",
            "[hours] rule 1 (2026-12-25,2027-01-01) -> holiday",
            "closed for the holiday",
        ),
        // The same instant as the first, written in UTC.
        ("2026-11-23T02:00:00Z", "[hours] rule 2 (mon-fri 09:00-18:00) -> main_menu", "We are open."),
        ("2026-11-28T13:59:00+08:00", "[hours] rule 3 (sat 10:00-14:00) -> main_menu", "We are open."),
        ("2026-11-28T14:00:00+08:00", "[hours] else -> closed", "We are closed. Our hours"),
    ];
    for (at, rule, heard) in cases {
        let out = phonetree(&["simulate", HOURS, "--at", at, "-"]);
        assert_eq!(out.status.code(), Some(0), "{at}: {}", String::from_utf8_lossy(&out.stderr));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], rule, "{at}:\n{text}");
        assert!(lines[2].contains(heard), "{at}:\n{text}");
    }
}

#[test]
fn simulate_refuses_a_time_that_is_not_rfc_3339() {
    let out = phonetree(&["simulate", HOURS, "--at", "monday 10am", "-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`monday 10am` is not an RFC 3339 time"));
}

#[test]
fn check_covers_every_rule_of_the_routes() {
    let out = phonetree(&["check", HOURS]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("9/9 edges covered"), "{}", stdout(&out));
    let out = phonetree(&["check", "machines/bank_balance.toml", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["edges_covered"], v["edges"], "{v}");
    assert_eq!(v["machines"][0]["violations"], serde_json::json!([]), "{v}");
}

/// The bank's API: `POST /balance` with `caller` and `pin`; PIN 4321 is right.
struct Bank {
    base: String,
    pins: Arc<Mutex<Vec<String>>>,
}

impl Bank {
    async fn start() -> Bank {
        let pins: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = pins.clone();
        let route = warp::path!("balance")
            .and(warp::post())
            .and(warp::body::form::<HashMap<String, String>>())
            .map(move |form: HashMap<String, String>| {
                let pin = form.get("pin").cloned().unwrap_or_default();
                seen.lock().unwrap().push(pin.clone());
                let v = if pin == "4321" {
                    serde_json::json!({"status": "ok", "balance": "1234.50"})
                } else {
                    serde_json::json!({"status": "wrong", "balance": "-"})
                };
                warp::reply::json(&v)
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Bank { base, pins }
    }
}

fn node(t: &tempfile::TempDir, bank: &Bank) -> Node {
    let dir = t.path().join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(repo().join("tests/data/routes/pin_check.toml")).unwrap();
    std::fs::write(
        dir.join("pin_check.toml"),
        text.replace("127.0.0.1:8091", bank.base.trim_start_matches("http://")),
    )
    .unwrap();
    Node::start(&t.path().join("data"), &dir)
}

/// An inbound call to the PIN line; returns each reply's texts and last action.
struct Call<'a> {
    n: &'a Node,
    session: String,
    id: Option<String>,
    events: usize,
}

impl Call<'_> {
    async fn send(&mut self, status: &str, dtmf: Option<&str>) -> (Vec<String>, String) {
        self.events += 1;
        let event = format!("{}-e{}", self.session, self.events);
        let body = Vca {
            session: &self.session,
            event: &event,
            dtmf,
            client_action_id: self.id.as_deref(),
            status,
            direction: "INBOUND",
            source: "+6591178965",
            destination: "+6568880006",
            event_data: false,
        }
        .body();
        let a = post(&self.n.url("/webhooks/vca"), body).await;
        assert_eq!(a.status, 200);
        self.id = a.callflow().client_action_id;
        let v = a.json();
        let actions = v["callflow"].as_array().unwrap().clone();
        let texts = actions
            .iter()
            .filter_map(|x| x["params"]["text"].as_str().or(x["params"]["promptMessage"].as_str()))
            .map(String::from)
            .collect();
        (texts, actions.last().unwrap()["action"].as_str().unwrap().to_string())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_wrong_pins_reach_the_agent_and_a_right_one_the_balance_in_the_chosen_language() {
    let bank = Bank::start().await;
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &bank);

    let mut call = Call { n: &n, session: "s-pin-wrong".into(), id: None, events: 0 };
    let (texts, _) = call.send("CALL_RECEIVED", None).await;
    assert!(texts[0].starts_with("Welcome to the bank."), "{texts:?}");
    let (texts, _) = call.send("DTMF_RECEIVED", Some("1")).await;
    assert_eq!(texts, ["Please key in your four digit PIN, then press hash."]);
    for attempt in 1..=2 {
        let (texts, last) = call.send("DTMF_RECEIVED", Some("1111#")).await;
        assert_eq!(
            texts,
            ["That PIN is not right.", "Please key in your four digit PIN, then press hash."],
            "wrong PIN {attempt}"
        );
        assert_eq!(last, "sayAndCapture");
    }
    let (texts, last) = call.send("DTMF_RECEIVED", Some("2222#")).await;
    assert_eq!((texts, last.as_str()), (vec!["Let me connect you to an agent.".to_string()], "makeCall"));
    assert_eq!(*bank.pins.lock().unwrap(), ["1111", "1111", "2222"], "exactly three PINs were checked");

    // Another call starts its count at zero: one wrong PIN, then the right one, in Spanish.
    let mut call = Call { n: &n, session: "s-pin-right".into(), id: None, events: 0 };
    call.send("CALL_RECEIVED", None).await;
    call.send("DTMF_RECEIVED", Some("2")).await;
    let (texts, _) = call.send("DTMF_RECEIVED", Some("9999#")).await;
    assert_eq!(texts[0], "That PIN is not right.");
    let (texts, last) = call.send("DTMF_RECEIVED", Some("4321#")).await;
    assert_eq!(texts, ["Su saldo es 1234.50 dólares. Adiós."]);
    assert_eq!(last, "hangup");
    assert_eq!(bank.pins.lock().unwrap().len(), 5);
}

#[test]
fn a_counter_stops_at_its_bound_instead_of_overflowing() {
    let text = r#"
name = "counter"
start = "up"

[defaults]
voice_profile = "en-US-BenjaminRUS"

[nodes.up]
kind = "set"
add = { n = 999999999 }
next = "again"

[nodes.again]
kind = "set"
add = { n = 999999999 }
next = "tell"

[nodes.tell]
kind = "say"
text = "Count {n}."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;
    let m = compile_text("counter.toml", text);
    let (flows, state) = play_outbound(&m, outbound("+15550001", "+6598888888"), &[]);
    assert_eq!(state.vars["n"], "999999999");
    let said = json(&flows[0]);
    assert!(said.to_string().contains("Count 999999999."), "{said}");
}

#[test]
fn a_counter_no_route_bounds_stops_the_exploration_and_says_so() {
    let path = repo().join("tests/data/routes/unbounded_counter.toml");
    let m = compile_text("unbounded_counter.toml", &std::fs::read_to_string(path).unwrap());
    let r = phonetree::proof::explore::explore(&m);
    let kinds: Vec<_> = r.violations.iter().map(|v| v.kind).collect();
    assert!(kinds.contains(&phonetree::proof::explore::Kind::Unbounded), "{:#?}", r.violations);
    assert!(
        !kinds.contains(&phonetree::proof::explore::Kind::Trap),
        "no trap is judged on a cut exploration"
    );
    assert!(r.states <= phonetree::proof::explore::STATES_MAX + 64);
    // The counterexample is the first time round the loop that grows the counter, not the path
    // to the 50,000th state.
    let unbounded =
        r.violations.iter().find(|v| v.kind == phonetree::proof::explore::Kind::Unbounded).unwrap();
    assert_eq!(unbounded.node, "menu");
    assert_eq!(unbounded.inputs, ["1"]);
    assert!(unbounded.message.contains("comes back here with `n` changed"), "{}", unbounded.message);
}

#[test]
fn explore_covers_a_rule_on_an_input_value_and_one_on_the_caller() {
    let text = r#"
name = "by_value"
start = "who"

[defaults]
voice_profile = "en-US-BenjaminRUS"

[nodes.who]
kind = "route"
rules = [{ var = "caller", prefix = "+65", next = "ask" }]
else = "bye"

[nodes.ask]
kind = "input"
prompt = "Your code."
variable = "code"
min_digits = 1
max_digits = 4
digit_timeout_ms = 5000
overall_timeout_ms = 10000
next = "pick"
invalid = "bye"

[nodes.pick]
kind = "route"
rules = [{ var = "code", equals = "42", next = "agent" }, { var = "code", one_of = ["7", "8"], next = "bye" }]
else = "bye"

[nodes.agent]
kind = "transfer"
destination = "+6531589338"

[nodes.bye]
kind = "hangup"
"#;
    let m = compile_text("by_value.toml", text);
    let r = phonetree::proof::explore::explore(&m);
    assert!(r.proven(), "{:#?}", r.violations);
    assert_eq!(r.edges_covered, r.edges);
}
