//! `phonetree diff OLD NEW`: reads and compiles two machine files, or a version a node has stored
//! (`--server --version`) and a file, and with `--calls` the recorded calls of a folder (or with
//! `--server --since` the calls the node recorded); prints `proof::diff`'s comparison as text,
//! JSON or Markdown, and fails as `--exit-code` says.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phonetree::engine::transcript::Call;
use phonetree::machine::{self, Machine, Source};
use phonetree::node::catalog;
use phonetree::node::guard::{self, CallPolicy};
use phonetree::node::history::{Filter, LIST_LIMIT_MAX};
use phonetree::proof::diff::{self, Diff};
use phonetree::proof::history::REPLAY_CALLS_MAX;
use phonetree::secret::{Secret, SecretFileError};

use super::calls::{self as history_client, Source as CallsSource};
use super::{NoRuntime, ServerArgs, runtime};

#[derive(clap::Args)]
pub struct Args {
    /// OLD NEW: the machine file as it is (or was), then as it will be. With `--server` and
    /// `--version`: NEW alone, OLD being that version as the node stores it.
    #[arg(num_args = 1..=2, required = true, value_name = "OLD NEW")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
    /// With --server: the stored version to compare NEW with (its 12 hex digits, as `check` and
    /// `/admin/machines` show it), of the machine `--machine` names.
    #[arg(long, requires = "server")]
    version: Option<String>,
    /// With --server: the machine whose version and calls are read. Default: NEW's name.
    #[arg(long, requires = "server")]
    machine: Option<String>,
    /// With --server: replay the calls the node recorded on the machine in this last while
    /// (`7d`, `12h`, `30m`; at most 10,000 calls) through NEW, as `--calls` does.
    #[arg(long, requires = "server", conflicts_with = "calls", value_parser = parse_since)]
    since: Option<Duration>,
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
    #[error("give OLD and NEW, or NEW alone with --server URL --version V")]
    Files,
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    #[error("{0}")]
    Server(#[from] history_client::Error),
    #[error("{what}: the node answered an unexpected machine version: {detail}")]
    Unexpected { what: String, detail: String },
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

pub fn run(args: Args) -> Result<(), Error> {
    let server = args.server.server()?;
    let (old, new, files) = match (&args.files[..], &server, &args.version) {
        ([old, new], _, None) => {
            let files = (old.display().to_string(), new.display().to_string());
            (load(old, args.modules.as_deref())?, load(new, args.modules.as_deref())?, files)
        }
        ([new_file], Some((url, token)), Some(version)) => {
            let new = load(new_file, args.modules.as_deref())?;
            let name = args.machine.clone().unwrap_or_else(|| new.name().to_string());
            let (old, shown) = runtime()?.block_on(stored(
                url,
                token.as_ref(),
                (&name, version),
                (new_file, args.modules.as_deref()),
            ))?;
            (old, new, (shown, new_file.display().to_string()))
        }
        _ => return Err(Error::Files),
    };
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
    if let (Some(since), Some((url, token))) = (args.since, server) {
        let source = CallsSource::Server { url, token };
        let recorded = runtime()?.block_on(recorded(&source, old.name(), since))?;
        d.impact = Some(diff::impact(&old, &new, &recorded));
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

/// A version the node at `url` stores, compiled with the modules kept with it (for a version
/// stored before modules were kept: `today`'s, NEW's file and `--modules`, as NEW compiles), and
/// how the diff names it.
async fn stored(
    url: &str,
    token: Option<&Secret>,
    (name, version): (&str, &str),
    today: (&Path, Option<&Path>),
) -> Result<(Machine, String), Error> {
    let mut target = url::Url::parse(&format!("{url}/admin/machines/"))
        .map_err(|e| history_client::Error::Unreachable { url: url.to_string(), detail: e.to_string() })?;
    target
        .path_segments_mut()
        .map_err(|()| history_client::Error::Refused(format!("{url} cannot be a base")))?
        .pop_if_empty()
        .extend([name, "versions", version]);
    let v = history_client::get(target.as_str(), token)
        .await?
        .ok_or_else(|| history_client::Error::Refused(format!("{target}: 404")))?;
    let unexpected =
        |detail: &str| Error::Unexpected { what: target.to_string(), detail: detail.to_string() };
    let text =
        |v: &serde_json::Value, key: &str| v[key].as_str().map(String::from).ok_or_else(|| unexpected(key));
    let shown = format!("{name}@{} ({url})", text(&v, "version")?.chars().take(12).collect::<String>());
    let source = Source::new(shown.clone(), text(&v, "text")?);
    let kept = v["modules"].as_array().ok_or_else(|| unexpected("modules"))?;
    let kept: Vec<Source> = kept
        .iter()
        .map(|m| Ok(Source::new(text(m, "file")?, text(m, "text")?)))
        .collect::<Result<_, Error>>()?;
    let (modules, problems) = if kept.is_empty() {
        catalog::read_modules(&catalog::modules_dirs(&[today.0.to_path_buf()], today.1))
    } else {
        machine::Modules::of(kept)
    };
    let compiled =
        machine::compile_with(&source, machine::Options { modules: &modules, ..Default::default() });
    for d in problems.iter().chain(&compiled.diagnostics) {
        eprintln!("{d}");
    }
    let m = compiled.machine.ok_or_else(|| Error::DoesNotCompile(PathBuf::from(&shown)))?;
    Ok((m, shown))
}

/// The calls the node recorded on machine `name` since `since` ago, in its listing order, at most
/// `REPLAY_CALLS_MAX`, each named by its session.
async fn recorded(source: &CallsSource, name: &str, since: Duration) -> Result<Vec<(String, Call)>, Error> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let since_ms = u64::try_from(now.saturating_sub(since).as_millis()).unwrap_or(u64::MAX);
    let mut filter = Filter {
        machine: Some(name.to_string()),
        since_ms: Some(since_ms),
        limit: LIST_LIMIT_MAX,
        ..Filter::default()
    };
    let mut sessions = Vec::new();
    loop {
        let (page, next) = history_client::list(source, &filter).await?;
        sessions.extend(page.into_iter().map(|c| c.session));
        match next {
            Some(after) if sessions.len() < REPLAY_CALLS_MAX => filter.after = Some(after),
            _ => break,
        }
    }
    sessions.truncate(REPLAY_CALLS_MAX);
    let mut calls = Vec::with_capacity(sessions.len());
    for session in sessions {
        let call = history_client::show(source, &session).await?;
        calls.push((format!("call {session}"), call));
    }
    Ok(calls)
}

/// `7d`, `12h`, `30m`: a while back from now (at most a year: retention keeps far less).
fn parse_since(s: &str) -> Result<Duration, String> {
    const SINCE_DAYS_MAX: u64 = 366;
    let (number, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| format!("`{s}` is not a while: write `7d`, `12h` or `30m`"))?;
    let secs = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        _ => return Err(format!("`{s}` is not a while: write `7d`, `12h` or `30m`")),
    };
    match secs {
        Some(secs) if secs <= SINCE_DAYS_MAX * 86_400 => Ok(Duration::from_secs(secs)),
        _ => Err(format!("`{s}` is more than {SINCE_DAYS_MAX} days")),
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

fn load(path: &Path, modules: Option<&Path>) -> Result<Machine, Error> {
    super::compile_file(path, modules)
        .map_err(|source| Error::Read { path: path.into(), source })?
        .ok_or_else(|| Error::DoesNotCompile(path.into()))
}
