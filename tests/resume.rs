//! Resuming an interrupted call (`[resume]`), through the real node on sled and on PostgreSQL: a
//! caller who hangs up at a submenu and calls again within the window hears the offer, presses 1
//! and hears that submenu with their variables; after a call that ended normally, or after the
//! window (the node's clock moved with `--clock-control`), the call starts at `start`. Plus the
//! engine's offer, on its own.

use crate::common;

use common::*;
use phonetree::engine::{self, CallState, Event, Phase, Unfinished};
use serde_json::Value;

const CALLER: &str = "+6591234567";
const NUMBER: &str = "+6568880099";
const OFFER: &str = "Welcome back. Press 1 to continue where you left off, 2 to start again.";

fn machines(tmp: &std::path::Path) -> std::path::PathBuf {
    let dir = tmp.join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(repo().join("tests/data/resume/resume_demo.toml"), dir.join("resume_demo.toml")).unwrap();
    dir
}

/// One call's webhooks, in order.
struct Call<'n> {
    node: &'n Node,
    session: String,
    events: usize,
    id: Option<String>,
}

impl<'n> Call<'n> {
    /// CALL_RECEIVED: what the call opens with.
    async fn start(node: &'n Node, session: &str) -> (Call<'n>, String) {
        let mut call = Call { node, session: session.to_string(), events: 0, id: None };
        let said = call.send("CALL_RECEIVED", None).await;
        (call, said)
    }

    /// The caller presses `keys`: what the reply says.
    async fn press(&mut self, keys: &str) -> String {
        self.send("DTMF_RECEIVED", Some(keys)).await
    }

    async fn send(&mut self, status: &str, dtmf: Option<&str>) -> String {
        self.events += 1;
        let event = format!("e{}", self.events);
        let id = self.id.clone();
        let v = Vca {
            session: &self.session,
            event: &event,
            dtmf,
            client_action_id: id.as_deref(),
            status,
            direction: "INBOUND",
            source: CALLER,
            destination: NUMBER,
            event_data: false,
        };
        let a = post(&self.node.url("/webhooks/vca"), v.body()).await;
        self.id = a.client_action_id();
        let flow = a.json();
        // What the caller hears: every text the reply says, in order.
        let said = flow["callflow"].as_array().into_iter().flatten().filter_map(|action| {
            let params = &action["params"];
            params["promptMessage"].as_str().or(params["text"].as_str()).map(str::to_string)
        });
        said.collect::<Vec<_>>().join(" ")
    }

    /// 8x8's session summary: the caller hung up (or the call ended).
    async fn hang_up(self) {
        let s = post(&self.node.url("/webhooks/vss"), vss(&self.session, "COMPLETED")).await;
        assert_eq!(s.status, 200);
    }
}

/// Walks a call to the billing submenu and hangs up there.
async fn hang_up_at_billing(node: &Node, session: &str) {
    let (mut call, said) = Call::start(node, session).await;
    assert_eq!(said, "Enter your four digit account number.");
    assert_eq!(call.press("1234").await, "Account 1234. Press 1 for billing, 2 to hang up.");
    assert_eq!(call.press("1").await, "Billing for account 1234. Press 1 to pay, 2 to go back.");
    call.hang_up().await;
}

async fn resumed_count(node: &Node) -> String {
    let text = reqwest::get(node.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("phonetree_resumed_total") && l.contains("node=\"billing\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The whole story on one node (whatever its store).
async fn story(node: &Node) {
    // Interrupted at the billing submenu, then back: the offer, and 1 goes on there, with the
    // account number entered in the first call.
    hang_up_at_billing(node, "s-1").await;
    let (mut call, said) = Call::start(node, "s-2").await;
    assert_eq!(said, OFFER);
    assert_eq!(call.press("1").await, "Billing for account 1234. Press 1 to pay, 2 to go back.");
    assert!(resumed_count(node).await.ends_with(" 1"), "{}", resumed_count(node).await);
    // This call ends normally: the next one starts at `start`, with no offer.
    assert_eq!(call.press("1").await, "Payment made. Goodbye.");
    call.hang_up().await;
    let (call, said) = Call::start(node, "s-3").await;
    assert_eq!(said, "Enter your four digit account number.");
    call.hang_up().await;
    // Hung up at the account prompt of that call: kept, offered, and 2 starts again.
    let (mut call, said) = Call::start(node, "s-4").await;
    assert_eq!(said, OFFER);
    assert_eq!(call.press("2").await, "Enter your four digit account number.");
    assert_eq!(call.press("5555").await, "Account 5555. Press 1 for billing, 2 to hang up.");
    // 2 hangs up: a call that ended normally forgets the interrupted one.
    assert_eq!(call.press("2").await, "");
    call.hang_up().await;
    // Past the window: interrupted again, then the clock moves 11 minutes on.
    hang_up_at_billing(node, "s-5").await;
    let moved = post(&node.admin_url("/admin/clock"), r#"{"offset_ms": 660000}"#).await;
    assert_eq!(moved.status, 200, "{}", String::from_utf8_lossy(&moved.body));
    let (call, said) = Call::start(node, "s-6").await;
    assert_eq!(said, "Enter your four digit account number.");
    call.hang_up().await;
    assert!(resumed_count(node).await.ends_with(" 1"), "one resumption in all");
}

#[tokio::test]
async fn a_caller_goes_on_where_they_hung_up_on_sled() {
    let t = tempfile::tempdir().unwrap();
    let node =
        Node::start_with(&t.path().join("data"), &machines(t.path()), &[("PHONETREE_CLOCK_CONTROL", "true")]);
    story(&node).await;
    // History records the offer and where the call went on, and the call replays the same.
    let server = node.admin_url("");
    let phonetree = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree")).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), out.stdout, text)
    };
    let (ok, _, shown) = phonetree(&["calls", "show", "s-2", "--server", &server]);
    assert!(ok, "{shown}");
    assert!(shown.contains("[resume] the caller is offered to go on"), "{shown}");
    assert!(shown.contains("[resume] the call goes on at `billing`"), "{shown}");
    let (ok, exported, text) = phonetree(&["calls", "export", "s-2", "--server", &server]);
    assert!(ok, "{text}");
    let file = t.path().join("s-2.json");
    std::fs::write(&file, exported).unwrap();
    let machine = repo().join("tests/data/resume/resume_demo.toml");
    let (ok, _, replayed) = phonetree(&[
        "replay",
        file.to_str().unwrap(),
        "--machine",
        machine.to_str().unwrap(),
        "--expect-same",
    ]);
    assert!(ok && replayed.contains("(session s-2): same"), "{replayed}");
}

#[tokio::test]
async fn a_caller_goes_on_where_they_hung_up_on_postgres() {
    let t = tempfile::tempdir().unwrap();
    let Some(url) = common::backends::postgres_url_for(t.path()).await else { return };
    let node = Node::start_with(
        &t.path().join("node"),
        &machines(t.path()),
        &[("PHONETREE_STORE", url.as_str()), ("PHONETREE_CLOCK_CONTROL", "true")],
    );
    // Every node of the database sees it: interrupted on one node, offered on another (whose
    // call then ends normally: the story below starts with no record).
    let other =
        Node::start_with(&t.path().join("other"), &machines(t.path()), &[("PHONETREE_STORE", url.as_str())]);
    hang_up_at_billing(&node, "s-0").await;
    let (mut call, said) = Call::start(&other, "s-0b").await;
    assert_eq!(said, OFFER);
    assert_eq!(call.press("1").await, "Billing for account 1234. Press 1 to pay, 2 to go back.");
    assert_eq!(call.press("1").await, "Payment made. Goodbye.");
    call.hang_up().await;
    drop(other);
    story(&node).await;
    // The interrupted call is kept in the database every node shares, under a hash, not the
    // caller's number.
    let client = common::backends::connect(&url).await.unwrap();
    let rows = client.query("SELECT key, record FROM phonetree_unfinished", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    let record: Vec<u8> = rows[0].get(1);
    assert!(!String::from_utf8_lossy(&record).contains(CALLER), "the record names no caller");
    // A record this phonetree cannot read (a newer format, say) offers nothing: the call starts
    // at `start`, not with the fallback.
    let future = phonetree::store::encode_session(&CallState::new(
        &compile_text("resume_demo.toml", &demo_text()),
        inbound(CALLER, NUMBER),
        0,
    ))
    .unwrap();
    client.execute("UPDATE phonetree_unfinished SET record = $1", &[&future]).await.unwrap();
    let (call, said) = Call::start(&node, "s-9").await;
    assert_eq!(said, "Enter your four digit account number.");
    call.hang_up().await;
}

/// The engine on its own: the offer waits at the start (seq 0); 1 with the interrupted call goes
/// on at its node with its variables (never a sensitive one); anything else, or 1 without one,
/// starts at `start`.
#[test]
fn the_offer_goes_on_or_starts_again() {
    let m = compile_text(
        "resume_demo.toml",
        &std::fs::read_to_string(repo().join("tests/data/resume/resume_demo.toml")).unwrap(),
    );
    let fresh = CallState::new(&m, inbound(CALLER, NUMBER), 0);
    let offered = engine::offer(&m, &fresh, 0).unwrap();
    assert!(offered.state.offering());
    let billing = m.node_id("billing").unwrap();
    let saved = Unfinished { node: billing, vars: [("account".to_string(), "9876".to_string())].into() };
    let go_on = engine::step_resuming(&m, &offered.state, &Event::Digits("1".into()), 1, &[], Some(&saved))
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(
        (go_on.state.node, &go_on.state.phase, go_on.resumed),
        (billing, &Phase::AwaitingInput, Some(billing))
    );
    assert_eq!(go_on.state.var("account"), Some("9876"));
    assert!(!go_on.state.offering());
    let start = m.node_id("account").unwrap();
    for (keys, saved) in [("2", Some(&saved)), ("1", None)] {
        let again = engine::step_resuming(&m, &offered.state, &Event::Digits(keys.into()), 1, &[], saved)
            .unwrap()
            .done()
            .unwrap();
        assert_eq!(
            (again.state.node, again.resumed, &again.entered[..]),
            (start, None, &[start][..]),
            "{keys}"
        );
    }
    // A start repeated at the offer says the offer again; a machine without `[resume]` offers none.
    let repeated = engine::step(&m, &offered.state, &Event::CallStarted, 1).unwrap();
    assert_eq!(repeated.reply, offered.reply);
    let plain = bundled("tech_support");
    let fresh = CallState::new(&plain, inbound(CALLER, "6561115777"), 0);
    assert!(matches!(engine::offer(&plain, &fresh, 0), Err(engine::StepError::NotOffered { .. })));
}

fn demo_text() -> String {
    std::fs::read_to_string(repo().join("tests/data/resume/resume_demo.toml")).unwrap()
}

/// `check` explores the offer: its two answers count as edges, both covered; its `1` is played at
/// every waiting state. A machine whose calls never wait for keys has an offer nobody can take.
#[test]
fn check_explores_the_offer_and_counts_its_edges() {
    use phonetree::proof::explore;
    let m = compile_text("resume_demo.toml", &demo_text());
    let r = explore::explore(&m);
    assert!(r.proven(), "{:?}", r.violations);
    assert_eq!((r.edges, r.edges_covered), (m.edge_count() + 2, m.edge_count() + 2));
    for label in explore::RESUME_EDGES {
        assert!(r.covered.contains(&(explore::RESUME_NODE.to_string(), label.to_string())), "{label}");
    }
    let plain = compile_text("plain.toml", &demo_text().replace("[resume]\nwithin_minutes = 10\nprompt = \"Welcome back. Press 1 to continue where you left off, 2 to start again.\"\n", ""));
    assert_eq!(explore::explore(&plain).edges, m.edge_count(), "no offer, no offer edges");
    let never_waits = r#"
name = "never_waits"
start = "hello"
[resume]
within_minutes = 5
prompt = "Press 1 to go on."
[defaults]
voice_profile = "en-US-BenjaminRUS"
[nodes.hello]
kind = "say"
text = "Hello."
next = "bye"
[nodes.bye]
kind = "hangup"
"#;
    let r = explore::explore(&compile_text("never_waits.toml", never_waits));
    let uncovered: Vec<_> = r.violations.iter().filter(|v| v.kind == explore::Kind::UncoveredEdge).collect();
    assert_eq!(uncovered.len(), 2, "{:?}", r.violations);
    for (v, label) in uncovered.iter().zip(explore::RESUME_EDGES) {
        assert!(v.node == explore::RESUME_NODE && v.message.contains(label), "{v:?}");
    }
}

/// A bad `[resume]` is a diagnostic at its line: a window out of bounds, a prompt missing a
/// language of a machine that speaks two. Every problem in one run.
#[test]
fn a_bad_resume_table_is_a_diagnostic_at_its_line() {
    use phonetree::machine::{self, Source};
    let text = demo_text().replace("within_minutes = 10", "within_minutes = 0");
    let compiled = machine::compile(&Source::new("r.toml", &text));
    let errors: Vec<String> = compiled.errors().map(|d| d.to_string()).collect();
    assert!(compiled.machine.is_none());
    assert!(
        errors
            .iter()
            .any(|e| e.contains("r.toml:8:") && e.contains("within_minutes") && e.contains("1 to 1440")),
        "{errors:?}"
    );
    let bilingual = r#"
name = "two"
start = "menu"
languages = ["en", "es"]
language_variable = "lang"
voices = { en = "en-US-BenjaminRUS", es = "es-ES-HelenaRUS" }
[resume]
within_minutes = 2000
prompt = { en = "Press 1 to go on." }
[nodes.menu]
kind = "menu"
prompt = { en = "Press 1.", es = "Pulse 1." }
branches = { 1 = "bye" }
invalid = "bye"
[nodes.bye]
kind = "hangup"
"#;
    let compiled = machine::compile(&Source::new("two.toml", bilingual));
    let errors: Vec<String> = compiled.errors().map(|d| d.to_string()).collect();
    assert!(errors.iter().any(|e| e.contains("two.toml:9:") && e.contains("no `es` text")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("two.toml:8:") && e.contains("2000")), "{errors:?}");
}

/// `simulate --resume-from NODE` plays the offer: 1 goes on at NODE with the `--var`s given,
/// anything else starts at `start`; a node that does not wait for keys is refused.
#[test]
fn simulate_plays_the_offer() {
    let file = repo().join("tests/data/resume/resume_demo.toml");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .arg("simulate")
            .arg(&file)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = run(&["--resume-from", "billing", "--var", "account=4321", "1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(OFFER)
            && out.contains("goes on at `billing`")
            && out.contains("Billing for account 4321."),
        "{out}"
    );
    let (code, out) = run(&["--resume-from", "billing", "2"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Enter your four digit account number.") && !out.contains("goes on"), "{out}");
    let (code, out) = run(&["--resume-from", "paid", "1"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("`paid` is not a node of `resume_demo` that waits for keys"), "{out}");
}

/// A call the TTL closes at a waiting node (8x8's summary never came) is an interrupted call too:
/// its caller is offered to go on there.
#[tokio::test]
async fn a_call_closed_by_the_ttl_is_offered_too() {
    let t = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        &t.path().join("data"),
        &machines(t.path()),
        &[
            ("PHONETREE_SESSION_TTL_SECS", "2"),
            ("PHONETREE_ADMIN_TOKEN", "resume-test-admin-token-0123456789"),
        ],
    );
    let (mut call, _) = Call::start(&node, "s-silent").await;
    call.press("1234").await;
    assert_eq!(call.press("1").await, "Billing for account 1234. Press 1 to pay, 2 to go back.");
    // No summary: the sweep closes the call past its TTL.
    let client = reqwest::Client::new();
    let mut outcome = Value::Null;
    for _ in 0..100 {
        let r =
            client.get(node.admin_url("/calls/s-silent")).bearer_auth("resume-test-admin-token-0123456789");
        outcome = r.send().await.unwrap().json::<Value>().await.unwrap()["outcome"].clone();
        if outcome == "callerLeft" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(outcome, "callerLeft");
    // The interrupted call is kept once the sweep's commit is (a moment after it).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (mut again, said) = Call::start(&node, "s-back").await;
    assert_eq!(said, OFFER);
    assert_eq!(again.press("1").await, "Billing for account 1234. Press 1 to pay, 2 to go back.");
}

/// Resume on a machine with sensitive variables (a PIN) is a warning: a call resumed after the
/// check skips it.
#[test]
fn resume_past_a_sensitive_input_is_a_warning() {
    use phonetree::machine::{self, Severity, Source};
    let text = std::fs::read_to_string(repo().join("tests/data/sensitive/card_payment.toml")).unwrap()
        + "\n[resume]\nwithin_minutes = 10\nprompt = \"Press 1 to go on.\"\n";
    let compiled = machine::compile(&Source::new("card_payment.toml", &text));
    assert!(compiled.machine.is_some(), "a warning, not an error");
    let warned: Vec<String> = (compiled.diagnostics.iter())
        .filter(|d| d.severity == Severity::Warning && d.message.contains("[resume]"))
        .map(|d| d.to_string())
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", compiled.diagnostics);
    assert!(warned[0].contains("skip the nodes that set sensitive `auth`, `card`"), "{warned:?}");
}

/// `phonetree ARGS` in the repository: (exit code, stdout, stderr).
fn phonetree_in_repo(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(args)
        .current_dir(repo())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// The `phonetree simulate ...` commands of a check's hints, in order.
fn replays_in(text: &str) -> Vec<String> {
    text.split('`').filter(|s| s.starts_with("phonetree simulate ")).map(str::to_string).collect()
}

/// Runs a replay command as printed (quoted for a POSIX shell) with this build's binary, in the
/// repository: (exit code, transcript).
fn run_replay(command: &str) -> (Option<i32>, String) {
    let bin = format!("'{}'", env!("CARGO_BIN_EXE_phonetree"));
    let command = command.replacen("phonetree", &bin, 1);
    let out = std::process::Command::new("sh").arg("-c").arg(&command).current_dir(repo()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `[resume]` table of the policy machines in `tests/data/resume/`.
const POLICY_RESUME: &str = "[resume]\nwithin_minutes = 10\nprompt = \"Welcome back. Press 1 to go on where you left off, 2 to start again.\"\n";

/// The resumed call on its own: a recording notice said before the menu does not count for a
/// caller who goes on at the menu in a new call. `check` fails at the policy, and its command,
/// run for real, takes the offer's 1 and reaches the recorded transfer without the notice.
#[test]
fn a_notice_heard_before_the_interruption_does_not_count_in_the_resumed_call() {
    let file = "tests/data/resume/policy_notice.toml";
    let (code, out, _) = phonetree_in_repo(&["check", file]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("{file}:15:1: error: node `agent`: policy 1 (`notice` before every recorded_transfer) is broken: a call enters `agent` without passing `notice` first")),
        "{out}"
    );
    let replays = replays_in(&out);
    assert_eq!(replays, [format!("phonetree simulate {file} '--resume-from=menu' 1 1")], "{out}");
    let (code, transcript) = run_replay(&replays[0]);
    assert_eq!(code, Some(0), "{transcript}");
    assert!(transcript.contains("[resume] the call goes on at `menu`"), "{transcript}");
    assert!(!transcript.contains("This call is recorded."), "{transcript}");
    assert_eq!(
        transcript.lines().last(),
        Some("call transferred at node `agent`: the caller is bridged"),
        "{transcript}"
    );
}

/// The two calls as one: `menu` is entered once a call (`*` says it again without entering it),
/// so in one call it is never entered after `menu:*`; a caller who presses `*`, hangs up and goes
/// on at `menu` enters it again. `check` gives both calls, and both, run for real, get there.
#[test]
fn a_never_policy_broken_only_across_two_calls_replays_as_two_calls() {
    let file = "tests/data/resume/policy_again.toml";
    let (code, out, _) = phonetree_in_repo(&["check", file]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "policy 1 (never `menu` after `menu:*`) is broken: a call enters `menu` after `menu`'s `*` edge"
        ),
        "{out}"
    );
    assert!(out.contains("a caller gets there in two calls: `"), "{out}");
    let replays = replays_in(&out);
    assert_eq!(
        replays,
        [
            format!("phonetree simulate {file} '*'"),
            format!("phonetree simulate {file} '--resume-from=menu' 1")
        ],
        "{out}"
    );
    let (code, first) = run_replay(&replays[0]);
    assert_eq!(code, Some(0), "{first}");
    assert!(first.contains("[menu] key * (repeat) to `menu`"), "{first}");
    assert_eq!(first.lines().last(), Some("no more input: the call waits at menu `menu`"), "{first}");
    let (code, second) = run_replay(&replays[1]);
    assert_eq!(code, Some(0), "{second}");
    assert!(second.contains("[resume] the call goes on at `menu`"), "{second}");
    assert_eq!(second.lines().last(), Some("no more input: the call waits at menu `menu`"), "{second}");
    // `check --json` says it is two calls.
    let (_, json, _) = phonetree_in_repo(&["check", "--json", file]);
    let report: Value = serde_json::from_str(&json).unwrap();
    let v = &report["machines"][0]["violations"][0];
    assert_eq!(
        (v["replay"].as_str(), &v["interrupted"]),
        (Some("resumed"), &serde_json::json!(["*"])),
        "{v}"
    );
    assert_eq!(v["inputs"], serde_json::json!(["--resume-from=menu", "1"]), "{v}");
    // Without `[resume]` there is no second call: the policy holds.
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    let plain = text.replace(POLICY_RESUME, "");
    assert_ne!(plain, text);
    let r = phonetree::proof::explore::explore(&compile_text("plain.toml", &plain));
    assert!(r.proven(), "{:?}", r.violations);
}

/// Policies that hold across the offer are proven: the notice said on the way to the transfer in
/// whichever call gets there, `never` and `reach` with the offer's answer; a module's output set
/// in the interrupted call is kept in the restored variables of the call that goes on inside the
/// module (no unset output at its exit).
#[test]
fn policies_and_outputs_that_hold_across_the_offer_are_proven() {
    let file = "tests/data/resume/policy_notice_fixed.toml";
    let (code, out, _) = phonetree_in_repo(&["check", file]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("{file}: proven `policy_notice_fixed`")), "{out}");
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("modules")).unwrap();
    std::fs::write(t.path().join("modules/pick.toml"), PICK).unwrap();
    let machine = t.path().join("order.toml");
    std::fs::write(&machine, ORDER).unwrap();
    let (code, out, _) = phonetree_in_repo(&["check", machine.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("proven `order`") && out.contains("module pick: 8/8 edges covered"), "{out}");
    // Interrupted at `pick/confirm` with the choice keyed, the call goes on with it.
    let (code, transcript, _) = phonetree_in_repo(&[
        "simulate",
        machine.to_str().unwrap(),
        "--resume-from=pick/confirm",
        "--var=choice=12",
        "1",
        "1",
    ]);
    assert_eq!(code, Some(0), "{transcript}");
    assert!(transcript.contains("Thank you for choosing 12."), "{transcript}");
}

/// A module promising `choice` and a machine with `[resume]` that uses it.
const PICK: &str = r#"
name = "pick"
start = "ask"
outputs = ["choice"]
exits = ["done"]

[nodes.ask]
kind = "input"
prompt = "Key in your two digit choice."
variable = "choice"
min_digits = 2
max_digits = 2
example = "12"
next = "confirm"
invalid = "ask_again"

[nodes.ask_again]
kind = "set"
values = { choice = "00" }
next = "confirm"

[nodes.confirm]
kind = "menu"
prompt = "You chose {choice}. Press 1 to confirm, 2 to change it."
branches = { 1 = "done", 2 = "ask" }
invalid = "done"

[nodes.done]
kind = "exit"
exit = "done"
"#;
const ORDER: &str = r#"
name = "order"
start = "pick"
numbers = ["+6568880113"]

[resume]
within_minutes = 10
prompt = "Welcome back. Press 1 to go on where you left off, 2 to start again."

[defaults]
voice_profile = "en-US-BenjaminRUS"

[nodes.pick]
kind = "module"
module = "pick"
exits = { done = "thanks" }

[nodes.thanks]
kind = "say"
text = "Thank you for choosing {choice}."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;

/// The offer's answer is an answer: `reach agent within_answers = 1` holds for a call without
/// the offer (the menu's 1) but not at the offer, where the agent is two answers away whichever
/// the caller presses; `max_answers` counts it in the resumed call, and across the two calls.
#[test]
fn the_offer_s_answer_counts_for_within_answers_and_max_answers() {
    use phonetree::proof::explore::{self, Kind, Replay};
    let fixed = std::fs::read_to_string(repo().join("tests/data/resume/policy_notice_fixed.toml")).unwrap();
    let policies = |with: &str| {
        let text = fixed.replace("within_answers = 2", with);
        let r = explore::explore(&compile_text("f.toml", &text));
        r.violations.into_iter().filter(|v| v.kind == Kind::Policy).collect::<Vec<_>>()
    };
    let broken = policies("within_answers = 1");
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0].node, "menu");
    assert!(
        broken[0].message.ends_with("at the resume offer `agent` takes 2 answers at the fewest"),
        "{broken:?}"
    );
    assert_eq!(
        (broken[0].inputs.as_slice(), broken[0].replay),
        (&["--resume-from=menu".to_string()][..], Replay::Inbound)
    );
    let without = fixed.replace(POLICY_RESUME, "");
    assert_ne!(without, fixed);
    let r = explore::explore(&compile_text(
        "plain.toml",
        &without.replace("within_answers = 2", "within_answers = 1"),
    ));
    assert!(r.proven(), "{:?}", r.violations);
    // At most one answer: the resumed call asks for a second at the menu.
    let broken = policies("within_answers = 2\n\n[[policies]]\nmax_answers = 1");
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0].message.ends_with("a caller is asked for answer 2 here"), "{broken:?}");
    assert_eq!((broken[0].replay, &broken[0].interrupted), (Replay::Inbound, &None), "{broken:?}");
    // At most two: a call that started again (answer 1) is interrupted at the menu, and the call
    // that goes on there (answer 2) asks for a third.
    let broken = policies("within_answers = 2\n\n[[policies]]\nmax_answers = 2");
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0].message.ends_with("a caller is asked for answer 3 here"), "{broken:?}");
    let first = vec!["--resume-from=menu".to_string(), "2".to_string()];
    assert_eq!((broken[0].replay, &broken[0].interrupted), (Replay::Resumed, &Some(first)), "{broken:?}");
    assert_eq!(broken[0].inputs, ["--resume-from=menu", "1"]);
    assert!(policies("within_answers = 2\n\n[[policies]]\nmax_answers = 3").is_empty());
}

/// `phonetree diff` names a changed (or removed) `[resume]`: never "no change" for an edit that
/// changes which callers hear the offer.
#[test]
fn diff_names_a_changed_resume_table() {
    let t = tempfile::tempdir().unwrap();
    let old = repo().join("tests/data/resume/resume_demo.toml");
    let longer = t.path().join("longer.toml");
    std::fs::write(&longer, demo_text().replace("within_minutes = 10", "within_minutes = 20")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["diff", old.to_str().unwrap(), longer.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("`resume` changed"), "{text}");
}

/// A caller calls back at another time than they were interrupted at: `check` explores the
/// offer's `1` from the offer root of every clock class. In `clock_again` an out-of-hours caller
/// reaches `confirm` unidentified; one who hangs up there and calls back in hours goes on at
/// `confirm` and is bridged to the nurse unidentified (policy 1). At one clock class per pair of
/// calls every call proves; across two, `check` fails with both calls, each replaying at its own
/// clock, and both, run for real, get there.
#[test]
fn a_caller_who_calls_back_at_another_clock_class_is_explored_there() {
    let file = "tests/data/resume/clock_again.toml";
    let (code, out, _) = phonetree_in_repo(&["check", file]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "{file}:17:1: error: node `nurse`: policy 1 (never `nurse` after `anonymous`) is broken: a call enters `nurse` after `anonymous`"
        )),
        "{out}"
    );
    let replays = replays_in(&out);
    assert_eq!(
        replays,
        [
            format!("phonetree simulate {file} '--at=2026-01-05T00:00:00+08:00' < /dev/null"),
            format!(
                "phonetree simulate {file} '--at=2026-01-05T09:00:00+08:00' '--resume-from=confirm' '--var=patient=unknown' 1 1"
            ),
        ],
        "{out}"
    );
    let (code, first) = run_replay(&replays[0]);
    assert_eq!(code, Some(0), "{first}");
    assert!(first.contains("[hours] else -> anonymous"), "{first}");
    assert_eq!(first.lines().last(), Some("no more input: the call waits at menu `confirm`"), "{first}");
    let (code, second) = run_replay(&replays[1]);
    assert_eq!(code, Some(0), "{second}");
    assert!(second.contains("[resume] the call goes on at `confirm`"), "{second}");
    assert!(second.contains("[desk] rule 1 (mon-fri 09:00-18:00) -> nurse"), "{second}");
    assert_eq!(
        second.lines().last(),
        Some("call transferred at node `nurse`: the caller is bridged"),
        "{second}"
    );
    let (_, json, _) = phonetree_in_repo(&["check", "--json", file]);
    let report: Value = serde_json::from_str(&json).unwrap();
    let violations = report["machines"][0]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{json}");
    let v = &violations[0];
    assert_eq!(v["replay"], "resumed", "{v}");
    assert_eq!(v["interrupted"], serde_json::json!(["--at=2026-01-05T00:00:00+08:00"]), "{v}");
}

/// The fixed machine (`desk` bridges only an identified caller) proves, and the resumed call at
/// the other clock class is explored like any call: among the counted paths, the in-hours call
/// that goes on at `confirm` with the out-of-hours call's `patient`, which replays for real to the
/// closed line; paths through the offer's `1` replay with their own offer root's clock.
#[test]
fn a_machine_fine_at_every_clock_class_it_resumes_at_proves() {
    use phonetree::proof::explore;
    let file = "tests/data/resume/clock_again_fixed.toml";
    let (code, out, _) = phonetree_in_repo(&["check", file]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("{file}: proven `clock_again_fixed`")), "{out}");
    let m = compile_text("clock_again_fixed.toml", &std::fs::read_to_string(repo().join(file)).unwrap());
    let mut paths: Vec<Vec<String>> = Vec::new();
    let r = explore::explore_paths(&m, &mut |p| paths.push(p.to_vec()));
    assert!(r.proven() && r.paths_complete, "{:?}", r.violations);
    assert_eq!(r.paths, paths.len() as u64);
    let across: Vec<String> =
        ["--at=2026-01-05T09:00:00+08:00", "--resume-from=confirm", "--var=patient=unknown", "1", "1"]
            .map(str::to_string)
            .to_vec();
    let path = paths.iter().find(|p| p.starts_with(&across)).unwrap_or_else(|| panic!("{paths:#?}"));
    // One `--resume-from` a path, and one clock.
    for p in &paths {
        assert!(p.iter().filter(|t| t.starts_with("--resume-from=")).count() <= 1, "{p:?}");
        assert!(p.iter().filter(|t| t.starts_with("--at=")).count() == 1, "{p:?}");
    }
    let command = explore::replay(file, path);
    let (code, transcript) = run_replay(&command);
    assert_eq!(code, Some(0), "{command}: {transcript}");
    assert!(transcript.contains("[resume] the call goes on at `confirm`"), "{transcript}");
    assert!(transcript.contains("[desk] else -> closed"), "{transcript}");
    assert!(transcript.contains("The nurse line is closed. Goodbye."), "{transcript}");
}

/// The call back is a new session: `check` pairs an interrupted call with the offer root of every
/// session class of the same caller. In `session_again` two splits sticky by session (one salt)
/// give a call one variant; a caller who heard plan `a`, hangs up at `menu` and goes on in a
/// session that draws `b` hears plan `b`'s terms (policy 1), both calls replaying with their own
/// `--session`, and both, run for real, get there. Sticky by caller, the caller keeps their
/// variant across the calls, and the machine proves.
#[test]
fn a_caller_who_calls_back_in_another_session_class_is_explored_there() {
    let file = "tests/data/resume/session_again.toml";
    let (code, out, _) = phonetree_in_repo(&["check", file]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "policy 1 (never `terms_b` after `offer_a`) is broken: a call enters `terms_b` after `offer_a`"
        ),
        "{out}"
    );
    let replays = replays_in(&out);
    assert_eq!(replays.len(), 2, "{out}");
    let (code, first) = run_replay(&replays[0]);
    assert_eq!(code, Some(0), "{first}");
    assert!(replays[0].contains("'--session="), "{}", replays[0]);
    assert!(first.contains("[offer] variant a -> offer_a"), "{first}");
    assert_eq!(first.lines().last(), Some("no more input: the call waits at menu `menu`"), "{first}");
    let (code, second) = run_replay(&replays[1]);
    assert_eq!(code, Some(0), "{second}");
    assert!(replays[1].contains("'--resume-from=menu' '--var=plan=a' 1 1"), "{}", replays[1]);
    assert!(second.contains("[resume] the call goes on at `menu`"), "{second}");
    assert!(second.contains("[terms] variant b -> terms_b"), "{second}");
    assert!(second.contains("Plan b costs twenty dollars a month."), "{second}");
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    let by_caller = text.replace("sticky_by = \"session\"", "sticky_by = \"caller\"");
    assert_ne!(by_caller, text);
    let r = phonetree::proof::explore::explore(&compile_text("by_caller.toml", &by_caller));
    assert!(r.proven(), "{:?}", r.violations);
}
