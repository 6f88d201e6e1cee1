//! `phonetree doctor`'s pure half: what a machine depends on outside itself (the audio files its
//! `playFile`s make 8x8 download, the voices it speaks in, the hosts its scripts call), each with
//! the machine and nodes that use it; the checks that need no network (a URL's shape, its
//! version, a voice against a known list); and the verdicts on what the shell (`cli/doctor.rs`)
//! found when it asked (an audio file's answer, a script host's, 8x8's webhooks). No I/O: the
//! shell asks, this judges.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::callflow::{Action, FILE_BYTES_MAX, FILE_CACHE_MINUTES, FILE_EXTENSIONS};
use crate::machine::hosts::{self, Lists};
use crate::machine::template::Part;
use crate::machine::{Machine, Menu, NodeKind, Template, Voices};

/// How many of a finding's nodes the text report names; the JSON report names them all.
const NODES_SHOWN_MAX: usize = 3;
/// Shortest run of hex digits (with a digit in it) a URL's path is taken to be versioned by: a
/// short git hash has 7, a content hash in a file name usually 8 or more.
const HASH_HEX_MIN: usize = 7;

/// A check's verdict, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// What a finding checked, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// A machine file that does not load: `phonetree check`'s errors.
    Machine,
    /// A `playFile` URL as written: its format by extension, a version, a host 8x8 can reach.
    AudioUrl,
    /// A `playFile` URL's answer: status, content type, size.
    Audio,
    /// A voice profile, against the voices file, the bundled list or the account's.
    Voice,
    /// A script host: it resolves, the host rule lets the node call it, it answers on its port.
    ScriptHost,
    /// One of the sub-account's webhooks at 8x8.
    Webhook,
    /// 8x8's API itself, when it does not answer what doctor asked.
    Api,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Machine => "machine",
            Check::AudioUrl => "audio_url",
            Check::Audio => "audio",
            Check::Voice => "voice",
            Check::ScriptHost => "script_host",
            Check::Webhook => "webhook",
            Check::Api => "api",
        }
    }
}

/// One verdict: on what (`subject`), for which machine and nodes, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    pub check: Check,
    /// The machine that depends on it; `None` for the account's webhooks and the API.
    pub machine: Option<String>,
    /// The machine's nodes that use it (`fallback` for the machine's fallback).
    pub nodes: Vec<String>,
    /// The URL, the voice, `host:port`, the webhook type, the machine file.
    pub subject: String,
    pub message: String,
}

/// Something a machine needs from outside itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// A `playFile` URL written in the machine (its settings filled in).
    Audio(String),
    /// A played file whose URL a call fills in (`file_url` with a `{variable}`, `{play:$var}`):
    /// the template as written.
    AudioFromCall(String),
    Voice(String),
    /// A script's host and port (scripts' hosts are always written in the machine).
    ScriptHost {
        host: String,
        port: u16,
    },
}

/// One need of one machine, and every node of it with that need, in graph order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub machine: String,
    pub nodes: Vec<String>,
    pub need: Need,
}

impl Dependency {
    /// A finding on this dependency.
    pub fn finding(&self, check: Check, level: Level, subject: &str, message: String) -> Finding {
        Finding {
            level,
            check,
            machine: Some(self.machine.clone()),
            nodes: self.nodes.clone(),
            subject: subject.to_string(),
            message,
        }
    }
}

/// What `m` depends on: its audio files, voices and script hosts, each once with the nodes that
/// use it, in the order the graph first names them.
pub fn dependencies(m: &Machine) -> Vec<Dependency> {
    let mut found: Vec<(Need, Vec<String>)> = Vec::new();
    let mut add = |need: Need, node: &str| match found.iter_mut().find(|(n, _)| *n == need) {
        Some((_, nodes)) if nodes.iter().any(|n| n == node) => {}
        Some((_, nodes)) => nodes.push(node.to_string()),
        None => found.push((need, vec![node.to_string()])),
    };
    for id in m.graph().node_indices() {
        let node = &m.graph()[id];
        let name = node.name.as_str();
        let mut needs = Vec::new();
        match &node.kind {
            NodeKind::Menu(menu) => menu_needs(menu, &mut needs),
            NodeKind::Input(input) => menu_needs(&input.prompt, &mut needs),
            NodeKind::Say(say) => {
                needs.push(Need::Voice(say.voice_profile.clone()));
                played(&say.text, &mut needs);
            }
            NodeKind::Play(play) => needs.push(match play.file_url.as_literal() {
                Some(url) => Need::Audio(url.to_string()),
                None => Need::AudioFromCall(play.file_url.to_string()),
            }),
            NodeKind::Script(script) => {
                if let Some(say) = &script.say {
                    needs.push(Need::Voice(say.voice_profile.clone()));
                    played(&say.text, &mut needs);
                }
                if let Some(menu) = &script.capture {
                    menu_needs(menu, &mut needs);
                }
                if let Some((host, port)) = script_host(&script.request.url) {
                    needs.push(Need::ScriptHost { host, port });
                }
            }
            NodeKind::Transfer(_)
            | NodeKind::Hangup
            | NodeKind::Route(_)
            | NodeKind::Set(_)
            | NodeKind::Split(_) => {}
        }
        for need in needs {
            add(need, name);
        }
    }
    for action in &m.fallback().actions {
        if let Action::Say(say) = action {
            add(Need::Voice(say.voice_profile.clone()), "fallback");
        }
    }
    found.into_iter().map(|(need, nodes)| Dependency { machine: m.name().to_string(), nodes, need }).collect()
}

/// A capturing prompt's voices (each part's, the re-prompt's) and the files its texts play.
fn menu_needs(menu: &Menu, needs: &mut Vec<Need>) {
    let voices = menu.lead.iter().chain(&menu.relead).map(|s| &s.voice_profile);
    let voices = std::iter::once(&menu.capture.voice_profile).chain(voices);
    needs.extend(voices.chain(menu.revoice.as_ref().map(|(v, _)| v)).map(|v| Need::Voice(v.clone())));
    let texts = menu.lead.iter().chain(&menu.relead).map(|s| &s.text);
    for text in [&menu.capture.prompt_message, &menu.reprompt].into_iter().chain(texts) {
        played(text, needs);
    }
}

/// The `{play:$var}` files of a spoken text: URLs a call fills in.
fn played(text: &Template, needs: &mut Vec<Need>) {
    needs.extend(text.played().map(|var| Need::AudioFromCall(format!("{{play:${var}}}"))));
}

/// A script URL's host (as the host rule compares it) and port, from the literal text before its
/// first variable (the compiler has made sure the scheme and host are written there).
fn script_host(url: &Template) -> Option<(String, u16)> {
    let Some(Part::Lit(head)) = url.parts().first() else { return None };
    let rest = head.find("://").map(|at| &head[at + 3..])?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let scheme = &head[..head.len() - rest.len()];
    let parsed = url::Url::parse(&format!("{scheme}{}", &rest[..end])).ok()?;
    Some((hosts::host_text(&parsed.host()?), parsed.port_or_known_default()?))
}

/// The offline verdicts on a `playFile` URL as written: its format by extension, something in it
/// that changes when the file does, and a host 8x8 can reach. Each problem is a verdict of its own;
/// a URL without any gets one `Ok`.
pub fn audio_url(url: &str) -> Vec<(Level, String)> {
    let Ok(parsed) = url::Url::parse(url) else {
        return vec![(Level::Fail, format!("`{url}` is not a URL"))];
    };
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return vec![(Level::Fail, "not an http(s) URL with a host: 8x8 cannot download it".into())];
    }
    let mut verdicts = Vec::new();
    let path = parsed.path().to_ascii_lowercase();
    let format = FILE_EXTENSIONS.iter().find(|e| path.ends_with(*e)).map(|e| &e[1..]);
    if format.is_none() {
        verdicts.push((
            Level::Warn,
            "the path does not end in .mp3 or .wav, the formats 8x8 plays: rename the file, or make sure the server sends it as one".into(),
        ));
    }
    let version = version_of(&parsed);
    if version.is_none() {
        verdicts.push((
            Level::Warn,
            format!(
                "nothing in the URL changes when the file does: 8x8 keeps a downloaded file for {FILE_CACHE_MINUTES} minutes by its URL, so a new recording at the same URL is not heard until then; add a version (`?v=2`) or a content hash to the name"
            ),
        ));
    }
    if let Some(range) = unreachable_from_8x8(&parsed) {
        verdicts.push((
            Level::Warn,
            format!(
                "the host is {range}: 8x8 downloads the file from the internet and cannot reach it (it answers here only)"
            ),
        ));
    }
    if verdicts.is_empty() {
        let format = format.unwrap_or("audio");
        let version = version.unwrap_or_default();
        verdicts.push((Level::Ok, format!("{format}, versioned by {version}")));
    }
    verdicts
}

/// What in `url` changes when the file does, if anything seems to: a query (`?v=2`, a signed
/// URL's), a version token (`v2`) or a long run of digits or hex (a date, a content hash) in its
/// path.
fn version_of(url: &url::Url) -> Option<String> {
    if let Some(query) = url.query().filter(|q| !q.is_empty()) {
        return Some(format!("its query `?{query}`"));
    }
    let tokens = url.path().split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty());
    for token in tokens {
        let digits = token.bytes().filter(u8::is_ascii_digit).count();
        let version = token.len() > 1
            && token.starts_with(['v', 'V'])
            && token[1..].bytes().all(|b| b.is_ascii_digit());
        let hash = token.len() >= HASH_HEX_MIN && digits > 0 && token.bytes().all(|b| b.is_ascii_hexdigit());
        if version || hash {
            return Some(format!("`{token}` in its path"));
        }
    }
    None
}

/// The range of a URL's host when it is an address (or `localhost`) 8x8's servers cannot reach
/// (doctor itself never asks those of them no host may be listed at: `Range::may_be_listed`).
pub fn unreachable_from_8x8(url: &url::Url) -> Option<hosts::Range> {
    match url.host()? {
        url::Host::Ipv4(ip) => hosts::refused_range(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => hosts::refused_range(IpAddr::V6(ip)),
        url::Host::Domain(d) => hosts::is_loopback_name(d).then_some(hosts::Range::Loopback),
    }
}

/// What the network answered doctor (nothing, `--offline`).
#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// Whether the network was asked: an answer missing then is a check that did not finish.
    pub asked: bool,
    /// Each audio URL's answer.
    pub audio: HashMap<String, Result<AudioAnswer, String>>,
    /// Each (machine, host, port)'s: the host rule is the machine's.
    pub hosts: HashMap<(String, String, u16), HostAnswer>,
}

/// The verdicts on `deps`: each audio URL's shape (and with `answers`, its answer), each voice
/// against `voices` (`account`: the account's list, see `judge_voice`), each script host's answer.
pub fn judge(deps: &[Dependency], answers: &Answers, voices: &Voices, account: bool) -> Vec<Finding> {
    let unfinished = || (Level::Fail, "doctor's request did not finish".to_string());
    let mut findings = Vec::new();
    for dep in deps {
        match &dep.need {
            Need::Audio(url) => {
                for (level, message) in audio_url(url) {
                    findings.push(dep.finding(Check::AudioUrl, level, url, message));
                }
                let verdict = match answers.audio.get(url) {
                    Some(answer) => Some(judge_audio(answer)),
                    None => answers.asked.then(unfinished),
                };
                if let Some((level, message)) = verdict {
                    findings.push(dep.finding(Check::Audio, level, url, message));
                }
            }
            Need::AudioFromCall(template) => {
                let message = "a call fills in this URL: doctor cannot check the files it names".to_string();
                findings.push(dep.finding(Check::AudioUrl, Level::Warn, template, message));
            }
            Need::Voice(voice) => {
                let (level, message) = judge_voice(voice, voices, account);
                findings.push(dep.finding(Check::Voice, level, voice, message));
            }
            Need::ScriptHost { host, port } => {
                let verdict = match answers.hosts.get(&(dep.machine.clone(), host.clone(), *port)) {
                    Some(answer) => Some(judge_host(host, *port, answer)),
                    None => answers.asked.then(unfinished),
                };
                let subject = match host.parse::<IpAddr>() {
                    Ok(IpAddr::V6(_)) => format!("[{host}]:{port}"),
                    _ => format!("{host}:{port}"),
                };
                if let Some((level, message)) = verdict {
                    findings.push(dep.finding(Check::ScriptHost, level, &subject, message));
                }
            }
        }
    }
    findings
}

/// What an audio file's server answered doctor's HEAD (or, when the HEAD was refused, its GET of
/// the first byte), after redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    /// The whole file's size when the answer says it: a `Content-Length` of the whole file, or the
    /// total of a `Content-Range`.
    pub bytes: Option<u64>,
}

/// The verdict on an audio file's answer, or on why there was none (`Err`: the transport's
/// error).
pub fn judge_audio(answer: &Result<AudioAnswer, String>) -> (Level, String) {
    let a = match answer {
        Ok(a) => a,
        Err(why) => return (Level::Fail, format!("no answer: {why}")),
    };
    if !(200..300).contains(&a.status) {
        return (Level::Fail, format!("HTTP {}: 8x8 cannot download it (error -2006)", a.status));
    }
    let content_type = a.content_type.as_deref().unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let format = match essence.as_str() {
        "audio/mpeg" | "audio/mp3" | "audio/mpeg3" | "audio/x-mpeg-3" | "audio/x-mp3" => Some("mp3"),
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => Some("wav"),
        "" | "application/octet-stream" | "binary/octet-stream" => None,
        _ => {
            return (
                Level::Fail,
                format!("served as `{content_type}`, not mp3 or wav: is this the file, or a page about it?"),
            );
        }
    };
    let size = match a.bytes {
        Some(0) => return (Level::Fail, "the file is empty".into()),
        Some(n) if n >= FILE_BYTES_MAX => {
            return (
                Level::Fail,
                format!(
                    "{n} bytes: 8x8 plays files smaller than 5 MB ({FILE_BYTES_MAX} bytes); shorten or compress it"
                ),
            );
        }
        Some(n) => format!("{n} bytes"),
        None => {
            return (
                Level::Warn,
                "the server does not say the file's size: 8x8 refuses files of 5 MB or more".into(),
            );
        }
    };
    match format {
        Some(format) => (Level::Ok, format!("HTTP {}, {format}, {size}", a.status)),
        None if content_type.is_empty() => (
            Level::Warn,
            format!("HTTP {}, {size}, no content type: the server does not say it is audio", a.status),
        ),
        None => (
            Level::Warn,
            format!(
                "HTTP {}, {size}, served as `{content_type}`: the server does not say it is mp3 or wav",
                a.status
            ),
        ),
    }
}

/// The whole size in a `Content-Range` header (`bytes 0-0/6000000`); `None` when unknown (`*`).
pub fn content_range_total(header: &str) -> Option<u64> {
    let (unit, range) = header.trim().split_once(' ')?;
    let (_, total) = range.split_once('/')?;
    (unit.eq_ignore_ascii_case("bytes")).then(|| total.trim().parse().ok()).flatten()
}

/// The verdict on a voice profile: in `known` it is `Ok`; else a `Fail` when `known` is the
/// account's list (8x8's speech profiles, or a voices file fetched from them), a `Warn` when it is
/// only the list bundled with phonetree, which 8x8's accounts go far beyond.
pub fn judge_voice(voice: &str, known: &Voices, account: bool) -> (Level, String) {
    if known.contains(voice) {
        return (Level::Ok, format!("in {}", known.origin()));
    }
    let hint = match known.closest(voice) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    };
    if account {
        (Level::Fail, format!("not in {}: 8x8 refuses the callflow{hint}", known.origin()))
    } else {
        let how = "run `phonetree voices`, or doctor with the API flags, to check the account's list";
        (Level::Warn, format!("not in {}{hint}; {how}", known.origin()))
    }
}

/// The addresses of a script host the node may call (`Lists::check_resolved`), and the first it
/// may not with why, when there is one.
pub fn usable_addresses(lists: Lists<'_>, host: &str, found: &[IpAddr]) -> (Vec<IpAddr>, Option<String>) {
    let mut usable = Vec::new();
    let mut refused = None;
    for &addr in found {
        match lists.check_resolved(host, addr) {
            Ok(()) => usable.push(addr),
            Err(hosts::Refusal::Never(range) | hosts::Refusal::Unlisted { range, .. }) => {
                refused.get_or_insert_with(|| format!("{addr}, {range}"));
            }
            Err(hosts::Refusal::NotListed | hosts::Refusal::OtherPorts) => {}
        }
    }
    (usable, refused)
}

/// What doctor found out about a script host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAnswer {
    /// The name did not resolve (the resolver's error).
    NoAddress(String),
    /// Every address it resolved to is one the node's host rule refuses: the first, and why.
    Refused(String),
    /// A TCP connection to this address was accepted.
    Answered(SocketAddr),
    /// No address accepted a connection: the last error.
    NoAnswer(String),
}

/// The verdict on a script host.
pub fn judge_host(host: &str, port: u16, answer: &HostAnswer) -> (Level, String) {
    match answer {
        HostAnswer::NoAddress(why) => (Level::Fail, format!("`{host}` does not resolve: {why}")),
        HostAnswer::Refused(why) => (
            Level::Fail,
            format!(
                "`{host}` resolves to {why}, which the node's host rule refuses; list `{host}:{port}` in --script-allow"
            ),
        ),
        HostAnswer::Answered(addr) => (Level::Ok, format!("answers at {addr}")),
        HostAnswer::NoAnswer(why) => (Level::Fail, format!("nothing answers on port {port}: {why}")),
    }
}

/// One of the sub-account's webhooks as 8x8 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedWebhook {
    pub kind: String,
    pub url: String,
    pub enabled: Option<bool>,
    pub auth_header: Option<bool>,
}

/// The verdicts on the sub-account's webhooks: each of `wanted` (type, the node's path for it) is
/// there, enabled, with an auth header, and (with `base`, the node's public URL) points at
/// `{base}/{path}`.
pub fn judge_webhooks(listed: &[ListedWebhook], wanted: &[(&str, &str)], base: Option<&str>) -> Vec<Finding> {
    let finding = |level, kind: &str, message: String| Finding {
        level,
        check: Check::Webhook,
        machine: None,
        nodes: Vec::new(),
        subject: kind.to_string(),
        message,
    };
    let base = base.map(|b| b.trim_end_matches('/'));
    let mut findings = Vec::new();
    for &(kind, path) in wanted {
        let expected = base.map(|b| format!("{b}/{path}"));
        let Some(w) = listed.iter().find(|w| w.kind == kind) else {
            let to = expected.as_deref().unwrap_or("the node");
            let message = format!(
                "no {kind} webhook: 8x8 sends its webhooks nowhere; `phonetree webhooks register --url ...` points it at {to}"
            );
            findings.push(finding(Level::Fail, kind, message));
            continue;
        };
        let mut problems: Vec<(Level, String)> = Vec::new();
        if let Some(expected) = &expected
            && w.url.trim_end_matches('/') != expected
        {
            problems.push((Level::Fail, format!("points at {}, not {expected}", w.url)));
        }
        match w.enabled {
            Some(false) => problems.push((Level::Fail, "disabled".into())),
            None => problems.push((Level::Warn, "8x8 does not say whether it is enabled".into())),
            Some(true) => {}
        }
        match w.auth_header {
            Some(false) => problems.push((
                Level::Fail,
                "no auth header: a node with a webhook secret refuses its webhooks (401); `phonetree webhooks register` sets one".into(),
            )),
            None => problems.push((Level::Warn, "8x8 does not say whether it carries an auth header".into())),
            Some(true) => {}
        }
        if expected.is_none() {
            problems.push((Level::Warn, format!("points at {}: give --url to check it is the node", w.url)));
        }
        if problems.is_empty() {
            findings.push(finding(Level::Ok, kind, format!("{}, enabled, with an auth header", w.url)));
        }
        findings.extend(problems.into_iter().map(|(level, message)| finding(level, kind, message)));
    }
    findings
}

/// The findings in report order: the machines that do not load, then each machine's by check
/// (in the order found within one check), then the account's.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        let group = |f: &Finding| match (f.check, &f.machine) {
            (Check::Machine, _) => 0,
            (_, Some(_)) => 1,
            (_, None) => 2,
        };
        (group(a), &a.machine, a.check).cmp(&(group(b), &b.machine, b.check))
    });
}

/// How many findings of each level.
pub fn counts(findings: &[Finding]) -> BTreeMap<Level, usize> {
    let mut counts = BTreeMap::from([(Level::Ok, 0), (Level::Warn, 0), (Level::Fail, 0)]);
    for f in findings {
        *counts.entry(f.level).or_default() += 1;
    }
    counts
}

/// The report as text: a line per finding (`fail  audio  clinic: welcome  URL: message`), then
/// the counts.
pub fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let mut at = f.machine.clone().unwrap_or_else(|| "8x8".into());
        if !f.nodes.is_empty() {
            let shown: Vec<&str> = f.nodes.iter().take(NODES_SHOWN_MAX).map(String::as_str).collect();
            let more = f.nodes.len().saturating_sub(NODES_SHOWN_MAX);
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            at = format!("{at}: {}{more}", shown.join(", "));
        }
        let _ = writeln!(
            out,
            "{:<4}  {:<11}  {at}  {}: {}",
            f.level.as_str(),
            f.check.as_str(),
            f.subject,
            f.message
        );
    }
    let c = counts(findings);
    let _ = writeln!(out, "doctor: {} ok, {} warn, {} fail", c[&Level::Ok], c[&Level::Warn], c[&Level::Fail]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Source, compile};

    fn answer(status: u16, content_type: &str, bytes: Option<u64>) -> Result<AudioAnswer, String> {
        let content_type = Some(content_type.to_string()).filter(|c| !c.is_empty());
        Ok(AudioAnswer { status, content_type, bytes })
    }

    #[test]
    fn an_audio_url_is_judged_by_its_format_its_version_and_its_host() {
        let levels = |url| audio_url(url).into_iter().map(|(l, _)| l).collect::<Vec<_>>();
        assert_eq!(
            audio_url("https://cdn.example/hello.mp3?v=3"),
            [(Level::Ok, "mp3, versioned by its query `?v=3`".into())]
        );
        assert_eq!(levels("https://cdn.example/hello-v12.wav"), [Level::Ok]);
        assert_eq!(levels("https://cdn.example/hello.3f2a9c1b.mp3"), [Level::Ok]);
        assert_eq!(levels("https://cdn.example/20261207/hello.mp3"), [Level::Ok]);
        assert_eq!(levels("https://cdn.example/hello.mp3"), [Level::Warn]);
        assert!(audio_url("https://cdn.example/hello.mp3")[0].1.contains("60 minutes"));
        // A word is not a version, nor is a lone letter.
        assert_eq!(levels("https://cdn.example/facade/v/hello.mp3"), [Level::Warn]);
        assert_eq!(levels("https://cdn.example/hello.ogg?v=1"), [Level::Warn]);
        assert_eq!(levels("http://127.0.0.1:8099/hello.mp3?v=1"), [Level::Warn]);
        assert!(audio_url("http://localhost/a.mp3?v=1")[0].1.contains("a loopback address"));
        assert_eq!(levels("ftp://cdn.example/a.mp3"), [Level::Fail]);
    }

    #[test]
    fn an_answer_is_judged_by_status_type_and_size() {
        assert_eq!(
            judge_audio(&answer(200, "audio/mpeg", Some(2048))),
            (Level::Ok, "HTTP 200, mp3, 2048 bytes".into())
        );
        assert_eq!(judge_audio(&answer(206, "audio/x-wav; rate=8000", Some(10))).0, Level::Ok);
        assert_eq!(judge_audio(&answer(404, "text/html", None)).0, Level::Fail);
        assert_eq!(judge_audio(&answer(200, "text/html; charset=utf-8", Some(10))).0, Level::Fail);
        assert_eq!(judge_audio(&answer(200, "audio/ogg", Some(10))).0, Level::Fail);
        assert_eq!(judge_audio(&answer(200, "audio/mpeg", Some(FILE_BYTES_MAX))).0, Level::Fail);
        assert_eq!(judge_audio(&answer(200, "audio/mpeg", Some(FILE_BYTES_MAX - 1))).0, Level::Ok);
        assert_eq!(judge_audio(&answer(200, "audio/mpeg", Some(0))).0, Level::Fail);
        assert_eq!(judge_audio(&answer(200, "audio/mpeg", None)).0, Level::Warn);
        assert_eq!(judge_audio(&answer(200, "application/octet-stream", Some(5))).0, Level::Warn);
        assert_eq!(judge_audio(&answer(200, "", Some(5))).0, Level::Warn);
        assert_eq!(judge_audio(&Err("timed out".into())), (Level::Fail, "no answer: timed out".into()));
        assert_eq!(content_range_total("bytes 0-0/6000000"), Some(6_000_000));
        assert_eq!(content_range_total("bytes 0-0/*"), None);
        assert_eq!(content_range_total("items 0-0/5"), None);
    }

    #[test]
    fn webhooks_are_judged_against_the_node_s_url() {
        let hook = |kind: &str, url: &str, auth| ListedWebhook {
            kind: kind.into(),
            url: url.into(),
            enabled: Some(true),
            auth_header: Some(auth),
        };
        let wanted = [("VCA", "webhooks/vca"), ("VSS", "webhooks/vss")];
        let listed = [
            hook("VCA", "https://n.example/webhooks/vca", true),
            hook("VSS", "https://old.example/webhooks/vss", false),
        ];
        let found = judge_webhooks(&listed, &wanted, Some("https://n.example/"));
        let brief: Vec<(Level, &str)> = found.iter().map(|f| (f.level, f.subject.as_str())).collect();
        assert_eq!(brief, [(Level::Ok, "VCA"), (Level::Fail, "VSS"), (Level::Fail, "VSS")]);
        assert_eq!(
            found[1].message,
            "points at https://old.example/webhooks/vss, not https://n.example/webhooks/vss"
        );
        let missing = judge_webhooks(&listed[..1], &wanted, None);
        assert_eq!(missing.iter().map(|f| f.level).collect::<Vec<_>>(), [Level::Warn, Level::Fail]);
    }

    #[test]
    fn a_machine_s_dependencies_name_their_nodes() {
        let text = r#"
name = "deps"
start = "hello"
allow_hosts = ["127.0.0.1:8090"]
[settings]
audio = "https://cdn.example"
[defaults]
voice_profile = "en-US-BenjaminRUS"
[nodes.hello]
kind = "play"
file_url = "{audio}/hello.mp3"
next = "again"
[nodes.again]
kind = "play"
file_url = "{audio}/hello.mp3"
next = "ask"
[nodes.ask]
kind = "script"
prompt = "One moment."
voice_profile = "en-GB-Emma"
url = "http://127.0.0.1:8090/x?caller={caller}"
failure = "bye"
default = "bye"
[nodes.bye]
kind = "hangup"
"#;
        let m = compile(&Source::new("deps.toml", text)).machine.expect("compiles");
        let deps: Vec<(Need, Vec<String>)> =
            dependencies(&m).into_iter().map(|d| (d.need, d.nodes)).collect();
        let nodes = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(
            deps.contains(&(Need::Audio("https://cdn.example/hello.mp3".into()), nodes(&["again", "hello"]))),
            "{deps:?}"
        );
        assert!(
            deps.contains(&(Need::ScriptHost { host: "127.0.0.1".into(), port: 8090 }, nodes(&["ask"]))),
            "{deps:?}"
        );
        assert!(deps.contains(&(Need::Voice("en-GB-Emma".into()), nodes(&["ask"]))), "{deps:?}");
        assert!(deps.contains(&(Need::Voice("en-US-BenjaminRUS".into()), nodes(&["fallback"]))), "{deps:?}");

        // Offline: the URL's shape and the voices; asked, a host that got no answer fails.
        let deps = dependencies(&m);
        let brief = |answers: &Answers| {
            let found = judge(&deps, answers, Voices::bundled(), false);
            found.iter().map(|f| (f.check, f.level)).collect::<Vec<_>>()
        };
        let offline = [(Check::AudioUrl, Level::Warn), (Check::Voice, Level::Ok), (Check::Voice, Level::Ok)];
        assert_eq!(brief(&Answers::default()), offline);
        let mut answers = Answers { asked: true, ..Answers::default() };
        let file = AudioAnswer { status: 200, content_type: Some("audio/mpeg".into()), bytes: Some(9) };
        answers.audio.insert("https://cdn.example/hello.mp3".into(), Ok(file));
        let asked = brief(&answers);
        assert!(
            asked.contains(&(Check::Audio, Level::Ok)) && asked.contains(&(Check::ScriptHost, Level::Fail)),
            "{asked:?}"
        );
    }
}
