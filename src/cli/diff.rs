//! `phonetree diff OLD NEW`: reads and compiles two machine files (and, with `--calls`, the
//! recorded calls of a folder), prints `proof::diff`'s comparison as text, JSON or Markdown, and
//! fails as `--exit-code` says.

use std::path::{Path, PathBuf};

use phonetree::engine::transcript::Call;
use phonetree::machine::{self, Machine, Source};
use phonetree::node::catalog;
use phonetree::node::guard::{self, CallPolicy};
use phonetree::proof::diff::{self, Diff};
use phonetree::proof::history::REPLAY_CALLS_MAX;

#[derive(clap::Args)]
pub struct Args {
    /// The machine file as it is (or was).
    old: PathBuf,
    /// The machine file as it will be.
    new: PathBuf,
    /// Folder of the modules the machines use (`module` nodes). Default: `modules/` beside each
    /// machine file.
    #[arg(long, env = "PHONETREE_MODULES")]
    modules: Option<PathBuf>,
    /// How to print the diff: for a terminal, one JSON document (`src/proof/diff.schema.json`),
    /// or a pull-request comment.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// When to exit 1: when anything differs, only when some path ends differently, or never.
    #[arg(long, value_enum, default_value_t = ExitCode::Any)]
    exit_code: ExitCode,
    /// As `simulate --call-allow-prefix` (and `serve`'s): a transfer to a templated destination
    /// dials only a number the outbound guard lets through, else takes its `failure`. None: every
    /// such number is refused, as on a node started without it.
    #[arg(long, env = "PHONETREE_CALL_ALLOW_PREFIX", value_delimiter = ',')]
    call_allow_prefix: Vec<String>,
    /// A folder of recorded calls (`phonetree calls export`, `*.json`): each call of the machine
    /// is replayed through NEW, and the diff says how many go or end differently.
    #[arg(long)]
    calls: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExitCode {
    Any,
    Ends,
    Never,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// Its diagnostics are on stderr already.
    #[error("{} does not compile: fix it, then diff again", .0.display())]
    DoesNotCompile(PathBuf),
    #[error("{}: not a recorded call (`phonetree calls export` writes them): {source}", path.display())]
    NotACall { path: PathBuf, source: serde_json::Error },
    #[error("--call-allow-prefix: {0}")]
    Policy(String),
    #[error("{}: more than {REPLAY_CALLS_MAX} recorded calls; give a folder with fewer", .0.display())]
    TooManyCalls(PathBuf),
    /// The diff on stdout says what.
    #[error("the machines differ")]
    Differs,
    #[error("some path ends differently")]
    EndsDiffer,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let old = load(&args.old, args.modules.as_deref())?;
    let new = load(&args.new, args.modules.as_deref())?;
    let files = (args.old.display().to_string(), args.new.display().to_string());
    let policy = CallPolicy { allow_prefixes: args.call_allow_prefix.clone(), ..CallPolicy::default() }
        .checked()
        .map_err(|e| Error::Policy(e.to_string()))?;
    let dial = |to: &str| guard::check_destination(&policy, to).map_err(|refused| refused.to_string());
    let flags: Vec<String> = if args.call_allow_prefix.is_empty() {
        Vec::new()
    } else {
        vec![format!("--call-allow-prefix={}", args.call_allow_prefix.join(","))]
    };
    let playing = diff::Playing { guard: &dial, flags: &flags };
    let mut d: Diff = diff::diff(&old, &new, (&files.0, &files.1), playing);
    if let Some(dir) = &args.calls {
        d.impact = Some(diff::impact(&old, &new, &calls(dir)?));
    }
    match args.format {
        Format::Text => print!("{}", diff::text(&d)),
        Format::Markdown => print!("{}", diff::markdown(&d)),
        Format::Json => println!("{:#}", serde_json::to_value(&d).unwrap_or_default()),
    }
    match args.exit_code {
        ExitCode::Any if !d.is_empty() => Err(Error::Differs),
        ExitCode::Ends if d.ends_differ() => Err(Error::EndsDiffer),
        _ => Ok(()),
    }
}

/// The recorded calls of `dir` (its `*.json` files, by name), each with its file's path.
fn calls(dir: &Path) -> Result<Vec<(String, Call)>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read { path: dir.into(), source })?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| Error::Read { path: dir.into(), source })?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            files.push(path);
            if files.len() > REPLAY_CALLS_MAX {
                return Err(Error::TooManyCalls(dir.into()));
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = read(&path)?;
            let call = serde_json::from_str(&text)
                .map_err(|source| Error::NotACall { path: path.clone(), source })?;
            Ok((path.display().to_string(), call))
        })
        .collect()
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.into(), source })
}

/// Compiles a machine file with its modules, its diagnostics on stderr.
fn load(path: &Path, modules: Option<&Path>) -> Result<Machine, Error> {
    let source = Source::new(path.display().to_string(), read(path)?);
    let (modules, problems) = catalog::read_modules(&catalog::modules_dirs(&[path.to_path_buf()], modules));
    let compiled =
        machine::compile_with(&source, machine::Options { modules: &modules, ..Default::default() });
    for d in problems.iter().chain(&compiled.diagnostics) {
        eprintln!("{d}");
    }
    compiled.machine.ok_or_else(|| Error::DoesNotCompile(path.into()))
}
