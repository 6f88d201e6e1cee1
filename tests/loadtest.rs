//! `phonetree loadtest` against real `phonetree serve` children on sled: the bundled machines
//! played over every edge the node's clock allows with 0 mismatches and duplicates answered
//! identically; a node serving an edited machine caught, with a replay file `phonetree replay`
//! reproduces; and a node killed with SIGKILL and restarted while the load runs.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_phonetree")
}

/// The bundled machines in `dir/machines`, their scripts' APIs on free ports (the load test's stub
/// listens where the scripts call).
fn machines(dir: &Path) -> PathBuf {
    let out = dir.join("machines");
    std::fs::create_dir_all(&out).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("machines");
    let ports = [common::free_port(), common::free_port()];
    for entry in std::fs::read_dir(&repo).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // The URLs and `allow_hosts` alike (one host rule: `127.0.0.1:PORT` exactly).
        let text = text
            .replace("127.0.0.1:8090", &format!("127.0.0.1:{}", ports[0]))
            .replace("127.0.0.1:8091", &format!("127.0.0.1:{}", ports[1]));
        std::fs::write(out.join(path.file_name().unwrap()), text).unwrap();
    }
    // The modules take their hosts from the machines' settings: copied as they are.
    std::fs::create_dir_all(out.join("modules")).unwrap();
    for entry in std::fs::read_dir(repo.join("modules")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, out.join("modules").join(path.file_name().unwrap())).unwrap();
    }
    out
}

/// A `phonetree serve` child on `port`, its store in `dir/data`; waits until it listens.
fn serve(dir: &Path, machines: &Path, port: u16) -> Child {
    serve_with(dir, machines, port, &[]).0
}

/// `serve` with `extra` flags; answers the child and its admin listener's URL.
fn serve_with(dir: &Path, machines: &Path, port: u16, extra: &[&str]) -> (Child, String) {
    serve_on(dir, machines, port, 0, extra)
}

/// `serve_with`, its admin listener on `admin_port` (0: any free port).
fn serve_on(dir: &Path, machines: &Path, port: u16, admin_port: u16, extra: &[&str]) -> (Child, String) {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("node.log")).unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--machines")
        .arg(machines)
        .args(extra)
        // Tests that are not about the admin token run without one.
        .args((!extra.contains(&"--admin-token-file")).then_some("--admin-no-token"))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on"), "the node did not start: {line:?}");
    let mut admin = String::new();
    stdout.read_line(&mut admin).unwrap();
    let admin =
        admin.trim().strip_prefix("admin listening on ").expect("the admin listener's line").to_string();
    // A closed pipe would fail the node's next line.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, format!("http://{admin}"))
}

fn loadtest(target: &str, machines: &Path, dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["loadtest", "--target", target, "--machines"])
        .arg(machines)
        .arg("--report")
        .arg(dir.join("report.json"))
        .arg("--mismatch-file")
        .arg(dir.join("mismatch.json"))
        .args(extra);
    cmd
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// Every machine took every edge (the clock moved to every class for routes on time).
fn assert_covered(r: &Value) {
    for c in r["coverage"].as_array().unwrap() {
        let name = c["machine"].as_str().unwrap();
        assert_eq!(c["taken"], c["edges"], "{name}: not taken {}", c["not_taken"]);
    }
}

#[test]
fn a_small_loadtest_over_the_bundled_machines_on_sled_has_no_mismatch_and_takes_every_edge() {
    let tmp = tempfile::tempdir().unwrap();
    let machines = machines(tmp.path());
    let port = common::free_port();
    let token = tmp.path().join("admin.token");
    std::fs::write(&token, "loadtest-admin-token-0123456789\n").unwrap();
    let token = token.to_str().unwrap();
    let (mut node, admin) =
        serve_with(tmp.path(), &machines, port, &["--clock-control", "--admin-token-file", token]);
    let out = loadtest(
        &format!("http://127.0.0.1:{port}"),
        &machines,
        tmp.path(),
        &[
            "--calls",
            "150",
            "--concurrency",
            "4",
            "--duplicates",
            "30",
            "--stale",
            "20",
            "--early-summaries",
            "20",
            "--lost-starts",
            "20",
            "--clock-control",
            &admin,
            "--admin-token-file",
            token,
        ],
    )
    .output()
    .unwrap();
    let _ = node.kill();
    let _ = node.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r = report(tmp.path());
    assert_eq!(r["mismatches"], 0, "{stdout}");
    assert_eq!(r["calls"], 150);
    assert!(r["webhooks"].as_u64().unwrap() > 450, "{stdout}");
    assert!(r["duplicates"].as_u64().unwrap() > 20, "{stdout}");
    assert_eq!(r["duplicates"], r["duplicates_identical"], "{stdout}");
    assert!(r["stale"].as_u64().unwrap() > 3, "{stdout}");
    assert_eq!(r["stale"], r["stale_answered"], "{stdout}");
    assert!(r["lost_starts"].as_u64().unwrap() > 5, "{stdout}");
    assert!(r["script_requests"].as_u64().unwrap() > 0, "{stdout}");
    assert_eq!(r["script_requests_unexpected"], 0);
    assert_eq!(r["script_requests_repeated"], 0, "{stdout}");
    assert_covered(&r);
    for kind in ["call_received", "call_action", "duplicate", "stale", "session_summary"] {
        assert!(r["latency"][kind]["p99_ms"].as_f64().is_some(), "{kind}: {stdout}");
    }
    assert!(stdout.contains("mismatches: 0"), "{stdout}");
}

#[test]
fn a_node_answering_otherwise_than_the_machine_is_caught_and_the_replay_file_reproduces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let machines = machines(tmp.path());
    // The node serves tech_support with another prompt; the load test's oracle reads the original.
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let original = std::fs::read_to_string(machines.join("tech_support.toml")).unwrap();
    let edited = original.replace("Dear customer,", "Dear caller,");
    assert_ne!(edited, original);
    std::fs::write(served.join("tech_support.toml"), &edited).unwrap();
    let only = tmp.path().join("oracle");
    std::fs::create_dir_all(&only).unwrap();
    std::fs::write(only.join("tech_support.toml"), &original).unwrap();
    let port = common::free_port();
    let mut node = serve(tmp.path(), &served, port);
    let out =
        loadtest(&format!("http://127.0.0.1:{port}"), &only, tmp.path(), &["--calls", "5"]).output().unwrap();
    let _ = node.kill();
    let _ = node.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains("mismatches: 0"), "{stdout}");
    let r = report(tmp.path());
    assert!(r["mismatches"].as_u64().unwrap() >= 1);
    assert!(r["first_mismatch"]["got"].as_str().unwrap().contains("Dear caller,"), "{}", r["first_mismatch"]);
    let replayed = Command::new(bin())
        .arg("replay")
        .arg(tmp.path().join("mismatch.json"))
        .arg("--machine")
        .arg(only.join("tech_support.toml"))
        .arg("--expect-same")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&replayed.stdout);
    assert_eq!(replayed.status.code(), Some(1), "{said}");
    assert!(said.contains("Dear caller,") && !said.contains(": same"), "{said}");
    // Played through the machine the node served, the call is the same: the file is the node's.
    let same = Command::new(bin())
        .arg("replay")
        .arg(tmp.path().join("mismatch.json"))
        .arg("--machine")
        .arg(served.join("tech_support.toml"))
        .arg("--expect-same")
        .output()
        .unwrap();
    assert!(same.status.success(), "{}", String::from_utf8_lossy(&same.stdout));
}

/// Kills `node` with SIGKILL `kills` times, `every` apart and only once `busy` says the node has
/// traffic, restarting it with `restart`, while `load` runs; then waits for `load` (within 120 s)
/// and kills the node. Answers its status, the kills and its stdout.
fn kill_while(
    load: &mut Child,
    kills: usize,
    every: Duration,
    node: &mut Child,
    busy: &dyn Fn() -> bool,
    restart: impl Fn() -> Child,
) -> (std::process::ExitStatus, usize, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut killed = 0;
    let status = loop {
        if let Some(status) = load.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the load test did not end within 120 s");
        if killed < kills {
            std::thread::sleep(every);
            if !busy() {
                continue;
            }
            let _ = node.kill();
            let _ = node.wait();
            killed += 1;
            *node = restart();
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let _ = node.kill();
    let _ = node.wait();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut load.stdout.take().unwrap(), &mut stdout).unwrap();
    (status, killed, stdout)
}

/// The webhooks the node at `admin` (its admin listener's URL, with its admin `token` if it has
/// one) has answered since it started, by its `/metrics`; 0 while it cannot be reached.
fn webhooks_answered(admin: &str, token: Option<&str>) -> u64 {
    use std::io::{Read, Write};
    let Some(addr) = admin.strip_prefix("http://").map(|a| a.trim_end_matches('/')) else { return 0 };
    let Ok(mut socket) = std::net::TcpStream::connect(addr) else { return 0 };
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    let mut answer = String::new();
    if socket.write_all(request.as_bytes()).is_err() || socket.read_to_string(&mut answer).is_err() {
        return 0;
    }
    answer
        .lines()
        .filter(|l| l.starts_with("phonetree_webhooks_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn a_node_killed_with_sigkill_and_restarted_under_load_loses_no_acknowledged_reply() {
    let tmp = tempfile::tempdir().unwrap();
    let machines = machines(tmp.path());
    let (port, admin_port) = (common::free_port(), common::free_port());
    let (mut node, admin) = serve_on(tmp.path(), &machines, port, admin_port, &[]);
    let mut load = loadtest(
        &format!("http://127.0.0.1:{port}"),
        &machines,
        tmp.path(),
        &["--calls", "600", "--concurrency", "4", "--duplicates", "100", "--stub-latency-ms", "20"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    // Each kill waits until the node (re)started has answered a webhook: on a loaded machine the
    // load test may still be proving its machines when the first 500 ms are up.
    let busy = || webhooks_answered(&admin, None) > 0;
    let (status, kills, stdout) =
        kill_while(&mut load, 3, Duration::from_millis(500), &mut node, &busy, || {
            serve_on(tmp.path(), &machines, port, admin_port, &[]).0
        });
    assert!(status.success(), "{stdout}");
    let r = report(tmp.path());
    assert_eq!(r["mismatches"], 0, "{stdout}");
    assert_eq!(r["script_requests_repeated"], 0, "{stdout}");
    assert_eq!(r["duplicates"], r["duplicates_identical"], "{stdout}");
    // Killed at least twice while the load ran (it runs for seconds), and webhooks were retried.
    assert!(kills >= 2 && r["retries"].as_u64().unwrap() > 0, "{kills} kills; {stdout}");
}

#[test]
fn a_node_with_clock_control_killed_with_sigkill_and_restarted_keeps_its_clock_and_every_edge_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let machines = machines(tmp.path());
    let (port, admin_port) = (common::free_port(), common::free_port());
    let token = tmp.path().join("admin.token");
    std::fs::write(&token, "loadtest-admin-token-0123456789\n").unwrap();
    let token = token.to_str().unwrap();
    let flags = ["--clock-control", "--admin-token-file", token];
    let (mut node, admin) = serve_on(tmp.path(), &machines, port, admin_port, &flags);
    let mut load = loadtest(
        &format!("http://127.0.0.1:{port}"),
        &machines,
        tmp.path(),
        &[
            "--calls",
            "400",
            "--concurrency",
            "4",
            "--duplicates",
            "100",
            "--stub-latency-ms",
            "20",
            "--clock-control",
            &admin,
            "--admin-token-file",
            token,
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    // Killed every 400 ms until the load ends, each time once the node (re)started has answered a
    // webhook (on a loaded machine a restart, proving the machines, may take longer than 400 ms,
    // and kills before it answers would only starve the load); each kill notes the offset the node
    // had kept.
    let clock = tmp.path().join("data").join("phonetree-clock-offset");
    let moved = std::cell::Cell::new(0);
    let busy = || webhooks_answered(&admin, Some("loadtest-admin-token-0123456789")) > 0;
    let (status, kills, stdout) =
        kill_while(&mut load, usize::MAX, Duration::from_millis(400), &mut node, &busy, || {
            let kept = std::fs::read_to_string(&clock).unwrap_or_default();
            if kept.lines().nth(1).is_some_and(|n| n.trim() != "0") {
                moved.set(moved.get() + 1);
            }
            serve_on(tmp.path(), &machines, port, admin_port, &flags).0
        });
    assert!(status.success(), "{stdout}");
    let r = report(tmp.path());
    assert_eq!(r["mismatches"], 0, "{stdout}");
    assert_eq!(r["script_requests_repeated"], 0, "{stdout}");
    assert_eq!(r["duplicates"], r["duplicates_identical"], "{stdout}");
    // Every edge, routes on time included: each restart read back the phase's clock.
    assert_covered(&r);
    // The kills happened, some of them while the clock was moved, and webhooks were retried.
    assert!(kills >= 3 && moved.get() >= 1, "{kills} kills, {} with the clock moved; {stdout}", moved.get());
    assert!(r["retries"].as_u64().unwrap() > 0, "{stdout}");
}

#[test]
fn a_target_off_loopback_is_refused_before_any_webhook_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let machines = machines(tmp.path());
    for target in ["http://192.0.2.1:8080", "http://example.com", "http://127.0.0.1:1,http://10.0.0.1:80"] {
        let out = loadtest(target, &machines, tmp.path(), &["--calls", "1"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{target}: {stderr}");
        assert!(
            stderr.contains("not on loopback") && stderr.contains("--allow-remote"),
            "{target}: {stderr}"
        );
        assert!(!tmp.path().join("report.json").exists());
    }
}

/// A machine whose first webhook makes a script request (`PORT` is where its API listens).
const LOOKUP_FIRST: &str = r#"name = "lookup_first"
description = "A script before the first prompt"
start = "lookup"
numbers = ["+6568880009"]
allow_hosts = ["127.0.0.1:PORT"]

[defaults]
voice_profile = "en-US-BenjaminRUS"

[nodes.lookup]
kind = "script"
url = "http://127.0.0.1:PORT/ping?caller={caller}"
timeout_ms = 2000
response_key = "status"
branches = { ok = "done" }
default = "done"
failure = "sorry"

[nodes.done]
kind = "say"
text = "Thank you for calling."
next = "bye"

[nodes.sorry]
kind = "say"
text = "Sorry, we cannot look you up right now."
next = "bye"

[nodes.bye]
kind = "hangup"
"#;

#[test]
fn a_script_request_made_twice_for_one_event_fails_the_run() {
    // Two nodes on two stores: each claims the event's request in its own store, so a webhook
    // delivered to both at once makes the request twice. The replies agree; the effect does not.
    let tmp = tempfile::tempdir().unwrap();
    let machines = tmp.path().join("machines");
    std::fs::create_dir_all(&machines).unwrap();
    std::fs::write(
        machines.join("lookup_first.toml"),
        LOOKUP_FIRST.replace("PORT", &common::free_port().to_string()),
    )
    .unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let (port_a, port_b) = (common::free_port(), common::free_port());
    let mut node_a = serve(&a, &machines, port_a);
    let mut node_b = serve(&b, &machines, port_b);
    let targets = format!("http://127.0.0.1:{port_a},http://127.0.0.1:{port_b}");
    let out = loadtest(
        &targets,
        &machines,
        tmp.path(),
        &["--calls", "6", "--concurrency", "1", "--duplicates", "100"],
    )
    .output()
    .unwrap();
    for node in [&mut node_a, &mut node_b] {
        let _ = node.kill();
        let _ = node.wait();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r = report(tmp.path());
    assert_eq!(r["mismatches"], 0, "{stdout}");
    assert!(r["script_requests_repeated"].as_u64().unwrap() >= 1, "{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("repeated for one event"), "{stderr}");
}

#[test]
fn a_node_killed_while_a_script_request_is_in_flight_takes_its_failure_branch_without_asking_again() {
    // Every call's first webhook waits on the stub API (up to 1 s): a kill lands mid-request.
    let tmp = tempfile::tempdir().unwrap();
    let machines = tmp.path().join("machines");
    std::fs::create_dir_all(&machines).unwrap();
    std::fs::write(
        machines.join("lookup_first.toml"),
        LOOKUP_FIRST.replace("PORT", &common::free_port().to_string()),
    )
    .unwrap();
    let port = common::free_port();
    let mut node = serve(tmp.path(), &machines, port);
    let mut load = loadtest(
        &format!("http://127.0.0.1:{port}"),
        &machines,
        tmp.path(),
        &["--calls", "60", "--concurrency", "4", "--duplicates", "50", "--stub-latency-ms", "1000"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let (status, kills, stdout) =
        kill_while(&mut load, 4, Duration::from_millis(700), &mut node, &|| true, || {
            serve(tmp.path(), &machines, port)
        });
    assert!(status.success(), "{stdout}");
    let r = report(tmp.path());
    assert_eq!(r["mismatches"], 0, "{stdout}");
    assert_eq!(r["script_requests_repeated"], 0, "{stdout}");
    assert_eq!(r["duplicates"], r["duplicates_identical"], "{stdout}");
    // A kill cut a request, whose retry the node answered with the failure branch (the oracle
    // accepted it as that, and the stub saw the request once).
    assert!(kills == 4 && r["script_requests_cut"].as_u64().unwrap() >= 1, "{kills} kills; {stdout}");
}

#[test]
fn a_node_moves_its_clock_only_with_clock_control_and_the_admin_token() {
    let tmp = tempfile::tempdir().unwrap();
    let machines = machines(tmp.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let post_body = |admin: &str, token: Option<&str>, body: &'static str| {
        rt.block_on(async {
            let mut req = reqwest::Client::new()
                .post(format!("{admin}/admin/clock"))
                .header("content-type", "application/json")
                .body(body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let post = |admin: &str, token: Option<&str>| post_body(admin, token, r#"{"offset_ms": 3600000}"#);
    // Off by default: 404 `clock_control_off`, and the load test says how to turn it on.
    let (mut plain, admin) = serve_with(tmp.path(), &machines, common::free_port(), &[]);
    let (status, body) = post(&admin, None);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("clock_control_off") && body.contains("--clock-control"), "{body}");
    let out =
        loadtest("http://127.0.0.1:1", &machines, tmp.path(), &["--calls", "1", "--clock-control", &admin])
            .output()
            .unwrap();
    let _ = plain.kill();
    let _ = plain.wait();
    assert_eq!(out.status.code(), Some(1));
    // With it, behind the admin token like every admin route.
    let token = tmp.path().join("admin.token");
    std::fs::write(&token, "loadtest-admin-token-0123456789\n").unwrap();
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (mut node, admin) = serve_with(
        &other,
        &machines,
        common::free_port(),
        &["--clock-control", "--admin-token-file", token.to_str().unwrap()],
    );
    let (status, _) = post(&admin, None);
    assert_eq!(status, 401);
    // A fraction is refused; a whole number written with a zero fraction is an integer (JSON
    // Schema's `integer`, which the OpenAPI document says).
    let (status, body) = post_body(&admin, Some("loadtest-admin-token-0123456789"), r#"{"offset_ms": 1.5}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_offset"), "{body}");
    let (status, body) =
        post_body(&admin, Some("loadtest-admin-token-0123456789"), r#"{"offset_ms": 3600000.0}"#);
    let _ = node.kill();
    let _ = node.wait();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["offset_ms"], 3_600_000);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let moved = v["now_ms"].as_u64().unwrap();
    assert!(moved > now + 3_500_000 && moved < now + 3_700_000, "{moved} vs {now}");
}

/// `serve` flags that let a node place calls through the load test's stand-in Send Callflow API on
/// `api_port`, to the callees it uses (`+1555...`), as fast as the run goes.
fn placing(api_port: u16) -> Vec<String> {
    [
        "--api-base-url",
        &format!("http://127.0.0.1:{api_port}"),
        "--api-subaccount",
        "acct_loadtest",
        "--api-key",
        "loadtest-api-key",
        "--call-allow-prefix",
        "+1555",
        "--call-rate-per-destination",
        "10000",
        "--call-rate-overall",
        "10000",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn outbound_calls_placed_through_post_calls_open_as_the_engine_says_and_play_on() {
    let tmp = tempfile::tempdir().unwrap();
    let machines = machines(tmp.path());
    let (port, api_port) = (common::free_port(), common::free_port());
    let flags = placing(api_port);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (mut node, admin) = serve_with(tmp.path(), &machines, port, &flags);
    let api = format!("127.0.0.1:{api_port}");
    let outbound = ["--outbound", "60", "--admin", &admin, "--callflow-api-listen", &api];
    let mut args = vec!["--calls", "120", "--concurrency", "4", "--duplicates", "20", "--stale", "20"];
    args.extend(outbound);
    let out = loadtest(&format!("http://127.0.0.1:{port}"), &machines, tmp.path(), &args).output().unwrap();
    let _ = node.kill();
    let _ = node.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r = report(tmp.path());
    assert_eq!(r["mismatches"], 0, "{stdout}");
    assert!(r["outbound"].as_u64().unwrap() >= 30, "{stdout}");
    assert_eq!(r["duplicates"], r["duplicates_identical"], "{stdout}");

    // A node whose abc_restaurant opens otherwise: caught at the callflow 8x8 would receive.
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let original = std::fs::read_to_string(machines.join("abc_restaurant.toml")).unwrap();
    let only = tmp.path().join("oracle");
    std::fs::create_dir_all(&only).unwrap();
    std::fs::write(only.join("abc_restaurant.toml"), &original).unwrap();
    std::fs::write(served.join("abc_restaurant.toml"), original.replace("Welcome to ABC", "Hello from ABC"))
        .unwrap();
    let other = tmp.path().join("edited");
    std::fs::create_dir_all(&other).unwrap();
    let port = common::free_port();
    let (mut node, admin) = serve_with(&other, &served, port, &flags);
    let outbound = ["--outbound", "100", "--admin", &admin, "--callflow-api-listen", &api, "--calls", "3"];
    let out = loadtest(&format!("http://127.0.0.1:{port}"), &only, tmp.path(), &outbound).output().unwrap();
    let _ = node.kill();
    let _ = node.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let r = report(tmp.path());
    assert!(r["first_mismatch"]["webhook"].as_str().unwrap().contains("outbound opening"), "{stdout}");
    assert!(r["first_mismatch"]["got"].as_str().unwrap().contains("Hello from ABC"), "{stdout}");
}

#[test]
fn callers_who_hang_up_at_a_menu_call_again_and_hear_the_resume_offer_and_unanswered_transfers_schedule_callbacks()
 {
    let tmp = tempfile::tempdir().unwrap();
    let all = machines(tmp.path());
    // The clinic and its callback machine alone: every call is one of theirs.
    let clinic = tmp.path().join("clinic");
    std::fs::create_dir_all(&clinic).unwrap();
    for name in ["clinic_appointments.toml", "clinic_callback.toml"] {
        std::fs::copy(all.join(name), clinic.join(name)).unwrap();
    }
    let port = common::free_port();
    let (mut node, admin) = serve_with(tmp.path(), &clinic, port, &[]);
    let out = loadtest(
        &format!("http://127.0.0.1:{port}"),
        &clinic,
        tmp.path(),
        &[
            "--calls",
            "120",
            "--concurrency",
            "4",
            "--duplicates",
            "20",
            "--stale",
            "20",
            "--resume",
            "100",
            "--unanswered",
            "100",
            "--admin",
            &admin,
        ],
    )
    .output()
    .unwrap();
    let _ = node.kill();
    let _ = node.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r = report(tmp.path());
    assert_eq!(r["mismatches"], 0, "{stdout}");
    assert_covered(&r);
    // Each caller who called again was offered to go on (the node's offer is the engine's, byte
    // for byte), and both answers were taken.
    let again = r["called_again"].as_u64().unwrap();
    assert!(again >= 10, "{stdout}");
    assert_eq!(r["resume_offers"].as_u64().unwrap(), again, "{stdout}");
    assert!(r["resumed"].as_u64().unwrap() > 0, "{stdout}");
    assert!(r["started_again"].as_u64().unwrap() > 0, "{stdout}");
    assert_eq!(r["resumed"].as_u64().unwrap() + r["started_again"].as_u64().unwrap(), again, "{stdout}");
    // Every front-desk call was summarised NO_ANSWER and its callback found as the machine says.
    assert!(r["callbacks_checked"].as_u64().unwrap() >= 5, "{stdout}");
}
