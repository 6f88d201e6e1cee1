//! `phonetree store copy`: copies every call from one store into another (a sled folder into
//! PostgreSQL, to move a node's live calls to a shared database), for stopped nodes.
//!
//! One command from URL to URL rather than an export file and an import: nothing to version or to
//! keep safe on disk (a store holds callers' numbers), nothing to run twice, and memory stays
//! bounded by the copy's pages (`store::COPY_PAGE`) however large the store.

use phonetree::store::{self, Copied, CopyError, Durability, KeyCopied, StoreError, StoreUrl};

use super::{NoRuntime, runtime};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Copy every call from one store into another (sled to PostgreSQL), for stopped nodes.
    ///
    /// Copies the machine versions, the sessions with their reply journals and script answers,
    /// the summaries, callers' interrupted calls (`[resume]`) and scheduled callbacks, so that a
    /// node on the target answers each call, and each duplicate delivery, as the source's node
    /// would have. Stop every node on either store first: a
    /// running node locks its sled folder, nodes on a database must be stopped by hand. The
    /// target must hold no sessions; both stores are brought up to this phonetree's format. The
    /// script cache is not copied.
    ///
    /// Example: phonetree store copy --from sled:./data --to postgres://phonetree@db/ivr
    Copy(CopyArgs),
}

#[derive(clap::Args)]
pub struct CopyArgs {
    /// The store to copy from: `sled:DIR` or `postgres://user@host:port/db`.
    #[arg(long, env = "PHONETREE_COPY_FROM", hide_env_values = true)]
    from: String,
    /// The store to copy into (`sled:DIR` or `postgres://…`), holding no sessions yet.
    #[arg(long, env = "PHONETREE_COPY_TO", hide_env_values = true)]
    to: String,
}

/// Every URL here is shown as `StoreUrl` shows it: without a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    #[error("--from and --to are one store ({0}): copy into another")]
    SameStore(String),
    #[error("{0}")]
    Url(StoreError),
    #[error("no store at {0}: --from names a sled folder that does not exist")]
    NoSource(String),
    #[error("cannot open {store}: {source}")]
    Open { store: String, source: StoreError },
    #[error("cannot copy {from} to {to}: {source}")]
    Copy { from: String, to: String, source: Box<CopyError> },
}

pub fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Copy(args) => copy(&args),
    }
}

fn copy(args: &CopyArgs) -> Result<(), Error> {
    let from = StoreUrl::parse(&args.from).map_err(Error::Url)?;
    let to = StoreUrl::parse(&args.to).map_err(Error::Url)?;
    if from.same_store(&to) {
        return Err(Error::SameStore(from.to_string()));
    }
    // Opening a sled folder makes it: a mistyped source would copy nothing, successfully.
    if let StoreUrl::Sled(dir) = &from
        && !dir.is_dir()
    {
        return Err(Error::NoSource(from.to_string()));
    }
    let copied = runtime()?.block_on(async {
        let open = |url: &str, shown: &StoreUrl| {
            let (url, shown) = (url.to_string(), shown.to_string());
            async move {
                store::open(&url, Durability::Fsync)
                    .await
                    .map_err(|source| Error::Open { store: shown, source })
            }
        };
        let source = open(&args.from, &from).await?;
        let target = open(&args.to, &to).await?;
        store::copy(source.as_ref(), &target).await.map_err(|source| Error::Copy {
            from: from.to_string(),
            to: to.to_string(),
            source: Box::new(source),
        })
    })?;
    print!("{}", report(&from, &to, &copied));
    Ok(())
}

fn report(from: &StoreUrl, to: &StoreUrl, c: &Copied) -> String {
    let key = match c.action_key {
        KeyCopied::Copied => "copied",
        KeyCopied::NoneInSource => "none in the source",
        KeyCopied::TargetKeepsItsOwn => {
            "NOT copied: the target keeps its own (ids the source issued will not resume there)"
        }
    };
    format!(
        "copied {from} to {to}\n\
         machine versions: {}\n\
         sessions: {} (replies kept: {}, older events known: {}, webhooks with script answers: {}, \
         summaries: {})\n\
         summaries of sessions not stored: {}\n\
         interrupted calls (resume): {}\n\
         scheduled callbacks: {}\n\
         action key: {key}\n",
        c.machines,
        c.sessions,
        c.replies,
        c.forgotten,
        c.answers,
        c.summaries,
        c.lone_summaries,
        c.unfinished,
        c.scheduled
    )
}
