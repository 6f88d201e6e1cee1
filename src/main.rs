//! The `phonetree` command: parses arguments, runs one command, maps its result to an exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use phonetree::catalog::Catalog;
use phonetree::engine::Event;
use phonetree::machine::{self, Machine, Source};
use phonetree::simulate::{self, Simulation};
use phonetree::webhook::wire;

#[derive(Parser)]
#[command(name = "phonetree", version, about = "IVR state machines for the 8x8 Voice Callflows API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile machine files (or folders of them) and report every problem.
    Check {
        /// Machine files (.toml, .json) or folders holding them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
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
    },
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
        Command::Check { paths } => check(&paths),
        Command::Simulate { machine, inputs, json, from, to, machines } => {
            simulate(&machine, &inputs, json, &from, to.as_deref(), &machines)
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

fn check(paths: &[PathBuf]) -> Result<(), Failure> {
    let catalog = Catalog::load(paths);
    for d in &catalog.diagnostics {
        println!("{d}");
    }
    let errors = catalog.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = catalog.diagnostics.len() - errors;
    let (nodes, edges) =
        catalog.machines().fold((0, 0), |(n, e), m| (n + m.node_count(), e + m.edge_count()));
    println!(
        "checked {} file(s): {} machine(s) valid, {nodes} nodes, {edges} edges; {errors} error(s), {warnings} warning(s)",
        catalog.files.len(),
        catalog.len(),
    );
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
    let compiled = machine::compile(&Source::new(path.display().to_string(), text));
    for d in &compiled.diagnostics {
        eprintln!("{d}");
    }
    compiled.machine.ok_or_else(|| Failure::new(format!("{} does not compile", path.display())))
}

fn simulate(
    machine: &str,
    inputs: &[String],
    json: bool,
    from: &str,
    to: Option<&str>,
    machines: &Path,
) -> Result<(), Failure> {
    let m = load_one(machine, machines)?;
    let number = to
        .map(str::to_string)
        .or_else(|| m.numbers().first().cloned())
        .unwrap_or_else(|| "+15550000000".into());
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut emit = |lines: &[String], flows: &[phonetree::engine::callflow::Callflow]| {
        if json {
            for f in flows {
                let _ = out.write_all(&wire::encode(f));
                let _ = out.write_all(b"\n");
            }
        } else {
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
    };
    if !inputs.is_empty() {
        let events = inputs
            .iter()
            .map(|i| simulate::parse_input(i))
            .collect::<Result<Vec<Event>, String>>()
            .map_err(Failure::new)?;
        let (lines, flows) =
            simulate::run(&m, from, &number, &events).map_err(|e| Failure::new(e.to_string()))?;
        emit(&lines, &flows);
        return Ok(());
    }
    // No inputs: read them from stdin, one per line, answering each as it comes.
    let interactive = std::io::stdin().is_terminal();
    let mut sim = Simulation::new(&m, from, &number);
    let step = sim.apply(&Event::CallStarted).map_err(|e| Failure::new(e.to_string()))?;
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
        let step = sim.apply(&event).map_err(|e| Failure::new(e.to_string()))?;
        emit(&sim.describe(&step), step.reply.as_slice());
    }
    if !json {
        emit(&[sim.status()], &[]);
    }
    Ok(())
}
