//! `phonetree call`: places one outbound call, with the node's own store, or through a running
//! node's `POST /calls` (`--server`); prints the session id 8x8 gives it.

use std::net::SocketAddr;
use std::time::Duration;

use phonetree::node::{self, App, Config, ServeError};
use phonetree::webhook::outbound::OutboundError;
use tokio::runtime::Runtime;

use super::{NoRuntime, NodeArgs, runtime};

#[derive(clap::Args)]
pub struct Args {
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
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    #[error("{source} (if `phonetree serve` is running on {data}, pass --server URL)")]
    Open { source: ServeError, data: String },
    /// 8x8 refused the call (`NOT_CREATED`, with its status code and message), or could not be asked.
    #[error(transparent)]
    Place(#[from] OutboundError),
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{url}: {source}")]
    BadReply { url: String, source: reqwest::Error },
    /// The server's `{"error": {"message"}}`.
    #[error("{message}")]
    Refused { message: String },
}

pub fn run(args: Args) -> Result<(), Error> {
    let Args { machine, to, from, server, node } = args;
    let config = node.config(SocketAddr::from(([127, 0, 0, 1], 0)), Duration::ZERO, Duration::ZERO);
    let rt = runtime()?;
    let session = match server {
        Some(server) => rt.block_on(through_server(&server, &machine, &to, from.as_deref()))?,
        None => place(&rt, config, &machine, &to, from.as_deref())?,
    };
    println!("{session}");
    Ok(())
}

/// The node's entry points as `call` uses them: open the app (and its store), place the call.
fn place(rt: &Runtime, config: Config, machine: &str, to: &str, from: Option<&str>) -> Result<String, Error> {
    let data = config.data.display().to_string();
    let app = App::open(config).map_err(|source| Error::Open { source, data })?;
    Ok(rt.block_on(node::place_call(&app, machine, to, from))?)
}

/// Asks a running node to place the call: `POST {server}/calls`.
async fn through_server(server: &str, machine: &str, to: &str, from: Option<&str>) -> Result<String, Error> {
    let url = format!("{}/calls", server.trim_end_matches('/'));
    let body = serde_json::json!({"machine": machine, "to": to, "from": from});
    let response = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|source| Error::Unreachable { url: url.clone(), source })?;
    let status = response.status();
    let v: serde_json::Value =
        response.json().await.map_err(|source| Error::BadReply { url: url.clone(), source })?;
    match v["sessionId"].as_str() {
        Some(id) if status.is_success() => Ok(id.to_string()),
        _ => Err(Error::Refused {
            message: v["error"]["message"].as_str().unwrap_or("the server refused the call").to_string(),
        }),
    }
}
