//! The `phonetree` command: parses arguments, runs one command (`cli/`), and maps its failure to an
//! exit code and a message, here and nowhere else.

mod cli;

/// mimalloc, not the system's malloc: a webhook allocates and frees a few hundred small blocks
/// (the parsed body, the state, the reply, sled's leaf copies), and glibc's malloc and free were
/// a fifth of a durable webhook's instructions (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{
    call, calls, check, diff, doctor, export, loadtest, migrate, replay, schema, serve, simulate, store,
    test, voices, webhooks,
};

#[derive(Parser)]
#[command(name = "phonetree", version, about = "IVR state machines for the 8x8 Voice Callflows API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines (on stderr) as text, or as one JSON object per line with the fields of the
    /// spans they are in (`session`, `event_id`).
    #[arg(long, global = true, env = "PHONETREE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Compile machine files (or folders of them), prove every path of each, report every problem.
    Check(check::Args),
    /// Play a call offline: each INPUT is what the caller presses at the next prompt.
    Simulate(simulate::Args),
    /// Print a machine's compiled graph as Graphviz DOT, Mermaid, VoiceXML 2.1 or JSON.
    Export(export::Args),
    /// Run the durable webhook node: answer 8x8's CALL_ACTION and SESSION_SUMMARY webhooks.
    Serve(serve::Args),
    /// Place an outbound call through 8x8's Send Callflow API, running MACHINE when the callee answers.
    Call(call::Args),
    /// Read the call history: `list` calls, `show` one's transcript, `export` it as JSON.
    #[command(subcommand)]
    Calls(calls::Command),
    /// Play recorded calls (`calls export`) through a machine file offline: "same", or where they differ.
    Replay(replay::Args),
    /// Run scenario files (`*.calls.toml`) and recorded calls: golden transcripts, what must be heard.
    Test(test::Args),
    /// Compare two versions of a machine: structure, what callers hear on each path, recorded calls touched.
    Diff(diff::Args),
    /// Bring a store (`--store`) up to this phonetree's schema, then exit.
    Migrate(migrate::Args),
    /// Work on a whole store: `copy` moves every call to another store (sled to PostgreSQL).
    #[command(subcommand)]
    Store(store::Command),
    /// Point the 8x8 sub-account's VCA and VSS webhooks at a node (`register`), `list` or `delete` them.
    #[command(subcommand)]
    Webhooks(webhooks::Command),
    /// Play 8x8 against running nodes: calls over every edge, each reply checked against the engine.
    Loadtest(loadtest::Args),
    /// Print the JSON Schema (draft 2020-12) of machine files, for editors.
    Schema,
    /// Fetch the sub-account's voice profiles from 8x8 into a voices file that `check` and `serve` read.
    Voices(voices::Args),
    /// Check what the machines depend on before they go live: audio files, script hosts, and with
    /// the API flags the 8x8 sub-account's webhooks and voices. Exit 1 on any failed check.
    Doctor(doctor::Args),
}

/// A command's failure.
enum Failure {
    Check(check::Error),
    Simulate(simulate::Error),
    Export(export::Error),
    Serve(serve::Error),
    Call(call::Error),
    Calls(calls::Error),
    Replay(replay::Error),
    Test(test::Error),
    Diff(diff::Error),
    Migrate(migrate::Error),
    Store(store::Error),
    Webhooks(webhooks::Error),
    Schema(schema::Error),
    Voices(voices::Error),
    Loadtest(loadtest::Error),
    Doctor(doctor::Error),
}

/// The exit code of a command whose stdout was closed before it finished writing: a pipe writer's
/// on SIGPIPE (128 + 13), as `phonetree check machines/ | head -1` expects of any command.
const EXIT_CLOSED_STDOUT: u8 = 141;

/// A command whose stdout is closed early stops quietly, exit `EXIT_CLOSED_STDOUT`: Rust ignores
/// SIGPIPE (so `serve` lives through closed sockets), and `println!` then panics on the closed
/// pipe; this hook turns that panic, and only it, into the quiet exit, for every command.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        if message.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("Broken pipe")) {
            std::process::exit(i32::from(EXIT_CLOSED_STDOUT));
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    // Before any command builds an HTTP client (`call`, `calls`, `webhooks`, `voices`, ...).
    phonetree::node::install_tls_provider();
    let cli = Cli::parse();
    let init_tracing = || init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Check(args) => check::run(&args).map_err(Failure::Check),
        Command::Simulate(args) => simulate::run(args).map_err(Failure::Simulate),
        Command::Export(args) => export::run(&args).map_err(Failure::Export),
        Command::Serve(args) => {
            init_tracing();
            serve::run(args).map_err(Failure::Serve)
        }
        Command::Call(args) => {
            init_tracing();
            call::run(args).map_err(Failure::Call)
        }
        Command::Calls(command) => calls::run(command).map_err(Failure::Calls),
        Command::Replay(args) => replay::run(&args).map_err(Failure::Replay),
        Command::Test(args) => test::run(&args).map_err(Failure::Test),
        Command::Diff(args) => diff::run(args).map_err(Failure::Diff),
        Command::Migrate(args) => {
            init_tracing();
            migrate::run(&args).map_err(Failure::Migrate)
        }
        Command::Store(command) => {
            init_tracing();
            store::run(command).map_err(Failure::Store)
        }
        Command::Webhooks(command) => webhooks::run(command).map_err(Failure::Webhooks),
        Command::Loadtest(args) => loadtest::run(args).map_err(Failure::Loadtest),
        Command::Schema => schema::run().map_err(Failure::Schema),
        Command::Voices(args) => voices::run(args).map_err(Failure::Voices),
        Command::Doctor(args) => doctor::run(args).map_err(Failure::Doctor),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => exit(failure),
    }
}

/// Every failure's exit code and message (on stderr, after `phonetree: `). Usage errors are
/// clap's: their message, exit 2.
fn exit(failure: Failure) -> ExitCode {
    let (code, message) = match failure {
        // The report on stdout already lists every problem.
        Failure::Check(check::Error::Invalid { .. }) => (1, None),
        Failure::Simulate(simulate::Error::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            (EXIT_CLOSED_STDOUT, None)
        }
        Failure::Simulate(e) => (1, Some(e.to_string())),
        Failure::Export(e) => (1, Some(e.to_string())),
        // EX_IOERR: the store failed while serving; a restart reopens it.
        Failure::Serve(e @ serve::Error::StoreFailed(_)) => (74, Some(e.to_string())),
        // EX_IOERR: the store's disk stayed full through every try to open it.
        Failure::Serve(e @ (serve::Error::DiskFull { .. } | serve::Error::TokenDiskFull(_))) => {
            (74, Some(e.to_string()))
        }
        Failure::Serve(e) => (1, Some(e.to_string())),
        Failure::Call(e) => (1, Some(e.to_string())),
        Failure::Calls(e) => (1, Some(e.to_string())),
        // The lines on stdout say which calls differ and where.
        Failure::Replay(e @ replay::Error::Differs { .. }) => (1, Some(e.to_string())),
        Failure::Replay(e) => (1, Some(e.to_string())),
        // The lines on stdout say which scenarios failed, with their diffs.
        Failure::Test(e) => (1, Some(e.to_string())),
        // The diff on stdout says what differs.
        Failure::Diff(diff::Error::Differs | diff::Error::EndsDiffer) => (1, None),
        Failure::Diff(e) => (1, Some(e.to_string())),
        Failure::Migrate(e) => (1, Some(e.to_string())),
        // Like clap's usage errors: the command as given cannot work.
        Failure::Store(e @ store::Error::SameStore(_)) => (2, Some(e.to_string())),
        Failure::Store(e) => (1, Some(e.to_string())),
        Failure::Webhooks(e) => (1, Some(e.to_string())),
        Failure::Schema(e) => (1, Some(e.to_string())),
        Failure::Voices(e) => (1, Some(e.to_string())),
        Failure::Loadtest(e) => (1, Some(e.to_string())),
        // The report on stdout lists every failed check.
        Failure::Doctor(doctor::Error::Failed { .. }) => (1, None),
        Failure::Doctor(e) => (1, Some(e.to_string())),
    };
    if let Some(message) = message {
        eprintln!("phonetree: {message}");
    }
    ExitCode::from(code)
}

/// Logs to stderr, filtered by `PHONETREE_LOG` (default `info`), as `format` says: the commands
/// that run a node or talk to a store only.
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PHONETREE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // Each line: the event's fields at the top level, `span` (the innermost span's fields)
        // and `spans` (every enclosing span's, outermost first).
        LogFormat::Json => {
            logs.json().flatten_event(true).with_current_span(true).with_span_list(true).init()
        }
    }
}
