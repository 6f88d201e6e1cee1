//! `phonetree call`: places one outbound call, with the node's own store, or through a running
//! node's admin listener, `POST /calls` (`--server`, `--admin-token`); prints the session id 8x8
//! gives it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use phonetree::node::{self, App, Config, PlaceError, ServeError};
use phonetree::proof::simulate;
use phonetree::secret::{Secret, SecretFileError};
use phonetree::webhook::outbound::API_TIMEOUT;
use tokio::runtime::Runtime;

use super::{NoRuntime, NodeArgs, ServerArgs, runtime};

/// How long `--server` may take: the node's own wait on 8x8 (`API_TIMEOUT`), and some.
const SERVER_TIMEOUT: Duration = Duration::from_secs(API_TIMEOUT.as_secs() + 20);

#[derive(clap::Args)]
pub struct Args {
    /// The machine to run.
    #[arg(long)]
    machine: String,
    /// The number to call, E.164 (`+6598888888`), in a prefix --call-allow-prefix allows.
    #[arg(long)]
    to: String,
    /// The caller ID, one of the machine's numbers (default: its first).
    #[arg(long)]
    from: Option<String>,
    /// A call variable, one of the machine's `variables` (repeat for each).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = simulate::parse_var)]
    vars: Vec<(String, String)>,
    /// A running node to place the call through.
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    #[error(
        "{source} (if `phonetree serve` is running on {store}, pass --server with its admin listener URL)"
    )]
    Open { source: ServeError, store: String },
    /// The guard refused the call (nothing sent to 8x8), 8x8 refused it (`NOT_CREATED`, with its
    /// status code and message), or it could not be asked.
    #[error(transparent)]
    Place(#[from] PlaceError),
    #[error("cannot reach {url}: {}", chain(source))]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{url} did not answer within {} s", SERVER_TIMEOUT.as_secs())]
    Timeout { url: String },
    /// The server's `{"error": {"message"}}`, or what it answered instead.
    #[error("{message}")]
    Refused { message: String },
}

/// The `--var`s as one map; a name given twice is an error.
pub(super) fn vars_map(vars: Vec<(String, String)>) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for (name, value) in vars {
        if map.insert(name.clone(), value).is_some() {
            return Err(format!("--var {name} is given twice"));
        }
    }
    Ok(map)
}

pub fn run(args: Args) -> Result<(), Error> {
    let Args { machine, to, from, vars, server, node } = args;
    let vars = vars_map(vars).map_err(|message| Error::Refused { message })?;
    let config = node.config(SocketAddr::from(([127, 0, 0, 1], 0)), Duration::ZERO, Duration::ZERO)?;
    let rt = runtime()?;
    let call = Call { machine: &machine, to: &to, from: from.as_deref(), vars: &vars };
    let session = match server.server()? {
        Some((server, token)) => rt.block_on(through_server(&server, token.as_ref(), call))?,
        None => place(&rt, config, call)?,
    };
    println!("{session}");
    Ok(())
}

/// The call to place.
#[derive(Clone, Copy)]
struct Call<'a> {
    machine: &'a str,
    to: &'a str,
    from: Option<&'a str>,
    vars: &'a BTreeMap<String, String>,
}

/// The node's entry points as `call` uses them: open the app (and its store), place the call.
fn place(rt: &Runtime, config: Config, call: Call<'_>) -> Result<String, Error> {
    let store = node::store_name(&config.store);
    let app = rt.block_on(App::open(config)).map_err(|source| Error::Open { source, store })?;
    Ok(rt.block_on(node::place_call(&app, call.machine, call.to, call.from, call.vars))?)
}

/// Asks a running node's admin listener to place the call: `POST {server}/calls`, with the admin
/// token if there is one.
async fn through_server(server: &str, token: Option<&Secret>, call: Call<'_>) -> Result<String, Error> {
    let url = format!("{}/calls", server.trim_end_matches('/'));
    let failed = |source: reqwest::Error| {
        if source.is_timeout() {
            Error::Timeout { url: url.clone() }
        } else {
            Error::Unreachable { url: url.clone(), source }
        }
    };
    let mut request = reqwest::Client::new().post(&url).timeout(SERVER_TIMEOUT);
    if let Some(token) = token {
        request = request.bearer_auth(token.expose());
    }
    let response = request
        .json(&serde_json::json!({
            "machine": call.machine, "to": call.to, "from": call.from, "variables": call.vars,
        }))
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    let body = response.bytes().await.map_err(failed)?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match (status.is_success(), v["sessionId"].as_str(), v["error"]["message"].as_str()) {
        (true, Some(session), _) => Ok(session.to_string()),
        (_, _, Some(message)) => Err(Error::Refused { message: message.to_string() }),
        _ => {
            let body: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            Err(Error::Refused { message: format!("{url} answered HTTP {status}: {}", body.trim()) })
        }
    }
}

/// An error and its causes, `: `-separated (reqwest's own message leaves out why it failed).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}
