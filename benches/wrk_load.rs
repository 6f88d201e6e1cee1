//! The webhook path under wrk: the real `phonetree serve` binary as a child process on loopback,
//! each run with a fresh data dir, loaded by `wrk` with the Lua scripts in `benches/wrk/`.
//!
//! Two workloads through `abc_restaurant`, each run durable (every reply after its fsync) and
//! with `--unsafe-no-fsync` back to back, so their ratio is comparable from run to run:
//! - new call (`new_call.lua`): every request a CALL_ACTION of a brand-new session pressing 1;
//! - whole call (`whole_call.lua`): each connection plays whole calls in sequence (start, 1, 1,
//!   summary), one connection per wrk thread (the script follows its thread's one call).
//!
//! With `PHONETREE_BASELINE_BIN` set, the same four runs against that binary too, for the ratio
//! this ÷ baseline. In the same rounds: the minimal warp + sled service
//! (`wrk/minimal.rs`, run as a child of this bench: the ceiling of the stack, durable and no-fsync)
//! and the stateless Flask baseline (`benches/flask_baseline.py` under `gunicorn -w 2`, when
//! python3 imports flask and gunicorn), for this ÷ Flask and this ÷ minimal. Then GET /healthz with both wrk shapes: the ceiling of wrk and the HTTP stack
//! on this machine. Prints one markdown table and writes it to `target/wrk_load.md`.
//!
//! Uses only the binary (no library API). Settings (environment): `PHONETREE_BIN` (default: the
//! `phonetree` cargo builds for this bench, `target/release/phonetree`), `PHONETREE_BASELINE_BIN`,
//! `PHONETREE_WRK_SECS` (per run, default 10), `PHONETREE_WRK_CONNS` (default 32),
//! `PHONETREE_WRK_THREADS` (wrk threads of the new-call and ceiling runs, default 2),
//! `PHONETREE_WRK_ROUNDS` (durable and no-fsync alternate this many times, the table shows
//! medians; default 1), `PHONETREE_WRK_CEILING=0` (skip the /healthz runs); data dirs go under
//! `TMPDIR` (default /tmp), which must be a real disk for the durable runs to mean anything.
//!
//! With `PHONETREE_WRK_POSTGRES=postgres://...` set, each workload also runs durable on
//! PostgreSQL, one node and two nodes on one database, in the same run.
//!
//! Each run also reports the CPU seconds of the node, of wrk and of everything else on the
//! machine; the table is marked not comparable when other processes took over 5% of the CPU.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "wrk/minimal.rs"]
mod minimal;

/// The argument on which this bench's binary serves the minimal service instead of benching.
const SERVE_MINIMAL: &str = "--serve-minimal";

/// The one machine every workload calls: the node loads it alone, so a baseline that predates
/// a newer machine field (say `allow_hosts`) loads the same machine as the binary under test.
const MACHINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/machines/abc_restaurant.toml");
const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/wrk");
/// Where `flask_baseline.py` is (gunicorn's `--chdir`).
const BENCHES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches");
/// gunicorn's workers for the Flask baseline: one per core of the project's 2-core machine, as
/// issue 22 measured it.
const FLASK_WORKERS: &str = "2";
/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
const CLOCK_TICKS: f64 = 100.0;
/// A request slower than this counts as a wrk timeout (wrk's default, 2 s, would hide stalls).
const WRK_TIMEOUT: &str = "10s";
const READY_WITHIN: Duration = Duration::from_secs(30);
/// Above this share of the machine's CPU used by other processes during a run, the table says the
/// figures are not comparable.
const OTHERS_SHARE_MAX: f64 = 0.05;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Settings {
    secs: u64,
    conns: usize,
    threads: usize,
    /// Durable and no-fsync runs alternate this many times; the table shows their medians.
    rounds: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    NewCall,
    WholeCall,
    Healthz,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::NewCall => "new call",
            Workload::WholeCall => "whole call",
            Workload::Healthz => "GET /healthz",
        }
    }

    fn script(self) -> String {
        let file = match self {
            Workload::NewCall => "new_call.lua",
            Workload::WholeCall => "whole_call.lua",
            Workload::Healthz => "healthz.lua",
        };
        format!("{SCRIPTS}/{file}")
    }

    /// wrk threads: whole calls need one connection per thread (wrk gives a script no connection).
    fn threads(self, s: &Settings) -> usize {
        match self {
            Workload::WholeCall => s.conns,
            _ => s.threads.min(s.conns),
        }
    }
}

/// What answers a run's webhooks.
enum Server {
    /// A `phonetree` binary (`serve`).
    Phonetree(PathBuf),
    /// The minimal warp + sled service (`wrk/minimal.rs`), served by this bench's own binary
    /// (`--serve-minimal`): the ceiling of the stack.
    Minimal(PathBuf),
    /// The stateless Flask baseline (`benches/flask_baseline.py`) under `gunicorn -w 2`: it
    /// stores nothing, so it has no no-fsync run.
    Flask,
}

/// A server child (`phonetree serve`, the minimal service or gunicorn) on a free loopback port
/// with its own data dir; stopped, and the dir deleted, on drop.
struct Node {
    child: Child,
    port: u16,
    log: PathBuf,
    /// gunicorn: stopped with SIGTERM (its master then stops its workers; SIGKILL would orphan
    /// them).
    graceful: bool,
    _dir: tempfile::TempDir,
}

/// Whether `bin serve` takes `flag` (its `--help` names it).
fn takes_flag(bin: &Path, flag: &str) -> bool {
    Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(flag))
}

impl Node {
    fn start(server: &Server, durable: bool) -> Result<Node, String> {
        match server {
            Server::Phonetree(bin) => Node::start_on(bin, durable, None),
            Server::Minimal(bin) => {
                let dir = scratch()?;
                let mut cmd = Command::new(bin);
                cmd.arg(SERVE_MINIMAL).arg("--data").arg(dir.path().join("data"));
                if !durable {
                    cmd.arg("--unsafe-no-fsync");
                }
                Node::spawn(cmd, "--listen", dir, false)
            }
            Server::Flask => {
                let mut cmd = Command::new("gunicorn");
                cmd.args(["-w", FLASK_WORKERS, "--chdir", BENCHES, "flask_baseline:app"]);
                Node::spawn(cmd, "-b", scratch()?, true)
            }
        }
    }

    /// Starts `cmd` with `listen` and a free loopback address, waits for `GET /readyz` 200.
    fn spawn(mut cmd: Command, listen: &str, dir: tempfile::TempDir, graceful: bool) -> Result<Node, String> {
        let port = free_port()?;
        let log = dir.path().join("serve.log");
        let name = cmd.get_program().to_string_lossy().into_owned();
        cmd.arg(listen).arg(format!("127.0.0.1:{port}"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let mut node = Node { child, port, log, graceful, _dir: dir };
        node.wait_ready(&name)?;
        Ok(node)
    }

    fn wait_ready(&mut self, name: &str) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if http_status(self.port, "/readyz") == Some(200) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{name} exited ({status}) before ready:\n{}", self.log_text()));
            }
            if Instant::now() > deadline {
                return Err(format!("{name} not ready within {READY_WITHIN:?}:\n{}", self.log_text()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A node on `store` (a `--store` URL) instead of a data dir of its own.
    fn start_on(bin: &Path, durable: bool, store: Option<&str>) -> Result<Node, String> {
        let dir = scratch()?;
        let mut cmd = Command::new(bin);
        let machines = dir.path().join("machines");
        std::fs::create_dir_all(&machines)
            .and_then(|()| std::fs::copy(MACHINE, machines.join("abc_restaurant.toml")))
            .map_err(|e| format!("cannot copy {MACHINE}: {e}"))?;
        cmd.arg("serve").arg("--machines").arg(&machines);
        match store {
            // `--data` too: where a node on PostgreSQL keeps its admin token.
            Some(url) => cmd.arg("--store").arg(url).arg("--data").arg(dir.path().join("data")),
            None => cmd.arg("--data").arg(dir.path().join("data")),
        };
        // A baseline from before the admin listener does not know the flag (nor bind 9090).
        if takes_flag(bin, "--admin-listen") {
            cmd.arg("--admin-listen").arg("127.0.0.1:0");
        }
        if !durable {
            cmd.arg("--unsafe-no-fsync");
        }
        cmd.env_remove("PHONETREE_UNSAFE_NO_FSYNC").env("PHONETREE_LOG", "warn");
        Node::spawn(cmd, "--listen", dir, false)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lines the node logged at error, leaving out the connections wrk cuts when it stops.
    fn errors_logged(&self) -> usize {
        self.log_text().lines().filter(|l| l.contains("ERROR") && !l.contains("IncompleteMessage")).count()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.graceful {
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A fresh data dir under TMPDIR, deleted on drop.
fn scratch() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new().prefix("phonetree-wrk-").tempdir().map_err(|e| e.to_string())
}

fn free_port() -> Result<u16, String> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port())
}

/// The CPU seconds (user + system) of process `pid` and of its children alive now (gunicorn's
/// workers).
fn tree_cpu_secs(pid: &str) -> f64 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    cpu_secs(pid).0 + children.split_whitespace().map(|c| cpu_secs(c).0).sum::<f64>()
}

/// The status of a GET on loopback, None when there is no answer.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds from `/proc/<who>/stat`: (its own user + system, its waited-for children's).
fn cpu_secs(who: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{who}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // Fields are numbered from 1 and the remainder starts at field 3 (state).
    let at = |field: usize| fields.get(field - 3).copied().unwrap_or(0.0) / CLOCK_TICKS;
    (at(14) + at(15), at(16) + at(17))
}

/// CPU seconds the whole machine spent in user and system mode, from /proc/stat.
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().find(|l| l.starts_with("cpu ")).unwrap_or("");
    // cpu user nice system idle iowait irq softirq steal ...
    cpu.split_whitespace().skip(1).take(3).map(|v| v.parse().unwrap_or(0.0)).sum::<f64>() / CLOCK_TICKS
}

/// One wrk run against one node.
#[derive(Clone)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Non-200 answers, 200s with another body than expected, socket errors, timeouts.
    errors: u64,
    server_cpu: f64,
    wrk_cpu: f64,
    /// User and system CPU of everything else on the machine during the run (other processes:
    /// a run sharing the cores with, say, a compiler is not comparable).
    others_cpu: f64,
    /// `others_cpu` as a share of the machine's CPU over the run (the largest of a median's runs).
    others_share: f64,
    secs: f64,
    errors_logged: usize,
}

fn run_wrk(node: &Node, workload: Workload, s: &Settings) -> Result<Run, String> {
    run_wrk_on(&[node], workload, s)
}

/// One wrk per node, at once, the connections (and wrk threads) shared out between them: req/s
/// add up, latencies are the worst node's (p50 too, to stay on the safe side).
fn run_wrk_on(nodes: &[&Node], workload: Workload, s: &Settings) -> Result<Run, String> {
    let n = nodes.len().max(1);
    let conns = (s.conns / n).max(1);
    let shape = Settings { conns, threads: (s.threads / n).max(1), ..*s };
    let pids: Vec<String> = nodes.iter().map(|node| node.child.id().to_string()).collect();
    let server_cpu_now = || pids.iter().map(|p| tree_cpu_secs(p)).sum::<f64>();
    let (server_before, wrk_before, busy_before) =
        (server_cpu_now(), cpu_secs("self").1, machine_busy_secs());
    let children = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            Command::new("wrk")
                .env("PHONETREE_WRK_PROCESS", i.to_string())
                .arg(format!("-t{}", workload.threads(&shape)))
                .arg(format!("-c{conns}"))
                .arg(format!("-d{}s", s.secs))
                .args(["--timeout", WRK_TIMEOUT, "-s", &workload.script()])
                .arg(format!("http://127.0.0.1:{}/", node.port))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot run wrk: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outs = children
        .into_iter()
        .map(|c| c.wait_with_output().map_err(|e| format!("wrk: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let (server_cpu, wrk_cpu) = (server_cpu_now() - server_before, cpu_secs("self").1 - wrk_before);
    let others_cpu = (machine_busy_secs() - busy_before - server_cpu - wrk_cpu).max(0.0);
    let mut run = Run {
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        max_ms: 0.0,
        errors: 0,
        server_cpu,
        wrk_cpu,
        others_cpu,
        others_share: 0.0,
        secs: 0.0,
        errors_logged: nodes.iter().map(|node| node.errors_logged()).sum(),
    };
    for out in &outs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().find_map(|l| l.strip_prefix("wrk_result ")).ok_or_else(|| {
            format!(
                "wrk printed no wrk_result line ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let v: HashMap<&str, f64> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.parse().unwrap_or(0.0)))
            .collect();
        let get = |k: &str| v.get(k).copied().unwrap_or(0.0);
        run.rps += get("rps");
        run.p50_ms = run.p50_ms.max(get("p50_us") / 1000.0);
        run.p99_ms = run.p99_ms.max(get("p99_us") / 1000.0);
        run.max_ms = run.max_ms.max(get("max_us") / 1000.0);
        run.errors += ["non200", "unexpected", "connect", "read", "write", "timeout"]
            .iter()
            .map(|k| get(k) as u64)
            .sum::<u64>();
        run.secs = run.secs.max(get("duration_us") / 1e6);
    }
    run.others_share =
        others_cpu / (std::thread::available_parallelism().map_or(1, |n| n.get()) as f64 * run.secs.max(0.1));
    Ok(run)
}

/// Starts a node, loads it, prints the run's line.
fn measure(
    server: &Server,
    label: &str,
    workload: Workload,
    durable: bool,
    s: &Settings,
) -> Result<Run, String> {
    let node = Node::start(server, durable)?;
    let run = run_wrk(&node, workload, s)?;
    drop(node);
    println!(
        "{:<12} {:<8} {:<8} wrk -t{} -c{}: {:>7} req/s  p50 {:.2} ms  p99 {:.2} ms  max {:.1} ms  {} errors  CPU over {:.1} s: node {:.1} s, wrk {:.1} s, others {:.1} s{}",
        workload.name(),
        label,
        match server {
            Server::Flask => "no store",
            _ if durable => "durable",
            _ => "no-fsync",
        },
        workload.threads(s),
        s.conns,
        thousands(run.rps),
        run.p50_ms,
        run.p99_ms,
        run.max_ms,
        run.errors,
        run.secs,
        run.server_cpu,
        run.wrk_cpu,
        run.others_cpu,
        if run.errors_logged > 0 {
            format!("  ({} errors in the node's log)", run.errors_logged)
        } else {
            String::new()
        },
    );
    Ok(run)
}

/// The server's CPU per answered request, in microseconds: comparable between servers even on a
/// loaded machine, where req/s are not.
fn cpu_per_request(r: &Run) -> f64 {
    r.server_cpu * 1e6 / (r.rps * r.secs).max(1.0)
}

fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `durable` and `no-fsync` runs of one binary on one workload (medians over the rounds).
#[derive(Clone)]
struct Pair {
    durable: Run,
    no_fsync: Run,
}

/// Every server's runs of one workload, alternating: each round runs every server once (durable,
/// then no-fsync but for Flask) before the next round starts. The medians, in `servers`' order
/// (Flask's pair has its one run twice).
fn rounds(servers: &[(&str, Server)], workload: Workload, s: &Settings) -> Result<Vec<Pair>, String> {
    let mut runs: Vec<(Vec<Run>, Vec<Run>)> = servers.iter().map(|_| (Vec::new(), Vec::new())).collect();
    for _ in 0..s.rounds {
        for ((label, server), (durable, no_fsync)) in servers.iter().zip(&mut runs) {
            durable.push(measure(server, label, workload, true, s)?);
            if !matches!(server, Server::Flask) {
                no_fsync.push(measure(server, label, workload, false, s)?);
            }
        }
    }
    Ok(runs
        .into_iter()
        .map(|(durable, no_fsync)| {
            let durable = median(durable);
            let no_fsync = if no_fsync.is_empty() { durable.clone() } else { median(no_fsync) };
            Pair { durable, no_fsync }
        })
        .collect())
}

/// The run of median req/s, with the errors of all the runs and the largest share of others' CPU.
fn median(mut runs: Vec<Run>) -> Run {
    let errors = runs.iter().map(|r| r.errors).sum();
    let others_share = runs.iter().map(|r| r.others_share).fold(0.0, f64::max);
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mut m = runs.swap_remove(runs.len() / 2);
    (m.errors, m.others_share) = (errors, others_share);
    m
}

/// The filesystem type holding `path`, from /proc/self/mountinfo (longest mount point prefix).
fn fs_type(path: &Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mount = left.split_whitespace().nth(4)?;
            let kind = right.split_whitespace().next()?;
            path.starts_with(mount).then(|| (mount.len(), kind.to_string()))
        })
        .max()
        .map_or_else(|| "unknown".into(), |(_, t)| t)
}

/// Each workload on PostgreSQL: one node, then two nodes on one database, each run in a schema
/// of its own (made before, dropped after).
fn postgres_runs(bin: &Path, url: &str, s: &Settings) -> Result<Vec<(Workload, usize, Run)>, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let sql = |statement: String| {
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("postgres: {e}"))?;
            let task = tokio::spawn(connection);
            client.batch_execute(&statement).await.map_err(|e| format!("postgres: {e}"))?;
            drop(client);
            let _ = task.await;
            Ok::<(), String>(())
        })
    };
    let mut out = Vec::new();
    for workload in [Workload::NewCall, Workload::WholeCall] {
        for nodes in [1usize, 2] {
            let schema = format!("phonetree_wrk_{}_{nodes}_{}", workload.threads(s), std::process::id());
            sql(format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))?;
            let sep = if url.contains('?') { '&' } else { '?' };
            let store = format!("{url}{sep}options=-c%20search_path%3D{schema}");
            let run = (|| {
                let started = (0..nodes)
                    .map(|_| Node::start_on(bin, true, Some(&store)))
                    .collect::<Result<Vec<_>, _>>()?;
                let run = run_wrk_on(&started.iter().collect::<Vec<_>>(), workload, s)?;
                println!(
                    "{:<12} postgres {nodes} node(s): {:>7} req/s  p50 {:.2} ms  p99 {:.2} ms  max {:.1} ms  {} errors",
                    workload.name(),
                    thousands(run.rps),
                    run.p50_ms,
                    run.p99_ms,
                    run.max_ms,
                    run.errors
                );
                Ok::<Run, String>(run)
            })();
            sql(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
            out.push((workload, nodes, run?));
        }
    }
    Ok(out)
}

fn binary(var: &str, default: Option<&str>) -> Result<Option<PathBuf>, String> {
    let Some(path) = std::env::var_os(var).map(PathBuf::from).or_else(|| default.map(PathBuf::from)) else {
        return Ok(None);
    };
    if !path.is_file() {
        return Err(format!(
            "no phonetree binary at {} ({var}): build it with `cargo build --release --bin phonetree`, or point {var} at one",
            path.display()
        ));
    }
    Ok(Some(path))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == SERVE_MINIMAL) {
        minimal::serve(args);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing: run only under bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let wrk = match Command::new("wrk").arg("--version").output() {
        Ok(out) => {
            let text =
                String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
            text.lines()
                .next()
                .unwrap_or("wrk")
                .split(" Copyright")
                .next()
                .unwrap_or("wrk")
                .trim()
                .to_string()
        }
        Err(_) => {
            println!("skipped: wrk is not installed (apt-get install wrk)");
            return;
        }
    };
    if let Err(e) = bench(&wrk) {
        eprintln!("wrk_load: {e}");
        std::process::exit(1);
    }
}

fn bench(wrk: &str) -> Result<(), String> {
    let s = Settings {
        secs: env_or("PHONETREE_WRK_SECS", 10u64).max(1),
        conns: env_or("PHONETREE_WRK_CONNS", 32usize).max(1),
        threads: env_or("PHONETREE_WRK_THREADS", 2usize).max(1),
        rounds: env_or("PHONETREE_WRK_ROUNDS", 1usize).max(1),
    };
    let this = binary("PHONETREE_BIN", Some(env!("CARGO_BIN_EXE_phonetree")))?.expect("a default");
    let baseline = binary("PHONETREE_BASELINE_BIN", None)?;
    let tmp = std::env::temp_dir();
    let mut head = String::new();
    let _ = writeln!(
        head,
        "wrk_load: {} cores, {wrk}, {} s per run, {} connections, {}; data dirs in {} ({})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s.secs,
        s.conns,
        if s.rounds == 1 { "1 round".to_string() } else { format!("medians of {} rounds", s.rounds) },
        tmp.display(),
        fs_type(&tmp),
    );
    let _ = writeln!(head, "this: {}", this.display());
    if let Some(b) = &baseline {
        let _ = writeln!(head, "baseline: {}", b.display());
    }
    print!("{head}");

    let mut servers = vec![("this", Server::Phonetree(this.clone()))];
    if let Some(b) = &baseline {
        servers.push(("baseline", Server::Phonetree(b.clone())));
    }
    let itself = std::env::current_exe().map_err(|e| format!("cannot find this bench's binary: {e}"))?;
    servers.push(("minimal", Server::Minimal(itself)));
    let flask = Command::new("python3")
        .args(["-c", "import flask, gunicorn"])
        .output()
        .is_ok_and(|out| out.status.success());
    if flask {
        servers.push(("flask", Server::Flask));
    } else {
        println!(
            "skipped: the Flask baseline needs python3 with flask and gunicorn (pip install flask gunicorn)"
        );
    }
    let mut rows = Vec::new();
    let mut against = Vec::new();
    for workload in [Workload::NewCall, Workload::WholeCall] {
        let mut pairs = rounds(&servers, workload, &s)?.into_iter();
        let mine = pairs.next().ok_or("no runs")?;
        let theirs = if baseline.is_some() { pairs.next() } else { None };
        let ceiling = pairs.next();
        let stateless = pairs.next().map(|p| p.durable);
        against.push((workload, mine.clone(), ceiling, stateless));
        rows.push((workload, mine, theirs));
    }
    let postgres = match std::env::var("PHONETREE_WRK_POSTGRES") {
        Ok(url) => postgres_runs(&this, &url, &s)?,
        Err(_) => {
            println!("postgres runs skipped: set PHONETREE_WRK_POSTGRES=postgres://... to run them");
            Vec::new()
        }
    };
    let mut ceiling = Vec::new();
    if env_or("PHONETREE_WRK_CEILING", 1u8) != 0 {
        let mut shapes = vec![Workload::NewCall.threads(&s), Workload::WholeCall.threads(&s)];
        shapes.dedup();
        for threads in shapes {
            let shape = Settings { threads, ..s };
            let server = Server::Phonetree(this.clone());
            ceiling.push((threads, measure(&server, "this", Workload::Healthz, true, &shape)?));
        }
    }

    let mut md = String::new();
    md.push('\n');
    md.push_str(&head);
    md.push('\n');
    md.push_str("| workload | binary | durable req/s | durable p99 | no-fsync req/s | no-fsync p99 | durable ÷ no-fsync | this ÷ baseline (durable) | errors |\n");
    md.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (workload, mine, theirs) in &rows {
        let shape = format!("{} (wrk -t{} -c{})", workload.name(), workload.threads(&s), s.conns);
        let vs = theirs.as_ref().map_or("—".into(), |t| format!("{:.2}", mine.durable.rps / t.durable.rps));
        let mut row = |label: &str, p: &Pair, vs: &str| {
            let _ = writeln!(
                md,
                "| {shape} | {label} | {} | {:.1} ms | {} | {:.1} ms | {:.2} | {vs} | {} |",
                thousands(p.durable.rps),
                p.durable.p99_ms,
                thousands(p.no_fsync.rps),
                p.no_fsync.p99_ms,
                p.durable.rps / p.no_fsync.rps,
                p.durable.errors + p.no_fsync.errors,
            );
        };
        row("this", mine, &vs);
        if let Some(t) = theirs {
            row("baseline", t, "1.00");
        }
    }
    if against.iter().any(|(_, _, c, f)| c.is_some() || f.is_some()) {
        md.push_str("\nAgainst the stateless baseline (Flask, `gunicorn -w 2`, `benches/flask_baseline.py`) and the stack's ceiling (`minimal`: warp + one sled record per session, `benches/wrk/minimal.rs`), durable, same rounds:\n\n");
        md.push_str("| workload | Flask req/s | this req/s | this ÷ Flask | this p99 | minimal req/s | minimal p99 | minimal ÷ Flask | this ÷ minimal | this ÷ no-fsync | µs CPU/req: this / minimal / Flask | errors |\n");
        md.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for (workload, mine, ceiling, stateless) in &against {
            let d = &mine.durable;
            let opt = |r: Option<&Run>, f: &dyn Fn(&Run) -> String| r.map_or("—".to_string(), f);
            let c = ceiling.as_ref().map(|p| &p.durable);
            let f = stateless.as_ref();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.1} ms | {} | {} | {} | {} | {:.2} | {:.0} / {} / {} | {} |",
                workload.name(),
                opt(f, &|f| thousands(f.rps)),
                thousands(d.rps),
                opt(f, &|f| format!("{:.2}×", d.rps / f.rps)),
                d.p99_ms,
                opt(c, &|c| thousands(c.rps)),
                opt(c, &|c| format!("{:.1} ms", c.p99_ms)),
                c.zip(f).map_or("—".to_string(), |(c, f)| format!("{:.2}×", c.rps / f.rps)),
                opt(c, &|c| format!("{:.2}", d.rps / c.rps)),
                d.rps / mine.no_fsync.rps,
                cpu_per_request(d),
                opt(c, &|c| format!("{:.0}", cpu_per_request(c))),
                opt(f, &|f| format!("{:.0}", cpu_per_request(f))),
                d.errors + c.map_or(0, |c| c.errors) + f.map_or(0, |f| f.errors),
            );
        }
    }
    if !postgres.is_empty() {
        md.push_str("\nThe same load on PostgreSQL (`--store postgres://...`, durable: a reply after its commit), one node and two nodes on one database (one wrk per node, the connections shared out); `÷ sled` is against this binary's durable sled run above:\n\n");
        md.push_str("| workload | nodes | req/s | p50 | p99 | ÷ sled durable | errors |\n| --- | --- | --- | --- | --- | --- | --- |\n");
        for (workload, nodes, r) in &postgres {
            let sled =
                rows.iter().find(|(w, _, _)| w == workload).map_or(f64::NAN, |(_, m, _)| m.durable.rps);
            let _ = writeln!(
                md,
                "| {} | {nodes} | {} | {:.1} ms | {:.1} ms | {:.2} | {} |",
                workload.name(),
                thousands(r.rps),
                r.p50_ms,
                r.p99_ms,
                r.rps / sled,
                r.errors
            );
        }
    }
    if !ceiling.is_empty() {
        md.push_str(
            "\nCeiling of wrk and the HTTP stack (GET /healthz: no store, no engine), this binary:\n\n",
        );
        md.push_str(
            "| wrk | req/s | p99 | CPU: node / wrk (s) | errors |\n| --- | --- | --- | --- | --- |\n",
        );
        for (threads, r) in &ceiling {
            let _ = writeln!(
                md,
                "| -t{threads} -c{} | {} | {:.1} ms | {:.1} / {:.1} over {:.1} s | {} |",
                s.conns,
                thousands(r.rps),
                r.p99_ms,
                r.server_cpu,
                r.wrk_cpu,
                r.secs,
                r.errors
            );
        }
    }
    // A run is comparable only if the node and wrk had the machine to themselves.
    let runs = rows
        .iter()
        .flat_map(|(_, m, t)| [Some(m), t.as_ref()])
        .flatten()
        .flat_map(|p| [&p.durable, &p.no_fsync])
        // PostgreSQL's own processes are "others" in its runs: they are part of what is measured.
        .chain(ceiling.iter().map(|(_, r)| r));
    let busiest = runs.map(|r| r.others_share).fold(0.0, f64::max);
    if busiest > OTHERS_SHARE_MAX {
        let _ = writeln!(
            md,
            "\n**Not comparable**: other processes used up to {:.0}% of the machine's CPU during a run \
             (more than {:.0}%); rerun on a quiet machine.",
            busiest * 100.0,
            OTHERS_SHARE_MAX * 100.0
        );
    }
    print!("{md}");
    // target/release/phonetree -> target/
    let target = Path::new(env!("CARGO_BIN_EXE_phonetree")).ancestors().nth(2).unwrap_or(Path::new("target"));
    let out = target.join("wrk_load.md");
    std::fs::write(&out, md.trim_start()).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("\nwritten to {}", out.display());
    Ok(())
}
