//! Machine-wide keys (`[keys]`): `*` repeats and `9` goes back at every menu of a nested machine,
//! offline through the engine and through the real server; `global_keys = false` turns them off.

use crate::common;

use common::{Node, Vca, post};
use phonetree::callflow::{Action, Callflow};
use phonetree::engine::{self, CallState, Event};
use phonetree::machine::{Edge, Machine};
use phonetree::proof::explore;

fn nested() -> Machine {
    let path = common::repo().join("tests/data/keys/nested.toml");
    common::compile_text("nested.toml", &std::fs::read_to_string(path).unwrap())
}

/// The prompt a reply waits on (its last action's), and the node the call is at.
fn prompt(flow: &Callflow) -> String {
    match flow.actions.last() {
        Some(Action::SayAndCapture(c)) => c.prompt_message.clone(),
        other => panic!("no prompt: {other:?}"),
    }
}

/// An inbound call on `m`, started.
fn call(m: &Machine) -> (CallState, Callflow) {
    let state = CallState::new(m, common::inbound("+15550000001", "+6568880001"), 0);
    let step = engine::step(m, &state, &Event::CallStarted, 0).unwrap();
    (step.state, step.reply.unwrap())
}

fn press(m: &Machine, state: &CallState, keys: &str) -> (CallState, Callflow, Vec<Edge>) {
    let step = engine::step(m, state, &common::event(keys), 1).unwrap();
    let edges = step.edges.iter().map(|(_, e, _)| e.clone()).collect();
    (step.state, step.reply.unwrap(), edges)
}

fn node_name(m: &Machine, state: &CallState) -> String {
    m.node(state.node).unwrap().name.clone()
}

const MAIN: &str = "Main menu. For sales press 1, for support press 2.";
const SALES: &str = "Sales. For orders press 1.";
const ORDERS: &str = "Orders. For an order's status press 1.";

#[test]
fn star_repeats_and_nine_goes_back_at_every_level() {
    let m = nested();
    let (mut state, first) = call(&m);
    assert_eq!(prompt(&first), MAIN);
    // Down three levels; at each, `*` says the same prompt again and keeps the node and tries.
    for (keys, want, node) in [("", MAIN, "main"), ("1", SALES, "sales"), ("1", ORDERS, "orders")] {
        if !keys.is_empty() {
            let (s, flow, _) = press(&m, &state, keys);
            assert_eq!(prompt(&flow), want);
            state = s;
        }
        let (s, flow, edges) = press(&m, &state, "*");
        assert_eq!((prompt(&flow), node_name(&m, &s)), (want.to_string(), node.to_string()));
        assert_eq!(edges, [Edge::Repeat("*".into())]);
        assert_eq!(s.tries, state.tries, "repeat keeps the tries");
        assert_ne!(flow.client_action_id, None);
        assert!(s.seq > state.seq, "a repeated prompt has its own clientActionId");
        state = s;
    }
    // Up again: orders → sales → main, then `9` at the first menu repeats it.
    for (want, node) in [(SALES, "sales"), (MAIN, "main"), (MAIN, "main")] {
        let (s, flow, edges) = press(&m, &state, "9");
        assert_eq!((prompt(&flow), node_name(&m, &s)), (want.to_string(), node.to_string()));
        assert_eq!(edges, [Edge::Back("9".into())]);
        state = s;
    }
    // `8` starts over from the third level; `9` then goes back to where the caller was, as the
    // path says (`start` is a jump like any key, not a reset of the path).
    let (deep, _, _) = press(&m, &press(&m, &state, "1").0, "1");
    assert_eq!(node_name(&m, &deep), "orders");
    let (s, flow, edges) = press(&m, &deep, "8");
    assert_eq!((prompt(&flow), node_name(&m, &s).as_str()), (MAIN.to_string(), "main"));
    assert_eq!(edges, [Edge::Key("8".into())]);
    let (back, flow, _) = press(&m, &s, "9");
    assert_eq!((prompt(&flow), node_name(&m, &back).as_str()), (ORDERS.to_string(), "orders"));
    // Back after a say node lands on the menu before it, and `0` reaches the agent from anywhere.
    let (s, flow, _) = press(&m, &state, "2");
    assert_eq!(prompt(&flow), "For billing press 1.");
    let (s, flow, _) = press(&m, &s, "9");
    assert_eq!((prompt(&flow), node_name(&m, &s).as_str()), (MAIN.to_string(), "main"));
    let (s, flow, edges) = press(&m, &s, "0");
    assert!(matches!(flow.actions[0], Action::MakeCall(_)), "{flow:?}");
    assert_eq!((edges, node_name(&m, &s).as_str()), (vec![Edge::Key("0".into())], "agent"));
}

#[test]
fn repeat_after_a_failed_try_says_the_reprompt_with_the_tries_unchanged() {
    let m = nested();
    let (state, _) = call(&m);
    let (state, flow, _) = press(&m, &state, "7");
    assert_eq!((prompt(&flow), state.tries), ("Sorry. For sales press 1, for support press 2.".into(), 1));
    let (again, flow, _) = press(&m, &state, "*");
    assert_eq!((prompt(&flow), again.tries), ("Sorry. For sales press 1, for support press 2.".into(), 1));
}

#[test]
fn an_input_with_global_keys_off_takes_the_keys_as_input() {
    let m = nested();
    let (mut state, _) = call(&m);
    for keys in ["1", "1", "1"] {
        state = press(&m, &state, keys).0;
    }
    assert_eq!(node_name(&m, &state), "pin");
    // `9` is not `back` here: it is a key of the PIN, too short, so a failed try.
    let (s, _, edges) = press(&m, &state, "9");
    assert_eq!((node_name(&m, &s).as_str(), s.tries, edges), ("pin", 1, vec![]));
    let (s, flow, _) = press(&m, &state, "9090");
    assert_eq!(s.vars["pin"], "9090");
    assert!(matches!(&flow.actions[0], Action::Say(say) if say.text == "Your order is on its way."));
}

#[test]
fn check_proves_the_machine_and_covers_every_machine_key() {
    let m = nested();
    let r = explore::explore(&m);
    assert!(r.proven(), "{:?}", r.violations);
    assert_eq!(r.edges_covered, r.edges);
    // Four menus keep `*` and `9` (the PIN input turns the keys off).
    let keyed = m.graph().edge_weights().filter(|e| matches!(e, Edge::Repeat(_) | Edge::Back(_))).count();
    assert_eq!(keyed, 2 * 4);
}

#[test]
fn simulate_names_the_machine_keys_it_takes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .current_dir(common::repo())
        .args(["simulate", "tests/data/keys/nested.toml", "1", "1", "*", "9", "9", "9"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "[orders] key * (repeat) to `orders`",
        "[orders] key 9 (back) to `sales`",
        "[sales] key 9 (back) to `main`",
        "[main] key 9 (back) to `main`",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
}

/// The keys through the real server: `*` and `9` at the third level, each answer's JSON.
#[tokio::test]
async fn star_and_nine_through_the_server() {
    let t = tempfile::tempdir().unwrap();
    let machines = t.path().join("machines");
    std::fs::create_dir_all(&machines).unwrap();
    std::fs::copy(common::repo().join("tests/data/keys/nested.toml"), machines.join("nested.toml")).unwrap();
    let n = Node::start(&t.path().join("data"), &machines);
    let url = n.url("/webhooks/vca");
    let mut vca = Vca::abc("s-keys", "e0", None, None);
    (vca.status, vca.direction, vca.source, vca.destination) =
        ("CALL_RECEIVED", "INBOUND", "+6591178965", "+6568880001");
    let a = post(&url, vca.body()).await;
    assert_eq!(a.json()["callflow"][0]["params"]["promptMessage"], MAIN);
    let mut id = a.client_action_id().unwrap();
    let mut seen = Vec::new();
    for (i, keys) in ["1", "1", "*", "9", "9", "9"].iter().enumerate() {
        let event = format!("e{}", i + 1);
        let answer = Vca {
            status: "DTMF_RECEIVED",
            event: &event,
            dtmf: Some(keys),
            client_action_id: Some(&id),
            ..Vca::abc("s-keys", "", None, None)
        };
        let answer =
            Vca { direction: "INBOUND", source: "+6591178965", destination: "+6568880001", ..answer };
        let r = post(&url, answer.body()).await;
        let json = r.json();
        assert_eq!(json["callflow"].as_array().unwrap().len(), 1, "{json}");
        seen.push(json["callflow"][0]["params"]["promptMessage"].as_str().unwrap().to_string());
        id = r.client_action_id().unwrap();
    }
    assert_eq!(seen, [SALES, ORDERS, ORDERS, SALES, MAIN, MAIN]);
}

#[test]
fn global_keys_as_a_list_keeps_those_keys_and_gives_the_others_to_the_input() {
    let path = common::repo().join("tests/data/keys/some_keys.toml");
    let m = common::compile_text("some_keys.toml", &std::fs::read_to_string(path).unwrap());
    let (state, first) = call(&m);
    assert_eq!(node_name(&m, &state), "account");
    // `*` is kept: the prompt again, no try spent.
    let (s, flow, edges) = press(&m, &state, "*");
    assert_eq!((node_name(&m, &s).as_str(), s.tries, edges), ("account", 0, vec![Edge::Repeat("*".into())]));
    assert_eq!(prompt(&flow), prompt(&first));
    // `0` and `9` are not: they are the account number's keys.
    for keys in ["0", "9", "90"] {
        let (s, _, edges) = press(&m, &state, &format!("{keys}#"));
        assert_eq!((node_name(&m, &s).as_str(), &edges), ("menu", &vec![Edge::Next]), "{keys}");
        assert_eq!(s.vars["account"], keys);
    }
    // At the menu every machine key still works: `0` reaches the agent.
    let at_menu = press(&m, &state, "12#").0;
    let (s, _, edges) = press(&m, &at_menu, "0");
    assert_eq!((node_name(&m, &s).as_str(), edges), ("agent", vec![Edge::Key("0".into())]));
    let r = explore::explore(&m);
    assert!(r.proven(), "{:?}", r.violations);
    assert_eq!(r.edges_covered, r.edges);
}
