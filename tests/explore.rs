//! `explore`, the offline proof behind `phonetree check`: every bundled machine is proven with full
//! edge coverage, and machines with a trap or a path too long are rejected with inputs that replay.

use crate::common;

use phonetree::proof::explore::{self, DEPTH_MAX};
use phonetree::proof::simulate;

/// Plays `inputs` (keys, `-`, and `@` answers for the scripts a step reaches) through the
/// simulator; the final call state.
fn replay(m: &phonetree::machine::Machine, inputs: &[String]) -> phonetree::engine::CallState {
    // A machine with route rules replays at a clock (`--at=TIME`) and from a caller (`--from=N`).
    let option = |name: &str| inputs.iter().find_map(|i| i.strip_prefix(name));
    let caller = option("--from=").unwrap_or("+15550000001");
    let mut sim = simulate::Simulation::new(m, caller, "+15550000000");
    if let Some(at) = option("--at=") {
        sim = sim.at(simulate::parse_at(at).unwrap());
    }
    let mut inputs = inputs.iter().filter(|i| !i.starts_with("--")).peekable();
    let mut event = Some(phonetree::engine::Event::CallStarted);
    while let Some(e) = event.take() {
        let mut tokens = Vec::new();
        while let Some(t) = inputs.next_if(|t| t.starts_with('@')) {
            tokens.push(t.clone());
        }
        let mut tokens = tokens.into_iter();
        sim.apply_with(&e, &mut |r| {
            let script = match &m.node(m.node_id(&r.node).unwrap()).unwrap().kind {
                phonetree::machine::NodeKind::Script(s) => s,
                _ => unreachable!("only scripts ask"),
            };
            Ok(explore::answer_for_token(script, &tokens.next().expect("an answer token")).unwrap())
        })
        .unwrap();
        event = inputs.next().map(|i| simulate::parse_input(i).unwrap());
    }
    sim.state().clone()
}

#[test]
fn every_bundled_machine_is_proven_with_every_edge_covered() {
    for file in common::machine_files("machines") {
        let text = std::fs::read_to_string(&file).unwrap();
        let m = common::compile_text(&file.display().to_string(), &text);
        let r = explore::explore(&m);
        assert!(r.proven(), "{}: {:#?}", file.display(), r.violations);
        assert_eq!(r.edges_covered, r.edges, "{}", file.display());
        assert!(r.paths_complete && r.paths > 0);
        // The longest path is a real call: replayed, it ends.
        assert!(replay(&m, &r.longest).ended(), "{}: {:?}", file.display(), r.longest);
    }
}

#[test]
fn a_trap_is_found_with_the_inputs_that_reach_it() {
    let path = common::repo().join("tests/data/diagnostics/trap.toml");
    let m = common::compile_text("trap.toml", &std::fs::read_to_string(path).unwrap());
    let r = explore::explore(&m);
    let traps: Vec<_> =
        r.violations.iter().filter(|v| v.kind == phonetree::proof::explore::Kind::Trap).collect();
    assert_eq!(traps.len(), 1, "{:#?}", r.violations);
    assert_eq!((traps[0].node.as_str(), traps[0].inputs.clone()), ("loop", vec!["2".to_string()]));
    let at = replay(&m, &traps[0].inputs);
    assert_eq!(m.node(at.node).unwrap().name, "loop");
}

/// A chain of `depth` menus: 1 goes deeper, anything else hangs up; the last one hangs up on 1.
fn deep_machine(depth: usize) -> String {
    let mut text = String::from(
        "name = \"deep\"\nstart = \"m0\"\n[defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\nmin_digits = 1\nmax_digits = 1\ndigit_timeout_ms = 5000\noverall_timeout_ms = 10000\n[nodes.bye]\nkind = \"hangup\"\n",
    );
    for i in 0..depth {
        let next = if i + 1 == depth { "bye".to_string() } else { format!("m{}", i + 1) };
        text.push_str(&format!(
            "[nodes.m{i}]\nkind = \"menu\"\nprompt = \"Level {i}: press 1 to go on.\"\nbranches = {{ 1 = \"{next}\" }}\ninvalid = \"bye\"\n"
        ));
    }
    text
}

#[test]
fn a_path_longer_than_depth_max_is_rejected_with_a_replayable_counterexample() {
    let ok = common::compile_text("deep.toml", &deep_machine(DEPTH_MAX - 1));
    let r = explore::explore(&ok);
    assert!(r.proven(), "{:#?}", r.violations);

    let m = common::compile_text("deep.toml", &deep_machine(DEPTH_MAX + 6));
    let r = explore::explore(&m);
    let v = r
        .violations
        .iter()
        .find(|v| v.kind == phonetree::proof::explore::Kind::TooLong)
        .expect("a too_long violation");
    assert_eq!(v.inputs.len(), DEPTH_MAX);
    // After DEPTH_MAX answers the caller is still in the menus.
    let at = replay(&m, &v.inputs);
    assert!(!at.ended());
    assert_eq!(explore::replay("deep.toml", &v.inputs[..2]), "phonetree simulate deep.toml 1 1");
}

#[test]
fn exploration_is_deterministic() {
    let m = common::bundled("abc_restaurant");
    let (a, b) = (explore::explore(&m), explore::explore(&m));
    assert_eq!(
        (a.states, a.transitions, a.paths, a.longest.clone()),
        (b.states, b.transitions, b.paths, b.longest.clone())
    );
}

/// A route on the caller (two starts: two callers) before `levels` levels of menus, each of
/// whose two keys leads to its own menu of the next level: the simple paths double per level.
fn wide_machine(levels: usize) -> String {
    let mut text = String::from(
        "name = \"wide\"\nstart = \"who\"\n[defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\nmin_digits = 1\nmax_digits = 1\ndigit_timeout_ms = 5000\noverall_timeout_ms = 10000\n[nodes.bye]\nkind = \"hangup\"\n[nodes.who]\nkind = \"route\"\nrules = [{ var = \"caller\", prefix = \"+65\", next = \"a0\" }]\nelse = \"b0\"\n",
    );
    for i in 0..levels {
        let next = |side: &str| if i + 1 == levels { "bye".to_string() } else { format!("{side}{}", i + 1) };
        for side in ["a", "b"] {
            text.push_str(&format!(
                "[nodes.{side}{i}]\nkind = \"menu\"\nprompt = \"Level {i}.\"\nbranches = {{ 1 = \"{}\", 2 = \"{}\" }}\ninvalid = \"bye\"\n",
                next("a"),
                next("b")
            ));
        }
    }
    text
}

#[test]
fn the_path_count_keeps_its_bound_over_every_start() {
    let m = common::compile_text("wide.toml", &wide_machine(20));
    let r = explore::explore(&m);
    assert!(r.proven(), "{:#?}", r.violations);
    assert!(!r.paths_complete);
    // "at least N paths" says no more than the bound: a second start counts nothing past it.
    assert_eq!(r.paths, explore::PATHS_MAX);
}

/// Routes on stored values, defensive ones included (an `else` an answer without the key or with
/// a bad value takes): each rule and `else` is taken by an answer `explore` samples from the rules,
/// and each path, `@VALUE&NAME=TEXT` tokens and all, replays through the simulator to its end.
#[test]
fn defensive_routes_on_stored_values_are_covered_and_their_paths_replay() {
    let path = common::repo().join("tests/data/diagnostics/defensive_routes.toml");
    let m = common::compile_text("defensive_routes.toml", &std::fs::read_to_string(path).unwrap());
    let mut paths = Vec::new();
    let r = explore::explore_paths(&m, &mut |p| paths.push(p.to_vec()));
    assert!(r.proven(), "{:#?}", r.violations);
    assert_eq!((r.edges_covered, r.edges), (15, 15));
    for p in &paths {
        assert!(replay(&m, p).ended(), "{p:?}");
    }
    // The answers that reach `big` and `none` give the values the rules test.
    let tokens: Vec<&str> = paths.iter().flatten().map(String::as_str).collect();
    assert!(tokens.contains(&"@ok&amount=100&code=A"), "{tokens:?}");
    assert!(tokens.contains(&"@ok&amount=0&code=111"), "{tokens:?}");
}

#[test]
fn the_bank_balance_figures_with_sampled_stored_values() {
    let r = explore::explore(&common::bundled("bank_balance"));
    assert_eq!((r.states, r.transitions, r.paths), (239, 1157, 1863));
}
