//! The `phonetree` binary as a user runs it: exit codes, diagnostics and transcripts.

use crate::common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn phonetree(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phonetree")).args(args).current_dir(common::repo()).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_accepts_the_bundled_machines() {
    let out = phonetree(&["check", "machines/"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let last = stdout(&out).lines().last().unwrap().to_string();
    assert!(last.starts_with("checked "), "{last}");
    assert!(last.ends_with("; 0 error(s), 0 warning(s)"), "{last}");
}

#[test]
fn check_prints_each_rule_case_exactly_and_fails() {
    let dir = common::repo().join("tests/data/diagnostics");
    for case in
        ["unknown_target.toml", "trap.toml", "bad_toml.toml", "json_duplicate_key.json", "prefix_keys.toml"]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["check", case])
            .current_dir(&dir)
            .output()
            .unwrap();
        let expected = std::fs::read_to_string(dir.join(case).with_extension("txt")).unwrap();
        assert_eq!(stdout(&out), expected, "{case}");
        let warnings_only = case == "prefix_keys.toml";
        assert_eq!(out.status.code(), Some(if warnings_only { 0 } else { 1 }), "{case}");
    }
}

#[test]
fn check_reports_every_file_of_a_folder_at_once() {
    let out = phonetree(&["check", "tests/data/diagnostics", "machines"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for case in ["unknown_target.toml:16:18: error", "trap.toml:24:8: error", "json_syntax.json:4:3: error"] {
        assert!(text.contains(case), "missing {case}");
    }
}

#[test]
fn check_of_a_missing_path_is_an_error() {
    let out = phonetree(&["check", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("no/such/dir: error: cannot read: "), "{}", stdout(&out));
}

#[test]
fn simulate_book_a_table_for_tomorrow() {
    let out = phonetree(&["simulate", "machines/abc_restaurant.toml", "1", "1", "2"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[lines.len() - 3],
        "[booked_tomorrow] hears: \"We have booked your table for tomorrow, thank you.\""
    );
    assert_eq!(lines[lines.len() - 2], "[goodbye] hangup");
    assert_eq!(lines[lines.len() - 1], "call ended: hangup");
}

#[test]
fn simulate_connect_ends_in_a_transfer() {
    let out = phonetree(&["simulate", "machines/abc_restaurant.toml", "2", "1"]);
    let text = stdout(&out);
    assert!(text.contains("[post_call] transfer: bridged to +6531589338 (caller ID +6568888888)"), "{text}");
    assert!(text.ends_with("call transferred at node `post_call`: the caller is bridged\n"), "{text}");
}

#[test]
fn simulate_outbound_prints_the_opening_makecall_and_first_prompt_and_plays_on() {
    let out = phonetree(&["simulate", "abc_restaurant", "--outbound", "--to", "+6598888888", "1", "1", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("outbound call from abc_restaurant (version "), "{text}");
    assert!(lines[0].ends_with(") on +6568888888 to +6598888888"), "{text}");
    assert_eq!(lines[1], "makeCall: dials +6598888888 (caller ID +6568888888)");
    assert!(lines[2].starts_with("[main_menu] hears: \"Welcome to ABC Restaurant,"), "{text}");
    assert_eq!(
        lines[lines.len() - 3],
        "[booked_tomorrow] hears: \"We have booked your table for tomorrow, thank you.\""
    );
    assert_eq!(lines[lines.len() - 1], "call ended: hangup");
    // --json: the opening is the tutorial's initial Send Callflow request, then the replies.
    let out = phonetree(&["simulate", "abc_restaurant", "--outbound", "--to", "+6598888888", "--json", "1"]);
    let docs: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(
        common::comparable(docs[0].clone()),
        common::comparable(common::golden("seeds/advanced/initial.json"))
    );
    assert_eq!(
        common::comparable(docs[1].clone())["callflow"],
        common::comparable(common::golden("seeds/advanced/reservations.json"))["callflow"]
    );
}

#[test]
fn simulate_invalid_input() {
    let out = phonetree(&["simulate", "abc_restaurant", "9"]);
    let text = stdout(&out);
    assert!(
        text.contains(
            "[invalid] hears: \"Invalid input, please call again.\"\n[goodbye] hangup\ncall ended: hangup\n"
        ),
        "{text}"
    );
}

#[test]
fn simulate_json_prints_one_callflow_per_line() {
    let out = phonetree(&["simulate", "machines/tech_support.toml", "--json", "3", "2"]);
    let docs: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[2]["callflow"][0]["action"], "makeCall");
}

#[test]
fn simulate_reads_inputs_from_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["simulate", "machines/abc_restaurant.toml"])
        .current_dir(common::repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"1\n2\n1\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        stdout(&out).contains("[kept] hears: \"Keeping your current reservation, thank you.\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn simulate_rejects_inputs_that_are_not_keys() {
    let out = phonetree(&["simulate", "machines/abc_restaurant.toml", "1", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`x` is not a keypress"));
}

#[test]
fn simulate_of_a_broken_machine_prints_its_diagnostics() {
    let out = phonetree(&["simulate", "tests/data/diagnostics/unknown_target.toml", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown_target.toml:16:18: error"), "{stderr}");
}

#[test]
fn check_rejects_a_trap_with_a_counterexample_that_simulate_replays() {
    let dir = common::repo().join("tests/data/diagnostics");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_phonetree")).args(args).current_dir(&dir).output().unwrap()
    };
    let out = run(&["check", "trap.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let replay = text.split('`').find(|s| s.starts_with("phonetree simulate ")).expect("a replay command");
    assert_eq!(replay, "phonetree simulate trap.toml 2");
    // Replaying it (and pressing on) shows the call stuck at `loop`, whatever the caller does.
    let mut args: Vec<&str> = replay.split(' ').skip(1).collect();
    args.extend(["1", "5", "-", "#", "1"]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0));
    let transcript = stdout(&out);
    assert!(transcript.ends_with("no more input: the call waits at menu `loop`\n"), "{transcript}");
    assert_eq!(transcript.matches("[loop] hears").count(), 6, "{transcript}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("fails its proof"));
}

#[test]
fn check_rejects_speaking_a_stored_variable_an_answer_may_leave_unset_and_simulate_replays_it() {
    let dir = common::repo().join("tests/data/diagnostics");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_phonetree")).args(args).current_dir(&dir).output().unwrap()
    };
    let out = run(&["check", "script_unset_stored.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let replay = text.split('`').find(|s| s.starts_with("phonetree simulate ")).expect("a replay command");
    assert_eq!(replay, "phonetree simulate script_unset_stored.toml '@?true' 1");
    // The answer `{"ok": true}` without `balance` takes the `good` branch; `tell` cannot say it.
    let out = run(&["simulate", "script_unset_stored.toml", "@?true", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.ends_with("phonetree: node `tell`: the call has no variable `balance`\n"), "{stderr}");
    // With the key, the same inputs are heard through.
    let out = run(&["simulate", "script_unset_stored.toml", "@true", "1"]);
    assert!(stdout(&out).contains("[tell] hears: \"Your balance is 1.\""), "{}", stdout(&out));
}

#[test]
fn simulate_answers_script_requests_from_inputs_a_file_or_says_what_it_needs() {
    let run = |args: &[&str]| phonetree(args);
    let inline = run(&["simulate", "machines/order_status.toml", "123456#", "@1", "2"]);
    assert_eq!(inline.status.code(), Some(0), "{}", String::from_utf8_lossy(&inline.stderr));
    let text = stdout(&inline);
    assert!(
        text.contains(
            "[lookup] asks GET http://127.0.0.1:8090/orders/123456?caller=%2B15550000001 -> HTTP 200"
        ),
        "{text}"
    );
    assert!(
        text.contains("[in_transit] hears: \"Your order 1 2 3 4 5 6 is on its way and will arrive 1.\""),
        "{text}"
    );
    // `@?1`: the same answer without `data.eta`, which takes its default.
    let text = stdout(&run(&["simulate", "machines/order_status.toml", "123456#", "@?1", "2"]));
    assert!(text.contains("is on its way and will arrive soon.\""), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let answers = dir.path().join("answers.json");
    std::fs::write(
        &answers,
        r#"{"lookup": [{"status": 200, "body": {"data": {"code": 1, "eta": "on Monday"}}}, {"failed": "timeout"}]}"#,
    )
    .unwrap();
    let canned = run(&[
        "simulate",
        "machines/order_status.toml",
        "--answers",
        answers.to_str().unwrap(),
        "123456#",
        "1",
        "654321#",
    ]);
    let text = stdout(&canned);
    assert!(text.contains("will arrive on Monday."), "{text}");
    assert!(text.contains("-> no answer (timeout)"), "{text}");
    assert!(text.ends_with("call transferred at node `agent`: the caller is bridged\n"), "{text}");

    let missing = run(&["simulate", "machines/order_status.toml", "123456#"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("node `lookup` asks GET"));
}

/// A one-shot HTTP server answering any request with `status` and `body`; its base URL.
fn answering_once(status: &'static str, content_type: &'static str, body: &'static str) -> String {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        reader.by_ref().take(length).read_to_end(&mut Vec::new()).unwrap();
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        reader.into_inner().write_all(answer.as_bytes()).unwrap();
    });
    url
}

#[test]
fn call_through_a_server_shows_what_the_server_answered() {
    let call = |url: &str| phonetree(&["call", "--machine", "nope", "--to", "+6591178965", "--server", url]);
    let refused = call(&answering_once(
        "404 Not Found",
        "application/json",
        r#"{"error": {"code": "unknown_machine", "message": "no machine named `nope` is loaded"}}"#,
    ));
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&refused.stderr), "phonetree: no machine named `nope` is loaded\n");

    let url = answering_once("502 Bad Gateway", "text/html", "<html>proxy error</html>\n");
    let not_json = call(&url);
    assert_eq!(not_json.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&not_json.stderr),
        format!("phonetree: {url}/calls answered HTTP 502 Bad Gateway: <html>proxy error</html>\n")
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let unreachable = call(&format!("http://{closed}"));
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.starts_with(&format!("phonetree: cannot reach http://{closed}/calls: ")), "{stderr}");
}

/// `url` with a password in it (where it has none): the database at hand trusts loopback, so
/// the password is never asked for, only carried, and must never be shown.
fn with_password(url: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    match rest.split_once('@') {
        Some((user, host)) if !user.contains(':') => format!("{scheme}://{user}:{password}@{host}"),
        _ => url.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_live_calls_to_a_store_whose_node_goes_on_with_them() {
    use common::{Node, Vca, post, vss};
    let t = tempfile::tempdir().unwrap();
    let machines = common::machines_dir(t.path());
    let source = t.path().join("a");
    let mut node = Node::start(&source, &machines);
    let vca = node.url("/webhooks/vca");
    let first = post(&vca, Vca::abc("s-copy", "e1", Some("1"), None).body()).await;
    let id = first.client_action_id().unwrap();
    let last = post(&vca, Vca::abc("s-copy", "e2", Some("1"), Some(&id)).body()).await;
    let id = last.client_action_id().unwrap();
    assert_eq!((first.how.as_str(), last.how.as_str()), ("applied", "applied"));
    let ended = post(&vca, Vca::abc("s-ended", "x1", Some("9"), None).body()).await;
    assert_eq!(ended.status, 200);
    assert_eq!(post(&node.url("/webhooks/vss"), vss("s-ended", "COMPLETED")).await.status, 200);
    assert_eq!(post(&node.url("/webhooks/vss"), vss("s-unknown", "FAILED")).await.status, 200);
    assert!(node.terminate().success());
    // The machine is edited before the node on the target starts: the copied call goes on with
    // the version it began on, kept in the store and copied with it.
    let file = machines.join("abc_restaurant.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("booked your table for tomorrow", "reserved a table tomorrow"))
        .unwrap();

    let from = format!("sled:{}", source.display());
    let same =
        phonetree(&["store", "copy", "--from", &from, "--to", &format!("sled:{}/../a", source.display())]);
    assert_eq!(same.status.code(), Some(2), "{}", String::from_utf8_lossy(&same.stderr));
    assert!(String::from_utf8_lossy(&same.stderr).contains("--from and --to are one store"));

    let mut targets = vec![(format!("sled:{}", t.path().join("b").display()), None)];
    // The schema lives as long as its folder (see `common::backends`).
    let pg = t.path().join("pg");
    std::fs::create_dir_all(&pg).unwrap();
    if let Some(url) = common::backends::postgres_url_for(&pg).await {
        targets.push((with_password(&url, "s3cret"), Some(url)));
    }
    for (to, env) in targets {
        let out = phonetree(&["store", "copy", "--from", &from, "--to", &to]);
        let (text, stderr) = (stdout(&out), String::from_utf8_lossy(&out.stderr).into_owned());
        assert_eq!(out.status.code(), Some(0), "{to}: {stderr}");
        assert!(text.contains("machine versions: 4\n"), "{text}");
        assert!(text.contains("sessions: 2 (replies kept: 3, older events known: 0"), "{text}");
        assert!(text.contains("summaries: 1)\nsummaries of sessions not stored: 1\n"), "{text}");
        assert!(text.contains("interrupted calls (resume): 0\nscheduled callbacks: 0\n"), "{text}");
        assert!(text.contains("action key: copied\n"), "{text}");
        assert!(!format!("{text}{stderr}").contains("s3cret"), "{text}{stderr}");

        let data = t.path().join(format!("target-{}", to.split(':').next().unwrap()));
        let mut node = match &env {
            None => Node::start(std::path::Path::new(to.strip_prefix("sled:").unwrap()), &machines),
            Some(url) => Node::start_with(&data, &machines, &[("PHONETREE_STORE", url)]),
        };
        let vca = node.url("/webhooks/vca");
        let again = post(&vca, Vca::abc("s-copy", "e2", Some("1"), Some(&id)).body()).await;
        assert_eq!((again.how.as_str(), &again.body), ("duplicate", &last.body), "{to}");
        let before = post(&vca, Vca::abc("s-copy", "e1", Some("1"), None).body()).await;
        assert_eq!((before.how.as_str(), &before.body), ("duplicate", &first.body), "{to}");
        let on = post(&vca, Vca::abc("s-copy", "e3", Some("2"), Some(&id)).body()).await;
        assert_eq!(on.how, "applied", "{to}");
        assert_eq!(
            common::comparable(on.json()),
            common::comparable(common::golden("seeds/advanced/booked_tomorrow.json")),
            "{to}: the call goes on with the machine it began on"
        );
        // The source node's ids verify on the target: the key was copied with the calls.
        assert!(!node.log().contains("clientActionId refused"), "{to}: {}", node.log());
        assert!(node.terminate().success());

        let twice = phonetree(&["store", "copy", "--from", &from, "--to", &to]);
        assert_eq!(twice.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&twice.stderr);
        assert!(stderr.contains("the target holds 2 session(s) already"), "{stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
}

/// Every command a failing proof prints in its hints, run as printed (in a POSIX shell, in the
/// folder `check` ran in): it plays the call to the node the diagnostic names. A violation no input
/// reaches prints no command at all, never an empty one.
#[test]
fn every_hint_command_replays_the_call_to_its_node() {
    let dir = common::repo().join("tests/data/diagnostics");
    let cases =
        ["trap.toml", "script_unset_stored.toml", "stored_rule_never_taken.toml", "trap_and_errors.toml"];
    let out = Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["check", "--json"])
        .args(cases)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut replayed = 0;
    for d in report["diagnostics"].as_array().unwrap() {
        let (Some(node), Some(hint)) = (d["node"].as_str(), d["hint"].as_str()) else { continue };
        let command = hint.split('`').find(|s| s.starts_with("phonetree simulate "));
        // Where no input reaches, or other errors stop `simulate`, the hint holds no command.
        if d["message"] == "no input reaches this node" || hint.contains("once the errors above are fixed") {
            assert_eq!(command, None, "{d}");
        }
        let Some(command) = command else { continue };
        // The call's start alone reads no keys: stdin is empty, never a terminal to wait on.
        let words: Vec<&str> = command.split(' ').collect();
        assert!(words.len() > 3, "an empty replay command: {d}");
        let shell = command.replacen("phonetree", env!("CARGO_BIN_EXE_phonetree"), 1);
        let played = Command::new("sh").args(["-c", &shell]).current_dir(&dir).output().unwrap();
        let text = format!("{}{}", stdout(&played), String::from_utf8_lossy(&played.stderr));
        assert!(
            text.contains(&format!("[{node}]")) || text.contains(&format!("`{node}`")),
            "{command}: {text}"
        );
        replayed += 1;
    }
    // The trap, the unset variable, and the rule no answer takes (at its route).
    assert_eq!(replayed, 3, "{report:#}");
}

/// `phonetree check machines/ | head -1`: a command whose stdout is closed before it writes stops
/// quietly with a pipe writer's exit code (141), never a panic on stderr.
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    for args in [
        &["check", "machines/"][..],
        &["export", "machines/bank_balance.toml", "--format", "vxml"],
        &["simulate", "machines/abc_restaurant.toml", "1", "1"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(args)
            .current_dir(common::repo())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command has written anything (it proves first).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}
