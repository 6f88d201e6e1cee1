//! Policies proven over every path (`[[policies]]` in a machine, a folder's `policies.toml`):
//! each policy's violating machine in `tests/data/policies/` is refused by `check` with an error at
//! the policy's file:line:col and a `simulate` command that, run for real, ends at the offending
//! node; its fixed twin proves. `serve` refuses to start with such a machine and a reload that
//! would bring one in is refused, as for any machine that fails its proof.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn dir() -> PathBuf {
    repo().join("tests/data/policies")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phonetree")).args(args).current_dir(dir()).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `phonetree simulate ...` command of a diagnostic's hint.
fn replay_in(text: &str) -> String {
    text.split('`').find(|s| s.starts_with("phonetree simulate ")).expect("a replay command").to_string()
}

/// Runs a replay command as printed (quoted for a POSIX shell), with this build's binary.
fn run_replay(command: &str) -> Output {
    let bin = format!("'{}'", env!("CARGO_BIN_EXE_phonetree"));
    let command = command.replacen("phonetree", &bin, 1);
    Command::new("sh").arg("-c").arg(command).current_dir(dir()).output().unwrap()
}

/// (violating file, where its policy is written, the offending node, the replay's last line)
const CASES: [(&str, &str, &str, &str); 4] = [
    ("before_violating.toml", "13:1", "support", "call transferred at node `support`: the caller is bridged"),
    ("reach_violating.toml", "13:1", "billing", "no more input: the call waits at menu `billing`"),
    ("never_violating.toml", "14:1", "agent", "call transferred at node `agent`: the caller is bridged"),
    ("max_violating.toml", "15:1", "second", "no more input: the call waits at menu `second`"),
];

#[test]
fn each_broken_policy_replays_to_its_offending_node_and_each_fixed_machine_proves() {
    for (file, at, node, last) in CASES {
        let out = run(&["check", file]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let text = stdout(&out);
        let error = format!("{file}:{at}: error: node `{node}`: policy 1 (");
        assert!(text.contains(&error), "{file}: no `{error}` in\n{text}");
        assert!(text.contains("0 machine(s) valid and proven"), "{text}");
        let replay = replay_in(&text);
        let played = run_replay(&replay);
        assert_eq!(played.status.code(), Some(0), "{replay}: {}", String::from_utf8_lossy(&played.stderr));
        let transcript = stdout(&played);
        assert_eq!(transcript.lines().last(), Some(last), "{replay}:\n{transcript}");
        assert!(String::from_utf8_lossy(&played.stderr).contains("fails its proof"), "{replay}");

        let fixed = file.replace("_violating", "_fixed");
        let out = run(&["check", &fixed]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{fixed}:\n{text}");
        assert!(text.contains(&format!("{fixed}: proven `")), "{text}");
        assert!(!text.contains("error:"), "{text}");
    }
}

#[test]
fn the_counterexamples_are_the_shortest_and_say_what_broke() {
    let text = stdout(&run(&["check", "before_violating.toml"]));
    assert!(text.contains("`consent_notice` before every recorded_transfer) is broken: a call enters `support` without passing `consent_notice` first"), "{text}");
    assert_eq!(replay_in(&text), "phonetree simulate before_violating.toml 2");
    // Two tries at `main`, one answer to leave it: the fourth answer is asked at `second`.
    let text = stdout(&run(&["check", "max_violating.toml"]));
    assert!(text.contains("(at most 3 answers) is broken: a caller is asked for answer 4 here"), "{text}");
    assert_eq!(replay_in(&text), "phonetree simulate max_violating.toml 0 1 0");
    // The closed branch is taken at a clock outside the hours: the command carries it.
    let text = stdout(&run(&["check", "never_violating.toml"]));
    assert!(text.contains("a call enters `agent` after `hours`'s `else` edge"), "{text}");
    assert_eq!(
        replay_in(&text),
        "phonetree simulate never_violating.toml '--at=2026-01-05T00:00:00+08:00' 1"
    );
    // `main` reaches the agent in one answer (2); only `billing` is two away.
    let text = stdout(&run(&["check", "reach_violating.toml"]));
    assert_eq!(text.matches("error:").count(), 1, "{text}");
    assert!(text.contains("from here `agent` takes 2 answers at the fewest"), "{text}");
}

#[test]
fn a_folder_s_policies_file_applies_to_each_machine_in_it_and_is_not_a_machine() {
    let out = run(&["check", "shared"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("checked 1 file(s)"), "policies.toml is not a machine: {text}");
    // Its second policy, at its own line, names the machine that breaks it.
    let error = "shared/policies.toml:6:1: error: node `support`: policy 2 (`consent_notice` before every recorded_transfer) is broken in machine `policy_shared`";
    assert!(text.contains(error), "{text}");
    let replay = replay_in(&text);
    assert_eq!(replay, "phonetree simulate shared/support.toml 2");
    let played = run_replay(&replay);
    let transcript = stdout(&played);
    assert_eq!(transcript.lines().last(), Some("call transferred at node `support`: the caller is bridged"));
    // `simulate` proves the machine by its folder's policies too.
    assert!(
        String::from_utf8_lossy(&played.stderr).contains("shared/policies.toml:6:1: error"),
        "{played:?}"
    );
    // Named alone, the machine is still proven by its folder's policies.
    let text = stdout(&run(&["check", "shared/support.toml"]));
    assert!(text.contains("shared/policies.toml:6:1: error"), "{text}");
}

#[test]
fn policies_that_do_not_say_one_thing_or_name_no_node_are_errors_where_they_are_written() {
    let t = tempfile::tempdir().unwrap();
    let machine = std::fs::read_to_string(dir().join("before_fixed.toml")).unwrap();
    let broken = machine.replace(
        "[[policies]]\nbefore = \"consent_notice\"\non_every_path_to = \"recorded_transfer\"\n",
        "[[policies]]\nbefore = \"consent_notise\"\non_every_path_to = \"recorded_transfer\"\n\n\
         [[policies]]\nreach = \"bye\"\nmax_answers = 3\n\n\
         [[policies]]\nnever = \"transfer\"\nafter = \"menu:7\"\n\n\
         [[policies]]\nmax_answers = 0\n",
    );
    assert_ne!(broken, machine);
    std::fs::write(t.path().join("m.toml"), broken).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["check", "m.toml"])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for expected in [
        "m.toml:14:10: error: field `policies.0.before`: policy 1: node `consent_notise` does not exist\n  = hint: did you mean `consent_notice`?",
        "m.toml:17:1: error: field `policies.1`: policy 2 does not say one thing",
        "m.toml:23:9: error: field `policies.2.after`: policy 3: node `menu` has no `7` edge",
        "m.toml:26:15: error: field `policies.3.max_answers`: policy 4: `max_answers` is 0; it must be 1 to 100",
    ] {
        assert!(text.contains(expected), "no `{expected}` in\n{text}");
    }
}

#[test]
fn serve_refuses_to_start_with_a_machine_that_breaks_a_policy() {
    let t = tempfile::tempdir().unwrap();
    let machines = machines_dir(t.path());
    std::fs::copy(dir().join("never_violating.toml"), machines.join("never_violating.toml")).unwrap();
    let err = common::serve_refused(&machines, &t.path().join("data"));
    assert!(err.contains("never_violating.toml:14:1: error: node `agent`: policy 1"), "{err}");
}

#[tokio::test]
async fn a_reload_that_brings_in_a_broken_policy_is_refused_and_the_running_machines_stay() {
    let t = tempfile::tempdir().unwrap();
    let mut n = Node::start(&t.path().join("data"), &machines_dir(t.path()));
    let machines = |n: &Node| {
        let url = n.admin_url("/admin/machines");
        async move { reqwest::get(url).await.unwrap().json::<Value>().await.unwrap() }
    };
    let before = machines(&n).await;
    // A folder policy every bundled machine with a repeat key breaks.
    let policies = n.machines.join("policies.toml");
    std::fs::write(&policies, "[[policies]]\nmax_answers = 2\n").unwrap();
    let reload = || {
        reqwest::Client::new()
            .post(n.admin_url("/admin/reload"))
            .header("content-type", "application/json")
            .send()
    };
    let r = reload().await.unwrap();
    assert_eq!(r.status(), 422);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["result"], "failed", "{answer}");
    let at = format!("{}:1:1: error:", policies.display());
    let diagnostics = answer["diagnostics"].as_array().unwrap();
    assert!(diagnostics.iter().any(|d| d.as_str().unwrap().starts_with(&at)), "{answer}");
    assert_eq!(machines(&n).await["machines"], before["machines"], "the running set stays");
    // A policy they all keep loads.
    std::fs::write(&policies, "[[policies]]\nnever = \"recorded_transfer\"\nafter = \"nowhere\"\n").unwrap();
    let r = reload().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(n.terminate().success());
}

/// `reach` counts what the caller can do whatever the scripts answer: at bank_balance's PIN input
/// (`verify_pin/ask`, in its module; machine keys off) an API failure would lead to the agent after one answer, but the caller
/// cannot choose it; two wrong entries (the input's two tries) always do.
#[test]
fn reach_counts_the_caller_s_answers_whatever_the_scripts_answer() {
    let t = tempfile::tempdir().unwrap();
    common::copy_bundled_modules(t.path());
    let bank = std::fs::read_to_string(repo().join("machines/bank_balance.toml")).unwrap();
    let check = |within: u32| {
        let policy = format!("[[policies]]\nreach = \"agent\"\nwithin_answers = {within}\n\n[settings]");
        std::fs::write(t.path().join("bank.toml"), bank.replacen("[settings]", &policy, 1)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["check", "bank.toml"])
            .current_dir(t.path())
            .output()
            .unwrap();
        (out.status.code(), stdout(&out))
    };
    let (code, text) = check(1);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(text.matches("error:").count(), 1, "{text}");
    assert!(text.contains("node `verify_pin/ask`: policy 1 (`agent` within 1 answer) is broken: from here `agent` takes 2 answers at the fewest"), "{text}");
    assert_eq!(replay_in(&text), "phonetree simulate bank.toml '--at=2026-01-05T09:00:00+08:00' 1");
    let (code, text) = check(2);
    assert_eq!(code, Some(0), "{text}");
}
