//! `phonetree simulate`: finds and loads one machine, reads the caller's inputs (arguments or
//! stdin) and the `--answers` file, asks the real API with `--live`, and prints the transcript or
//! the callflows. Playing the call is `proof::simulate`'s.

use std::io::{self, BufRead, IsTerminal, StdoutLock, Write};
use std::path::{Path, PathBuf};

use phonetree::callflow::Callflow;
use phonetree::engine::{Answer, Event, Request};
use phonetree::machine::hosts::AllowedHost;
use phonetree::machine::{self, Machine, Source, Voices};
use phonetree::node::guard::{self, CallPolicy};
use phonetree::node::{catalog, fetch};
use phonetree::proof::explore;
use phonetree::proof::simulate::{self, Canned, Simulation, Turn};
use phonetree::webhook::wire;

use super::{NoRuntime, runtime};

#[derive(clap::Args)]
pub struct Args {
    /// A machine file, or the name of a machine in --machines.
    machine: String,
    /// Keys pressed at each prompt (`1`, `12#`), or `-` for no input. None: read from stdin.
    inputs: Vec<String>,
    /// Print each callflow the server would answer with, one JSON document per line.
    #[arg(long)]
    json: bool,
    /// The caller's number (with --outbound: the caller ID, default the machine's first number).
    #[arg(long)]
    from: Option<String>,
    /// An inbound call's session id (default `simulated-session`): a split with `sticky_by = "session"`
    /// picks its variant from it (`check` prints it in the commands it gives).
    #[arg(long)]
    session: Option<String>,
    /// The call opens with the machine's resume offer (`[resume]`), as for a caller whose
    /// interrupted call stopped at NODE (a menu or input) with the machine's variables: `1` goes on
    /// there, anything else starts at `start`.
    #[arg(long, value_name = "NODE", conflicts_with = "outbound")]
    resume_from: Option<String>,
    /// The number called (default: the machine's first number; with --outbound: the callee).
    #[arg(long)]
    to: Option<String>,
    /// phonetree places the call: print the opening (the Send Callflow request's makeCall and
    /// first prompt), then play the callee's inputs.
    #[arg(long)]
    outbound: bool,
    /// With --outbound: a call variable the placed call gives, one of the machine's `variables`
    /// (repeat for each), as `phonetree call --var` gives it. With --resume-from: a variable the
    /// interrupted call had set (any the machine sets).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = simulate::parse_var)]
    vars: Vec<(String, String)>,
    /// Where machine names are looked up.
    #[arg(long, env = "PHONETREE_MACHINES", default_value = "machines")]
    machines: PathBuf,
    /// Folder of the modules machines use (`module` nodes). Default: `modules/` beside the machine
    /// file.
    #[arg(long, env = "PHONETREE_MODULES")]
    modules: Option<PathBuf>,
    /// Canned API answers for script nodes: a JSON file `{"NODE": [{"status": 200, "body": ...},
    /// {"failed": "timeout"}, ...]}`, used in order (the last one again when they run out).
    #[arg(long)]
    answers: Option<PathBuf>,
    /// Call the script nodes' real APIs.
    #[arg(long)]
    live: bool,
    /// Fix the call's clock at this RFC 3339 time (`2026-11-23T10:00:00+08:00`) for route rules
    /// on time. Without it the clock starts at 1970-01-01T00:00:00Z and a second passes per input.
    #[arg(long)]
    at: Option<String>,
    /// The voice profiles `voice_profile`s are checked against, one a line (`phonetree voices`
    /// writes it). Default: `voices.txt` when there is one, else the voices bundled with phonetree.
    #[arg(long, env = "PHONETREE_VOICES")]
    voices: Option<PathBuf>,
    /// As `serve --script-allow`: the machine is checked and, with `--live`, its scripts call
    /// their APIs by the host rule with these hosts too, as that node's would.
    #[arg(long, env = "PHONETREE_SCRIPT_ALLOW", value_delimiter = ',', value_parser = super::script_host)]
    script_allow: Vec<AllowedHost>,
    /// As `serve --call-allow-prefix`: a transfer whose destination a template fills dials only a
    /// number the outbound guard lets through (E.164, in these prefixes, not barred), else takes
    /// its `failure`, as the node does (rate limits are not simulated). None: every such number is
    /// refused, as on a node started without it.
    #[arg(long, env = "PHONETREE_CALL_ALLOW_PREFIX", value_delimiter = ',')]
    call_allow_prefix: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no machine file `{name}` (nor {}/{name}.toml)", dir.display())]
    NoMachine { name: String, dir: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Its diagnostics are on stderr already.
    #[error("{} does not compile", .0.display())]
    DoesNotCompile(PathBuf),
    #[error("{}: {why}", file.display())]
    Answers { file: PathBuf, why: String },
    #[error("{}: {why}", file.display())]
    Voices { file: PathBuf, why: String },
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    /// An input that is not one, an engine error, or a script request nothing answers.
    #[error("{0}")]
    Play(String),
    /// Stdout could not be written (closed early: `main` exits as a pipe writer does).
    #[error("cannot write the transcript: {0}")]
    Write(#[from] io::Error),
}

pub fn run(args: Args) -> Result<(), Error> {
    let at_ms = args.at.as_deref().map(simulate::parse_at).transpose().map_err(Error::Play)?;
    let mut scripts = Scripts::new(args.answers.as_deref(), args.live, &args.script_allow)?;
    let voices = super::voices_file(args.voices.clone());
    let m =
        load(&args.machine, &args.machines, args.modules.as_deref(), voices.as_deref(), &args.script_allow)?;
    let number = m.numbers().first().cloned().unwrap_or_else(|| simulate::NUMBER.into());
    let (from, to) = if args.outbound {
        (args.from.unwrap_or(number), args.to.unwrap_or_else(|| simulate::PERSON.into()))
    } else {
        (args.from.unwrap_or_else(|| simulate::PERSON.into()), args.to.unwrap_or(number))
    };
    if !args.vars.is_empty() && !args.outbound && args.resume_from.is_none() {
        return Err(Error::Play("--var gives a variable to a placed call (--outbound) or to the interrupted call --resume-from goes on with".into()));
    }
    let vars = super::call::vars_map(args.vars).map_err(Error::Play)?;
    let policy = CallPolicy { allow_prefixes: args.call_allow_prefix, ..CallPolicy::default() }
        .checked()
        .map_err(|e| Error::Play(e.to_string()))?;
    let dial = |to: &str| guard::check_destination(&policy, to).map_err(|refused| refused.to_string());
    let parties = simulate::Parties {
        from: &from,
        to: &to,
        outbound: args.outbound,
        vars: &vars,
        guard: Some(&dial),
        session: args.session.as_deref(),
        resume_from: args.resume_from.as_deref(),
    };
    let mut answer = |r: &Request| scripts.answer(&m, r);
    let mut out = Out { json: args.json, stdout: io::stdout().lock() };
    if args.inputs.is_empty() {
        return from_stdin(&m, parties, at_ms, &mut answer, &mut out);
    }
    let inputs = args
        .inputs
        .iter()
        .map(|i| simulate::parse_input_or_answer(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Play)?;
    let (lines, flows) = simulate::run(&m, parties, &inputs, at_ms, &mut answer).map_err(Error::Play)?;
    out.emit(&lines, &flows)?;
    Ok(())
}

/// Plays the inputs read from stdin, one a line, each as it comes (prompting on a terminal, where a
/// line that is not an input is said and skipped).
fn from_stdin(
    m: &Machine,
    parties: simulate::Parties<'_>,
    at_ms: Option<u64>,
    answer: &mut simulate::Answerer<'_>,
    out: &mut Out,
) -> Result<(), Error> {
    let interactive = io::stdin().is_terminal();
    let mut sim = if parties.outbound {
        let (sim, opening) = Simulation::outbound(m, (parties.from, parties.to), parties.vars, at_ms, answer)
            .map_err(Error::Play)?;
        out.turn(opening)?;
        match parties.guard {
            Some(guard) => sim.guarded(guard),
            None => sim,
        }
    } else {
        let mut sim = Simulation::new(m, parties.from, parties.to);
        if let Some(session) = parties.session {
            sim = sim.session(session);
        }
        if let Some(at) = at_ms {
            sim = sim.at(at);
        }
        if let Some(guard) = parties.guard {
            sim = sim.guarded(guard);
        }
        if let Some(node) = parties.resume_from {
            sim = sim.resuming_from(node, parties.vars).map_err(Error::Play)?;
        }
        out.turn(sim.play(&Event::CallStarted, answer).map_err(Error::Play)?)?;
        sim
    };
    let mut lines = io::stdin().lock().lines();
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
            Err(why) => return Err(Error::Play(why)),
        };
        out.turn(sim.play(&event, answer).map_err(Error::Play)?)?;
    }
    if !out.json {
        out.emit(&[sim.status()], &[])?;
    }
    Ok(())
}

/// Stdout: the transcript lines, or (`--json`) the callflows, one a line.
struct Out {
    json: bool,
    stdout: StdoutLock<'static>,
}

impl Out {
    fn emit(&mut self, lines: &[String], flows: &[Callflow]) -> io::Result<()> {
        if self.json {
            for f in flows {
                self.stdout.write_all(&wire::encode(f).unwrap_or_default())?;
                self.stdout.write_all(b"\n")?;
            }
        } else {
            for l in lines {
                writeln!(self.stdout, "{l}")?;
            }
        }
        Ok(())
    }

    fn turn(&mut self, turn: Turn) -> io::Result<()> {
        self.emit(&turn.lines, turn.reply.as_slice())
    }
}

/// Where script requests go when the inputs give no `@` answer: `--answers`, then `--live`.
struct Scripts {
    canned: Canned,
    /// `--live`: the node's script client, with the machine's `allow_hosts` and `--script-allow`.
    live: Option<(tokio::runtime::Runtime, fetch::Scripts)>,
}

impl Scripts {
    fn new(file: Option<&Path>, live: bool, script_allow: &[AllowedHost]) -> Result<Scripts, Error> {
        let canned = match file {
            Some(file) => {
                Canned::parse(&read(file)?).map_err(|why| Error::Answers { file: file.to_path_buf(), why })?
            }
            None => Canned::default(),
        };
        let live = if live { Some((runtime()?, fetch::Scripts::new(script_allow))) } else { None };
        Ok(Scripts { canned, live })
    }

    fn answer(&mut self, m: &Machine, r: &Request) -> Result<Answer, String> {
        if let Some(a) = self.canned.next(&r.node) {
            return Ok(a);
        }
        match &self.live {
            Some((rt, scripts)) => {
                let timeout = std::time::Duration::from_millis(u64::from(r.timeout_ms));
                Ok(rt.block_on(scripts.perform(m, r, timeout)))
            }
            None => Err(simulate::needs_answer(r)),
        }
    }
}

/// Compiles the machine once and proves it as `check` does, its diagnostics on stderr; a machine
/// that compiles but fails its proof still plays, so that a counterexample can be replayed.
pub(super) fn load(
    name: &str,
    machines: &Path,
    modules: Option<&Path>,
    voices: Option<&Path>,
    script_allow: &[AllowedHost],
) -> Result<Machine, Error> {
    let path = find(name, machines)?;
    let source = Source::new(path.display().to_string(), read(&path)?);
    let voices = match voices {
        Some(file) => {
            catalog::read_voices(file).map_err(|why| Error::Voices { file: file.to_path_buf(), why })?
        }
        None => Voices::bundled().clone(),
    };
    let (modules, problems) =
        catalog::read_modules(&catalog::modules_dirs(std::slice::from_ref(&path), modules));
    let options = machine::Options { voices: &voices, script_allow, modules: &modules };
    let compiled = machine::compile_with(&source, options);
    for d in problems.iter().chain(&compiled.diagnostics) {
        eprintln!("{d}");
    }
    let mut m = compiled.machine.ok_or(Error::DoesNotCompile(path.clone()))?;
    // The folder's policies, as `check` and `serve` prove the machine by them.
    let (policies, problems) = catalog::policies_beside(&path);
    for d in &problems {
        eprintln!("{d}");
    }
    m.add_policies(&policies);
    let report = explore::explore(&m);
    for v in &report.violations {
        eprintln!("{}", v.diagnostic(&source, &m, &modules));
    }
    if !report.proven() {
        eprintln!("note: {} fails its proof (above); playing it anyway", source.file);
    }
    Ok(m)
}

/// MACHINE as a file, else `DIR/MACHINE.toml` or `DIR/MACHINE.json`.
fn find(name: &str, machines: &Path) -> Result<PathBuf, Error> {
    let path = PathBuf::from(name);
    if path.is_file() {
        return Ok(path);
    }
    ["toml", "json"]
        .iter()
        .map(|ext| machines.join(format!("{name}.{ext}")))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::NoMachine { name: name.into(), dir: machines.into() })
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.into(), source })
}
