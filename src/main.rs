//! The `phonetree` command: parses arguments, runs one command, maps its result to an exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use phonetree::engine::Event;
use phonetree::machine::{self, Machine, Source};
use phonetree::node::catalog::Catalog;
use phonetree::node::{self, App, Config};
use phonetree::proof::simulate::{self, Simulation};
use phonetree::webhook::outbound::{ApiConfig, DEFAULT_BASE_URL};
use phonetree::webhook::wire;

#[derive(Parser)]
#[command(name = "phonetree", version, about = "IVR state machines for the 8x8 Voice Callflows API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile machine files (or folders of them), prove every path of each, report every problem.
    Check {
        /// Machine files (.toml, .json) or folders holding them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Play a call offline: each INPUT is what the caller presses at the next prompt.
    Simulate {
        /// A machine file, or the name of a machine in --machines.
        machine: String,
        /// Keys pressed at each prompt (`1`, `12#`), or `-` for no input. None: read from stdin.
        inputs: Vec<String>,
        /// Print each callflow the server would answer with, one JSON document per line.
        #[arg(long)]
        json: bool,
        /// The caller's number.
        #[arg(long, default_value = "+15550000001")]
        from: String,
        /// The number called (default: the machine's first number).
        #[arg(long)]
        to: Option<String>,
        /// Where machine names are looked up.
        #[arg(long, env = "PHONETREE_MACHINES", default_value = "machines")]
        machines: PathBuf,
        /// Canned API answers for script nodes: a JSON file `{"NODE": [{"status": 200, "body": ...},
        /// {"failed": "timeout"}, ...]}`, used in order (the last one again when they run out).
        #[arg(long)]
        answers: Option<PathBuf>,
        /// Call the script nodes' real APIs.
        #[arg(long)]
        live: bool,
    },
    /// Run the durable webhook node: answer 8x8's CALL_ACTION and SESSION_SUMMARY webhooks.
    Serve {
        #[command(flatten)]
        node: NodeArgs,
        /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
        #[arg(long, env = "PHONETREE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Close sessions that get no webhook and no summary for this many seconds.
        #[arg(long, env = "PHONETREE_SESSION_TTL_SECS", default_value_t = 6 * 3600)]
        session_ttl_secs: u64,
        /// Delete closed sessions (and their reply journal) this many seconds after they close.
        #[arg(long, env = "PHONETREE_RETENTION_SECS", default_value_t = 24 * 3600)]
        retention_secs: u64,
        /// Benchmarks only: answer before the state is fsync'd (a crash loses acknowledged calls).
        #[arg(long, env = "PHONETREE_UNSAFE_NO_FSYNC", hide = true)]
        unsafe_no_fsync: bool,
    },
    /// Place an outbound call through 8x8's Send Callflow API, running MACHINE when the callee answers.
    Call {
        /// The machine to run.
        #[arg(long)]
        machine: String,
        /// The number to call.
        #[arg(long)]
        to: String,
        /// The caller ID (default: the machine's first number).
        #[arg(long)]
        from: Option<String>,
        /// A running `phonetree serve` to place the call through (its store is locked while it runs).
        #[arg(long, env = "PHONETREE_SERVER")]
        server: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Where a node keeps its machines and data, and how it reaches 8x8.
#[derive(Args)]
struct NodeArgs {
    /// Folder of machine files.
    #[arg(long, env = "PHONETREE_MACHINES", default_value = "machines")]
    machines: PathBuf,
    /// Folder of the embedded store.
    #[arg(long, env = "PHONETREE_DATA", default_value = "./data")]
    data: PathBuf,
    /// The machine for calls on a number no machine declares.
    #[arg(long, env = "PHONETREE_DEFAULT_MACHINE")]
    default_machine: Option<String>,
    /// 8x8 Voice API base URL.
    #[arg(long, env = "PHONETREE_8X8_BASE_URL", default_value = DEFAULT_BASE_URL)]
    api_base_url: String,
    /// 8x8 sub-account id.
    #[arg(long, env = "PHONETREE_8X8_SUBACCOUNT")]
    api_subaccount: Option<String>,
    /// 8x8 API key (Bearer).
    #[arg(long, env = "PHONETREE_8X8_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

impl NodeArgs {
    fn config(self, listen: SocketAddr, session_ttl: Duration, retention: Duration) -> Config {
        Config {
            machines: self.machines,
            data: self.data,
            listen,
            default_machine: self.default_machine,
            session_ttl,
            retention,
            api: ApiConfig {
                base_url: self.api_base_url,
                sub_account: self.api_subaccount,
                api_key: self.api_key,
            },
            unsafe_no_fsync: false,
        }
    }
}

/// A command's failure: the message, and the exit code it maps to.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 1 }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { paths, json } => check(&paths, json),
        Command::Simulate { machine, inputs, json, from, to, machines, answers, live } => {
            ScriptAnswers::new(answers.as_deref(), live)
                .and_then(|a| simulate(&machine, &inputs, json, &from, to.as_deref(), &machines, a))
        }
        Command::Serve { node, listen, session_ttl_secs, retention_secs, unsafe_no_fsync } => {
            let mut config = node.config(
                listen,
                Duration::from_secs(session_ttl_secs),
                Duration::from_secs(retention_secs),
            );
            config.unsafe_no_fsync = unsafe_no_fsync;
            serve(config)
        }
        Command::Call { machine, to, from, server, node } => {
            let config = node.config(SocketAddr::from(([127, 0, 0, 1], 0)), Duration::ZERO, Duration::ZERO);
            call(config, &machine, &to, from.as_deref(), server.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("phonetree: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn check(paths: &[PathBuf], json: bool) -> Result<(), Failure> {
    let catalog = Catalog::load(paths);
    let errors = catalog.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = catalog.diagnostics.len() - errors;
    let reports = || catalog.reports.iter().map(|(_, r)| r);
    let sum = |f: fn(&phonetree::proof::explore::Report) -> u64| reports().map(f).sum::<u64>();
    let (nodes, edges) = (sum(|r| r.nodes as u64), sum(|r| r.edges as u64));
    let (covered, paths_explored) = (sum(|r| r.edges_covered as u64), sum(|r| r.paths));
    let bounded = if reports().all(|r| r.paths_complete) { "" } else { "at least " };
    if json {
        let machines: Vec<serde_json::Value> = catalog
            .reports
            .iter()
            .map(|(file, r)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["file"] = file.as_str().into();
                v["replay_longest"] = phonetree::proof::explore::replay(file, &r.longest).into();
                v
            })
            .collect();
        let report = serde_json::json!({
            "files": catalog.files.len(), "machines_valid": catalog.len(), "nodes": nodes, "edges": edges,
            "edges_covered": covered, "paths": paths_explored, "errors": errors, "warnings": warnings,
            "machines": machines, "diagnostics": catalog.diagnostics,
        });
        println!("{report:#}");
    } else {
        for d in &catalog.diagnostics {
            println!("{d}");
        }
        for (file, r) in catalog.reports.iter().filter(|(_, r)| r.proven()) {
            println!(
                "{file}: proven `{}` ({}): {} states, {} transitions, {}/{} edges covered, {}{} paths, longest {} answers: {}",
                r.machine,
                r.version,
                r.states,
                r.transitions,
                r.edges_covered,
                r.edges,
                if r.paths_complete { "" } else { "at least " },
                r.paths,
                r.longest.len(),
                phonetree::proof::explore::replay(file, &r.longest),
            );
        }
        println!(
            "checked {} file(s): {} machine(s) valid and proven, {nodes} nodes, {edges} edges, {covered}/{edges} edges covered, {bounded}{paths_explored} paths explored; {errors} error(s), {warnings} warning(s)",
            catalog.files.len(),
            catalog.len(),
        );
    }
    if errors > 0 { Err(Failure { message: String::new(), code: 1 }) } else { Ok(()) }
}

fn load_one(machine: &str, machines: &Path) -> Result<Machine, Failure> {
    let path = PathBuf::from(machine);
    let path = if path.is_file() {
        path
    } else {
        ["toml", "json"]
            .iter()
            .map(|ext| machines.join(format!("{machine}.{ext}")))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Failure::new(format!(
                    "no machine file `{machine}` (nor {}/{machine}.toml)",
                    machines.display()
                ))
            })?
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))?;
    let source = Source::new(path.display().to_string(), text);
    // Compiled and proven as `check` does; a machine that compiles but fails its proof still
    // plays, so that a counterexample can be replayed.
    let mut catalog = Catalog::default();
    catalog.add(source.clone());
    for d in &catalog.diagnostics {
        eprintln!("{d}");
    }
    let unproven = catalog.is_empty();
    let m = machine::compile(&source)
        .machine
        .ok_or_else(|| Failure::new(format!("{} does not compile", path.display())))?;
    if unproven {
        eprintln!("note: {} fails its proof (above); playing it anyway", path.display());
    }
    Ok(m)
}

/// Where `simulate` gets script answers the inputs do not give: canned answers, or the live API.
struct ScriptAnswers {
    canned: std::collections::HashMap<String, (Vec<phonetree::engine::Answer>, usize)>,
    live: Option<(tokio::runtime::Runtime, reqwest::Client)>,
}

impl ScriptAnswers {
    fn new(file: Option<&Path>, live: bool) -> Result<ScriptAnswers, Failure> {
        let mut canned = std::collections::HashMap::new();
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure::new(format!("cannot read {}: {e}", file.display())))?;
            let v: std::collections::BTreeMap<String, Vec<serde_json::Value>> = serde_json::from_str(&text)
                .map_err(|e| {
                Failure::new(format!("{}: expected {{\"NODE\": [answers]}}: {e}", file.display()))
            })?;
            for (node, list) in v {
                let answers = list
                    .iter()
                    .map(|a| {
                        canned_answer(a)
                            .map_err(|e| Failure::new(format!("{}: node `{node}`: {e}", file.display())))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                canned.insert(node, (answers, 0));
            }
        }
        let live = if live { Some((runtime()?, reqwest::Client::new())) } else { None };
        Ok(ScriptAnswers { canned, live })
    }

    fn answer(&mut self, r: &phonetree::engine::Request) -> Result<phonetree::engine::Answer, String> {
        if let Some((list, next)) = self.canned.get_mut(&r.node)
            && let Some(a) = list.get((*next).min(list.len().saturating_sub(1)))
        {
            *next += 1;
            return Ok(a.clone());
        }
        match &self.live {
            Some((rt, client)) => Ok(rt.block_on(phonetree::node::fetch::perform(client, r))),
            None => Err(simulate::needs_answer(r)),
        }
    }
}

/// `{"status": 200, "body": <JSON, or a string sent as it is>}` or `{"failed": "reason"}`.
fn canned_answer(v: &serde_json::Value) -> Result<phonetree::engine::Answer, String> {
    if let Some(reason) = v.get("failed") {
        return Ok(phonetree::engine::Answer::Failed {
            reason: reason.as_str().unwrap_or("failed").to_string(),
        });
    }
    let status =
        v.get("status").and_then(serde_json::Value::as_u64).ok_or("an answer needs `status` or `failed`")?;
    let body = match v.get("body") {
        None => Vec::new(),
        Some(serde_json::Value::String(s)) => s.clone().into_bytes(),
        Some(json) => serde_json::to_vec(json).unwrap_or_default(),
    };
    Ok(phonetree::engine::Answer::Http {
        status: u16::try_from(status).map_err(|_| "status out of range")?,
        body,
    })
}

fn simulate(
    machine: &str,
    inputs: &[String],
    json: bool,
    from: &str,
    to: Option<&str>,
    machines: &Path,
    mut answerer: ScriptAnswers,
) -> Result<(), Failure> {
    let m = load_one(machine, machines)?;
    let number = to
        .map(str::to_string)
        .or_else(|| m.numbers().first().cloned())
        .unwrap_or_else(|| "+15550000000".into());
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut emit = |lines: &[String], flows: &[phonetree::callflow::Callflow]| {
        if json {
            for f in flows {
                let _ = out.write_all(&wire::encode(f).unwrap_or_default());
                let _ = out.write_all(b"\n");
            }
        } else {
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
    };
    if !inputs.is_empty() {
        let inputs = inputs
            .iter()
            .map(|i| simulate::parse_input_or_answer(i))
            .collect::<Result<Vec<simulate::Input>, String>>()
            .map_err(Failure::new)?;
        let (lines, flows) =
            simulate::run(&m, from, &number, &inputs, &mut |r| answerer.answer(r)).map_err(Failure::new)?;
        emit(&lines, &flows);
        return Ok(());
    }
    // No inputs: read them from stdin, one per line, answering each as it comes.
    let interactive = std::io::stdin().is_terminal();
    let mut sim = Simulation::new(&m, from, &number);
    let (step, notes) =
        sim.apply_with(&Event::CallStarted, &mut |r| answerer.answer(r)).map_err(Failure::new)?;
    emit(&notes, &[]);
    emit(&sim.describe(&step), step.reply.as_slice());
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    while !sim.state().ended() {
        if interactive {
            eprint!("keys (or - for none)> ");
        }
        let Some(Ok(line)) = lines.next() else { break };
        let event = match simulate::parse_input(&line) {
            Ok(e) => e,
            Err(why) if interactive => {
                eprintln!("{why}");
                continue;
            }
            Err(why) => return Err(Failure::new(why)),
        };
        let (step, notes) = sim.apply_with(&event, &mut |r| answerer.answer(r)).map_err(Failure::new)?;
        emit(&notes, &[]);
        emit(&sim.describe(&step), step.reply.as_slice());
    }
    if !json {
        emit(&[sim.status()], &[]);
    }
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PHONETREE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}")))
}

fn serve(config: Config) -> Result<(), Failure> {
    init_tracing();
    let listen = config.listen;
    runtime()?.block_on(async move {
        let app = Arc::new(App::open(config).await.map_err(|e| Failure::new(e.to_string()))?);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Failure::new(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Failure::new(e.to_string()))?;
        println!("listening on {addr}");
        let _ = std::io::stdout().flush();
        phonetree::http::run(listener, app, shutdown_signal()).await;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn call(
    config: Config,
    machine: &str,
    to: &str,
    from: Option<&str>,
    via: Option<&str>,
) -> Result<(), Failure> {
    init_tracing();
    let rt = runtime()?;
    let session = match via {
        Some(server) => rt.block_on(async {
            let url = format!("{}/calls", server.trim_end_matches('/'));
            let body = serde_json::json!({"machine": machine, "to": to, "from": from});
            let response = reqwest::Client::new()
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| Failure::new(format!("cannot reach {url}: {e}")))?;
            let status = response.status();
            let v: serde_json::Value =
                response.json().await.map_err(|e| Failure::new(format!("{url}: {e}")))?;
            match v["sessionId"].as_str() {
                Some(id) if status.is_success() => Ok(id.to_string()),
                _ => Err(Failure::new(
                    v["error"]["message"].as_str().unwrap_or("the server refused the call").to_string(),
                )),
            }
        })?,
        None => {
            let data = config.data.display().to_string();
            let app = rt.block_on(App::open(config)).map_err(|e| {
                Failure::new(format!("{e} (if `phonetree serve` is running on {data}, pass --server URL)"))
            })?;
            rt.block_on(node::place_call(&app, machine, to, from)).map_err(|e| Failure::new(e.to_string()))?
        }
    };
    println!("{session}");
    Ok(())
}
