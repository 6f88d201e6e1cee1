//! `phonetree test` as a user runs it: the bundled machines' scenario files pass, a wrong
//! expectation fails with a readable diff (pinned in `tests/data/scenarios/wrong.txt`), a
//! malformed file has every problem listed at its line and column (`malformed.txt`), `--update`
//! rewrites only the transcripts, the JUnit report validates against `tests/data/junit/junit.xsd`,
//! and a recorded call (`calls export`) is a test as it is.

use crate::common;
use crate::common::needs::{Need, needs_tool};

use std::path::Path;
use std::process::{Command, Output};

fn phonetree_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phonetree")).args(args).current_dir(dir).output().unwrap()
}

fn phonetree(args: &[&str]) -> Output {
    phonetree_in(&common::repo(), args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every bundled machine (`machines/*.toml`) has `machines/tests/NAME.calls.toml`, which names it.
#[test]
fn every_bundled_machine_has_a_scenario_file() {
    let machines = common::machine_files("machines");
    assert!(machines.len() >= 6, "{machines:?}");
    for m in machines.iter().filter(|m| m.file_name().is_some_and(|n| n != "policies.toml")) {
        let name = m.file_stem().unwrap().to_str().unwrap();
        let file = common::repo().join(format!("machines/tests/{name}.calls.toml"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(text.contains(&format!("machine = \"{name}\"")), "{} names another machine", file.display());
    }
}

/// `phonetree test` with no PATH runs the machines folder's scenarios (and `tests/`'s): all pass.
#[test]
fn the_bundled_scenarios_pass() {
    let out = phonetree(&["test"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for m in [
        "abc_restaurant",
        "tech_support",
        "callback_request",
        "order_status",
        "bank_balance",
        "card_services",
        "clinic_appointments",
        "clinic_callback",
    ] {
        assert!(
            text.contains(&format!("ok    machines/tests/{m}.calls.toml: ")),
            "{m} ran no scenario:\n{text}"
        );
    }
    assert!(!text.contains("FAIL") && !text.contains("ERROR"), "{text}");
    let last = text.lines().last().unwrap();
    let passed: usize =
        last.strip_suffix(" passed, 0 failed, 0 errors").unwrap_or_else(|| panic!("{last}")).parse().unwrap();
    assert_eq!(passed, text.lines().filter(|l| l.starts_with("ok    ")).count());
    assert!(passed >= 18, "{last}");
}

/// A golden transcript, a `hears` and an `ends` that are wrong: exit 1, each failure said, the
/// transcript as a unified diff; the other scenario of the file still passes.
#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let out = phonetree(&["test", "tests/data/scenarios/wrong.calls.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let expected = std::fs::read_to_string(common::repo().join("tests/data/scenarios/wrong.txt")).unwrap();
    assert_eq!(stdout(&out), expected);
    // machines/README.md shows this run as it is.
    let readme = std::fs::read_to_string(common::repo().join("machines/README.md")).unwrap();
    assert!(
        readme.contains(&format!("$ phonetree test tests/data/scenarios/wrong.calls.toml\n{expected}```"))
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "phonetree: 1 of 2 test(s) failed, 0 could not be run\n"
    );
}

/// Every problem of a malformed file in one run, each at its file:line:col, in file order; the
/// file's well-formed scenario still runs (its machine is not found: an error at its field).
#[test]
fn a_malformed_file_has_every_problem_listed() {
    let out = phonetree(&["test", "tests/data/scenarios/malformed.calls.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let expected =
        std::fs::read_to_string(common::repo().join("tests/data/scenarios/malformed.txt")).unwrap();
    assert_eq!(stdout(&out), expected);
}

/// `--update` writes the transcript where it is missing or stale and leaves the rest of the
/// file as written (comments, order, the other scenario); the file then passes as it is.
#[test]
fn update_rewrites_only_the_transcripts() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("stale.calls.toml");
    let stale = "# kept: a comment\nmachine = \"tech_support\"\n\n[[scenario]]\nname = \"resolved\"  # kept too\ninputs = [\"1\"]\nends = \"hangup\"\ntranscript = \"\"\"\nnot what it plays\n\"\"\"\n\n[[scenario]]\nname = \"an agent\"\ninputs = [\"2\"]\nends = { contains = \"transferred\" }\n";
    std::fs::write(&file, stale).unwrap();
    let machines = common::repo().join("machines");
    let machines = machines.to_str().unwrap();
    let before = phonetree_in(tmp.path(), &["test", "stale.calls.toml", "--machines", machines]);
    assert_eq!(before.status.code(), Some(1), "{}", stdout(&before));
    assert!(stdout(&before).contains("\n    -not what it plays\n"), "{}", stdout(&before));

    let out = phonetree_in(tmp.path(), &["test", "--update", "stale.calls.toml", "--machines", machines]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("updated 2 transcript(s) in stale.calls.toml\n"), "{}", stdout(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    let resolved = "[menu] hears: \"Dear customer, Thank you for contacting Xyz technical support recently. If you have resolved your issue already, press one. Or press two to speak to an agent.\" (press 1 digit)\ncaller presses 1\n[resolved] hangup\ncall ended: hangup\n";
    let expected = stale
        .replace("not what it plays\n", resolved)
        .replace("{ contains = \"transferred\" }\n", "{ contains = \"transferred\" }\ntranscript = \"\"\"\n");
    assert!(text.starts_with(&expected), "{text}");
    assert!(text.ends_with("call transferred at node `agent`: the caller is bridged\n\"\"\"\n"), "{text}");

    let again = phonetree_in(tmp.path(), &["test", "stale.calls.toml", "--machines", machines]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    assert!(stdout(&again).ends_with("2 passed, 0 failed, 0 errors\n"), "{}", stdout(&again));
}

/// The JUnit report of a run with a pass, a failure and errors validates against the JUnit schema
/// with xmllint, and says what happened in each case.
#[test]
fn the_junit_report_validates_against_the_schema() {
    if !needs_tool(Need::Xmllint, "xmllint", "--version") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("junit.xml");
    let out = phonetree(&[
        "test",
        "tests/data/scenarios",
        "machines/tests/tech_support.calls.toml",
        "--junit",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let schema = common::repo().join("tests/data/junit/junit.xsd");
    let lint =
        Command::new("xmllint").arg("--noout").arg("--schema").arg(&schema).arg(&report).output().unwrap();
    assert!(lint.status.success(), "{}", String::from_utf8_lossy(&lint.stderr));
    assert!(String::from_utf8_lossy(&lint.stderr).contains("validates"));

    let xml = std::fs::read_to_string(&report).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(
        (root.attribute("tests"), root.attribute("failures"), root.attribute("errors")),
        (Some("8"), Some("1"), Some("2"))
    );
    let case = |suite: &str, name: &str| {
        doc.descendants()
            .find(|n| {
                n.has_tag_name("testcase")
                    && n.attribute("classname") == Some(suite)
                    && n.attribute("name") == Some(name)
            })
            .unwrap_or_else(|| panic!("no case {suite}: {name}"))
    };
    let wrong = case("tests/data/scenarios/wrong.calls.toml", "hears the hours");
    let failure = wrong.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(failure.attribute("message"), Some("the transcript differs (- expected, + played)"));
    assert!(
        failure.text().unwrap().contains("\n-[hours] hears: \"Our restaurant hours are between 9AM and 10PM")
    );
    let passed = case("machines/tests/tech_support.calls.toml", "the issue is resolved");
    assert_eq!(passed.children().filter(|n| n.is_element()).count(), 0);
    let file = case("tests/data/scenarios/malformed.calls.toml", "(file)");
    let error = file.children().find(|n| n.has_tag_name("error")).unwrap();
    assert_eq!(error.attribute("message"), Some("10 problem(s) in the file"));

    // A real reader of JUnit reports (Python's junitparser, as CI tools read them) finds the same.
    let Some(python) = common::needs::needs_junitparser() else { return };
    let read = r#"
import sys, junitparser
xml = junitparser.JUnitXml.fromfile(sys.argv[1])
for suite in xml:
    for case in suite:
        kinds = [type(r).__name__ + ":" + (r.message or "") for r in case.result]
        print(suite.name + "|" + case.name + "|" + ",".join(kinds))
"#;
    let out = Command::new(python).arg("-c").arg(read).arg(&report).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(lines.lines().count(), 8, "{lines}");
    let result = |suite: &str, name: &str| {
        lines
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{suite}|{name}|")))
            .unwrap_or_else(|| panic!("junitparser found no case {suite}: {name} in\n{lines}"))
            .to_string()
    };
    assert_eq!(
        result("tests/data/scenarios/wrong.calls.toml", "hears the hours"),
        "Failure:the transcript differs (- expected, + played)"
    );
    assert_eq!(result("machines/tests/tech_support.calls.toml", "the issue is resolved"), "");
    assert_eq!(
        result("tests/data/scenarios/malformed.calls.toml", "(file)"),
        "Error:10 problem(s) in the file"
    );
}

/// `calls export`'s JSON is a scenario: the recorded calls of `tests/data/calls/` pass against
/// the bundled machines; one whose recording says another prompt fails with a diff at that entry.
#[test]
fn a_recorded_call_is_a_test_as_it_is() {
    let mut args = vec!["test".to_string()];
    let calls = common::repo().join("tests/data/calls");
    let mut files: Vec<_> = std::fs::read_dir(&calls).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    args.extend(files.iter().map(|f| f.display().to_string()));
    let out = phonetree(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).ends_with(&format!("{} passed, 0 failed, 0 errors\n", files.len())),
        "{}",
        stdout(&out)
    );

    let tmp = tempfile::tempdir().unwrap();
    let recorded = std::fs::read_to_string(calls.join("abc_restaurant.json")).unwrap();
    let edited = recorded.replace("press 3 to return to main menu.", "press 3 for the main menu.");
    assert_ne!(edited, recorded);
    std::fs::write(tmp.path().join("edited.json"), edited).unwrap();
    let machines = common::repo().join("machines");
    let out = phonetree_in(tmp.path(), &["test", "edited.json", "--machines", machines.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.starts_with("FAIL  edited.json: session recorded-abc_restaurant\n    differs at entry 2 (keys 1 at node `main_menu`): recorded [reservations] asks \"Press 1 to make a new reservation, press 2 to reschedule an existing reservation, press 3 for the main menu.\"; replayed [reservations] asks \"Press 1 to make a new reservation, press 2 to reschedule an existing reservation, press 3 to return to main menu.\"\n    --- recorded\n    +++ replayed\n"), "{text}");
    assert!(text.contains("\n    -    [reservations] asks \"Press 1 to make a new reservation, press 2 to reschedule an existing reservation, press 3 for the main menu.\"\n    +    [reservations] asks \"Press 1 to make a new reservation, press 2 to reschedule an existing reservation, press 3 to return to main menu.\"\n"), "{text}");
}

/// A scenario file beside its machine is not read as a machine by `check`, and `test` on the
/// folder finds the machine beside it.
#[test]
fn a_scenario_file_beside_its_machine_is_no_machine() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::repo().join("machines/abc_restaurant.toml"),
        tmp.path().join("abc_restaurant.toml"),
    )
    .unwrap();
    std::fs::copy(
        common::repo().join("machines/tests/abc_restaurant.calls.toml"),
        tmp.path().join("abc_restaurant.calls.toml"),
    )
    .unwrap();
    let check = phonetree_in(tmp.path(), &["check", "."]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    assert!(
        stdout(&check).lines().last().unwrap().starts_with("checked 1 file(s): 1 machine(s) valid"),
        "{}",
        stdout(&check)
    );
    // `--machines` names an empty folder: the machine is found beside the scenario file.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = phonetree_in(tmp.path(), &["test", ".", "--machines", "empty"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let scenarios = std::fs::read_to_string(tmp.path().join("abc_restaurant.calls.toml"))
        .unwrap()
        .matches("[[scenario]]")
        .count();
    assert!(stdout(&out).ends_with(&format!("{scenarios} passed, 0 failed, 0 errors\n")), "{}", stdout(&out));
}

/// `resume_from` plays a call that opens with the machine's resume offer, as `simulate
/// --resume-from` does: `1` goes on at the node with the `vars` given, `2` starts again; with
/// `outbound` it is refused, naming the field.
#[test]
fn resume_from_opens_with_the_offer_and_is_refused_with_outbound() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("resume.calls.toml");
    let scenario = |extra: &str, inputs: &str, ends: &str| {
        format!(
            "[[scenario]]\nname = \"x\"\nmachine = \"clinic_appointments\"\n{extra}\ninputs = {inputs}\nends = {ends}\n"
        )
    };
    let machines = common::repo().join("machines");
    let machines = machines.to_str().unwrap();
    let run = |text: String| {
        std::fs::write(&file, text).unwrap();
        phonetree(&["test", file.to_str().unwrap(), "--machines", machines])
    };
    // Goes on at the day's confirmation with the day kept, then books it.
    let on = run(scenario(
        "resume_from = \"confirm_day\"\nvars = { day = \"27\" }\nhears = [{ contains = \"day 27 of the month\" }]",
        "[\"1\", \"1\"]",
        "\"hangup\"",
    ));
    assert_eq!(on.status.code(), Some(0), "{}", stdout(&on));
    // The same keys with the day never kept: the offer's `2` starts again at the main menu.
    let again = run(scenario(
        "resume_from = \"confirm_day\"\nhears = [{ contains = \"Welcome to Riverside Clinic.\" }]",
        "[\"2\", \"3\"]",
        "\"hangup\"",
    ));
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    // Without the offer, `1` books at the main menu: the day's confirmation is never heard.
    let plain =
        run(scenario("hears = [{ contains = \"day 27 of the month\" }]", "[\"1\", \"1\"]", "\"hangup\""));
    assert_eq!(plain.status.code(), Some(1), "{}", stdout(&plain));
    let outbound = run(scenario("resume_from = \"change\"\noutbound = true", "[\"1\"]", "\"hangup\""));
    let text = stdout(&outbound) + &String::from_utf8_lossy(&outbound.stderr);
    assert_ne!(outbound.status.code(), Some(0), "{text}");
    assert!(text.contains("`resume_from` with `outbound = true`"), "{text}");
}
