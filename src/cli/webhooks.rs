//! `phonetree webhooks`: the sub-account's webhooks at 8x8 pointed at a node. `register` creates
//! (or replaces) the CALL_ACTION and SESSION_SUMMARY webhooks with the webhook secret as their
//! `httpAuthHeader`; `list` shows them (never a secret); `delete` removes them.

use std::path::PathBuf;

use phonetree::http::auth::SECRET_BYTES_MIN;
use phonetree::secret::{Secret, SecretFileError};
use phonetree::webhook::webhooks_api::{self, CALL_ACTION, SESSION_SUMMARY, WebhooksApiError};

use super::{ApiArgs, NoRuntime, runtime};

/// phonetree's webhooks and the node path each is sent to.
pub(super) const OURS: [(&str, &str); 2] = [(CALL_ACTION, "webhooks/vca"), (SESSION_SUMMARY, "webhooks/vss")];

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create (or replace) the VCA and VSS webhooks: `{url}/webhooks/vca` and `{url}/webhooks/vss`,
    /// each carrying the webhook secret in 8x8's `httpAuthHeader`.
    Register(Register),
    /// Show the sub-account's webhooks: type, URL, enabled, whether an auth header is set.
    List(Api),
    /// Delete the VCA and VSS webhooks.
    Delete(Api),
}

#[derive(clap::Args)]
pub struct Register {
    /// The node's public base URL, e.g. `https://node.example/` (https: 8x8 sends the secret).
    #[arg(long)]
    url: String,
    /// A file whose first line is the webhook secret (the node's --webhook-secret-file).
    #[arg(long)]
    secret_file: PathBuf,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(clap::Args)]
pub struct Api {
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    #[error("the webhook secret in {0} is shorter than {SECRET_BYTES_MIN} bytes: generate a longer one")]
    ShortSecret(String),
    #[error("--url `{0}` is not an https:// URL: 8x8 sends the webhook secret to it, so it must be https")]
    NotHttps(String),
    #[error(transparent)]
    Api(#[from] WebhooksApiError),
}

pub fn run(command: Command) -> Result<(), Error> {
    let http = reqwest::Client::new();
    match command {
        Command::Register(args) => {
            let base = args.url.trim_end_matches('/').to_string();
            let host = base.strip_prefix("https://").unwrap_or_default();
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(Error::NotHttps(args.url));
            }
            let secret = Secret::from_file(&args.secret_file)?;
            if secret.len() < SECRET_BYTES_MIN {
                return Err(Error::ShortSecret(args.secret_file.display().to_string()));
            }
            let api = args.api.config()?;
            runtime()?.block_on(async {
                let present = webhooks_api::list(&http, &api).await?;
                for (kind, path) in OURS {
                    // The API has no update: a webhook already there is deleted, then created.
                    if present.iter().any(|w| w.kind == kind) {
                        webhooks_api::delete(&http, &api, kind).await?;
                    }
                    let url = format!("{base}/{path}");
                    webhooks_api::create(&http, &api, kind, &url, &secret).await?;
                    println!("{kind}\t{url}\tregistered with the webhook secret as httpAuthHeader");
                }
                Ok(())
            })
        }
        Command::List(Api { api }) => {
            let api = api.config()?;
            runtime()?.block_on(async {
                for w in webhooks_api::list(&http, &api).await? {
                    let flag = |b: Option<bool>| b.map_or("unknown", |b| if b { "true" } else { "false" });
                    println!(
                        "{}\t{}\tenabled={}\thttpAuthHeaderAvailable={}",
                        w.kind,
                        w.url,
                        flag(w.enabled),
                        flag(w.http_auth_header_available)
                    );
                }
                Ok(())
            })
        }
        Command::Delete(Api { api }) => {
            let api = api.config()?;
            runtime()?.block_on(async {
                let present = webhooks_api::list(&http, &api).await?;
                for (kind, _) in OURS {
                    if present.iter().any(|w| w.kind == kind) {
                        webhooks_api::delete(&http, &api, kind).await?;
                        println!("{kind}\tdeleted");
                    } else {
                        println!("{kind}\tnot registered");
                    }
                }
                Ok(())
            })
        }
    }
}
