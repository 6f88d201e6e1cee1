//! `phonetree export`, each format checked by a real consumer: DOT rendered by Graphviz's `dot`,
//! VoiceXML checked by `xmllint` and played (`common/vxml.rs`: read by `roxmltree`, its ECMAScript
//! run by Node.js, its forms by the test's own form interpretation algorithm) on every path `check`
//! explores, with the transcript `simulate` gives for the same inputs; JSON parsed back and
//! compared with the graph.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::needs::{Need, absent, needs_tool};
use common::vxml::{self, Heard};
use common::*;
use phonetree::callflow::{Action, Callflow};
use phonetree::engine::Answer;
use phonetree::export;
use phonetree::machine::{Machine, NodeKind};
use phonetree::proof::{explore, simulate};

const CALLER: &str = "+15550000001";

/// Runs `program args` with `input` on stdin: (success, stdout, stderr).
fn pipe(program: &str, args: &[&str], input: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `phonetree export FILE --format FORMAT`, the real binary: its stdout (it must succeed).
fn export_cli(file: &std::path::Path, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["export", &file.display().to_string(), "--format", format])
        .output()
        .unwrap();
    assert!(out.status.success(), "export {format} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dot_of_every_bundled_machine_renders_with_graphviz_and_shows_every_node() {
    if !needs_tool(Need::Graphviz, "dot", "-V") {
        return;
    }
    for file in machine_files("machines") {
        let m = compile_text(&file.display().to_string(), &std::fs::read_to_string(&file).unwrap());
        let (ok, svg, err) = pipe("dot", &["-Tsvg"], export_cli(&file, "dot").as_bytes());
        assert!(ok, "dot -Tsvg failed on {}: {err}", file.display());
        assert!(svg.contains("<svg"), "{svg}");
        // Graphviz titles each node's group with the node's id (`-` as `&#45;`), and each edge's
        // with `from->to`.
        for node in m.graph().node_weights() {
            assert!(
                svg.contains(&format!("<title>{}</title>", node.name.replace('-', "&#45;"))),
                "{} missing in {}",
                node.name,
                file.display()
            );
        }
        assert_eq!(svg.matches("class=\"edge\"").count(), m.edge_count(), "{}", file.display());
    }
}

#[test]
fn vxml_of_every_bundled_machine_is_well_formed() {
    if !needs_tool(Need::Xmllint, "xmllint", "--version") {
        return;
    }
    for file in machine_files("machines") {
        let (ok, _, err) = pipe("xmllint", &["--noout", "-"], export_cli(&file, "vxml").as_bytes());
        assert!(ok, "xmllint refused the VoiceXML of {}: {err}", file.display());
    }
}

#[test]
fn xmllint_refuses_a_document_that_is_not_well_formed() {
    if !needs_tool(Need::Xmllint, "xmllint", "--version") {
        return;
    }
    // The check above can fail: an unescaped `&` (what a prompt would give without escaping).
    let (ok, _, _) = pipe("xmllint", &["--noout", "-"], b"<vxml><prompt>Fish & chips</prompt></vxml>");
    assert!(!ok);
}

/// `simulate`'s callflows for a call from `CALLER` to `m` with no keys, every script answering 200
/// with `answer`.
fn simulated_answering(m: &Machine, answer: &serde_json::Value) -> Vec<Callflow> {
    let body = serde_json::to_vec(answer).unwrap();
    let parties = simulate::Parties {
        from: CALLER,
        to: "+15550000000",
        outbound: false,
        vars: &Default::default(),
        guard: None,
        session: None,
        resume_from: None,
    };
    let (_, flows) =
        simulate::run(m, parties, &[], None, &mut |_| Ok(Answer::Http { status: 200, body: body.clone() }))
            .unwrap();
    flows
}

/// What the caller hears from simulate's callflows, as the interpreter writes it.
fn heard(flows: &[Callflow]) -> Vec<Heard> {
    flows
        .iter()
        .flat_map(|f| &f.actions)
        .map(|a| match a {
            Action::Say(s) => Heard::Say(s.text.clone()),
            Action::SayAndCapture(c) => Heard::Ask(c.prompt_message.clone()),
            Action::PlayFile(p) => Heard::Play(p.file_url.clone()),
            Action::MakeCall(m) => Heard::Transfer(m.destination.clone()),
            Action::Hangup => Heard::Hangup,
        })
        .collect()
}

/// The body of the answer an `@` token stands for at the script whose form is `form` (`None`: a
/// fetch that fails: no answer, not 2xx; a body that is not JSON fails in the player).
fn fetched(m: &Machine, form: &str, token: &str) -> Option<String> {
    let script =
        m.graph().node_weights().find(|n| export::mermaid_id(&n.name) == form).and_then(|n| {
            match &n.kind {
                NodeKind::Script(s) => Some(s),
                _ => None,
            }
        })?;
    match explore::answer_for_token(script, token)? {
        Answer::Http { status: 200..=299, body } => String::from_utf8(body).ok(),
        _ => None,
    }
}

/// The platform's local time of the call at `at_ms` in the machine's timezone (none without one),
/// as `route::local_time` reads it.
fn clock(m: &Machine, at_ms: u64) -> Option<vxml::Clock> {
    let local = phonetree::machine::route::local_time(m.timezone()?, at_ms)?;
    let yesterday = local.date().yesterday().ok()?;
    let weekday = |d: jiff::civil::Date| d.weekday().to_monday_zero_offset() as u8;
    Some(vxml::Clock {
        weekday: weekday(local.date()),
        minutes: local.hour() as u16 * 60 + local.minute() as u16,
        date: local.date().to_string(),
        yesterday_weekday: weekday(yesterday),
        yesterday_date: yesterday.to_string(),
    })
}

/// Plays `tokens` on `m` through `simulate` and through the VoiceXML interpreter and asserts
/// both say the same. A path of a machine with route rules may begin with its clock
/// (`--at=TIME`) and caller (`--from=NUMBER`), as `explore` writes them.
fn play_alike(js: &mut vxml::Ecma, m: &Machine, doc: &vxml::Element, path: &[String]) {
    let option = |name: &str| path.iter().find_map(|t| t.strip_prefix(name));
    let caller = option("--from=").unwrap_or(CALLER);
    let at_ms = option("--at=").map(|at| simulate::parse_at(at).unwrap());
    let tokens: Vec<String> = path.iter().filter(|t| !t.starts_with("--")).cloned().collect();
    let number = m.numbers().first().cloned().unwrap_or_else(|| "+15550000000".into());
    let session = vxml::Session {
        caller: caller.into(),
        number: number.clone(),
        session_id: "simulated-session".into(),
        call_id: "simulated-call".into(),
        clock: at_ms.and_then(|at| clock(m, at)),
        splits: splits_of(m, caller, "simulated-session"),
    };
    let inputs: Vec<simulate::Input> =
        tokens.iter().map(|t| simulate::parse_input_or_answer(t).unwrap()).collect();
    let mut unanswered = |r: &phonetree::engine::Request| Err(simulate::needs_answer(r));
    let parties = simulate::Parties {
        from: caller,
        to: &number,
        outbound: false,
        vars: &Default::default(),
        guard: None,
        session: None,
        resume_from: None,
    };
    let (_, flows) = simulate::run(m, parties, &inputs, at_ms, &mut unanswered)
        .unwrap_or_else(|e| panic!("{}: simulate {path:?}: {e}", m.name()));
    let voice = vxml::play(js, doc, &session, &tokens, &mut |form, token, _url| fetched(m, form, token))
        .unwrap_or_else(|e| panic!("{}: vxml {path:?}: {e}", m.name()));
    assert_eq!(voice, heard(&flows), "{}: the VoiceXML differs from simulate on {path:?}", m.name());
}

/// Each split node's variant for a call from `caller` on `session`: what the platform hands the
/// document, computed by the documented hash.
fn splits_of(m: &Machine, caller: &str, session: &str) -> Vec<(String, String)> {
    m.graph()
        .node_weights()
        .filter_map(|n| match &n.kind {
            phonetree::machine::NodeKind::Split(s) => {
                Some((n.name.clone(), s.variants[s.pick(caller, session)].0.clone()))
            }
            _ => None,
        })
        .collect()
}

fn document(m: &Machine) -> vxml::Element {
    let text = export::vxml(m);
    vxml::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", m.name()))
}

/// Plays every path `explore` counts on `m` alike; returns how many there were.
fn play_every_path(js: &mut vxml::Ecma, m: &Machine) -> usize {
    let doc = document(m);
    let mut played = 0;
    let report = explore::explore_paths(m, &mut |tokens| {
        play_alike(js, m, &doc, tokens);
        played += 1;
    });
    assert!(report.proven() && report.paths_complete, "{}: {:?}", m.name(), report.violations);
    assert_eq!(played as u64, report.paths);
    played
}

#[test]
fn vxml_plays_what_simulate_says_on_every_explored_path_of_every_bundled_machine() {
    let Some(mut js) = vxml::Ecma::start() else { return };
    let machines = bundled_machines();
    assert!(machines.iter().any(|m| m.name() == "bank_balance"));
    for m in machines {
        let played = play_every_path(&mut js, &m);
        println!("{}: {played} paths played alike", m.name());
        assert!(played > 1, "{}: {played} path(s)", m.name());
    }
}

/// What the bundled machines leave out: a play node, a bridged transfer, an input
/// without a pattern, a menu of two-key branches, `{node}` and `{keypress}` in prompts,
/// machine-wide keys at an input, a re-prompt of several parts.
const FEATURES: &str = r#"
name = "features"
start = "welcome"
numbers = ["+6500000000"]

[settings]
agent = "+6511111111"

[defaults]
voice_profile = "en-GB-Emma"
max_digits = 2
tries = 2

[keys]
"*" = "repeat"
"0" = "bye"

[nodes.welcome]
kind = "say"
text = "Hello {caller}, this is {node}."
next = "jingle"

[nodes.jingle]
kind = "play"
file_url = "https://example.com/jingle.mp3"
next = "menu"

[nodes.menu]
kind = "menu"
prompt = ["Welcome to the menu.", "Press 1 for an agent, 22 for your account, or nothing to leave."]
reprompt = ["You pressed {keypress}.", "Once more: press 1 for an agent."]
branches = { 1 = "agent", 22 = "account" }
invalid = "sorry"
no_input = "bye"

[nodes.account]
kind = "input"
prompt = "Key in your account number & press hash."
variable = "account"
min_digits = 2
max_digits = 4
example = "1234"
next = "read_back"
invalid = "sorry"
no_input = "sorry"

[nodes.read_back]
kind = "say"
text = "Account {say:$account} <noted>."
next = "agent"

[nodes.agent]
kind = "transfer"
destination = "{agent}"

[nodes.sorry]
kind = "say"
text = "Sorry."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;

#[test]
fn vxml_plays_what_simulate_says_on_the_script_machines_and_the_other_node_kinds() {
    let Some(mut js) = vxml::Ecma::start() else { return };
    let mut machines: Vec<Machine> = machine_files("tests/data/scripts")
        .iter()
        .map(|f| compile_text(&f.display().to_string(), &std::fs::read_to_string(f).unwrap()))
        .collect();
    // The route machines `check` proves (unbounded_counter is there for its violation).
    for file in ["business_hours.toml", "pin_check.toml"] {
        let f = repo().join("tests/data/routes").join(file);
        machines.push(compile_text(file, &std::fs::read_to_string(f).unwrap()));
    }
    machines.push(compile_text("features.toml", FEATURES));
    // A counter that adds what the caller keys, and its `not_number`.
    let tally = repo().join("tests/data/counters/tally.toml");
    machines.push(compile_text("tally.toml", &std::fs::read_to_string(tally).unwrap()));
    for file in ["bilingual.toml", "nested.toml"] {
        let f = repo().join("tests/data/keys").join(file);
        machines.push(compile_text(file, &std::fs::read_to_string(f).unwrap()));
    }
    let names: Vec<&str> = machines.iter().map(|m| m.name()).collect();
    for name in
        ["extension", "greeting", "business_hours", "pin_check", "features", "bilingual", "nested", "tally"]
    {
        assert!(names.contains(&name), "{name} missing in {names:?}");
    }
    for m in &machines {
        let played = play_every_path(&mut js, m);
        println!("{}: {played} paths played alike", m.name());
    }
    // Paths explore merges (two answers that end the call alike are one path to it): each
    // script answer class, each try.
    let more: &[(&str, &[&[&str]])] = &[
        ("greeting", &[&["@*"], &["@!"], &["@nothing"]]),
        (
            "extension",
            &[&["204#", "@busy"], &["204#", "@*"], &["204#", "@!"], &["-", "-"], &["-", "204", "@busy"]],
        ),
        (
            "features",
            &[
                &["5", "-"],
                &["5", "1", "-"],
                &["22", "1", "1", "1"],
                &["22", "98765#", "12#"],
                &["-", "-"],
                &["5", "*", "*", "22", "*", "0"],
                &["22", "*#", "1234#"],
                &["*"],
            ],
        ),
    ];
    // `back` reads the call's path: back up the menus one by one, after a failed try, after the
    // start key, from a menu reached through a say node.
    let back: &[&[&str]] = &[
        &["1", "1", "9", "9", "9"],
        &["5", "9", "1"],
        &["1", "5", "9", "1", "9", "8", "9", "2"],
        &["2", "9", "2", "9", "1", "*", "9", "0"],
        &["1", "1", "1", "9", "1234"],
    ];
    let more = more.iter().copied().chain([("nested", back)]);
    for (name, paths) in more {
        let m = machines.iter().find(|m| m.name() == name).unwrap();
        let doc = document(m);
        for tokens in paths.iter() {
            let tokens: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
            play_alike(&mut js, m, &doc, &tokens);
        }
    }
}

#[test]
fn the_interpreter_catches_a_document_that_says_something_else() {
    let Some(mut js) = vxml::Ecma::start() else { return };
    let m = bundled("abc_restaurant");
    let doc = export::vxml(&m).replace("Our restaurant hours", "Our hours");
    let doc = vxml::parse(&doc).unwrap();
    let session = vxml::Session {
        caller: CALLER.into(),
        number: "+6568888888".into(),
        session_id: "s".into(),
        call_id: "c".into(),
        clock: None,
        splits: Vec::new(),
    };
    let inputs = ["3".to_string()];
    let voice = vxml::play(&mut js, &doc, &session, &inputs, &mut |_, _, _| None).unwrap();
    let simulated = simulate::run(
        &m,
        simulate::Parties {
            from: CALLER,
            to: "+6568888888",
            outbound: false,
            vars: &Default::default(),
            guard: None,
            session: None,
            resume_from: None,
        },
        &[simulate::parse_input_or_answer("3").unwrap()],
        None,
        &mut |r| Err(simulate::needs_answer(r)),
    )
    .unwrap();
    assert_ne!(voice, heard(&simulated.1));
    assert_eq!(voice.last(), Some(&Heard::Hangup));
}

#[test]
fn json_parses_back_with_the_graphs_nodes_and_edges() {
    for file in machine_files("machines") {
        let m = compile_text(&file.display().to_string(), &std::fs::read_to_string(&file).unwrap());
        let doc: serde_json::Value = serde_json::from_str(&export_cli(&file, "json")).unwrap();
        assert_eq!(doc["format"], 1);
        assert_eq!(doc["machine"], m.name());
        assert_eq!(doc["nodes"].as_array().unwrap().len(), m.node_count(), "{}", file.display());
        assert_eq!(doc["edges"].as_array().unwrap().len(), m.edge_count(), "{}", file.display());
        let starts = doc["nodes"].as_array().unwrap().iter().filter(|n| n["start"] == true).count();
        assert_eq!(starts, 1);
        assert!(doc["nodes"].as_array().unwrap().iter().any(|n| n["end"] == true));
    }
}

/// Names and prompts that need escaping in every format: a Mermaid keyword and arrow letters as
/// node names, `-` in a name, quotes, `#`, brackets, `<`, `&`, backticks and a backslash in text.
const AWKWARD: &str = r#"
name = "awkward"
start = "o1"

[defaults]
voice_profile = "en-US-BenjaminRUS"
max_digits = 1
tries = 1

[nodes.o1]
kind = "menu"
prompt = "Say \"hi\" #1 <b> & `x` [a]{{b}}(c)|d|; end \\n"
branches = { 1 = "end", 2 = "x-ray" }
invalid = "end"
no_input = "end"

[nodes.x-ray]
kind = "say"
text = "x"
next = "end"

[nodes.end]
kind = "hangup"
"#;

#[test]
fn mermaid_itself_parses_every_chart_with_each_node_and_edge() {
    // A folder whose node_modules hold `mermaid` and `jsdom` (.ci/run installs them).
    let Some(dir) = std::env::var("PHONETREE_MERMAID_DIR").ok() else {
        absent(Need::Mermaid, "PHONETREE_MERMAID_DIR is not set");
        return;
    };
    if !std::path::Path::new(&dir).join("node_modules/mermaid").is_dir() {
        absent(Need::Mermaid, &format!("{dir}/node_modules/mermaid is not a folder"));
        return;
    }
    if !needs_tool(Need::Mermaid, "node", "--version") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mut machines = bundled_machines();
    machines.push(compile_text("awkward.toml", AWKWARD));
    let mut charts = Vec::new();
    for m in &machines {
        let file = t.path().join(format!("{}.mmd", m.name()));
        std::fs::write(&file, export::mermaid(m)).unwrap();
        charts.push(file.display().to_string());
    }
    let script = repo().join("tests/data/mermaid/parse.mjs");
    let out = Command::new("node").arg(&script).args(&charts).env("MERMAID_DIR", &dir).output().unwrap();
    assert!(out.status.success(), "mermaid refused a chart: {}", String::from_utf8_lossy(&out.stderr));
    let parsed: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed.len(), machines.len());
    for (m, chart) in machines.iter().zip(&parsed) {
        let mut ids: Vec<String> = m.graph().node_weights().map(|n| export::mermaid_id(&n.name)).collect();
        ids.sort();
        let mut seen: Vec<String> =
            chart["nodes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        seen.sort();
        assert_eq!(seen, ids, "{}", m.name());
        let mut edges: Vec<(String, String, String)> = m
            .graph()
            .edge_indices()
            .map(|e| {
                let (a, b) = m.graph().edge_endpoints(e).unwrap();
                let name = |id: phonetree::machine::NodeId| export::mermaid_id(&m.graph()[id].name);
                (name(a), name(b), m.graph()[e].to_string())
            })
            .collect();
        edges.sort();
        let mut drawn: Vec<(String, String, String)> = chart["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (e[0].as_str().unwrap().into(), e[1].as_str().unwrap().into(), e[2].as_str().unwrap().into())
            })
            .collect();
        drawn.sort();
        assert_eq!(drawn, edges, "{}", m.name());
    }
}

#[test]
fn graphviz_draws_awkward_names_and_prompts() {
    if !needs_tool(Need::Graphviz, "dot", "-V") {
        return;
    }
    let m = compile_text("awkward.toml", AWKWARD);
    let (ok, svg, err) = pipe("dot", &["-Tsvg"], export::dot(&m).as_bytes());
    assert!(ok, "{err}");
    // Graphviz writes `-` in titles as `&#45;`.
    for title in ["o1", "x&#45;ray", "end", "o1&#45;&gt;x&#45;ray"] {
        assert!(svg.contains(&format!("<title>{title}</title>")), "{title}: {svg}");
    }
    // The prompt as written in the file (braces doubled), XML-escaped by Graphviz; the backslash
    // before `n` stays a backslash, not a line break.
    assert!(
        svg.contains("menu: Say &quot;hi&quot; #1 &lt;b&gt; &amp; `x` [a]{{b}}(c)|d|; end \\n</text>"),
        "{svg}"
    );
}

#[test]
fn mermaid_of_every_bundled_machine_declares_each_node_once() {
    for file in machine_files("machines") {
        let m = compile_text(&file.display().to_string(), &std::fs::read_to_string(&file).unwrap());
        let chart = export_cli(&file, "mermaid");
        assert!(chart.starts_with("flowchart TD\n"));
        for node in m.graph().node_weights() {
            let id = export::mermaid_id(&node.name);
            let declared = chart
                .lines()
                .filter(|l| {
                    l.trim_start().starts_with(&format!("{id}["))
                        || l.trim_start().starts_with(&format!("{id}(["))
                })
                .count();
            assert_eq!(declared, 1, "{id} in {}", file.display());
        }
    }
}

#[test]
fn export_of_a_machine_that_does_not_compile_prints_its_diagnostics() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("broken.toml");
    std::fs::write(&file, "name = \"broken\"\nstart = \"nowhere\"\n\n[nodes.a]\nkind = \"hangup\"\n")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["export", &file.display().to_string(), "--format", "dot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("start node `nowhere` does not exist"), "{err}");
    assert!(err.contains("does not compile"), "{err}");
}

/// A stored value longer than its `max_chars`, numeric tests on values that are not plain
/// integers or unset: answers `explore` never gives (its stored values are `1`).
const CUTS: &str = r#"
name = "cuts"
start = "lookup"

[defaults]
voice_profile = "en-US-BenjaminRUS"

[nodes.lookup]
kind = "script"
url = "https://api.example.com/note"
store = { note = { path = "note", max_chars = 10, default = "none" }, n = "n" }
default = "note"
failure = "bye"

[nodes.note]
kind = "say"
text = "Note: {note}."
next = "size"

[nodes.size]
kind = "route"
rules = [{ var = "n", at_least = 4, next = "big" }, { var = "n", at_most = 0, next = "small" }]
else = "bye"

[nodes.big]
kind = "say"
text = "Big."
next = "bye"

[nodes.small]
kind = "say"
text = "Small or unset."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;

#[test]
fn vxml_cuts_stored_values_and_tests_numbers_as_the_engine_does() {
    let Some(mut js) = vxml::Ecma::start() else { return };
    let m = compile_text("cuts.toml", CUTS);
    let doc = document(&m);
    let notes = [
        serde_json::json!("short"),
        serde_json::json!("hello wonderful world"),
        serde_json::json!("abcdefghijklmnop"),
        serde_json::json!("hello worl d"),
        serde_json::json!("a bcdefghijklm"),
        serde_json::json!(1234567890.5),
    ];
    let counts = [
        serde_json::json!(" 3 "),
        serde_json::json!("+3"),
        serde_json::json!("-6"),
        serde_json::json!("3.0"),
        serde_json::json!("abc"),
        serde_json::json!(4),
        serde_json::json!("-0"),
        serde_json::Value::Null,
    ];
    let session = |number: &str| vxml::Session {
        caller: CALLER.into(),
        number: number.into(),
        session_id: "s".into(),
        call_id: "c".into(),
        clock: None,
        splits: Vec::new(),
    };
    for note in &notes {
        for n in &counts {
            let answer = serde_json::json!({ "note": note, "n": n });
            let flows = simulated_answering(&m, &answer);
            let voice = vxml::play(
                &mut js,
                &doc,
                &session("+15550000000"),
                &["@answer".to_string()],
                &mut |_, _, _| Some(answer.to_string()),
            )
            .unwrap();
            assert_eq!(voice, heard(&flows), "{answer}");
        }
    }
}

/// Answer paths ECMAScript's dot notation reads otherwise: an array index, a key with `-`, a key
/// an object inherits (`constructor`); and values the engine treats as missing (an object, an
/// array, null) or fails on (a response key that is an object).
const PATHS: &str = r#"
name = "paths"
start = "lookup"

[defaults]
voice_profile = "en-US-BenjaminRUS"

[nodes.lookup]
kind = "script"
url = "https://api.example.com/order"
response_key = "data.code"
branches = { ok = "found" }
store = { first = { path = "items.0", default = "no first" }, dash = { path = "order-id", default = "no dash" }, note = { path = "note", default = "no note" }, ctor = { path = "constructor", default = "no ctor" } }
default = "found"
failure = "failed"

[nodes.found]
kind = "say"
text = "First {first}, dash {dash}, note {note}, ctor {ctor}."
next = "bye"

[nodes.failed]
kind = "say"
text = "Failed."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;

#[test]
fn vxml_reads_answer_paths_and_values_as_the_engine_does() {
    let Some(mut js) = vxml::Ecma::start() else { return };
    let m = compile_text("paths.toml", PATHS);
    let doc = document(&m);
    let answers = [
        serde_json::json!({ "data": { "code": "ok" }, "items": ["a", "b"], "order-id": "x1", "note": "n" }),
        serde_json::json!({ "data": { "code": "other" }, "items": { "0": "zero" }, "note": { "a": 1 } }),
        serde_json::json!({ "data": { "code": "ok" }, "items": [], "note": [1, 2] }),
        serde_json::json!({ "data": { "code": "ok" }, "items": "ab", "note": null, "constructor": 7 }),
        serde_json::json!({ "data": { "code": "ok" }, "items": [true], "note": false }),
        serde_json::json!({ "data": { "code": { "ok": 1 } } }),
        serde_json::json!({ "data": ["ok"] }),
        serde_json::json!({ "data": { "code": true }, "order-id": 12.5 }),
    ];
    for answer in &answers {
        let flows = simulated_answering(&m, answer);
        let session = vxml::Session {
            caller: CALLER.into(),
            number: "+15550000000".into(),
            session_id: "s".into(),
            call_id: "c".into(),
            clock: None,
            splits: Vec::new(),
        };
        let voice = vxml::play(&mut js, &doc, &session, &["@answer".to_string()], &mut |_, _, _| {
            Some(answer.to_string())
        })
        .unwrap_or_else(|e| panic!("{answer}: {e}"));
        assert_eq!(voice, heard(&flows), "{answer}");
    }
}

#[test]
fn the_documents_ecmascript_runs_in_node_and_its_errors_fail_the_play() {
    let Some(mut js) = vxml::Ecma::start() else { return };
    let m = compile_text("features.toml", FEATURES);
    let text = export::vxml(&m);
    let value = "<value expr=\"caller\"/>";
    assert!(text.contains(value), "{text}");
    let session = vxml::Session {
        caller: CALLER.into(),
        number: "+6500000000".into(),
        session_id: "s".into(),
        call_id: "c".into(),
        clock: None,
        splits: Vec::new(),
    };
    let mut play = |doc: &str| {
        let doc = vxml::parse(doc).unwrap();
        vxml::play(&mut js, &doc, &session, &[], &mut |_, _, _| None)
    };
    // Methods no subset of ours had: the answer is Node's.
    let masked = text.replace(value, "<value expr=\"caller.slice(-4).padStart(8, &apos;*&apos;)\"/>");
    let heard = play(&masked).unwrap();
    assert_eq!(heard.first(), Some(&Heard::Say("Hello ****0001, this is welcome.".into())));
    // An expression that is not ECMAScript, and a variable no scope declares, fail the play.
    let error = play(&text.replace(value, "<value expr=\"caller +\"/>")).unwrap_err();
    assert!(error.contains("SyntaxError"), "{error}");
    let error = play(&text.replace(value, "<value expr=\"callr\"/>")).unwrap_err();
    assert!(error.contains("ReferenceError: callr is not defined"), "{error}");
    // A document that is not well-formed, or in another namespace, is not played.
    assert!(vxml::parse(&text.replace("</vxml>", "")).is_err());
    let error = vxml::parse(&text.replace("http://www.w3.org/2001/vxml", "urn:other")).unwrap_err();
    assert!(error.contains("namespace"), "{error}");
}
