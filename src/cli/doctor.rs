//! `phonetree doctor`: checks what the machines depend on before they go live, each verdict ok,
//! warn or fail with the machine and nodes that depend on it. Every `playFile` URL answers a HEAD
//! (else a GET of its first byte; a file is never downloaded), as mp3 or wav under 8x8's size
//! limit; every script host resolves to an address the node may call and accepts a TCP connection
//! on its port (nothing is sent); with the API flags, the sub-account's VCA/VSS webhooks point at
//! `--url` with an auth header and every voice used is one of its speech profiles. `--offline`
//! does only what needs no network. The checks are pure (`proof::doctor`); this shell asks the
//! network, within bounds, and prints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use phonetree::machine::Voices;
use phonetree::machine::hosts::{self, AllowedHost, Lists, Range};
use phonetree::node::catalog::{Catalog, read_voices};
use phonetree::proof::doctor::{
    self, Answers, AudioAnswer, Check, Dependency, Finding, HostAnswer, Level, ListedWebhook, Need,
};
use phonetree::secret::SecretFileError;
use phonetree::webhook::outbound::ApiConfig;
use phonetree::webhook::{voices_api, webhooks_api};

use super::{ApiArgs, NoRuntime, runtime};

/// Most requests and connections doctor has open at once: enough to check a folder of machines
/// quickly, few enough not to look like an attack to a CDN or an API.
const PROBES_AT_ONCE: usize = 8;
/// How long one HEAD or ranged GET of an audio file may take, redirects included. 8x8's own
/// download has to be quick for a caller not to sit in silence.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a DNS lookup, and a TCP connection to one address, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most redirects followed to an audio file: a file that moved answers after one or two.
const REDIRECTS_MAX: usize = 5;
/// Most addresses of one script host tried: a host with more answers on one of the first.
const ADDRESSES_TRIED_MAX: usize = 4;

#[derive(clap::Args)]
pub struct Args {
    /// Folder of machine files (or one machine file).
    #[arg(long, env = "PHONETREE_MACHINES", default_value = "machines")]
    machines: PathBuf,
    /// Folder of the modules machines use (`module` nodes). Default: `modules/` in the machines
    /// folder, when there is one.
    #[arg(long, env = "PHONETREE_MODULES")]
    modules: Option<PathBuf>,
    /// The voice profiles voices are checked against without the API flags (`phonetree voices`
    /// writes it). Default: `voices.txt` when there is one, else the voices bundled with phonetree.
    #[arg(long, env = "PHONETREE_VOICES")]
    voices: Option<PathBuf>,
    /// The `--script-allow` of the node that will serve the machines: a script host's addresses
    /// are checked by the host rule with it, as that node checks them.
    #[arg(long, env = "PHONETREE_SCRIPT_ALLOW", value_delimiter = ',', value_parser = super::script_host)]
    script_allow: Vec<AllowedHost>,
    /// The node's public base URL (as given to `webhooks register --url`): the VCA and VSS webhooks
    /// must point at `{url}/webhooks/vca` and `{url}/webhooks/vss`.
    #[arg(long)]
    url: Option<String>,
    /// Only the checks that need no network: URL shapes and versions, file extensions, voices
    /// against the voices file.
    #[arg(long)]
    offline: bool,
    /// The report as text (a line per finding) or one JSON document.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] NoRuntime),
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    /// Some check failed; the report on stdout lists them.
    #[error("{fails} check(s) failed")]
    Failed { fails: usize },
}

pub fn run(args: Args) -> Result<(), Error> {
    let voices_file = super::voices_file(args.voices.clone());
    let catalog = Catalog::load_with(
        std::slice::from_ref(&args.machines),
        voices_file.as_deref(),
        &args.script_allow,
        args.modules.as_deref(),
    );
    let mut findings: Vec<Finding> =
        catalog.diagnostics.iter().filter(|d| d.is_error()).map(broken).collect();
    let mut skipped = Vec::new();
    let with_api =
        args.api.api_subaccount.is_some() || args.api.api_key.is_some() || args.api.api_key_file.is_some();
    let api = args.api.config()?;
    let deps: Vec<Dependency> = catalog.machines().flat_map(|m| doctor::dependencies(m)).collect();
    let allow: HashMap<String, Vec<AllowedHost>> =
        catalog.machines().map(|m| (m.name().to_string(), m.allow_hosts().to_vec())).collect();

    // The voices every `voice_profile` is held to: the account's (8x8, or its voices file), else
    // the bundled list.
    let listed = match voices_file.as_deref().map(read_voices) {
        Some(Ok(v)) => Some(v),
        // `check` reports it with the machines' diagnostics, above.
        Some(Err(_)) | None => None,
    };
    let mut voices: (Voices, bool) = match listed {
        Some(v) => (v, true),
        None => (Voices::bundled().clone(), false),
    };

    let mut asked = Asked::default();
    if args.offline {
        skipped.push("--offline: the audio files' answers, the script hosts and the 8x8 account");
    } else {
        let script_allow = args.script_allow.clone();
        asked = runtime()?.block_on(ask(&deps, &allow, script_allow, with_api.then_some(&api)));
        if let Some(found) = asked.voices.take() {
            voices = (found, true);
        }
    }
    if !with_api && !args.offline {
        skipped.push("no API flags: the sub-account's webhooks and speech profiles at 8x8");
    }

    findings.extend(doctor::judge(&deps, &asked.answers, &voices.0, voices.1));
    findings.extend(asked.account);
    if let Some(webhooks) = asked.webhooks {
        let base = args.url.as_deref();
        findings.extend(doctor::judge_webhooks(&webhooks, &super::webhooks::OURS, base));
    }

    doctor::sort(&mut findings);
    let counts = doctor::counts(&findings);
    match args.format {
        Format::Text => {
            print!("{}", doctor::text(&findings));
            for what in &skipped {
                println!("not checked: {what}");
            }
        }
        Format::Json => {
            let report = serde_json::json!({
                "findings": findings,
                "ok": counts[&Level::Ok], "warn": counts[&Level::Warn], "fail": counts[&Level::Fail],
                "not_checked": skipped,
            });
            println!("{report:#}");
        }
    }
    match counts[&Level::Fail] {
        0 => Ok(()),
        fails => Err(Error::Failed { fails }),
    }
}

/// A machine file's error (`phonetree check`'s), as a failed check.
fn broken(d: &phonetree::machine::Diagnostic) -> Finding {
    let message = match &d.hint {
        Some(hint) => format!("{} (hint: {hint})", d.message),
        None => d.message.clone(),
    };
    let subject = match d.position {
        Some(p) => format!("{}:{}:{}", d.file, p.line, p.col),
        None => d.file.clone(),
    };
    Finding {
        level: Level::Fail,
        check: Check::Machine,
        machine: None,
        nodes: d.node.iter().cloned().collect(),
        subject,
        message,
    }
}

/// What the network answered.
#[derive(Default)]
struct Asked {
    /// The audio files' and script hosts' answers.
    answers: Answers,
    /// The sub-account's speech profiles.
    voices: Option<Voices>,
    /// The sub-account's webhooks.
    webhooks: Option<Vec<ListedWebhook>>,
    /// 8x8's API failures.
    account: Vec<Finding>,
}

/// One question to the network, and where its answer goes.
enum Probe {
    Audio(String),
    Host { machine: String, host: String, port: u16 },
}

enum Answer {
    Audio(String, Result<AudioAnswer, String>),
    Host((String, String, u16), HostAnswer),
}

/// Asks every audio URL once and every machine's script hosts, `PROBES_AT_ONCE` at a time, and
/// 8x8's API (with `api`) for the webhooks and speech profiles.
async fn ask(
    deps: &[Dependency],
    allow: &HashMap<String, Vec<AllowedHost>>,
    script_allow: Vec<AllowedHost>,
    api: Option<&ApiConfig>,
) -> Asked {
    // Never cloud metadata or link-local addresses, literal, resolved or redirected to: a machine
    // file (a pull request's, in CI) must not make doctor ask them.
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > REDIRECTS_MAX {
            attempt.error(format!("more than {REDIRECTS_MAX} redirects"))
        } else if let Some(range) = never_asked(attempt.url()) {
            let url = attempt.url().to_string();
            attempt.error(format!("redirected to {url}, whose host is {range}: doctor never asks it"))
        } else {
            attempt.follow()
        }
    });
    let http = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(redirects)
        .dns_resolver(Arc::new(NeverAsked))
        .build()
        .unwrap_or_default();
    let mut probes: Vec<Probe> = Vec::new();
    for dep in deps {
        match &dep.need {
            Need::Audio(url) if !probes.iter().any(|p| matches!(p, Probe::Audio(u) if u == url)) => {
                probes.push(Probe::Audio(url.clone()))
            }
            Need::ScriptHost { host, port } => {
                probes.push(Probe::Host { machine: dep.machine.clone(), host: host.clone(), port: *port })
            }
            _ => {}
        }
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(PROBES_AT_ONCE));
    let node_allow: Arc<[AllowedHost]> = script_allow.into();
    let mut running = tokio::task::JoinSet::new();
    for probe in probes {
        let (http, permits, node_allow) = (http.clone(), permits.clone(), node_allow.clone());
        let machine_allow = match &probe {
            Probe::Host { machine, .. } => allow.get(machine).cloned().unwrap_or_default(),
            Probe::Audio(_) => Vec::new(),
        };
        running.spawn(async move {
            let _permit = permits.acquire_owned().await;
            match probe {
                Probe::Audio(url) => {
                    let answer = probe_audio(&http, &url).await;
                    Answer::Audio(url, answer)
                }
                Probe::Host { machine, host, port } => {
                    let lists = Lists { machine: &machine_allow, node: &node_allow };
                    let answer = probe_host(&host, port, lists).await;
                    Answer::Host((machine, host, port), answer)
                }
            }
        });
    }
    let mut asked = Asked { answers: Answers { asked: true, ..Answers::default() }, ..Asked::default() };
    if let Some(api) = api {
        ask_account(&http, api, &mut asked).await;
    }
    while let Some(done) = running.join_next().await {
        match done {
            Ok(Answer::Audio(url, answer)) => {
                asked.answers.audio.insert(url, answer);
            }
            Ok(Answer::Host(key, answer)) => {
                asked.answers.hosts.insert(key, answer);
            }
            // A probe that panicked has no answer: `doctor::judge` fails its check.
            Err(_) => {}
        }
    }
    asked
}

/// The sub-account's webhooks and speech profiles; a failure of either is a failed `api` check.
async fn ask_account(http: &reqwest::Client, api: &ApiConfig, asked: &mut Asked) {
    let failed = |subject: &str, message: String| Finding {
        level: Level::Fail,
        check: Check::Api,
        machine: None,
        nodes: Vec::new(),
        subject: subject.to_string(),
        message,
    };
    match webhooks_api::list(http, api).await {
        Ok(listed) => {
            let listed = listed.into_iter().map(|w| ListedWebhook {
                kind: w.kind,
                url: w.url,
                enabled: w.enabled,
                auth_header: w.http_auth_header_available,
            });
            asked.webhooks = Some(listed.collect());
        }
        Err(e) => asked.account.push(failed("Webhooks API", e.to_string())),
    }
    match voices_api::speech_profiles(http, api).await {
        Ok(profiles) => {
            let names: Vec<String> = profiles.into_iter().map(|p| p.speech_profile_code).collect();
            let origin =
                format!("the speech profiles of sub-account {}", api.sub_account.as_deref().unwrap_or(""));
            match Voices::parse(&Voices::to_file(&names, &origin), &origin) {
                Ok(voices) => asked.voices = Some(voices),
                Err(e) => asked.account.push(failed("speech-profiles API", e.to_string())),
            }
        }
        Err(e) => asked.account.push(failed("speech-profiles API", e.to_string())),
    }
}

/// The range of `url`'s host when it is an address doctor never asks (cloud metadata, link-local,
/// and addresses nothing listens on): `Range::may_be_listed`, the rule the node's scripts keep.
fn never_asked(url: &reqwest::Url) -> Option<Range> {
    doctor::unreachable_from_8x8(url).filter(|r| !r.may_be_listed())
}

/// The probes' DNS resolver: a name's addresses but those doctor never asks (`never_asked`); a
/// name with only those fails to resolve, saying why.
struct NeverAsked;

impl reqwest::dns::Resolve for NeverAsked {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let never = |a: &SocketAddr| hosts::refused_range(a.ip()).filter(|r| !r.may_be_listed());
            let refused = found.iter().find_map(|a| never(a).map(|r| (a.ip(), r)));
            let usable: Vec<SocketAddr> = found.iter().filter(|a| never(a).is_none()).copied().collect();
            match (usable.is_empty(), refused) {
                (true, Some((ip, range))) => {
                    Err(format!("{host} resolves to {ip}, which is {range}: doctor never asks it").into())
                }
                _ => Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// An audio file's answer to a HEAD, else (a server that refuses HEADs) to a GET of its first
/// byte. The GET's body is never read: a server that ignores the range sends its headers, and the
/// connection is closed with the answer. Never asked of cloud metadata or link-local addresses.
async fn probe_audio(http: &reqwest::Client, url: &str) -> Result<AudioAnswer, String> {
    if let Some(range) = reqwest::Url::parse(url).ok().as_ref().and_then(never_asked) {
        return Err(format!("the host is {range}: doctor never asks it"));
    }
    match http.head(url).send().await {
        Ok(r) if r.status().is_success() => return Ok(answer_of(&r)),
        // Nothing listens, or nothing answered in time: a GET would only wait as long again.
        Err(e) if e.is_connect() || e.is_timeout() => return Err(transport(&e)),
        _ => {}
    }
    let r =
        http.get(url).header(reqwest::header::RANGE, "bytes=0-0").send().await.map_err(|e| transport(&e))?;
    Ok(answer_of(&r))
}

/// Why a request got no answer, without the URL (the finding names it).
fn transport(e: &reqwest::Error) -> String {
    let mut why = if e.is_timeout() {
        format!("no answer within {PROBE_TIMEOUT:?}")
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_redirect() {
        format!("more than {REDIRECTS_MAX} redirects")
    } else {
        "the request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        why = format!("{why}: {cause}");
        source = cause.source();
    }
    why
}

/// Status, content type and the whole file's size of an answer, from its headers alone.
fn answer_of(r: &reqwest::Response) -> AudioAnswer {
    let header = |name| r.headers().get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok());
    let bytes = match r.status().as_u16() {
        206 => header(reqwest::header::CONTENT_RANGE).and_then(doctor::content_range_total),
        _ => header(reqwest::header::CONTENT_LENGTH).and_then(|n| n.trim().parse().ok()),
    };
    AudioAnswer {
        status: r.status().as_u16(),
        content_type: header(reqwest::header::CONTENT_TYPE).map(str::to_string),
        bytes,
    }
}

/// Whether a script host resolves to addresses the node may call (the host rule with `lists`),
/// and one of them accepts a TCP connection on `port`. Nothing is sent.
async fn probe_host(host: &str, port: u16, lists: Lists<'_>) -> HostAnswer {
    let found = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(found)) => found.map(|a| a.ip()).collect::<Vec<_>>(),
        Ok(Err(e)) => return HostAnswer::NoAddress(e.to_string()),
        Err(_) => return HostAnswer::NoAddress(format!("no answer from DNS within {CONNECT_TIMEOUT:?}")),
    };
    let (usable, refused) = doctor::usable_addresses(lists, host, &found);
    if usable.is_empty() {
        return match refused {
            Some(why) => HostAnswer::Refused(why),
            None => HostAnswer::NoAddress("no address".into()),
        };
    }
    let mut last = String::new();
    for ip in usable.into_iter().take(ADDRESSES_TRIED_MAX) {
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_connected)) => return HostAnswer::Answered(addr),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer within {CONNECT_TIMEOUT:?}"),
        }
    }
    HostAnswer::NoAnswer(last)
}
