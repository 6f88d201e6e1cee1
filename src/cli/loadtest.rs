//! `phonetree loadtest`: its flags, the runtime, the printed report and the JSON one. The load
//! driver is `phonetree::loadtest`.

use std::path::PathBuf;

use phonetree::loadtest::{self, Config, Report};
use phonetree::secret::{Secret, SecretFileError};

use super::NoRuntime;

#[derive(clap::Args)]
pub struct Args {
    /// The nodes' public listeners, comma-separated (`http://127.0.0.1:8080`); webhooks go to
    /// each in turn. Loopback only, unless --allow-remote.
    #[arg(long, required = true, value_delimiter = ',')]
    target: Vec<String>,
    /// The machines the nodes serve (the oracle plays the same files).
    #[arg(long, default_value = "machines")]
    machines: PathBuf,
    /// Calls to place: every edge's cover first, then paths drawn from the seed.
    #[arg(long, default_value_t = 200)]
    calls: u64,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// The seed every choice is drawn from (paths, dtmf shapes, duplicates, the stub's answers).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Percent of webhooks delivered twice at once, and percent delivered again after the next.
    #[arg(long, default_value_t = 10)]
    duplicates: u8,
    /// Percent of prompts also answered with an older clientActionId (a stale answer).
    #[arg(long, default_value_t = 5)]
    stale: u8,
    /// Percent of calls whose summary arrives before their last webhook.
    #[arg(long, default_value_t = 10)]
    early_summaries: u8,
    /// The most the stub API waits before each answer (ms; each request's wait is drawn below it).
    #[arg(long, default_value_t = 0)]
    stub_latency_ms: u64,
    /// Percent of distinct script requests the stub API answers with a 503.
    #[arg(long, default_value_t = 0)]
    stub_failure_pct: u8,
    /// A file whose first line is the nodes' webhook secret (sent in `authorization`).
    #[arg(long)]
    webhook_secret_file: Option<PathBuf>,
    /// A file whose first line is the nodes' action key (`serve --action-key-file`): every
    /// reply's clientActionId MAC is verified too (without it, its form only).
    #[arg(long)]
    action_key_file: Option<PathBuf>,
    /// Write the report as JSON here too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Where the first mismatching call goes, as `phonetree replay` reads it.
    #[arg(long, default_value = "loadtest-mismatch.json")]
    mismatch_file: PathBuf,
    /// Allow targets that are not on loopback.
    #[arg(long)]
    allow_remote: bool,
    /// The admin listeners of every target (`http://127.0.0.1:9090`), each node started with
    /// `serve --clock-control` (tests and staging only): the calls of each clock class the
    /// explorer found run in a phase of their own, every node's clock (and the oracle's) moved to
    /// the class's instant, so routes on time take every edge.
    #[arg(long, value_delimiter = ',')]
    clock_control: Vec<String>,
    /// A file whose first line is the targets' admin token (`serve --admin-token-file`).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Percent of the calls to machines with numbers placed outbound through `POST /calls` on
    /// --admin (callees `+1555...`: start the nodes with `--call-allow-prefix +1555` and rates that
    /// allow the run), their opening checked at the stand-in Send Callflow API.
    #[arg(long, default_value_t = 0)]
    outbound: u8,
    /// Percent of the inbound calls whose CALL_RECEIVED is lost: their first webhook is a
    /// CALL_ACTION with no clientActionId, which must get the start node's prompt.
    #[arg(long, default_value_t = 5)]
    lost_starts: u8,
    /// Percent of the calls to a machine with `[resume]` that ended waiting for keys (hung up at
    /// a menu) whose caller calls again at once: the node must make the resume offer, and its
    /// answer (1, 2 or none, drawn) go on or start again as the engine does.
    #[arg(long, default_value_t = 50)]
    resume: u8,
    /// Percent of the calls that end bridged at a transfer with `on_unanswered` whose summary says
    /// NO_ANSWER (the others COMPLETED): with --admin, the callback the node schedules is checked
    /// in `GET /calls?scheduled=true` (its caller, machine, attempts and due time).
    #[arg(long, default_value_t = 50)]
    unanswered: u8,
    /// The targets' admin listeners (`http://127.0.0.1:9090`, comma-separated) outbound calls are
    /// placed through, in turn.
    #[arg(long, value_delimiter = ',')]
    admin: Vec<String>,
    /// Where the stand-in Send Callflow API listens (loopback; the nodes' `--api-base-url`).
    #[arg(long)]
    callflow_api_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    #[error(transparent)]
    Run(#[from] loadtest::Error),
    #[error("cannot write the report to {}: {source}", path.display())]
    Report { path: PathBuf, source: std::io::Error },
    /// The report on stdout says which call and where.
    #[error("{mismatches} repl(ies) differ from the engine's; the first call is in {} (`phonetree replay {} --machine {}`)", file.display(), file.display(), machine.display())]
    Mismatches { mismatches: u64, file: PathBuf, machine: PathBuf },
    #[error("{0} script request(s) the engine would not make reached the stub API")]
    UnexpectedRequests(u64),
    #[error(
        "{0} script request(s) reached the stub API more often than the webhooks that made them: an effect repeated for one event (the node claims each request before making it; are the targets on one store?)"
    )]
    RepeatedRequests(u64),
}

pub fn run(args: Args) -> Result<(), Error> {
    let webhook_secret = Secret::from_either(None, args.webhook_secret_file.as_deref())?;
    let action_key = Secret::from_either(None, args.action_key_file.as_deref())?;
    let admin_token = Secret::from_either(None, args.admin_token_file.as_deref())?;
    let cfg = Config {
        targets: args.target,
        machines: args.machines,
        calls: args.calls,
        concurrency: args.concurrency,
        seed: args.seed,
        duplicates_pct: args.duplicates,
        stale_pct: args.stale,
        early_summary_pct: args.early_summaries,
        stub_latency_ms: args.stub_latency_ms,
        stub_failure_pct: args.stub_failure_pct,
        webhook_secret,
        action_key,
        allow_remote: args.allow_remote,
        clock_control: args.clock_control,
        admin_token,
        outbound_pct: args.outbound,
        lost_start_pct: args.lost_starts,
        resume_pct: args.resume,
        unanswered_pct: args.unanswered,
        admins: args.admin,
        callflow_api: args.callflow_api_listen,
    };
    let report = super::runtime()?.block_on(loadtest::run(cfg, args.mismatch_file.clone()))?;
    print(&report);
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text).map_err(|source| Error::Report { path: path.clone(), source })?;
    }
    if report.mismatches > 0 {
        let machine = report.replay.as_ref().map(|(m, _)| m.clone()).unwrap_or_default();
        return Err(Error::Mismatches { mismatches: report.mismatches, file: args.mismatch_file, machine });
    }
    if report.script_requests_unexpected > 0 {
        return Err(Error::UnexpectedRequests(report.script_requests_unexpected));
    }
    if report.script_requests_repeated > 0 {
        return Err(Error::RepeatedRequests(report.script_requests_repeated));
    }
    Ok(())
}

fn print(r: &Report) {
    println!(
        "calls {}  webhooks {}  in {:.1} s: {:.1} calls/s, {:.1} webhooks/s",
        r.calls, r.webhooks, r.seconds, r.calls_per_second, r.webhooks_per_second
    );
    for (kind, l) in &r.latency {
        println!(
            "  {kind:<16} {:>7}  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            l.count, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
        );
    }
    println!("duplicates answered identically: {} of {}", r.duplicates_identical, r.duplicates);
    println!("stale answers given the current prompt: {} of {}", r.stale_answered, r.stale);
    println!("retried deliveries: {}", r.retries);
    println!("outbound calls placed (opening checked): {}", r.outbound);
    println!("calls whose CALL_RECEIVED was lost (started by their first CALL_ACTION): {}", r.lost_starts);
    println!(
        "callers who hung up at a menu and called again: {} (offered to go on: {}, went on: {}, started again: {})",
        r.called_again, r.resume_offers, r.resumed, r.started_again
    );
    println!("unanswered transfers (NO_ANSWER) whose callback was checked: {}", r.callbacks_checked);
    println!(
        "script requests: {} ({} the engine would not make, {} repeated for one event, {} cut by a kill and not made again)",
        r.script_requests, r.script_requests_unexpected, r.script_requests_repeated, r.script_requests_cut
    );
    for c in &r.coverage {
        println!(
            "coverage {}: {}/{} edges ({} reachable at the clocks played)",
            c.machine, c.taken, c.edges, c.reachable_now
        );
        for e in &c.not_taken {
            println!("  not taken: {e}");
        }
    }
    println!("mismatches: {}", r.mismatches);
    if let Some(m) = &r.first_mismatch {
        println!("first mismatch: session {} on `{}`, at {}", m.session, m.machine, m.webhook);
        println!("  expected: {}", m.expected);
        println!("  got:      {}", m.got);
    }
}
