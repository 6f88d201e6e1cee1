//! `phonetree diff` as a user runs it on the pairs of `tests/data/diff/` (each NEW beside its
//! pinned text output, `NEW.txt`): a prompt edit, a retargeted branch, a rename, a reformatted
//! file, a new key and a moved hours window; the clinic machine's resume offer (`clinic*.toml`):
//! the paths through it played as `simulate --resume-from` plays them; the JSON against its
//! schema; the impact on the recorded calls of `tests/data/calls/` against what
//! `phonetree replay --expect-same` says.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use phonetree::proof::explore;
use serde_json::Value;

fn data() -> PathBuf {
    common::repo().join("tests/data/diff")
}

/// `phonetree ARGS` run in `dir`.
fn phonetree_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phonetree")).args(args).current_dir(dir).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `phonetree diff OLD NEW EXTRA...` in `tests/data/diff/`: its output must be `NEW.txt`'s (as
/// the text output); returns its exit code.
fn pinned(old: &str, new: &str, extra: &[&str]) -> i32 {
    let out = phonetree_in(&data(), &[&["diff", old, new][..], extra].concat());
    let expected = std::fs::read_to_string(data().join(new).with_extension("txt")).unwrap();
    assert_eq!(stdout(&out), expected, "{new}: stderr {}", String::from_utf8_lossy(&out.stderr));
    out.status.code().unwrap()
}

#[test]
fn a_prompt_edit_lists_only_prompt_changes_on_the_paths_through_it_and_ends_nothing() {
    assert_eq!(pinned("base.toml", "prompt_edit.toml", &["--exit-code", "ends"]), 0);
    // By default anything that differs fails.
    assert_eq!(pinned("base.toml", "prompt_edit.toml", &[]), 1);
    assert_eq!(pinned("base.toml", "prompt_edit.toml", &["--exit-code", "never"]), 0);
}

#[test]
fn a_retargeted_branch_lists_exactly_the_paths_that_end_differently_and_fails() {
    assert_eq!(pinned("base.toml", "retarget.toml", &["--exit-code", "ends"]), 1);
    assert_eq!(pinned("base.toml", "retarget.toml", &["--exit-code", "never"]), 0);
}

#[test]
fn a_rename_is_found_and_changes_no_behaviour() {
    assert_eq!(pinned("base.toml", "rename.toml", &[]), 1);
}

#[test]
fn reformatting_and_reordering_is_an_empty_diff() {
    assert_eq!(pinned("base.toml", "shuffle.toml", &[]), 0);
}

#[test]
fn a_new_key_is_a_new_path() {
    assert_eq!(pinned("base.toml", "new_key.toml", &["--exit-code", "ends"]), 0);
}

#[test]
fn a_moved_hours_window_lists_only_the_clock_class_that_crosses_it() {
    assert_eq!(pinned("hours_old.toml", "hours_new.toml", &["--exit-code", "ends"]), 1);
}

/// Where `phonetree simulate`'s transcript says the call ended, as `diff` says it.
fn end_of(transcript: &str) -> String {
    let status = transcript.lines().rev().find(|l| !l.starts_with("note: ")).unwrap();
    let dialled = transcript
        .lines()
        .rev()
        .find_map(|l| l.split_once("transfer: bridged to "))
        .map(|(_, to)| to.split(" (caller ID").next().unwrap().to_string());
    if status == "call ended: hangup" {
        "hangup".into()
    } else if let Some(to) = status.strip_prefix("call ended: transferred to ") {
        format!("transfer to {to}")
    } else if status.starts_with("call transferred at node") {
        format!("transfer to {}", dialled.unwrap())
    } else if status.starts_with("no more input") {
        "waits for input".into()
    } else {
        status.to_string()
    }
}

/// Runs `diff OLD NEW EXTRA --format json` in `dir`, then each listed path's `simulate` on NEW:
/// it ends where the diff says; returns the diff.
fn replays_as_said(dir: &Path, old: &str, new: &str, extra: &[&str]) -> Value {
    let out = phonetree_in(
        dir,
        &[&["diff", old, new, "--format", "json", "--exit-code", "never"][..], extra].concat(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for p in v["behaviour"].as_array().unwrap() {
        let inputs: Vec<&str> = p["inputs"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
        let flags: Vec<String> = extra.chunks(2).map(|f| format!("{}={}", f[0], f[1])).collect();
        let mut args = vec!["simulate", new];
        args.extend(flags.iter().map(String::as_str));
        args.extend(&inputs);
        let played = phonetree_in(dir, &args);
        assert!(played.status.success(), "{}", String::from_utf8_lossy(&played.stderr));
        assert_eq!(end_of(&stdout(&played)), p["now"].as_str().unwrap(), "{p}:\n{}", stdout(&played));
        if !p["simulate"].as_str().unwrap().contains('\'') {
            assert_eq!(p["simulate"], format!("phonetree {}", args.join(" ")));
        }
    }
    v
}

#[test]
fn every_simulate_command_plays_what_the_diff_says_on_new() {
    for (old, new) in [
        ("base.toml", "retarget.toml"),
        ("base.toml", "prompt_edit.toml"),
        ("base.toml", "new_key.toml"),
        ("hours_old.toml", "hours_new.toml"),
    ] {
        let v = replays_as_said(&data(), old, new, &[]);
        assert!(!v["behaviour"].as_array().unwrap().is_empty(), "{new}");
    }
    // A transfer to a keyed number plays behind the same outbound guard as `simulate`'s: without
    // `--call-allow-prefix` every such number is refused, and the caller hears `refused`.
    let t = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::repo().join("tests/data/transfers/dial_out.toml")).unwrap();
    std::fs::write(t.path().join("old.toml"), &text).unwrap();
    let edited =
        text.replace("Sorry, we cannot connect you to that number.", "Sorry, that number cannot be called.");
    assert_ne!(edited, text);
    std::fs::write(t.path().join("new.toml"), edited).unwrap();
    let v = replays_as_said(t.path(), "old.toml", "new.toml", &[]);
    let paths = v["behaviour"].as_array().unwrap();
    assert_eq!(paths.len(), 1, "{v:#}");
    assert_eq!((&paths[0]["how"], &paths[0]["node"]), (&"heard".into(), &"refused".into()));
    // Allowed, the example number is dialled: nothing a caller hears changes.
    let v = replays_as_said(t.path(), "old.toml", "new.toml", &["--call-allow-prefix", "+65"]);
    assert_eq!(v["behaviour"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["structure"][0]["text"], "`refused`: prompt changed");
}

/// Every path NEW's explorer plays (`explore_heard_paths`, as `diff` plays them: calls that open
/// with the resume offer too), each run for real as `phonetree simulate NEW PATH...` in
/// `tests/data/diff/`: the path and its transcript.
fn every_path_on(new: &str) -> Vec<(Vec<String>, String)> {
    let text = std::fs::read_to_string(data().join(new)).unwrap();
    let m = common::compile_text(new, &text);
    let mut paths = Vec::new();
    explore::explore_heard_paths(&m, &mut |p| paths.push(p.to_vec()));
    paths
        .into_iter()
        .map(|p| {
            let args: Vec<&str> = ["simulate", new].into_iter().chain(p.iter().map(String::as_str)).collect();
            let played = phonetree_in(&data(), &args);
            assert!(played.status.success(), "{p:?}: {}", String::from_utf8_lossy(&played.stderr));
            (p, stdout(&played))
        })
        .collect()
}

/// `diff OLD NEW --format json`'s paths, each with its path change, which must be `how`, and the
/// path's `simulate` command, which ends where the diff says (`transcripts`: every path played).
fn listed_as_played(
    old: &str,
    new: &str,
    how: &str,
    transcripts: &[(Vec<String>, String)],
) -> Vec<Vec<String>> {
    let out = phonetree_in(&data(), &["diff", old, new, "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["paths"].as_u64().unwrap() as usize, transcripts.len(), "{v:#}");
    let mut listed = Vec::new();
    for p in v["behaviour"].as_array().unwrap() {
        let inputs: Vec<String> =
            p["inputs"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect();
        assert_eq!(p["how"], how, "{p}");
        assert_eq!(p["simulate"], explore::replay(new, &inputs), "{p}");
        let (_, transcript) = transcripts.iter().find(|(path, _)| *path == inputs).expect("an explored path");
        assert_eq!(end_of(transcript), p["now"].as_str().unwrap(), "{p}:\n{transcript}");
        listed.push(inputs);
    }
    listed
}

#[test]
fn the_clinic_machine_against_itself_is_an_empty_diff_with_its_resumed_calls_played() {
    assert_eq!(pinned("clinic.toml", "clinic.toml", &[]), 0);
    let bundled = common::repo().join("machines/clinic_appointments.toml");
    let bundled = bundled.to_str().unwrap();
    let out = phonetree_in(&data(), &["diff", bundled, bundled, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&v["structure"], &v["behaviour"]), (&serde_json::json!([]), &serde_json::json!([])));
    // The paths played are the explorer's, the resume offer's among them.
    let text = std::fs::read_to_string(bundled).unwrap();
    let mut paths = Vec::new();
    explore::explore_heard_paths(&common::compile_text(bundled, &text), &mut |p| paths.push(p.to_vec()));
    assert_eq!(v["paths"].as_u64().unwrap() as usize, paths.len());
    assert!(paths.iter().any(|p| p.iter().any(|t| t.starts_with("--var="))), "{paths:?}");
}

/// `clinic.toml` against `new` (its output pinned, exit 0 with `--exit-code ends`): the paths
/// listed as `prompt changed` are exactly those whose real `simulate` transcript through NEW hears
/// `words`, `among` them.
fn prompt_changed_on_exactly_the_paths_that_hear(new: &str, words: &str, among: &[&str]) {
    assert_eq!(pinned("clinic.toml", new, &["--exit-code", "ends"]), 0);
    let played = every_path_on(new);
    let listed = listed_as_played("clinic.toml", new, "heard", &played);
    let hear_it: Vec<&Vec<String>> =
        played.iter().filter(|(_, t)| t.contains(words)).map(|(p, _)| p).collect();
    assert_eq!(listed.iter().collect::<Vec<_>>(), hear_it);
    for path in among {
        let path: Vec<String> = path.split(' ').map(str::to_string).collect();
        assert!(listed.contains(&path), "{path:?} in {listed:?}");
    }
}

#[test]
fn a_reworded_resume_offer_is_prompt_changed_on_exactly_the_calls_that_open_with_it() {
    let offer = "[main] hears: \"Welcome back to Riverside Clinic. Press 1 to go on where you left off, or 2 to start over.\"";
    // Both answers: going on where the call stopped, with what it kept, and starting again.
    let among = ["--resume-from=confirm_day --var=day=14 1 1", "--resume-from=ask_day 2 3"];
    prompt_changed_on_exactly_the_paths_that_hear("clinic_offer.toml", offer, &among);
    let out = phonetree_in(&data(), &["diff", "clinic.toml", "clinic_offer.toml", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["behaviour"].as_array().unwrap().iter().all(|p| p["node"] == "[resume]"), "{v:#}");
}

#[test]
fn a_reworded_prompt_after_the_resume_offer_is_prompt_changed_on_exactly_the_paths_that_hear_it() {
    let booked = "[booked] hears: \"Thank you. You are booked for day ";
    // In a first call, and in one that goes on at the day's confirmation with the day it kept.
    let among = ["1 1 14 1", "--resume-from=confirm_day --var=day=14 1 1"];
    prompt_changed_on_exactly_the_paths_that_hear("clinic_booked.toml", booked, &among);
}

#[test]
fn a_retarget_reached_through_the_resume_offer_lists_the_resumed_paths_that_end_differently() {
    assert_eq!(pinned("clinic.toml", "clinic_retarget.toml", &["--exit-code", "ends"]), 1);
    let v = replays_as_said(&data(), "clinic.toml", "clinic_retarget.toml", &[]);
    let ends: Vec<String> = v["behaviour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(
                (&p["how"], &p["was"], &p["now"]),
                (&"ends".into(), &"transfer to +6531589340".into(), &"hangup".into()),
                "{p}"
            );
            p["inputs"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect::<Vec<_>>().join(" ")
        })
        .collect();
    // A caller interrupted at the change menu goes on there and presses 1; one interrupted at
    // the booking menu goes back to the main menu first.
    for path in ["2 1", "--resume-from=change 1 1", "--resume-from=book 1 9 2 1"] {
        assert!(ends.iter().any(|e| e == path), "{path} in {ends:?}");
    }
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(common::repo().join("src/proof/diff.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::draft202012::new(&schema).expect("a valid draft 2020-12 schema")
}

fn assert_valid(validator: &jsonschema::Validator, v: &Value) {
    let errors: Vec<String> =
        validator.iter_errors(v).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:?}\n{v:#}");
}

#[test]
fn the_json_output_follows_its_schema() {
    let validator = schema();
    let calls = common::repo().join("tests/data/calls");
    for (old, new) in [
        ("base.toml", "prompt_edit.toml"),
        ("base.toml", "retarget.toml"),
        ("base.toml", "rename.toml"),
        ("base.toml", "shuffle.toml"),
        ("hours_old.toml", "hours_new.toml"),
        ("base.toml", "new_key.toml"),
        ("clinic.toml", "clinic_offer.toml"),
        ("clinic.toml", "clinic_retarget.toml"),
    ] {
        let out = phonetree_in(
            &data(),
            &[
                "diff",
                old,
                new,
                "--format",
                "json",
                "--calls",
                calls.to_str().unwrap(),
                "--exit-code",
                "never",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_valid(&validator, &v);
    }
    // The schema refuses what it should: a path without its command.
    let out = phonetree_in(&data(), &["diff", "base.toml", "retarget.toml", "--format", "json"]);
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["behaviour"][0].as_object_mut().unwrap().remove("simulate");
    assert!(!validator.is_valid(&v));
}

#[test]
fn markdown_is_a_comment_with_each_section() {
    let out = phonetree_in(&data(), &["diff", "base.toml", "retarget.toml", "--format", "markdown"]);
    let md = stdout(&out);
    assert!(md.starts_with("### phonetree diff: `shop` ("), "{md}");
    for part in [
        "**Structure**\n\n- node `agent` removed (transfer)\n",
        "- `main_menu`: edge `key 2` was → `agent`, now → `returns`\n",
        "**Behaviour**\n\n- `2`: was transfer to +6531589338, now hangup: `phonetree simulate retarget.toml 2`\n",
    ] {
        assert!(md.contains(part), "{part}\n---\n{md}");
    }
    assert_eq!(out.status.code(), Some(1));
}

/// `machines/NAME.toml` with every single-line menu prompt begun with "Hello. ".
fn hello(text: &str) -> String {
    text.replace("prompt = \"", "prompt = \"Hello. ")
}

#[test]
fn the_impact_on_recorded_calls_is_what_replay_expect_same_finds() {
    let t = tempfile::tempdir().unwrap();
    let calls = common::repo().join("tests/data/calls");
    let modules = common::repo().join("machines/modules");
    let (mut impact, mut replay_fails, mut ends, mut all) = (0, 0, 0, 0);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&calls).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for file in &files {
        let call: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let name = call["machine"].as_str().unwrap();
        let old = common::repo().join(format!("machines/{name}.toml"));
        let text = std::fs::read_to_string(&old).unwrap();
        // The same machine, and one whose prompts all changed.
        for (edit, new_text) in [("same", text.clone()), ("hello", hello(&text))] {
            let new = t.path().join(format!("{name}-{edit}.toml"));
            std::fs::write(&new, &new_text).unwrap();
            let out = phonetree_in(
                t.path(),
                &[
                    "diff",
                    old.to_str().unwrap(),
                    new.to_str().unwrap(),
                    "--modules",
                    modules.to_str().unwrap(),
                    "--calls",
                    calls.to_str().unwrap(),
                    "--format",
                    "json",
                    "--exit-code",
                    "never",
                ],
            );
            assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            let i = &v["impact"];
            // Every call in the folder is of this machine or of another.
            assert_eq!(
                i["calls"].as_u64().unwrap() + i["other_machines"].as_u64().unwrap(),
                files.len() as u64
            );
            // The calls of this machine, replayed with `--expect-same`.
            let mine: Vec<&PathBuf> = files
                .iter()
                .filter(|f| {
                    let c: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
                    c["machine"] == name
                })
                .collect();
            assert_eq!(i["calls"].as_u64().unwrap(), mine.len() as u64);
            let mut args: Vec<&str> = vec!["replay", "--expect-same", "--modules", modules.to_str().unwrap()];
            args.extend(["--machine", new.to_str().unwrap()]);
            args.extend(mine.iter().map(|f| f.to_str().unwrap()));
            let replayed = phonetree_in(t.path(), &args);
            let differ = stdout(&replayed).lines().filter(|l| !l.contains("): same")).count();
            assert_eq!(replayed.status.success(), differ == 0, "{}", stdout(&replayed));
            assert_eq!(
                i["differ"].as_u64().unwrap(),
                differ as u64,
                "{name} {edit}: {i:#}\n{}",
                stdout(&replayed)
            );
            assert_eq!(i["listed"].as_array().unwrap().len(), differ.min(5));
            if edit == "same" {
                assert_eq!(differ, 0, "{}", stdout(&replayed));
            }
            impact += i["differ"].as_u64().unwrap();
            ends += i["end_differently"].as_u64().unwrap();
            replay_fails += differ as u64;
            all += mine.len() as u64;
        }
    }
    assert_eq!(impact, replay_fails);
    // The prompts changed for every call that hears one; none ends elsewhere.
    assert!(impact > 0 && impact < all, "{impact} of {all}");
    assert_eq!(ends, 0);
}

#[test]
fn a_retarget_ends_a_recorded_call_differently() {
    // The call recorded on abc_restaurant pressed 1, then nothing, and was hung up on: with key 1
    // sent to the representative instead, it is transferred.
    let t = tempfile::tempdir().unwrap();
    let old = common::repo().join("machines/abc_restaurant.toml");
    let text = std::fs::read_to_string(&old).unwrap();
    let retargeted = text.replacen("branches = { 1 = \"reservations\"", "branches = { 1 = \"post_call\"", 1);
    assert_ne!(retargeted, text);
    let new = t.path().join("abc_restaurant.toml");
    std::fs::write(&new, retargeted).unwrap();
    let calls = common::repo().join("tests/data/calls");
    let out = phonetree_in(
        t.path(),
        &["diff", old.to_str().unwrap(), new.to_str().unwrap(), "--calls", calls.to_str().unwrap()],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let impact = text.lines().find(|l| l.starts_with("impact: ")).unwrap();
    assert_eq!(
        impact,
        format!(
            "impact: 1 of 1 recorded call replay differently on {}, 1 end differently (3 of other machines skipped)",
            new.display()
        ),
        "{text}"
    );
    assert!(text.contains("was hungUp, now transferred"), "{text}");
}

#[test]
fn a_changed_setting_is_named_with_the_node_it_moves_and_the_paths_it_ends_elsewhere() {
    let t = tempfile::tempdir().unwrap();
    let old = common::repo().join("machines/abc_restaurant.toml");
    let text = std::fs::read_to_string(&old).unwrap();
    let moved = text.replace("representative = \"+6531589338\"", "representative = \"+6531589339\"");
    assert_ne!(moved, text);
    std::fs::write(t.path().join("abc_restaurant.toml"), moved).unwrap();
    let out = phonetree_in(t.path(), &["diff", old.to_str().unwrap(), "abc_restaurant.toml"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let structure: Vec<&str> =
        text.lines().skip_while(|l| *l != "structure:").take_while(|l| *l != "behaviour:").collect();
    assert_eq!(
        structure,
        [
            "structure:",
            "  setting `representative` changed: was +6531589338, now +6531589339",
            "  `post_call`: settings changed: destination"
        ]
    );
    // Each path to the representative (key 2 then 1 from either main menu), and nothing else.
    let ends: Vec<&str> =
        text.lines().skip_while(|l| *l != "behaviour:").filter(|l| l.contains(": was ")).collect();
    assert_eq!(
        ends,
        [
            "  `1 3 2 1 -`: was transfer to +6531589338, now transfer to +6531589339",
            "  `2 1 -`: was transfer to +6531589338, now transfer to +6531589339"
        ],
        "{text}"
    );
}

#[test]
fn a_machine_that_does_not_compile_is_named() {
    let t = tempfile::tempdir().unwrap();
    let broken = t.path().join("broken.toml");
    std::fs::write(&broken, "name = \"x\"\nstart = \"nowhere\"\n").unwrap();
    let out = phonetree_in(&data(), &["diff", "base.toml", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("phonetree: {} does not compile: fix it, then diff again", broken.display())),
        "{err}"
    );
}

/// A CALL_ACTION of an inbound call to the shop (`tests/data/diff/base.toml`'s number).
fn shop_webhook(session: &str, event: &str, dtmf: Option<&str>, id: Option<&str>) -> String {
    let status = if dtmf.is_some() { "DTMF_RECEIVED" } else { "CALL_RECEIVED" };
    common::Vca {
        session,
        event,
        dtmf,
        client_action_id: id,
        status,
        direction: "INBOUND",
        source: "+6591234567",
        destination: "+6568880100",
        event_data: false,
    }
    .body()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_a_node_stores_and_the_calls_it_recorded_diff_against_a_file() {
    let t = tempfile::tempdir().unwrap();
    let machines = t.path().join("machines");
    std::fs::create_dir_all(&machines).unwrap();
    std::fs::copy(data().join("base.toml"), machines.join("shop.toml")).unwrap();
    const TOKEN: &str = "diff-test-admin-token-0123456789";
    let n = common::Node::start_with(&t.path().join("data"), &machines, &[("PHONETREE_ADMIN_TOKEN", TOKEN)]);
    let vca = n.url("/webhooks/vca");
    // Two calls on the node: one asks for an agent (key 2), one tracks an order (1, then 1).
    for (session, keys) in [("s-agent", &["2"][..]), ("s-track", &["1", "1"][..])] {
        let mut r = common::post(&vca, shop_webhook(session, "e0", None, None)).await;
        for (i, key) in keys.iter().enumerate() {
            let id = r.client_action_id();
            r = common::post(&vca, shop_webhook(session, &format!("e{}", i + 1), Some(key), id.as_deref()))
                .await;
            assert_eq!(r.status, 200);
        }
    }
    let loaded: Value = common::get_json(&n.admin_url("/admin/machines"), Some(TOKEN)).await;
    let short = loaded["machines"][0]["version"].as_str().unwrap()[..12].to_string();
    let server = n.admin_url("");
    let from = ["--server", server.as_str(), "--admin-token", TOKEN];

    // The stored version against retarget.toml: what the two files' diff says, OLD named by the node.
    let by_server = phonetree_in(
        &data(),
        &[&["diff", "retarget.toml", "--version", &short, "--since", "1d", "--format", "json"][..], &from]
            .concat(),
    );
    assert_eq!(by_server.status.code(), Some(1), "{}", String::from_utf8_lossy(&by_server.stderr));
    let by_files = phonetree_in(&data(), &["diff", "base.toml", "retarget.toml", "--format", "json"]);
    let (mut served, files): (Value, Value) = (
        serde_json::from_slice(&by_server.stdout).unwrap(),
        serde_json::from_slice(&by_files.stdout).unwrap(),
    );
    assert_eq!(served["old"]["file"], format!("shop@{short} ({server})"));
    assert_eq!(served["old"]["version"], files["old"]["version"]);
    for key in ["structure", "behaviour", "paths"] {
        assert_eq!(served[key], files[key], "{key}");
    }
    assert_valid(&schema(), &served);
    // The node's two calls replayed through NEW: the agent call goes elsewhere now.
    let impact = served["impact"].take();
    assert_eq!(impact["calls"], 2, "{impact}");
    assert_eq!(impact["differ"], 1, "{impact}");
    assert_eq!(impact["end_differently"], 1, "{impact}");
    assert_eq!(impact["listed"][0]["session"], "s-agent", "{impact}");

    // A version the node never stored, and NEW alone without a version.
    let unknown =
        phonetree_in(&data(), &[&["diff", "retarget.toml", "--version", "0123456789ab"][..], &from].concat());
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no version `0123456789ab` of machine `shop` is stored")
    );
    let alone = phonetree_in(&data(), &["diff", "retarget.toml"]);
    assert!(String::from_utf8_lossy(&alone.stderr).contains("give OLD and NEW, or NEW alone with --server"));
}
