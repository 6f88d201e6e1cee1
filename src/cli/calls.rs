//! `phonetree calls list|show|export|cancel`: reads the call history of a running node through its
//! admin listener (`--server`, `GET /calls`, `GET /calls/{session}`), or of a stopped node's store;
//! `list --scheduled` and `cancel ID` the callbacks of unanswered transfers.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use phonetree::engine::transcript::Call;
use phonetree::node::history::{self, Filter};
use phonetree::node::{self, App, ServeError};
use phonetree::secret::{Secret, SecretFileError};

use super::{NoRuntime, NodeArgs, ServerArgs, runtime};

/// How long `--server` may take to answer.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Subcommand)]
pub enum Command {
    /// List stored calls (a page: --limit, then --after the `next` printed last).
    List {
        #[command(flatten)]
        filter: ListArgs,
        #[command(flatten)]
        from: FromArgs,
    },
    /// Print a call's transcript: every event, what the caller heard, script requests and answers.
    Show {
        session: String,
        #[command(flatten)]
        from: FromArgs,
    },
    /// Cancel a pending scheduled callback (its id, as `calls list --scheduled` prints it).
    Cancel {
        id: String,
        #[command(flatten)]
        from: FromArgs,
    },
    /// Write a call as JSON (for `phonetree replay`): `phonetree calls export SESSION > call.json`.
    Export {
        session: String,
        #[command(flatten)]
        from: FromArgs,
    },
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// List the scheduled callbacks (transfers' `on_unanswered`) instead of calls.
    #[arg(long)]
    scheduled: bool,
    /// Only calls on this machine.
    #[arg(long)]
    machine: Option<String>,
    /// Only calls started at or after this time (ms since the Unix epoch).
    #[arg(long)]
    since: Option<u64>,
    /// Only calls with this outcome: inProgress, hungUp, transferred, callerLeft, unanswered.
    #[arg(long)]
    outcome: Option<String>,
    /// At most this many calls (1 to 100).
    #[arg(long, default_value_t = history::LIST_LIMIT_DEFAULT)]
    limit: usize,
    /// Go on after this session id (the `next` a list printed).
    #[arg(long)]
    after: Option<String>,
}

/// Where the calls are read: a running node's admin listener, else the store of a stopped node.
#[derive(clap::Args)]
pub struct FromArgs {
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
    #[error("{0}")]
    Filter(#[from] history::FilterError),
    #[error("cannot read the calls: {0}")]
    Store(#[from] node::calls::Fault),
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// The server's `{"error": {"message"}}`, or what it answered instead.
    #[error("{0}")]
    Refused(String),
    #[error("no call `{0}` is stored")]
    Unknown(String),
    #[error("cannot write: {0}")]
    Write(#[from] std::io::Error),
}

/// Where calls come from.
pub(super) enum Source {
    Server { url: String, token: Option<Secret> },
    Store(Box<App>),
}

pub fn run(command: Command) -> Result<(), Error> {
    let rt = runtime()?;
    let mut out = std::io::stdout().lock();
    match command {
        Command::List { filter, from } if filter.scheduled => {
            let source = rt.block_on(open(from))?;
            for c in rt.block_on(scheduled(&source))? {
                writeln!(out, "{}", c.line())?;
            }
        }
        Command::Cancel { id, from } => {
            let source = rt.block_on(open(from))?;
            let c = rt.block_on(cancel(&source, &id))?;
            writeln!(out, "{}", c.line())?;
        }
        Command::List { filter, from } => {
            let filter = Filter {
                machine: filter.machine,
                since_ms: filter.since,
                outcome: filter.outcome,
                limit: filter.limit,
                after: filter.after,
            };
            filter.check()?;
            let source = rt.block_on(open(from))?;
            let (calls, next) = rt.block_on(list(&source, &filter))?;
            for c in &calls {
                let status = c.transfer_status.as_ref().or(c.unanswered_status.as_ref());
                let transfer = status.map_or_else(String::new, |s| format!(" ({s})"));
                writeln!(
                    out,
                    "{}  {}  {}  {}{transfer}  at `{}`  started {}",
                    c.session,
                    c.machine,
                    c.source,
                    c.outcome,
                    c.node,
                    rfc3339(c.started_ms)
                )?;
            }
            if let Some(next) = next {
                writeln!(out, "next: {next}")?;
            }
        }
        Command::Show { session, from } => {
            let source = rt.block_on(open(from))?;
            let call = rt.block_on(show(&source, &session))?;
            for line in call.lines() {
                writeln!(out, "{line}")?;
            }
        }
        Command::Export { session, from } => {
            let source = rt.block_on(open(from))?;
            let call = rt.block_on(show(&source, &session))?;
            let json = serde_json::to_string_pretty(&call).map_err(std::io::Error::other)?;
            writeln!(out, "{json}")?;
        }
    }
    Ok(())
}

/// `ms` since the Unix epoch as RFC 3339 in UTC to the second (`2026-12-07T01:02:03Z`): what a
/// person reads; a time past jiff's range (only a corrupt record has one) stays in milliseconds.
fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| format!("{ms} ms"), |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

async fn open(from: FromArgs) -> Result<Source, Error> {
    let FromArgs { server, node } = from;
    if let Some((url, token)) = server.server()? {
        return Ok(Source::Server { url, token });
    }
    let config = node.config(SocketAddr::from(([127, 0, 0, 1], 0)), Duration::ZERO, Duration::ZERO)?;
    let store = node::store_name(&config.store);
    let app = App::open(config).await.map_err(|source| Error::Open { source, store })?;
    Ok(Source::Store(Box::new(app)))
}

pub(super) async fn list(source: &Source, filter: &Filter) -> Result<(Vec<Call>, Option<String>), Error> {
    match source {
        Source::Store(app) => {
            let listed = history::list(app, filter).await?;
            Ok((listed.calls, listed.next))
        }
        Source::Server { url, token } => {
            let mut target = url::Url::parse(&format!("{url}/calls"))
                .map_err(|e| Error::Unreachable { url: url.clone(), detail: e.to_string() })?;
            {
                let mut q = target.query_pairs_mut();
                let pairs = [
                    ("machine", filter.machine.clone()),
                    ("since", filter.since_ms.map(|t| t.to_string())),
                    ("outcome", filter.outcome.clone()),
                    ("limit", Some(filter.limit.to_string())),
                    ("after", filter.after.clone()),
                ];
                for (name, value) in pairs {
                    if let Some(value) = value {
                        q.append_pair(name, &value);
                    }
                }
            }
            let v = get(target.as_str(), token.as_ref())
                .await?
                .ok_or_else(|| Error::Refused(format!("{target}: 404")))?;
            let calls = serde_json::from_value(v["calls"].clone())
                .map_err(|e| Error::Refused(format!("{target} answered an unexpected list: {e}")))?;
            Ok((calls, v["next"].as_str().map(String::from)))
        }
    }
}

/// A scheduled callback as `calls list --scheduled` prints it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduledLine {
    id: String,
    state: String,
    machine: String,
    to: String,
    due_ms: u64,
    valid_until_ms: u64,
    attempt: u8,
    attempts: u8,
    session: Option<String>,
    note: Option<String>,
}

impl ScheduledLine {
    fn of(c: &phonetree::store::Scheduled) -> ScheduledLine {
        ScheduledLine {
            id: c.id.clone(),
            state: c.state.as_str().to_string(),
            machine: c.machine.clone(),
            to: c.to.clone(),
            due_ms: c.due_ms,
            valid_until_ms: c.valid_until_ms,
            attempt: c.attempt,
            attempts: c.attempts,
            session: c.session.clone(),
            note: c.note.clone(),
        }
    }

    fn line(&self) -> String {
        format!(
            "{}  {}  {}  {}  due {}  valid until {}  attempt {}/{}{}{}",
            self.id,
            self.state,
            self.machine,
            self.to,
            rfc3339(self.due_ms),
            rfc3339(self.valid_until_ms),
            self.attempt,
            self.attempts,
            self.session.as_ref().map_or_else(String::new, |s| format!("  session {s}")),
            self.note.as_ref().map_or_else(String::new, |n| format!("  ({n})")),
        )
    }
}

async fn scheduled(source: &Source) -> Result<Vec<ScheduledLine>, Error> {
    match source {
        Source::Store(app) => {
            let calls = app.store.scheduled().await.map_err(node::calls::Fault::Store)?;
            Ok(calls.iter().map(ScheduledLine::of).collect())
        }
        Source::Server { url, token } => {
            let target = format!("{url}/calls?scheduled=true");
            let v = get(&target, token.as_ref())
                .await?
                .ok_or_else(|| Error::Refused(format!("{target}: 404")))?;
            serde_json::from_value(v["scheduled"].clone())
                .map_err(|e| Error::Refused(format!("{target} answered an unexpected list: {e}")))
        }
    }
}

async fn cancel(source: &Source, id: &str) -> Result<ScheduledLine, Error> {
    use phonetree::store::Cancelled;
    match source {
        Source::Store(app) => match app.store.cancel_scheduled(id, node::now_ms()).await {
            Ok(Cancelled::Done(c)) => Ok(ScheduledLine::of(&c)),
            Ok(Cancelled::NotPending(c)) => Err(Error::Refused(format!(
                "scheduled call `{id}` is {}, not pending: only a pending call can be cancelled",
                c.state.as_str()
            ))),
            Ok(Cancelled::Unknown) => Err(Error::Refused(format!("no scheduled call `{id}` is stored"))),
            Err(e) => Err(node::calls::Fault::Store(e).into()),
        },
        Source::Server { url, token } => {
            let mut target = url::Url::parse(&format!("{url}/calls/scheduled/"))
                .map_err(|e| Error::Unreachable { url: url.clone(), detail: e.to_string() })?;
            target
                .path_segments_mut()
                .map_err(|()| Error::Refused(format!("{url} cannot be a base")))?
                .pop_if_empty()
                .push(id)
                .push("cancel");
            let v = send(reqwest::Method::POST, target.as_str(), token.as_ref())
                .await?
                .ok_or_else(|| Error::Refused(format!("no scheduled call `{id}` is stored")))?;
            serde_json::from_value(v)
                .map_err(|e| Error::Refused(format!("{target} answered unexpectedly: {e}")))
        }
    }
}

pub(super) async fn show(source: &Source, session: &str) -> Result<Call, Error> {
    let call = match source {
        Source::Store(app) => history::show(app, session).await?,
        Source::Server { url, token } => {
            let mut target = url::Url::parse(&format!("{url}/calls/"))
                .map_err(|e| Error::Unreachable { url: url.clone(), detail: e.to_string() })?;
            target
                .path_segments_mut()
                .map_err(|()| Error::Refused(format!("{url} cannot be a base")))?
                .pop_if_empty()
                .push(session);
            match get(target.as_str(), token.as_ref()).await? {
                Some(v) => Some(
                    serde_json::from_value(v)
                        .map_err(|e| Error::Refused(format!("{target} answered an unexpected call: {e}")))?,
                ),
                None => None,
            }
        }
    };
    call.ok_or_else(|| Error::Unknown(session.to_string()))
}

/// `GET url` as JSON; `None` on a 404.
pub(super) async fn get(url: &str, token: Option<&Secret>) -> Result<Option<serde_json::Value>, Error> {
    send(reqwest::Method::GET, url, token).await
}

/// `METHOD url` as JSON; `None` on a 404 for an unknown session or scheduled call.
async fn send(
    method: reqwest::Method,
    url: &str,
    token: Option<&Secret>,
) -> Result<Option<serde_json::Value>, Error> {
    let failed = |e: reqwest::Error| Error::Unreachable { url: url.to_string(), detail: e.to_string() };
    let mut request = reqwest::Client::new().request(method, url).timeout(SERVER_TIMEOUT);
    if let Some(token) = token {
        request = request.bearer_auth(token.expose());
    }
    let response = request.send().await.map_err(failed)?;
    let status = response.status();
    let body = response.bytes().await.map_err(failed)?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status.is_success() {
        return Ok(Some(v));
    }
    if status == reqwest::StatusCode::NOT_FOUND
        && (v["error"]["code"] == "unknown_session" || v["error"]["code"] == "unknown_scheduled_call")
    {
        return Ok(None);
    }
    match v["error"]["message"].as_str() {
        Some(message) => Err(Error::Refused(format!("{url}: {message}"))),
        None => {
            let body: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            Err(Error::Refused(format!("{url} answered HTTP {status}: {}", body.trim())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times_are_rfc_3339_in_utc_to_the_second() {
        assert_eq!(rfc3339(1_796_605_323_456), "2026-12-07T01:02:03Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(u64::MAX), format!("{} ms", u64::MAX));
    }
}
