//! The commands of the `phonetree` binary, one module each: their flags, their typed failures, and
//! the I/O around the library (files, stdin, stdout, the async runtime). `main.rs` picks one and
//! turns its failure into an exit code; nothing in the library sees this module.

pub mod call;
pub mod calls;
pub mod check;
pub mod diff;
pub mod doctor;
pub mod export;
pub mod loadtest;
pub mod migrate;
pub mod replay;
pub mod schema;
pub mod serve;
pub mod simulate;
pub mod store;
pub mod test;
pub mod voices;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use phonetree::machine::hosts::{self, AllowedHost};
use phonetree::node::Config;
use phonetree::node::catalog;
use phonetree::node::guard::{CallPolicy, RATE_OVERALL_DEFAULT, RATE_PER_DESTINATION_DEFAULT};
use phonetree::secret::{Secret, SecretFileError};
use phonetree::webhook::outbound::{ApiConfig, DEFAULT_BASE_URL};

/// The voices file `phonetree voices` writes, and `check` and `serve` read when there is one.
const VOICES_FILE: &str = "voices.txt";

/// The voices file voice profiles are checked against: `--voices`, else `voices.txt` in the
/// current folder when there is one (else the bundled list: `None`).
fn voices_file(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| Some(PathBuf::from(VOICES_FILE)).filter(|f| f.is_file()))
}

/// Compiles a machine file with its modules (`--modules`, else `modules/` beside it), its
/// diagnostics on stderr; `None` when it does not compile (`diff`, `replay`).
fn compile_file(path: &Path, modules: Option<&Path>) -> std::io::Result<Option<phonetree::machine::Machine>> {
    let source = phonetree::machine::Source::new(path.display().to_string(), std::fs::read_to_string(path)?);
    let (modules, problems) = catalog::read_modules(&catalog::modules_dirs(&[path.to_path_buf()], modules));
    let compiled = phonetree::machine::compile_with(
        &source,
        phonetree::machine::Options { modules: &modules, ..Default::default() },
    );
    for d in problems.iter().chain(&compiled.diagnostics) {
        eprintln!("{d}");
    }
    Ok(compiled.machine)
}

/// How phonetree reaches 8x8's API (`serve`, `call`, `webhooks`, `voices`, `doctor`).
#[derive(clap::Args)]
struct ApiArgs {
    /// 8x8 Voice API base URL.
    #[arg(long, env = "PHONETREE_8X8_BASE_URL", default_value = DEFAULT_BASE_URL)]
    api_base_url: String,
    /// 8x8 sub-account id.
    #[arg(long, env = "PHONETREE_8X8_SUBACCOUNT")]
    api_subaccount: Option<String>,
    /// 8x8 API key (Bearer). Prefer --api-key-file: a flag shows in `ps`.
    #[arg(long, env = "PHONETREE_8X8_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// A file whose first line is the 8x8 API key.
    #[arg(long, env = "PHONETREE_8X8_API_KEY_FILE", conflicts_with = "api_key")]
    api_key_file: Option<PathBuf>,
}

impl ApiArgs {
    /// The API's settings, the key read from its file if one is given.
    fn config(self) -> Result<ApiConfig, SecretFileError> {
        let api_key = Secret::from_either(self.api_key.as_deref(), self.api_key_file.as_deref())?;
        Ok(ApiConfig { base_url: self.api_base_url, sub_account: self.api_subaccount, api_key })
    }
}

/// Where a node keeps its machines and data, and how it reaches 8x8 (`serve` and `call`).
#[derive(clap::Args)]
struct NodeArgs {
    /// Folder of machine files.
    #[arg(long, env = "PHONETREE_MACHINES", default_value = "machines")]
    machines: PathBuf,
    /// Folder of the modules machines use (`module` nodes). Default: `modules/` in the machines
    /// folder, when there is one.
    #[arg(long, env = "PHONETREE_MODULES")]
    modules: Option<PathBuf>,
    /// The voice profiles machines are checked against, one a line (`phonetree voices` writes
    /// it). Default: `voices.txt` when there is one, else the voices bundled with phonetree.
    #[arg(long, env = "PHONETREE_VOICES")]
    voices: Option<PathBuf>,
    /// Folder of the embedded store (`--store sled:DIR` says the same).
    #[arg(long, env = "PHONETREE_DATA", default_value = "./data")]
    data: PathBuf,
    /// Where calls are kept: `sled:DIR` (the default, with --data) or
    /// `postgres://user@host:port/db` (`?sslmode=require` for TLS) to share calls between nodes.
    #[arg(long, env = "PHONETREE_STORE", hide_env_values = true)]
    store: Option<String>,
    /// The machine for calls on a number no machine declares.
    #[arg(long, env = "PHONETREE_DEFAULT_MACHINE")]
    default_machine: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
    /// Destination prefixes outbound calls may go to, e.g. `+1,+44` (`+` for every number).
    /// None by default: no call is placed until this is set. Emergency, premium-rate and
    /// international-network ranges are refused whatever it says.
    #[arg(long, env = "PHONETREE_CALL_ALLOW_PREFIX", value_delimiter = ',')]
    call_allow_prefix: Vec<String>,
    /// Outbound calls per minute to one destination.
    #[arg(long, env = "PHONETREE_CALL_RATE_PER_DESTINATION", default_value_t = RATE_PER_DESTINATION_DEFAULT)]
    call_rate_per_destination: u32,
    /// Outbound calls per minute, all destinations together.
    #[arg(long, env = "PHONETREE_CALL_RATE_OVERALL", default_value_t = RATE_OVERALL_DEFAULT)]
    call_rate_overall: u32,
    /// The key every clientActionId is signed with (at least 16 characters; every node of a store
    /// must have the same). Default: a random key made once and kept in the store. Prefer
    /// --action-key-file: a flag shows in `ps`.
    #[arg(long, env = "PHONETREE_ACTION_KEY", hide_env_values = true)]
    action_key: Option<String>,
    /// A file whose first line is the action key.
    #[arg(long, env = "PHONETREE_ACTION_KEY_FILE", conflicts_with = "action_key")]
    action_key_file: Option<PathBuf>,
    /// Hosts every machine's scripts may call, `HOST` or `HOST:PORT`, comma-separated (the host
    /// rule, machines/README.md "Which hosts a script may call"): a loopback or private address, or
    /// a name resolving to one, at a `HOST:PORT` listed here. With a list here or in a machine's
    /// `allow_hosts`, scripts call only the hosts listed. Give `check` the same list to prove what
    /// this node does.
    #[arg(long, env = "PHONETREE_SCRIPT_ALLOW", value_delimiter = ',', value_parser = script_host)]
    script_allow: Vec<AllowedHost>,
}

impl NodeArgs {
    /// The node's configuration: the one place the CLI builds a `node::Config`.
    fn config(
        self,
        listen: SocketAddr,
        session_ttl: Duration,
        retention: Duration,
    ) -> Result<Config, SecretFileError> {
        let action_key = Secret::from_either(self.action_key.as_deref(), self.action_key_file.as_deref())?;
        Ok(Config {
            machines: self.machines,
            modules: self.modules,
            voices: voices_file(self.voices),
            store: self.store.unwrap_or_else(|| format!("sled:{}", self.data.display())),
            listen,
            default_machine: self.default_machine,
            session_ttl,
            retention,
            api: self.api.config()?,
            calls: CallPolicy {
                allow_prefixes: self.call_allow_prefix,
                per_destination: self.call_rate_per_destination,
                overall: self.call_rate_overall,
            },
            unsafe_no_fsync: false,
            action_key,
            script_allow: self.script_allow,
        })
    }
}

/// A `--script-allow` entry: `HOST` or `HOST:PORT`, as the host rule can use it (`hosts`).
pub(crate) fn script_host(entry: &str) -> Result<AllowedHost, String> {
    let host = AllowedHost::parse(entry)?;
    match hosts::entry_problem(&host) {
        Some(problem) => Err(format!("{} ({})", problem.message(&host), problem.hint(&host))),
        None => Ok(host),
    }
}

/// A running node's admin listener to ask instead of opening its store (`call`, `calls`).
#[derive(clap::Args)]
struct ServerArgs {
    /// The admin listener of a running `phonetree serve` (its sled store is locked while it runs),
    /// e.g. `http://127.0.0.1:9090`.
    #[arg(long, env = "PHONETREE_SERVER")]
    server: Option<String>,
    /// The node's admin token, sent as `Authorization: Bearer` with --server. Prefer
    /// --admin-token-file: a flag shows in `ps`.
    #[arg(long, env = "PHONETREE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file whose first line is the node's admin token.
    #[arg(long, env = "PHONETREE_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
}

impl ServerArgs {
    /// The admin listener's URL (without a trailing `/`) and token, when `--server` is given.
    fn server(self) -> Result<Option<(String, Option<Secret>)>, SecretFileError> {
        let Some(url) = self.server else { return Ok(None) };
        let token = Secret::from_either(self.admin_token.as_deref(), self.admin_token_file.as_deref())?;
        Ok(Some((url.trim_end_matches('/').to_string(), token)))
    }
}

/// The async runtime would not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the async runtime: {0}")]
pub struct NoRuntime(#[from] std::io::Error);

fn runtime() -> Result<tokio::runtime::Runtime, NoRuntime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
