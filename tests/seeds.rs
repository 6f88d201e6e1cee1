//! The seeds' tutorials as acceptance tests: every table row of 8x8's Advanced IVR (abc_restaurant)
//! and Simple IVR (tech_support) answers with the tutorial's JSON, field by field.

use crate::common;

use common::*;
use phonetree::callflow::Callflow;
use phonetree::callflow::ClientActionId;
use phonetree::machine::{Machine, NodeKind};

/// Plays `inputs` on an outbound call and compares the last callflow with the golden file.
fn check(m: &Machine, call: (&str, &str), inputs: &[&str], golden_file: &str) {
    let (flows, state) = play_outbound(m, outbound(call.0, call.1), inputs);
    let last = flows.last().unwrap();
    assert_eq!(
        comparable(json(last)),
        comparable(golden(golden_file)),
        "inputs {inputs:?} should answer with {golden_file}"
    );
    check_client_action_id(m, last, inputs.is_empty(), &state.node);
}

/// Replies that wait carry `pt.MACHINE.NODE.SEQ.VERSION` naming the node; others (and the opening
/// Send Callflow request, where 8x8 does not take one) carry none.
fn check_client_action_id(m: &Machine, flow: &Callflow, opening: bool, node: &phonetree::machine::NodeId) {
    let node = m.node(*node).unwrap();
    let waits = matches!(node.kind, NodeKind::Menu(_) | NodeKind::Transfer(_));
    match (&flow.client_action_id, waits && !opening) {
        (Some(id), true) => {
            let id = ClientActionId::parse(id).expect("a phonetree id");
            assert_eq!((id.machine.as_str(), id.node.as_str()), (m.name(), node.name.as_str()));
            assert_eq!(id.version, m.version().short());
        }
        (None, false) => {}
        (id, _) => panic!("node {}: unexpected clientActionId {id:?}", node.name),
    }
}

const ABC: (&str, &str) = ("+6568888888", "+6598888888");

#[test]
fn advanced_initial_api_call() {
    check(&bundled("abc_restaurant"), ABC, &[], "seeds/advanced/initial.json");
}

#[test]
fn advanced_level_1_main_menu() {
    let m = bundled("abc_restaurant");
    check(&m, ABC, &["1"], "seeds/advanced/reservations.json");
    check(&m, ABC, &["2"], "seeds/advanced/connect_call_menu.json");
    check(&m, ABC, &["3"], "seeds/advanced/hours.json");
    for other in ["0", "4", "9", "*", "12", "-"] {
        check(&m, ABC, &[other], "seeds/advanced/invalid.json");
    }
}

#[test]
fn advanced_level_2_reservations() {
    let m = bundled("abc_restaurant");
    check(&m, ABC, &["1", "1"], "seeds/advanced/book_table.json");
    check(&m, ABC, &["1", "2"], "seeds/advanced/reschedule_table.json");
    check(&m, ABC, &["1", "3"], "seeds/advanced/main_menu_again.json");
    for other in ["0", "4", "#", "-"] {
        check(&m, ABC, &["1", other], "seeds/advanced/invalid.json");
    }
}

#[test]
fn advanced_level_2_connect_call() {
    let m = bundled("abc_restaurant");
    check(&m, ABC, &["2", "1"], "seeds/advanced/post_call.json");
    check(&m, ABC, &["2", "2"], "seeds/advanced/main_menu_again.json");
    for other in ["3", "9", "-"] {
        check(&m, ABC, &["2", other], "seeds/advanced/invalid.json");
    }
}

#[test]
fn advanced_level_3_book_table() {
    let m = bundled("abc_restaurant");
    check(&m, ABC, &["1", "1", "1"], "seeds/advanced/booked_today.json");
    check(&m, ABC, &["1", "1", "2"], "seeds/advanced/booked_tomorrow.json");
    for other in ["3", "0", "-"] {
        check(&m, ABC, &["1", "1", other], "seeds/advanced/invalid.json");
    }
}

#[test]
fn advanced_level_3_reschedule() {
    let m = bundled("abc_restaurant");
    check(&m, ABC, &["1", "2", "1"], "seeds/advanced/kept.json");
    check(&m, ABC, &["1", "2", "2"], "seeds/advanced/changed.json");
    for other in ["3", "5", "-"] {
        check(&m, ABC, &["1", "2", other], "seeds/advanced/invalid.json");
    }
}

#[test]
fn advanced_returning_to_the_main_menu_keeps_every_option() {
    let m = bundled("abc_restaurant");
    check(&m, ABC, &["1", "3", "1"], "seeds/advanced/reservations.json");
    check(&m, ABC, &["2", "2", "2", "1"], "seeds/advanced/post_call.json");
    check(&m, ABC, &["1", "3", "3"], "seeds/advanced/hours.json");
    check(&m, ABC, &["2", "2", "8"], "seeds/advanced/invalid.json");
}

const SIMPLE: (&str, &str) = ("6561115777", "6512345678");

#[test]
fn simple_initial_api_call() {
    check(&bundled("tech_support"), SIMPLE, &[], "seeds/simple/initial.json");
}

#[test]
fn simple_menu_rows() {
    let m = bundled("tech_support");
    check(&m, SIMPLE, &["1"], "seeds/simple/hangup.json");
    check(&m, SIMPLE, &["2"], "seeds/simple/connect.json");
    for other in ["3", "0", "-", "22"] {
        check(&m, SIMPLE, &[other], "seeds/simple/repeat.json");
    }
    check(&m, SIMPLE, &["3", "-"], "seeds/simple/repeat.json");
    check(&m, SIMPLE, &["3", "1"], "seeds/simple/hangup.json");
    check(&m, SIMPLE, &["9", "2"], "seeds/simple/connect.json");
}

#[test]
fn simple_menu_gives_up_after_three_tries() {
    let m = bundled("tech_support");
    let (flows, state) = play_outbound(&m, outbound(SIMPLE.0, SIMPLE.1), &["3", "4", "5"]);
    let last = json(flows.last().unwrap());
    assert_eq!(
        last["callflow"][0]["params"]["text"],
        "Sorry, we still could not understand your response. Goodbye."
    );
    assert_eq!(last["callflow"][1]["action"], "hangup");
    assert!(state.ended());
}

#[test]
fn each_try_of_a_menu_has_its_own_client_action_id() {
    let m = bundled("tech_support");
    let (flows, _) = play_outbound(&m, outbound(SIMPLE.0, SIMPLE.1), &["3", "4"]);
    let ids: Vec<ClientActionId> = flows[1..]
        .iter()
        .map(|f| ClientActionId::parse(f.client_action_id.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(ids[0].node, "menu");
    assert_eq!(ids[1].node, "menu");
    assert_eq!(ids[1].seq, ids[0].seq + 1);
}
