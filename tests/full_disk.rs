//! A full disk under a real `phonetree serve`: the node answers with the fallback, stops by itself
//! with exit code 74 (so its supervisor restarts it; sled refuses all work after an I/O error),
//! logs the failure once, and a restart after the space is freed resumes every acknowledged call.
//!
//! The store sits on a small tmpfs the test mounts, which needs root. Without it the test prints
//! one `skipped: full disk: ...` line; `PHONETREE_REQUIRE_TMPFS=1` (set by `.ci/run`) makes that a
//! failure.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// Size of the filesystem the store lives on: room for the store, then filled up by the test.
const TMPFS_SIZE: &str = "16m";
/// How long the node may take to stop after its store failed; only a hang would take longer.
const STOP_WAIT_MAX: Duration = Duration::from_secs(60);
/// Webhooks sent into the full disk before the store must have noticed (sled fills the last
/// partly written page first).
const WEBHOOKS_MAX: usize = 5000;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(dir)
            .output();
        let why = match mounted {
            Ok(out) if out.status.success() => return Some(Tmpfs(dir.to_path_buf())),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        common::needs::absent(common::needs::Need::Tmpfs, &format!("cannot mount a tmpfs: {why}"));
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `file` until the filesystem is full.
fn fill(file: &Path) {
    let mut f = std::fs::File::create(file).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
                break;
            }
        }
    }
    let _ = f.sync_all();
}

#[tokio::test]
async fn a_full_disk_stops_the_node_and_a_restart_after_freeing_it_resumes_every_acknowledged_call() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let Some(_tmpfs) = Tmpfs::mount(&data) else { return };
    let machines = machines_dir(t.path());
    let mut n = Node::start(&data, &machines);
    let vca = n.url("/webhooks/vca");
    let client = client_within(Duration::from_secs(30));

    // A call acknowledged before the disk fills.
    let before = post(&vca, Vca::abc("s-before", "e1", Some("1"), None).body()).await;
    assert_eq!(before.how, "applied");
    let id = before.client_action_id().unwrap();

    let filler = data.join("filler");
    fill(&filler);

    // New calls until the store fails; each answer is a callflow, acknowledged or the fallback.
    let mut acknowledged = Vec::new();
    let mut fallbacks = 0;
    for i in 0..WEBHOOKS_MAX {
        let session = format!("s-full-{i}");
        let body = Vca::abc(&session, "e1", Some("1"), None).body();
        let Ok(r) = try_post(&client, &vca, body.clone()).await else { break };
        r.callflow();
        if r.how == "fallback" {
            fallbacks += 1;
            break;
        }
        assert_eq!(r.how, "applied");
        acknowledged.push((session, body, r.body));
    }
    assert_eq!(fallbacks, 1, "the full disk was noticed within {WEBHOOKS_MAX} webhooks");
    // Those that still fit were acknowledged: they must survive.
    let health = client.get(n.url("/healthz")).send().await;
    if let Ok(h) = health {
        // The node may already be gone; if it answers, it says it failed.
        let status = h.status().as_u16();
        let body: serde_json::Value = h.json().await.unwrap_or_default();
        assert_eq!((status, &body["status"]), (503, &serde_json::json!("failed")), "{body}");
    }

    let started = Instant::now();
    let code = loop {
        if let Some(status) = n.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(started.elapsed() < STOP_WAIT_MAX, "the node did not stop after its store failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code, Some(74), "EX_IOERR asks the supervisor for a restart\n{}", n.log());
    let log = n.log();
    assert_eq!(log.matches("the store cannot recover").count(), 1, "logged once:\n{log}");
    let ours = log.lines().filter(|l| l.contains(" ERROR ") && l.contains("phonetree::")).count();
    assert_eq!(ours, 1, "one ERROR line, not one per webhook:\n{log}");

    // Space freed: the restarted node resumes every acknowledged call where it was.
    std::fs::remove_file(&filler).unwrap();
    n.restart();
    let vca = n.url("/webhooks/vca");
    let next = post(&vca, Vca::abc("s-before", "e2", Some("1"), Some(&id)).body()).await;
    assert_eq!(next.how, "applied", "{}", String::from_utf8_lossy(&next.body));
    for (session, body, reply) in &acknowledged {
        let again = post(&vca, body.clone()).await;
        assert_eq!((again.how.as_str(), &again.body), ("duplicate", reply), "{session} was acknowledged");
    }
    let fresh = post(&vca, Vca::abc("s-after", "e1", Some("1"), None).body()).await;
    assert_eq!(fresh.how, "applied");
}

/// Tries `serve` makes to open its store on a full disk (`START_ATTEMPTS` of src/cli/serve.rs).
const START_ATTEMPTS: usize = 6;
/// What `serve` logs before each new try.
const RETRYING: &str = "the store's disk is full: free space; trying to open it again";

/// Sends new calls until the node's store fails on the full disk, then waits for it to stop
/// (exit 74).
async fn until_the_store_fails(n: &mut Node) {
    let vca = n.url("/webhooks/vca");
    let client = client_within(Duration::from_secs(30));
    for i in 0..WEBHOOKS_MAX {
        let body = Vca::abc(&format!("s-fill-{i}"), "e1", Some("1"), None).body();
        match try_post(&client, &vca, body).await {
            Ok(r) if r.how == "fallback" => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let started = Instant::now();
    let code = loop {
        if let Some(status) = n.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(started.elapsed() < STOP_WAIT_MAX, "the node did not stop after its store failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code, Some(74), "{}", n.log());
}

/// `phonetree serve` on `data`, its stdout piped, its log in `log`.
fn serve(data: &Path, machines: &Path, log: &Path) -> std::process::Child {
    serve_with(data, machines, log, &[("PHONETREE_ADMIN_NO_TOKEN", "1")])
}

/// `serve` as above with `env` (no admin token unless `env` says otherwise).
fn serve_with(data: &Path, machines: &Path, log: &Path, env: &[(&str, &str)]) -> std::process::Child {
    let log = std::fs::File::create(log).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .arg("--machines")
        .arg(machines)
        .env("PHONETREE_LOG", "debug")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// How `child` (a `serve` expected to give up) exited; bounded by `STOP_WAIT_MAX`.
async fn exited(child: &mut std::process::Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < STOP_WAIT_MAX, "the node neither started nor stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first line `child` prints on stdout (`listening on ADDR` once it serves).
async fn first_line(child: &mut std::process::Child) -> String {
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        line
    })
    .await
    .unwrap()
}

/// Waits until `log` holds `line` (the node logs it), or the node exits; bounded.
async fn logged(child: &mut std::process::Child, log: &Path, line: &str) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(line) || child.try_wait().unwrap().is_some() {
            return text;
        }
        assert!(started.elapsed() < STOP_WAIT_MAX, "`{line}` not logged:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A start on a disk still full (the store failed on it, the node stopped with 74, the supervisor
/// starts it again): the node does not give up at once, which would make systemd's start limit
/// give up on it, but tries again `START_ATTEMPTS` times, a few seconds apart, each logged, then
/// exits 74; and once space is freed while it tries, it opens the store and serves.
#[tokio::test]
async fn a_start_on_a_full_disk_tries_again_then_exits_74_and_serves_once_space_is_freed() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let Some(_tmpfs) = Tmpfs::mount(&data) else { return };
    let machines = machines_dir(t.path());
    let mut n = Node::start(&data, &machines);
    let before = post(&n.url("/webhooks/vca"), Vca::abc("s-before", "e1", Some("1"), None).body()).await;
    assert_eq!(before.how, "applied");
    let id = before.client_action_id().unwrap();
    let filler = data.join("filler");
    fill(&filler);
    until_the_store_fails(&mut n).await;

    // Started again on the full disk: it tries, logs each try, then exits 74.
    let log = t.path().join("full.log");
    let mut child = serve(&data, &machines, &log);
    let started = Instant::now();
    let status = exited(&mut child).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = writeln!(std::io::stderr(), "a start on a full disk gave up after {:?}", started.elapsed());
    assert_eq!(status.code(), Some(74), "EX_IOERR, as when the store fails while serving:\n{text}");
    assert_eq!(text.matches(RETRYING).count(), START_ATTEMPTS - 1, "each try logged:\n{text}");
    assert!(text.contains("its disk is full") && text.contains("free space"), "{text}");

    // Started again, and space freed while it tries: it opens the store and serves.
    let log = t.path().join("freed.log");
    let mut child = serve(&data, &machines, &log);
    let text = logged(&mut child, &log, RETRYING).await;
    assert!(text.contains(RETRYING), "{text}");
    std::fs::remove_file(&filler).unwrap();
    let line = first_line(&mut child).await;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}\n{}", std::fs::read_to_string(&log).unwrap_or_default()));
    let body = Vca::abc("s-before", "e2", Some("1"), Some(&id)).body();
    let next =
        try_post(&client_within(Duration::from_secs(30)), &format!("http://{addr}/webhooks/vca"), body)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()));
    assert_eq!(next.how, "applied", "{}", String::from_utf8_lossy(&next.body));
    let _ = child.kill();
    let _ = child.wait();
}

/// A first start on a full disk cannot keep the admin token it would make: it tries again like
/// the store (each try logged), exits 74, and leaves no empty or cut token file behind (which the
/// next start would refuse); once space is freed it makes the token and serves.
#[tokio::test]
async fn a_first_start_on_a_full_disk_cannot_keep_its_admin_token_tries_again_and_leaves_no_cut_file() {
    const KEEPING: &str = "the admin token's disk is full: free space; trying to keep it again";
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let Some(_tmpfs) = Tmpfs::mount(&data) else { return };
    let machines = machines_dir(t.path());
    let filler = data.join("filler");
    fill(&filler);
    let log = t.path().join("token.log");
    let mut child = serve_with(&data, &machines, &log, &[]);
    let status = exited(&mut child).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(74), "{text}");
    assert_eq!(text.matches(KEEPING).count(), START_ATTEMPTS - 1, "each try logged:\n{text}");
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("phonetree-admin-token"))
        .collect();
    assert!(kept.is_empty(), "no token file, whole or cut, on the full disk: {kept:?}");

    // Space freed while it tries: the token is made whole and the node serves.
    let log = t.path().join("freed.log");
    let mut child = serve_with(&data, &machines, &log, &[]);
    let text = logged(&mut child, &log, KEEPING).await;
    assert!(text.contains(KEEPING), "{text}");
    std::fs::remove_file(&filler).unwrap();
    let line = first_line(&mut child).await;
    assert!(
        line.starts_with("listening on "),
        "{line:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let token = std::fs::read_to_string(data.join("phonetree-admin-token")).unwrap();
    assert_eq!(token.trim().len(), 64, "a whole token");
    let _ = child.kill();
    let _ = child.wait();
}
