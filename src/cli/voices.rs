//! `phonetree voices`: the sub-account's voice profiles, fetched from 8x8's speech-profiles API
//! into a voices file (one name a line) that `check` and `serve` check `voice_profile`s against.

use std::path::PathBuf;

use phonetree::machine::Voices;
use phonetree::secret::SecretFileError;
use phonetree::webhook::voices_api;
use phonetree::webhook::webhooks_api::WebhooksApiError;

use super::{ApiArgs, NoRuntime, VOICES_FILE, runtime};

#[derive(clap::Args)]
pub struct Args {
    /// The voices file to write (replaced whole).
    #[arg(long, default_value = VOICES_FILE)]
    out: PathBuf,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    #[error(transparent)]
    Api(#[from] WebhooksApiError),
    #[error("8x8's speech-profiles API answered a list phonetree cannot keep: {0}")]
    List(String),
    #[error("cannot write {}: {source}", file.display())]
    Write { file: PathBuf, source: std::io::Error },
}

pub fn run(args: Args) -> Result<(), Error> {
    let api = args.api.config()?;
    let source = format!(
        "{}'s speech-profiles API, sub-account {}",
        api.base_url.trim_end_matches('/'),
        api.sub_account.as_deref().unwrap_or("")
    );
    let http = reqwest::Client::new();
    let profiles = runtime()?.block_on(voices_api::speech_profiles(&http, &api))?;
    let names: Vec<String> = profiles.into_iter().map(|p| p.speech_profile_code).collect();
    let text = Voices::to_file(&names, &source);
    // What is written is what `check` reads back: a name it would refuse is refused here.
    let voices = Voices::parse(&text, "the answer").map_err(|e| Error::List(e.to_string()))?;
    // Written beside the file, then renamed over it: a reader sees the old list or the new one.
    let partial = args.out.with_extension("txt.partial");
    let write = |file: &PathBuf, result: std::io::Result<()>| {
        result.map_err(|source| Error::Write { file: file.clone(), source })
    };
    write(&partial, std::fs::write(&partial, text))?;
    write(&args.out, std::fs::rename(&partial, &args.out))?;
    println!("{} voice profiles from {source} written to {}", voices.len(), args.out.display());
    Ok(())
}
