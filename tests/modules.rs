//! Modules (`kind = "module"`): the bundled `verify_pin` proven through the two machines that use
//! it, with its coverage; a module cycle as a pinned diagnostic in the module's own file; an
//! output left unset on the way to an exit as a pinned error of the proof whose command, run,
//! leaves the module with the output unset, refused by `serve` and a reload; a machine's version
//! covering its modules; and a live node on sled and PostgreSQL finishing a call started before a
//! module edit and a SIGHUP on the old version.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use phonetree::machine::{self, Modules, Source};
use phonetree::node::catalog::Catalog;
use serde_json::Value;

fn phonetree(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn said(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

fn check(paths: &[&str]) -> Catalog {
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    Catalog::load_with(&paths, None, &[], None)
}

fn shown(catalog: &Catalog) -> Vec<String> {
    catalog.diagnostics.iter().map(|d| d.to_string()).collect()
}

#[test]
fn check_proves_both_machines_through_verify_pin_and_prints_its_coverage() {
    let out = phonetree(&["check", "machines/"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("machines/bank_balance.toml: proven `bank_balance`"), "{text}");
    assert!(text.contains("machines/card_services.toml: proven `card_services`"), "{text}");
    // `machines/modules/` holds modules, not machines: nine machine files, no more.
    assert!(text.contains("checked 9 file(s): 9 machine(s) valid and proven"), "{text}");
    assert!(text.contains("module verify_pin: 11/11 edges covered (via 2 machines)\n"), "{text}");

    let out = phonetree(&["check", "machines/", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v["modules"],
        serde_json::json!([{"module": "verify_pin", "edges": 11, "edges_covered": 11, "machines": 2}])
    );
}

#[test]
fn bank_balance_keeps_its_proof_figures_with_its_pin_loop_in_the_module() {
    let m = bundled("bank_balance");
    let r = phonetree::proof::explore::explore(&m);
    assert_eq!((r.states, r.transitions, r.paths), (239, 1157, 1863));
    // Inlined under the using node's name; its exits are gone, mapped to bank_balance's nodes.
    for node in ["verify_pin/ask", "verify_pin/check", "verify_pin/count", "verify_pin/attempts"] {
        assert!(m.node_id(node).is_some(), "{node}");
    }
    assert!(m.node_id("verify_pin/passed").is_none() && m.node_id("verify_pin").is_none());
    let ask = m.node_id("verify_pin/ask").unwrap();
    assert_eq!(m.target(ask, &machine::Edge::Invalid), m.node_id("agent_intro"));
}

#[test]
fn a_module_cycle_is_an_error_in_the_module_that_closes_it() {
    let c = check(&["tests/data/modules/cycle/cyclic.toml"]);
    assert_eq!(
        shown(&c),
        [
            "tests/data/modules/cycle/modules/b.toml:7:10: error: node `inner`, field `module`: module cycle a -> b -> a\n  \
             = hint: a module cannot use itself, directly or through another: break the cycle"
        ]
    );
    assert!(c.is_empty());
}

/// The `phonetree simulate ...` command of a diagnostic's hint.
fn replay_in(text: &str) -> String {
    text.split('`').find(|s| s.starts_with("phonetree simulate ")).expect("a replay command").to_string()
}

/// Runs a replay command as printed (quoted for a POSIX shell) in `dir`, with this build's binary.
fn run_replay(command: &str, dir: &Path) -> std::process::Output {
    let bin = format!("'{}'", env!("CARGO_BIN_EXE_phonetree"));
    let command = command.replacen("phonetree", &bin, 1);
    std::process::Command::new("sh").arg("-c").arg(command).current_dir(dir).output().unwrap()
}

/// The first line of a node after the last one of module use `namespace` in a transcript: where
/// the call went once it left the module.
fn after_module<'t>(transcript: &'t str, namespace: &str) -> Option<&'t str> {
    let lines: Vec<&str> = transcript.lines().collect();
    let last = lines.iter().rposition(|l| l.starts_with(&format!("[{namespace}/")))?;
    lines[last + 1..].iter().find(|l| l.starts_with('[')).copied()
}

/// `collect` promises `order` on every exit, but its input's `invalid` leaves by `gave_up` without
/// it: an error of the proof at the module's `outputs` entry, naming the machine, the module node,
/// the exit and the output, with the command that replays the call; run, that call leaves the
/// module by `gave_up` into `confirm`, whose route finds `order` unset. Both exits lead to the
/// same node: the exit is told by the edge, not by where it leads.
#[test]
fn an_output_left_unset_on_the_way_to_an_exit_is_a_proof_error_whose_command_replays_it() {
    let out = phonetree(&["check", "tests/data/modules/unset/orders.toml"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let pinned = std::fs::read_to_string(repo().join("tests/data/modules/unset/check.txt")).unwrap();
    assert_eq!(text, pinned);
    // machines/README.md shows this diagnostic as it is.
    let readme = std::fs::read_to_string(repo().join("machines/README.md")).unwrap();
    for line in pinned.lines().take(2) {
        assert!(readme.contains(line.trim_start()), "machines/README.md lacks {line}");
    }
    let replay = replay_in(&text);
    assert_eq!(replay, "phonetree simulate tests/data/modules/unset/orders.toml '*'");
    let played = run_replay(&replay, &repo());
    let transcript = stdout(&played);
    assert_eq!(played.status.code(), Some(0), "{}", String::from_utf8_lossy(&played.stderr));
    assert_eq!(after_module(&transcript, "collect"), Some("[confirm] else -> no_order"), "{transcript}");
    // `simulate` plays it with the proof's error and a note, as for any machine failing its proof.
    let err = String::from_utf8_lossy(&played.stderr);
    assert!(err.contains("collect.toml:3:12: error: node `give_up`: output `order`"), "{err}");
    assert!(err.contains("fails its proof"), "{err}");

    // `--json`: its kind, the inputs, and where it points.
    let out = phonetree(&["check", "tests/data/modules/unset/orders.toml", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let violation = &v["machines"][0]["violations"][0];
    assert_eq!(violation["kind"], "unset_output", "{v}");
    assert_eq!(violation["inputs"], serde_json::json!(["*"]), "{v}");
    assert_eq!(
        violation["origin"],
        serde_json::json!({"file": "tests/data/modules/unset/modules/collect.toml", "position": {"line": 3, "col": 12}})
    );

    // Promised on `got` alone, it is proven: an accepted order leaves by `got` with it.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("modules")).unwrap();
    std::fs::copy(repo().join("tests/data/modules/unset/orders.toml"), t.path().join("orders.toml")).unwrap();
    let module =
        std::fs::read_to_string(repo().join("tests/data/modules/unset/modules/collect.toml")).unwrap();
    let kept = module.replace("outputs = [\"order\"]", "outputs = { got = [\"order\"] }");
    assert_ne!(kept, module);
    std::fs::write(t.path().join("modules/collect.toml"), kept).unwrap();
    let out = phonetree(&["check", t.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("proven `orders`"), "{text}");
}

const INNER: &str = "name = \"inner\"\nstart = \"fill\"\nexits = [\"done\"]\noutputs = [\"x\"]\n\
    [nodes.fill]\nkind = \"set\"\nvalues = { x = \"1\" }\nnext = \"out\"\n[nodes.out]\nkind = \"exit\"\nexit = \"done\"\n";

/// `outer` promises `x`, which only the module it uses, `inner`, sets (with a set node).
fn outer(branches: &str) -> String {
    format!(
        "name = \"outer\"\nstart = \"ask\"\nexits = [\"done\"]\noutputs = [\"x\"]\n[nodes.ask]\nkind = \"menu\"\n\
         prompt = \"Press 1.\"\nbranches = {branches}\ninvalid = \"use\"\n[nodes.use]\nkind = \"module\"\n\
         module = \"inner\"\nexits = {{ done = \"out\" }}\n[nodes.out]\nkind = \"exit\"\nexit = \"done\"\n"
    )
}

const NESTING: &str = "name = \"nesting\"\nstart = \"m\"\n[defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\n\
    min_digits = 1\nmax_digits = 1\n[nodes.m]\nkind = \"module\"\nmodule = \"outer\"\nexits = { done = \"bye\" }\n\
    [nodes.bye]\nkind = \"hangup\"\n";

/// A set node and a module nested in the module set an output as the engine does; a branch that
/// bypasses them leaves by the exit without it, and that call (`2`) is the counterexample, at the
/// outer module's `outputs`, while the inner module's promise still holds.
#[test]
fn an_output_set_by_a_set_node_in_a_nested_module_is_proven_and_a_way_around_it_is_not() {
    let prove = |branches: &str| {
        let modules = modules_of(&[("inner.toml", INNER), ("outer.toml", &outer(branches))]);
        let options = machine::Options { modules: &modules, ..Default::default() };
        let c = machine::compile_with(&Source::new("nesting.toml", NESTING), options);
        let m = c.machine.unwrap_or_else(|| panic!("{:?}", c.diagnostics));
        assert_eq!(m.outputs().len(), 2, "one duty per use: m (outer) and m/use (inner)");
        // The inner module's way out is the outer's too: both uses leave by it.
        for duty in m.outputs() {
            let from: Vec<&str> = duty.exits.iter().map(|e| m.node(e.from).unwrap().name.as_str()).collect();
            assert!(from.contains(&"m/use/fill"), "{}: {from:?}", duty.namespace);
        }
        let r = phonetree::proof::explore::explore(&m);
        let source = Source::new("nesting.toml", NESTING);
        let shown: Vec<String> =
            r.violations.iter().map(|v| v.diagnostic(&source, &m, &modules).to_string()).collect();
        (r, shown)
    };
    let (r, _) = prove("{ 1 = \"use\" }");
    assert!(r.proven(), "{:?}", r.violations);
    let (_, shown) = prove("{ 1 = \"use\", 2 = \"out\" }");
    assert_eq!(
        shown,
        [
            "outer.toml:4:12: error: node `out`: output `x` of module `outer` is not set on every path to exit `done`: \
          in machine `nesting`, a call leaves module node `m` by `done` (the `key 2` edge of `m/ask`) without it\n  \
          = hint: set it on every path to that exit (a `set` node) or drop it from the module's `outputs`; \
          a caller gets there with `phonetree simulate nesting.toml 2`"
        ]
    );
}

/// What the proof finds at a node inlined from a module (here a trap) is told at that node's
/// line and column in the module's file, naming the machine and the module node; the command
/// replays the machine.
#[test]
fn a_proof_error_at_a_module_s_node_is_at_its_line_in_the_module_s_file() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("modules")).unwrap();
    let stuck = "name = \"stuck\"\nstart = \"ask\"\nexits = [\"done\"]\n\n[nodes.ask]\nkind = \"menu\"\n\
        prompt = \"Press 1 to leave, 2 to stay.\"\nbranches = { 1 = \"out\", 2 = \"again\" }\ninvalid = \"out\"\n\n\
        [nodes.again]\nkind = \"menu\"\nprompt = \"Press 1.\"\nbranches = { 1 = \"again\" }\ninvalid = \"again\"\n\n\
        [nodes.out]\nkind = \"exit\"\nexit = \"done\"\n";
    std::fs::write(t.path().join("modules/stuck.toml"), stuck).unwrap();
    let user = NESTING
        .replace("name = \"nesting\"", "name = \"user\"")
        .replace("module = \"outer\"", "module = \"stuck\"");
    std::fs::write(t.path().join("user.toml"), user).unwrap();
    let dir = t.path().display().to_string();
    let shown = shown_of(&[&dir]);
    assert_eq!(
        shown,
        [format!(
            "{dir}/modules/stuck.toml:11:8: error: node `again`: trap: from here no input leads to a hangup or \
             transfer; the call can never end (in machine `user`, module node `m`)\n  = hint: give one of its \
             branches (or `invalid`) a way to a `hangup` or `transfer` node; a caller gets there with \
             `phonetree simulate {dir}/user.toml 2`"
        )]
    );
}

#[test]
fn serve_refuses_a_machine_whose_module_leaves_an_output_unset() {
    let t = tempfile::tempdir().unwrap();
    let machines = machines_dir(t.path());
    std::fs::create_dir_all(machines.join("modules")).unwrap();
    let unset = repo().join("tests/data/modules/unset");
    std::fs::copy(unset.join("orders.toml"), machines.join("orders.toml")).unwrap();
    std::fs::copy(unset.join("modules/collect.toml"), machines.join("modules/collect.toml")).unwrap();
    let err = common::serve_refused(&machines, &t.path().join("data"));
    assert!(
        err.contains("collect.toml:3:12: error: node `give_up`: output `order` of module `collect`"),
        "{err}"
    );
}

/// A reload that would bring in a module whose output is left unset is refused like any machine
/// failing its proof, and the running version stays.
#[tokio::test]
async fn a_reload_bringing_in_an_unset_output_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let machines = greeter_dir(t.path());
    let mut n = Node::start(&t.path().join("data"), &machines);
    let before = greeter_version(&n).await;
    // `choice` is set by nothing in `menu`.
    let promise =
        menu_module("one").replace("exits = [\"done\"]", "exits = [\"done\"]\noutputs = [\"choice\"]");
    std::fs::write(machines.join("modules/menu.toml"), promise).unwrap();
    let r = reqwest::Client::new().post(n.admin_url("/admin/reload")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let answer: Value = r.json().await.unwrap();
    let diagnostics = answer["diagnostics"].as_array().unwrap();
    assert!(
        diagnostics.iter().any(|d| d.as_str().unwrap().contains(
            "menu.toml:4:12: error: node `out`: output `choice` of module `menu` is not set on every path to exit `done`"
        )),
        "{answer}"
    );
    assert_eq!(greeter_version(&n).await, before);
    assert!(n.terminate().success());
}

#[test]
fn a_shared_module_s_error_is_told_once_and_an_unused_module_is_still_checked() {
    let c = check(&["tests/data/modules/shared"]);
    let shown = shown(&c);
    let typo: Vec<&String> = shown.iter().filter(|d| d.contains("unknown field `promt`")).collect();
    assert_eq!(typo.len(), 1, "{shown:?}");
    assert!(typo[0].starts_with("tests/data/modules/shared/modules/shared.toml:9:1: error:"), "{shown:?}");
    // `lonely` is used by nothing: a warning saying so, and its own problem as a warning.
    assert!(
        shown.iter().any(|d| d.starts_with(
            "tests/data/modules/shared/modules/lonely.toml: warning: module `lonely` is used by no machine"
        )),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|d| d.starts_with("tests/data/modules/shared/modules/lonely.toml:4:12: warning: node `out`: output `x` is not set on every path to exit `done`\n  = hint: on the path hi -> out it is never set")),
        "{shown:?}"
    );
    assert_eq!(c.diagnostics.iter().filter(|d| d.is_error()).count(), 1, "{shown:?}");
    // The bundled module is used: no such warning for the bundled machines.
    assert!(!shown_of(&["machines/"]).iter().any(|d| d.contains("used by no machine")));
}

/// `verify_pin` promises no `balance` on `ok`: its API may answer `ok` without one. Promised, it
/// is refused for both machines with a call that shows it (an answer without the key), which
/// `bank_balance` then tells apart (`say_balance`'s `else`); an `outputs` exit that is no exit is
/// an error of the module's file.
#[test]
fn verify_pin_cannot_promise_balance_and_a_wrong_outputs_exit_is_an_error() {
    let text = std::fs::read_to_string(repo().join("machines/modules/verify_pin.toml")).unwrap();
    assert!(!text.contains("\noutputs"), "{text}");
    let languages = "languages = [\"en\", \"es\"]\n";
    assert!(text.contains(languages));
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("modules")).unwrap();
    for m in ["bank_balance.toml", "card_services.toml"] {
        std::fs::copy(repo().join("machines").join(m), t.path().join(m)).unwrap();
    }
    let promise = |outputs: &str| {
        let module = text.replacen(languages, &format!("{languages}outputs = {outputs}\n"), 1);
        std::fs::write(t.path().join("modules/verify_pin.toml"), module).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["check", "."])
            .current_dir(t.path())
            .output()
            .unwrap();
        stdout(&out)
    };
    let shown = promise("{ ok = [\"balance\"] }");
    let at = "./modules/verify_pin.toml:25:19: error: node `passed`: output `balance` of module `verify_pin` is not set on every path to exit `ok`";
    assert_eq!(shown.matches(at).count(), 2, "{shown}");
    assert!(
        shown.contains("in machine `bank_balance`, a call leaves module node `verify_pin` by `ok`"),
        "{shown}"
    );
    let replay = replay_in(shown.split("in machine `bank_balance`").nth(1).unwrap());
    assert_eq!(
        replay,
        "phonetree simulate ./bank_balance.toml '--at=2026-01-05T09:00:00+08:00' 1 1234 '@?ok'"
    );
    let transcript = stdout(&run_replay(&replay, t.path()));
    assert_eq!(
        after_module(&transcript, "verify_pin"),
        Some("[say_balance] else -> no_balance"),
        "{transcript}"
    );

    let shown = promise("{ nope = [\"x\"] }");
    assert!(shown.contains("`outputs` names `nope`, not one of the module's `exits`"), "{shown}");
}

fn shown_of(paths: &[&str]) -> Vec<String> {
    shown(&check(paths))
}

fn modules_of(files: &[(&str, &str)]) -> Modules {
    let (m, problems) = Modules::of(files.iter().map(|(f, t)| Source::new(*f, *t)).collect());
    assert!(problems.is_empty(), "{problems:?}");
    m
}

const USER: &str = "name = \"user\"\nstart = \"m\"\n[defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\n\
    [nodes.m]\nkind = \"module\"\nmodule = \"hello\"\nexits = { done = \"bye\" }\n[nodes.bye]\nkind = \"hangup\"\n";

fn hello(text: &str) -> String {
    format!(
        "name = \"hello\"\nstart = \"hi\"\nexits = [\"done\"]\n[nodes.hi]\nkind = \"say\"\ntext = \"{text}\"\n\
         next = \"out\"\n[nodes.out]\nkind = \"exit\"\nexit = \"done\"\n"
    )
}

#[test]
fn a_machine_s_version_covers_its_modules() {
    let compile = |modules: &Modules| {
        let options = machine::Options { modules, ..Default::default() };
        let c = machine::compile_with(&Source::new("user.toml", USER), options);
        c.machine.unwrap_or_else(|| panic!("{:?}", c.diagnostics))
    };
    let (one, two) = (hello("Hello."), hello("Hello again."));
    let a = compile(&modules_of(&[("hello.toml", &one)]));
    let b = compile(&modules_of(&[("hello.toml", &two)]));
    assert_ne!(a.version(), b.version());
    assert_eq!(a.version(), compile(&modules_of(&[("hello.toml", &one)])).version());
    // A module no node uses is no part of a machine: its version is its text's, as before.
    let plain = "name = \"p\"\nstart = \"bye\"\n[nodes.bye]\nkind = \"hangup\"\n";
    let options = machine::Options { modules: &modules_of(&[("hello.toml", &one)]), ..Default::default() };
    let p = machine::compile_with(&Source::new("p.toml", plain), options).machine.unwrap();
    assert_eq!(p.version(), machine::Version::of_text(plain));
}

#[test]
fn an_unknown_module_and_an_unmapped_exit_are_errors_at_the_using_node() {
    let modules = modules_of(&[("hello.toml", &hello("Hi."))]);
    let options = machine::Options { modules: &modules, ..Default::default() };
    let unknown = USER.replace("module = \"hello\"", "module = \"helo\"");
    let c = machine::compile_with(&Source::new("user.toml", unknown), options);
    let shown: Vec<String> = c.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(shown.iter().any(|d| d.starts_with("user.toml:7:10: error: node `m`, field `module`: unknown module `helo`\n  = hint: did you mean `hello`?")), "{shown:?}");
    let unmapped = USER.replace("exits = { done = \"bye\" }", "exits = { finished = \"bye\" }");
    let c = machine::compile_with(&Source::new("user.toml", unmapped), options);
    let shown: Vec<String> = c.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        shown.iter().any(|d| d.contains(
            "user.toml:8:1: error: node `m`, field `exits`: exit `done` of module `hello` is not mapped"
        )),
        "{shown:?}"
    );
    assert!(shown.iter().any(|d| d.contains("`finished` is not an exit of module `hello`")), "{shown:?}");
    assert!(c.machine.is_none());
}

// --- A live node: a module edited under a running call ---

const GREETER: &str = "# A machine whose menu is the module `menu`.\nname = \"greeter\"\nstart = \"m\"\n\
    numbers = [\"+6568889991\"]\n[defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\nmin_digits = 1\n\
    max_digits = 1\n[nodes.m]\nkind = \"module\"\nmodule = \"menu\"\nexits = { done = \"bye\" }\n\
    [nodes.bye]\nkind = \"hangup\"\n";

fn menu_module(version: &str) -> String {
    format!(
        "name = \"menu\"\nstart = \"ask\"\nexits = [\"done\"]\n[nodes.ask]\nkind = \"menu\"\n\
         prompt = \"Menu {version}: press 1.\"\nbranches = {{ 1 = \"thanks\" }}\ninvalid = \"thanks\"\n\
         [nodes.thanks]\nkind = \"say\"\ntext = \"Thanks {version}.\"\nnext = \"out\"\n\
         [nodes.out]\nkind = \"exit\"\nexit = \"done\"\n"
    )
}

fn greeter_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("machines");
    std::fs::create_dir_all(dir.join("modules")).unwrap();
    std::fs::write(dir.join("greeter.toml"), GREETER).unwrap();
    std::fs::write(dir.join("modules/menu.toml"), menu_module("one")).unwrap();
    dir
}

fn inbound_call<'a>(session: &'a str, event: &'a str, dtmf: Option<&'a str>, id: Option<&'a str>) -> Vca<'a> {
    Vca {
        direction: "INBOUND",
        source: "+6591234567",
        destination: "+6568889991",
        ..Vca::abc(session, event, dtmf, id)
    }
}

async fn greeter_version(n: &Node) -> String {
    let m: Value = reqwest::get(n.admin_url("/admin/machines")).await.unwrap().json().await.unwrap();
    let g = m["machines"].as_array().unwrap().iter().find(|m| m["name"] == "greeter").cloned();
    g.unwrap_or_else(|| panic!("{m}"))["version"].as_str().unwrap().to_string()
}

/// The call's second answer comes from the version it started on, a new call gets the new one.
async fn a_call_finishes_on_its_version_across_a_module_edit(n: &Node, machines: &Path) {
    let a = post(&n.url("/webhooks/vca"), inbound_call("s-mod", "e1", None, None).body()).await;
    assert_eq!(a.status, 200, "{}", n.log());
    assert!(said(&a).contains("Menu one: press 1."), "{}", said(&a));
    let id = a.client_action_id().unwrap();
    let before = greeter_version(n).await;

    std::fs::write(machines.join("modules/menu.toml"), menu_module("two")).unwrap();
    let hup = std::process::Command::new("kill").args(["-HUP", &n.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let mut after = before.clone();
    for _ in 0..1500 {
        after = greeter_version(n).await;
        if after != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(after, before, "the module edit gave greeter no new version: {}", n.log());

    let b = post(&n.url("/webhooks/vca"), inbound_call("s-mod", "e2", Some("1"), Some(&id)).body()).await;
    assert_eq!((b.status, b.how.as_str()), (200, "applied"), "{}", said(&b));
    assert!(said(&b).contains("Thanks one."), "the call moved to the new module: {}", said(&b));
    let c = post(&n.url("/webhooks/vca"), inbound_call("s-new", "e1", None, None).body()).await;
    assert!(said(&c).contains("Menu two: press 1."), "{}", said(&c));
}

#[tokio::test]
async fn a_call_started_before_a_module_edit_and_a_sighup_finishes_on_the_old_version_on_sled() {
    let t = tempfile::tempdir().unwrap();
    let machines = greeter_dir(t.path());
    let n = Node::start(&t.path().join("data"), &machines);
    a_call_finishes_on_its_version_across_a_module_edit(&n, &machines).await;
}

#[tokio::test]
async fn a_call_started_before_a_module_edit_and_a_sighup_finishes_on_the_old_version_on_postgres() {
    let t = tempfile::tempdir().unwrap();
    let pg = t.path().join("pg");
    std::fs::create_dir_all(&pg).unwrap();
    let Some(url) = common::backends::postgres_url_for(&pg).await else { return };
    let machines = greeter_dir(t.path());
    let n = Node::start_on(&t.path().join("data"), &machines, &url);
    a_call_finishes_on_its_version_across_a_module_edit(&n, &machines).await;
}

/// A call started, the node stopped, the module edited, the node started again: the store kept
/// the module's text with the call's version (record format 7), so the call finishes on it; a new
/// call gets the new module.
async fn a_call_finishes_on_its_version_after_a_module_edit_and_a_restart(n: &mut Node, machines: &Path) {
    let a = post(&n.url("/webhooks/vca"), inbound_call("s-old", "e1", None, None).body()).await;
    assert!(said(&a).contains("Menu one: press 1."), "{}", said(&a));
    let id = a.client_action_id().unwrap();
    assert!(n.terminate().success());
    std::fs::write(machines.join("modules/menu.toml"), menu_module("two")).unwrap();
    n.restart();
    let b = post(&n.url("/webhooks/vca"), inbound_call("s-old", "e2", Some("1"), Some(&id)).body()).await;
    assert_eq!((b.status, b.how.as_str()), (200, "applied"), "{}\n{}", said(&b), n.log());
    assert!(said(&b).contains("Thanks one."), "the call moved to the new module: {}", said(&b));
    let c = post(&n.url("/webhooks/vca"), inbound_call("s-new", "e1", None, None).body()).await;
    assert!(said(&c).contains("Menu two: press 1."), "{}", said(&c));
}

#[tokio::test]
async fn after_a_restart_a_call_on_a_version_whose_module_changed_finishes_on_it_on_sled() {
    let t = tempfile::tempdir().unwrap();
    let machines = greeter_dir(t.path());
    let mut n = Node::start(&t.path().join("data"), &machines);
    a_call_finishes_on_its_version_after_a_module_edit_and_a_restart(&mut n, &machines).await;
}

#[tokio::test]
async fn after_a_restart_a_call_on_a_version_whose_module_changed_finishes_on_it_on_postgres() {
    let t = tempfile::tempdir().unwrap();
    let pg = t.path().join("pg");
    std::fs::create_dir_all(&pg).unwrap();
    let Some(url) = common::backends::postgres_url_for(&pg).await else { return };
    let machines = greeter_dir(t.path());
    let mut n = Node::start_on(&t.path().join("data"), &machines, &url);
    a_call_finishes_on_its_version_after_a_module_edit_and_a_restart(&mut n, &machines).await;
}

#[test]
fn watch_sees_a_module_edit() {
    use phonetree::node::reload::Fingerprint;
    let t = tempfile::tempdir().unwrap();
    let machines = greeter_dir(t.path());
    let before = Fingerprint::of(&machines);
    std::fs::write(machines.join("modules/menu.toml"), menu_module("three")).unwrap();
    assert_ne!(Fingerprint::of(&machines), before);
}
