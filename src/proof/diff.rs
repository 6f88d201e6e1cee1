//! `phonetree diff`: what changes between two versions of a machine, by meaning.
//!
//! - **Structure**: the compiled machines compared (so formatting, key order and comments never
//!   show): machine fields, `[settings]`, modules, nodes added and removed (a removed and an added node with
//!   the same behaviour and the same edges are one node renamed), and for each node kept its
//!   kind, what it says (`prompt`), its other fields (`settings`: voices, digits, timeouts,
//!   tries, URLs, rules) and each edge's target.
//! - **Behaviour**: every path a caller can tell apart on either version
//!   (`explore::explore_heard_paths`: each sequence of input classes from the start, at each
//!   clock and caller class), played through both with
//!   `simulate`: what the caller hears (node names aside, so a rename changes nothing) and where
//!   the call ends. Each path that differs carries the `simulate` command playing it on NEW.
//! - **Impact**: recorded calls (`calls export`) replayed through NEW with `history::replay`,
//!   as `replay --expect-same` does: how many go differently and how many end differently.
//!
//! Pure: the command line reads the files and prints.

use std::collections::{BTreeMap, HashMap, HashSet};

use petgraph::visit::EdgeRef;
use serde::Serialize;

use super::explore;
use super::history;
use super::simulate::{self, Guard};
use super::tokens;
use crate::callflow::Action;
use crate::engine::transcript::Call;
use crate::machine::{Machine, Menu, NodeKind, Template};

/// Most distinct paths played (on both versions): far beyond a menu tree a person reviews; past
/// it the behavioural diff covers the first ones and says so.
pub const PATHS_MAX: usize = 100_000;
/// Most recorded calls listed by name in the impact (all are counted).
pub const CALLS_LISTED_MAX: usize = 5;
/// Most paths listed under one node whose prompt changed (all are counted).
pub const PROMPT_PATHS_LISTED_MAX: usize = 20;

/// Everything that differs between OLD and NEW.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub old: Side,
    pub new: Side,
    pub structure: Vec<Change>,
    pub behaviour: Vec<PathChange>,
    /// Distinct paths played on both versions.
    pub paths: usize,
    /// False when `PATHS_MAX` stopped the paths played.
    pub paths_complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
}

/// One version compared.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub file: String,
    pub machine: String,
    pub version: String,
}

/// What part of the machine a structural change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// A machine-wide field: name, description, numbers, start, timezone, variables, fallback,
    /// hosts, sensitive variables, policies, `[resume]`.
    Machine,
    Module,
    /// One of the machine's `[settings]`.
    Setting,
    Node,
    Edge,
    /// What a node says or plays.
    Prompt,
    /// A node's other fields (voice, speed, digits, timeouts, tries, request, rules, ...).
    Settings,
}

/// How it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    Added,
    Removed,
    Changed,
    Renamed,
}

/// One structural change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub subject: Subject,
    pub how: How,
    /// The node it is about (OLD's name for a rename), none for the machine's fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// As a person reads it: "renamed `a` → `b`", "`menu`: edge `key 2` was → `x`, now → `y`".
    pub text: String,
}

/// How a path's call differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathHow {
    /// It ends differently (and may say other things on the way).
    Ends,
    /// It ends the same, but the caller hears something different on the way.
    Heard,
}

/// One path that plays differently on NEW.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathChange {
    pub how: PathHow,
    /// The `simulate` inputs: a clock class (`--at=`), a caller (`--from=`) or session
    /// (`--session=`) first; for a call opening with the resume offer, the node the interrupted
    /// call stopped at (`--resume-from=`) and the variables it kept (`--var=`); then the keys and
    /// script answers.
    pub inputs: Vec<String>,
    /// `new`: only NEW's explorer finds it, and no path of OLD's starts as it does or is where it
    /// starts (clock, caller and session aside, not a resumed call's `--resume-from=` and
    /// `--var=`s): `3 *` once key 3 is new. `gone`: likewise the other way. `kept` otherwise.
    pub path: Kind,
    /// Where OLD's call ends, and NEW's: `hangup`, `transfer to NUMBER`, `waits for input`, ...
    pub was: String,
    pub now: String,
    /// Where the words first differ: the node NEW's call says them at (else OLD's), and the
    /// node OLD's call said them at (else NEW's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was_node: Option<String>,
    /// The command that plays the path on NEW.
    pub simulate: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Kept,
    New,
    Gone,
}

/// Recorded calls replayed through NEW.
#[derive(Debug, Clone, Serialize)]
pub struct Impact {
    /// The calls read whose machine is NEW's (or OLD's): those replayed.
    pub calls: usize,
    /// Calls of other machines, not replayed.
    pub other_machines: usize,
    /// Calls that replay differently on NEW (`replay --expect-same` fails on them).
    pub differ: usize,
    /// Calls whose outcome on NEW is not the recorded one.
    pub end_differently: usize,
    /// The first `CALLS_LISTED_MAX` that differ.
    pub listed: Vec<CallChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallChange {
    pub file: String,
    pub session: String,
    /// Where the replay first parts from the recording.
    pub difference: String,
    pub was: String,
    pub now: String,
}

impl Diff {
    /// Nothing differs, by structure or by behaviour (a call's impact follows from them).
    pub fn is_empty(&self) -> bool {
        self.structure.is_empty() && self.behaviour.is_empty()
    }

    /// Some path ends differently.
    pub fn ends_differ(&self) -> bool {
        self.behaviour.iter().any(|p| p.how == PathHow::Ends)
    }
}

/// How the paths are played: as `simulate` plays them with these flags.
#[derive(Clone, Copy)]
pub struct Playing<'a> {
    /// The outbound guard a transfer to a templated destination asks (`simulate`'s, from its
    /// `--call-allow-prefix`: without one every such number is refused, as on a node without it).
    pub guard: &'a Guard<'a>,
    /// The `simulate` flags that give the same guard, put in each command printed.
    pub flags: &'a [String],
}

/// Compares OLD and NEW, both compiled; `files` are how the command line named them (the
/// `simulate` commands name NEW's).
pub fn diff(old: &Machine, new: &Machine, files: (&str, &str), playing: Playing<'_>) -> Diff {
    let side = |m: &Machine, file: &str| Side {
        file: file.to_string(),
        machine: m.name().to_string(),
        version: m.version().short(),
    };
    let (behaviour, paths, paths_complete) = behaviour(old, new, files.1, playing);
    Diff {
        old: side(old, files.0),
        new: side(new, files.1),
        structure: structure(old, new),
        behaviour,
        paths,
        paths_complete,
        impact: None,
    }
}

// --- structure ---

fn change(subject: Subject, how: How, node: Option<&str>, text: String) -> Change {
    Change { subject, how, node: node.map(str::to_string), text }
}

/// The structural changes, machine fields first, then settings, modules, then nodes by name.
pub fn structure(old: &Machine, new: &Machine) -> Vec<Change> {
    let mut out = Vec::new();
    machine_fields(old, new, &mut out);
    settings(old, new, &mut out);
    modules(old, new, &mut out);
    let (renames, removed, added) = renames(old, new);
    for name in &removed {
        let kind = kind_of(old, name);
        out.push(change(Subject::Node, How::Removed, Some(name), format!("node `{name}` removed ({kind})")));
    }
    for name in &added {
        let kind = kind_of(new, name);
        out.push(change(Subject::Node, How::Added, Some(name), format!("node `{name}` added ({kind})")));
    }
    for (from, to) in &renames {
        out.push(change(Subject::Node, How::Renamed, Some(from), format!("renamed `{from}` → `{to}`")));
    }
    // Nodes in both (a renamed one under its new name), in OLD's order of names.
    let mut kept: Vec<(String, String)> = names(old)
        .into_iter()
        .filter_map(|n| {
            let to = renames.get(&n).cloned().unwrap_or_else(|| n.clone());
            new.node_id(&to).map(|_| (n, to))
        })
        .collect();
    kept.sort();
    for (from, to) in kept {
        node_changes(old, new, (&from, &to), &renames, &mut out);
    }
    out
}

fn names(m: &Machine) -> Vec<String> {
    let mut names: Vec<String> = m.graph().node_weights().map(|n| n.name.clone()).collect();
    names.sort();
    names
}

fn kind_of(m: &Machine, name: &str) -> &'static str {
    m.node_id(name).and_then(|id| m.node(id)).map_or("", |n| n.kind.name())
}

fn machine_fields(old: &Machine, new: &Machine, out: &mut Vec<Change>) {
    let start = |m: &Machine| m.node(m.start()).map_or_else(String::new, |n| n.name.clone());
    let fields: [(&str, String, String); 11] = [
        ("name", old.name().to_string(), new.name().to_string()),
        ("description", format!("{:?}", old.description()), format!("{:?}", new.description())),
        ("numbers", format!("{:?}", old.numbers()), format!("{:?}", new.numbers())),
        ("start", start(old), start(new)),
        ("timezone", format!("{:?}", old.timezone()), format!("{:?}", new.timezone())),
        ("variables", format!("{:?}", old.variables()), format!("{:?}", new.variables())),
        ("fallback", format!("{:?}", old.fallback().actions), format!("{:?}", new.fallback().actions)),
        ("allow_hosts", format!("{:?}", old.allow_hosts()), format!("{:?}", new.allow_hosts())),
        ("sensitive", format!("{:?}", old.sensitive()), format!("{:?}", new.sensitive())),
        ("policies", format!("{:?}", old.policies()), format!("{:?}", new.policies())),
        ("resume", format!("{:?}", old.resume()), format!("{:?}", new.resume())),
    ];
    for (field, was, now) in fields {
        if was != now {
            let text = if matches!(field, "name" | "start" | "numbers") {
                format!("`{field}` changed: was {was}, now {now}")
            } else {
                format!("`{field}` changed")
            };
            out.push(change(Subject::Machine, How::Changed, None, text));
        }
    }
}

fn settings(old: &Machine, new: &Machine, out: &mut Vec<Change>) {
    let (was, now) = (old.settings(), new.settings());
    for (name, value) in was {
        match now.get(name) {
            None => out.push(change(
                Subject::Setting,
                How::Removed,
                None,
                format!("setting `{name}` removed (was {value})"),
            )),
            Some(v) if v != value => out.push(change(
                Subject::Setting,
                How::Changed,
                None,
                format!("setting `{name}` changed: was {value}, now {v}"),
            )),
            Some(_) => {}
        }
    }
    for (name, value) in now.iter().filter(|(n, _)| !was.contains_key(*n)) {
        out.push(change(Subject::Setting, How::Added, None, format!("setting `{name}` added ({value})")));
    }
}

fn modules(old: &Machine, new: &Machine, out: &mut Vec<Change>) {
    let uses = |m: &Machine| -> Vec<(String, String)> {
        let mut u: Vec<(String, String)> =
            m.modules().iter().map(|u| (u.namespace.clone(), u.module.clone())).collect();
        u.sort();
        u
    };
    let (was, now) = (uses(old), uses(new));
    for (ns, module) in was.iter().filter(|u| !now.contains(u)) {
        let text = format!("module `{module}` (as `{ns}`) removed");
        out.push(change(Subject::Module, How::Removed, Some(ns), text));
    }
    for (ns, module) in now.iter().filter(|u| !was.contains(u)) {
        let text = format!("module `{module}` (as `{ns}`) added");
        out.push(change(Subject::Module, How::Added, Some(ns), text));
    }
}

/// A node's outgoing edges: (label, target name), sorted.
fn edges_of(m: &Machine, name: &str) -> Vec<(String, String)> {
    let Some(id) = m.node_id(name) else { return Vec::new() };
    let mut edges: Vec<(String, String)> =
        m.graph().edges(id).map(|e| (e.weight().to_string(), m.graph()[e.target()].name.clone())).collect();
    edges.sort();
    edges
}

/// The whole behaviour of a node, as compiled (its kind and every field).
fn behaviour_of(m: &Machine, name: &str) -> String {
    m.node_id(name).and_then(|id| m.node(id)).map_or_else(String::new, |n| format!("{:?}", n.kind))
}

/// OLD's nodes renamed in NEW (old → new), then the names removed and added besides them. A
/// removed node is renamed to an added one when exactly one added node has its behaviour and its
/// edges (to the same targets, renamed ones under their new names); found leaves first, again
/// until nothing more is found.
fn renames(old: &Machine, new: &Machine) -> (BTreeMap<String, String>, Vec<String>, Vec<String>) {
    let mut removed: Vec<String> = names(old).into_iter().filter(|n| new.node_id(n).is_none()).collect();
    let mut added: Vec<String> = names(new).into_iter().filter(|n| old.node_id(n).is_none()).collect();
    let mut renames: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut found = None;
        for r in &removed {
            let kind = behaviour_of(old, r);
            let mut edges: Vec<(String, String)> = edges_of(old, r)
                .into_iter()
                .map(|(label, to)| (label, renames.get(&to).cloned().unwrap_or(to)))
                .collect();
            edges.sort();
            let same: Vec<&String> =
                added.iter().filter(|a| behaviour_of(new, a) == kind && edges_of(new, a) == edges).collect();
            if let [a] = same[..] {
                found = Some((r.clone(), a.clone()));
                break;
            }
        }
        let Some((r, a)) = found else { break };
        removed.retain(|n| *n != r);
        added.retain(|n| *n != a);
        renames.insert(r, a);
    }
    (renames, removed, added)
}

fn node_changes(
    old: &Machine,
    new: &Machine,
    (from, to): (&str, &str),
    renames: &BTreeMap<String, String>,
    out: &mut Vec<Change>,
) {
    let node = |m: &Machine, name: &str| m.node_id(name).and_then(|id| m.node(id)).map(|n| n.kind.clone());
    let (Some(was), Some(now)) = (node(old, from), node(new, to)) else { return };
    let label = to;
    if was.name() != now.name() {
        let text = format!("`{label}`: kind changed: was {}, now {}", was.name(), now.name());
        out.push(change(Subject::Node, How::Changed, Some(to), text));
    } else {
        if heard(&was) != heard(&now) {
            out.push(change(Subject::Prompt, How::Changed, Some(to), format!("`{label}`: prompt changed")));
        }
        // A transfer's callback is the machine's, by node, not the node kind's.
        let callback = |m: &Machine, name: &str| m.node_id(name).and_then(|id| m.on_unanswered(id)).cloned();
        let callback_changed = callback(old, from) != callback(new, to);
        if unheard(&was) != unheard(&now) || callback_changed {
            let (a, b) = (fields(&was), fields(&now));
            let mut named: Vec<&str> =
                a.iter().zip(&b).filter(|(x, y)| x.1 != y.1).map(|(x, _)| x.0).collect();
            if callback_changed {
                named.push("on_unanswered");
            }
            let text = if named.is_empty() || a.len() != b.len() {
                format!("`{label}`: settings changed")
            } else {
                format!("`{label}`: settings changed: {}", named.join(", "))
            };
            out.push(change(Subject::Settings, How::Changed, Some(to), text));
        }
    }
    let was_edges: BTreeMap<String, String> = edges_of(old, from)
        .into_iter()
        .map(|(label, to)| (label, renames.get(&to).cloned().unwrap_or(to)))
        .collect();
    let now_edges: BTreeMap<String, String> = edges_of(new, to).into_iter().collect();
    for (edge, target) in &was_edges {
        match now_edges.get(edge) {
            None => {
                let text = format!("`{label}`: edge `{edge}` → `{target}` removed");
                out.push(change(Subject::Edge, How::Removed, Some(to), text));
            }
            Some(now) if now != target => {
                let text = format!("`{label}`: edge `{edge}` was → `{target}`, now → `{now}`");
                out.push(change(Subject::Edge, How::Changed, Some(to), text));
            }
            Some(_) => {}
        }
    }
    for (edge, target) in now_edges.iter().filter(|(e, _)| !was_edges.contains_key(*e)) {
        let text = format!("`{label}`: edge `{edge}` → `{target}` added");
        out.push(change(Subject::Edge, How::Added, Some(to), text));
    }
}

/// What a node says or plays: its texts and file URLs, as written.
fn heard(kind: &NodeKind) -> Vec<String> {
    let menu = |m: &Menu| {
        let mut t: Vec<String> = m.lead.iter().map(|s| s.text.to_string()).collect();
        t.push(m.capture.prompt_message.to_string());
        t.extend(m.relead.iter().map(|s| s.text.to_string()));
        t.push(m.reprompt.to_string());
        t.extend(m.capture.success_message.iter().map(Template::to_string));
        t.extend(m.capture.failure_message.iter().map(Template::to_string));
        t
    };
    match kind {
        NodeKind::Menu(m) => menu(m),
        NodeKind::Input(i) => menu(&i.prompt),
        NodeKind::Say(s) => vec![s.text.to_string()],
        NodeKind::Play(p) => vec![p.file_url.to_string()],
        NodeKind::Script(s) => {
            let mut t: Vec<String> = s.say.iter().map(|s| s.text.to_string()).collect();
            t.extend(s.capture.iter().flat_map(menu));
            t
        }
        _ => Vec::new(),
    }
}

/// A node's fields besides what it says, each named as in a machine file, as compiled.
fn fields(kind: &NodeKind) -> Vec<(&'static str, String)> {
    let menu = |m: &Menu| {
        let c = &m.capture;
        vec![
            ("voice_profile", format!("{:?} {:?}", c.voice_profile, m.revoice)),
            ("speed", format!("{:?}", c.speed)),
            ("repetition", format!("{:?}", c.repetition)),
            ("min_digits", format!("{:?}", c.min_digits)),
            ("max_digits", format!("{:?}", c.max_digits)),
            ("digit_timeout_ms", format!("{:?}", c.digit_timeout_ms)),
            ("overall_timeout_ms", format!("{:?}", c.overall_timeout_ms)),
            ("complete_on_hash", format!("{:?}", c.complete_on_hash)),
            ("no_of_tries", format!("{:?}", c.no_of_tries)),
            ("tries", m.tries.to_string()),
        ]
    };
    let say = |s: &crate::callflow::Say<Template>| {
        vec![
            ("voice_profile", s.voice_profile.clone()),
            ("speed", format!("{:?}", s.speed)),
            ("repetition", format!("{:?}", s.repetition)),
        ]
    };
    match kind {
        NodeKind::Menu(m) => menu(m),
        NodeKind::Input(i) => {
            let mut f = menu(&i.prompt);
            f.push(("variable", i.variable.clone()));
            f.push(("pattern", format!("{:?}", i.pattern.as_ref().map(|p| p.as_str()))));
            f.push(("example", i.example.clone()));
            f
        }
        NodeKind::Say(s) => say(s),
        NodeKind::Play(p) => vec![("repetition", format!("{:?}", p.repetition))],
        NodeKind::Transfer(t) => vec![
            ("source", t.source.to_string()),
            ("destination", t.destination.to_string()),
            ("call_recording", format!("{:?}", t.call_recording)),
        ],
        NodeKind::Script(s) => {
            let mut f = s.say.as_ref().map(say).unwrap_or_default();
            f.extend(s.capture.as_ref().map(menu).unwrap_or_default());
            f.push(("url", s.request.url.to_string()));
            f.push(("request", format!("{:?}", s.request)));
            f.push(("response_key", format!("{:?}", s.response_key)));
            f.push(("store", format!("{:?}", s.store)));
            f.push(("cache_minutes", format!("{:?}", s.cache_minutes)));
            f
        }
        NodeKind::Route(r) => vec![("rules", format!("{:?}", r.rules))],
        NodeKind::Set(set) => {
            vec![("values", format!("{:?}", set.values)), ("add", format!("{:?}", set.add))]
        }
        NodeKind::Split(sp) => vec![
            ("weights", format!("{:?}", sp.variants)),
            ("sticky_by", format!("{:?}", sp.sticky_by)),
            ("salt", sp.salt.clone()),
            ("force", format!("{:?}", sp.force)),
        ],
        NodeKind::Hangup => Vec::new(),
    }
}

/// Everything else about a node: its compiled form with what it says left out.
fn unheard(kind: &NodeKind) -> String {
    let blank = || Template::literal("");
    let menu = |m: &mut Menu| {
        m.capture.prompt_message = blank();
        m.reprompt = blank();
        m.capture.success_message = m.capture.success_message.as_ref().map(|_| blank());
        m.capture.failure_message = m.capture.failure_message.as_ref().map(|_| blank());
        for s in m.lead.iter_mut().chain(m.relead.iter_mut()) {
            s.text = blank();
        }
    };
    let mut kind = kind.clone();
    match &mut kind {
        NodeKind::Menu(m) => menu(m),
        NodeKind::Input(i) => menu(&mut i.prompt),
        NodeKind::Say(s) => s.text = blank(),
        NodeKind::Play(p) => p.file_url = blank(),
        NodeKind::Script(s) => {
            if let Some(say) = &mut s.say {
                say.text = blank();
            }
            if let Some(m) = &mut s.capture {
                menu(m);
            }
        }
        _ => {}
    }
    format!("{kind:?}")
}

// --- behaviour ---

/// Sets of paths' keys and answers.
type Inputs = HashSet<Vec<String>>;
/// A listed path change: (inputs, how, was, now, node).
type Listed<'a> = (&'a [String], &'a PathHow, &'a str, &'a str, Option<&'a String>);

/// How one path's call went on one version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Played {
    /// Each action the caller got, in order: (its node, the action as 8x8 gets it).
    heard: Vec<(String, String)>,
    /// Where the call ended (see `end_of`).
    end: String,
}

/// Every path either explorer counts, played on both: the paths that differ, how many were
/// played, and whether that was all of them.
fn behaviour(
    old: &Machine,
    new: &Machine,
    new_file: &str,
    playing: Playing<'_>,
) -> (Vec<PathChange>, usize, bool) {
    // Each path, with which explorers found it: NEW's order first, then the paths only OLD has.
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut found: HashMap<Vec<String>, (bool, bool)> = HashMap::new();
    let mut complete = true;
    for (m, is_new) in [(new, true), (old, false)] {
        let report = explore::explore_heard_paths(m, &mut |path| {
            let entry = found.entry(path.to_vec()).or_insert_with(|| {
                if order.len() < PATHS_MAX {
                    order.push(path.to_vec());
                }
                (false, false)
            });
            if is_new { entry.1 = true } else { entry.0 = true }
        });
        complete &= report.paths_complete;
    }
    complete &= found.len() <= PATHS_MAX;
    // The keys and answers of each version's paths (clock, caller and session aside; a resumed
    // call's `--resume-from=` and `--var=`s kept: where it goes on is part of the path), and every
    // start of them.
    let aside = [tokens::AT_FLAG, tokens::FROM_FLAG, tokens::SESSION_FLAG];
    let keys = |p: &[String]| -> Vec<String> {
        p.iter().filter(|t| !aside.iter().any(|f| t.starts_with(f))).cloned().collect()
    };
    let mut whole: [Inputs; 2] = Default::default();
    let mut starts: [Inputs; 2] = Default::default();
    for (p, (in_old, in_new)) in &found {
        let k = keys(p);
        for (side, found_there) in [(0, *in_old), (1, *in_new)] {
            if found_there {
                starts[side].extend((0..=k.len()).map(|n| k[..n].to_vec()));
                whole[side].insert(k.clone());
            }
        }
    }
    // Unrelated to every path of the other side: not one of its starts, and none of its paths
    // one of this one's starts.
    let unrelated = |k: &[String], other: usize| {
        !starts[other].contains(k) && !(0..k.len()).any(|n| whole[other].contains(&k[..n]))
    };
    let mut out = Vec::new();
    for path in &order {
        let (was, now) = (play(old, path, playing.guard), play(new, path, playing.guard));
        let k = keys(path);
        let kind = match found.get(path) {
            Some((false, true)) if unrelated(&k, 0) => Kind::New,
            Some((true, false)) if unrelated(&k, 1) => Kind::Gone,
            _ => Kind::Kept,
        };
        let words_differ = was.heard.iter().map(|h| &h.1).ne(now.heard.iter().map(|h| &h.1));
        let how = if was.end != now.end {
            PathHow::Ends
        } else if words_differ {
            PathHow::Heard
        } else {
            continue;
        };
        let k = (0..was.heard.len().max(now.heard.len()))
            .find(|&k| was.heard.get(k).map(|h| &h.1) != now.heard.get(k).map(|h| &h.1))
            .unwrap_or(0);
        let at = |first: &Played, second: &Played| {
            first.heard.get(k).or_else(|| second.heard.get(k)).map_or_else(String::new, |h| h.0.clone())
        };
        let (node, was_node) =
            if words_differ { (Some(at(&now, &was)), Some(at(&was, &now))) } else { (None, None) };
        out.push(PathChange {
            how,
            inputs: path.clone(),
            path: kind,
            was: was.end,
            now: now.end,
            node,
            was_node,
            simulate: explore::replay(new_file, &[playing.flags, path].concat()),
        });
    }
    // A path that goes on from another listed one and changes as it does says nothing more
    // (`2 -` after `2`, when key 2 now ends the call).
    let listed: HashSet<Listed<'_>> = out
        .iter()
        .map(|p| (&p.inputs[..], &p.how, p.was.as_str(), p.now.as_str(), p.node.as_ref()))
        .collect();
    let repeats = |p: &PathChange| {
        (1..p.inputs.len()).any(|n| {
            listed.contains(&(&p.inputs[..n], &p.how, p.was.as_str(), p.now.as_str(), p.node.as_ref()))
        })
    };
    let kept: Vec<bool> = out.iter().map(|p| !repeats(p)).collect();
    let mut kept = kept.into_iter();
    out.retain(|_| kept.next().unwrap_or(true));
    (out, order.len(), complete)
}

/// Plays an explored path on `m` as `simulate` plays its tokens (`simulate::parse_path`: a
/// resumed call's `--resume-from=` and `--var=`s too).
fn play(m: &Machine, path: &[String], guard: &Guard<'_>) -> Played {
    let mut fallback = |r: &crate::engine::Request| Err(simulate::needs_answer(r));
    let played = simulate::parse_path(path)
        .and_then(|p| Ok((simulate::run_path(m, &p, Some(guard), &mut fallback)?, p.resume_from.is_some())));
    match played {
        Ok(((lines, flows), resumed)) => {
            let actions: Vec<&Action> = flows.iter().flat_map(|f| f.actions.iter()).collect();
            let mut heard = label(&lines, &actions);
            // A resumed call's first reply is the offer, said at the start node but the
            // `[resume]` table's.
            if resumed {
                let offer = flows.first().map_or(0, |f| f.actions.len());
                heard.iter_mut().take(offer).for_each(|h| h.0 = explore::RESUME_NODE.to_string());
            }
            Played { heard, end: end_of(&lines, &actions) }
        }
        Err(why) => Played { heard: Vec::new(), end: format!("error: {why}") },
    }
}

/// Each action with the node that said it, read from the transcript's `[node] ...` lines.
fn label(lines: &[String], actions: &[&Action]) -> Vec<(String, String)> {
    let mut at = 0;
    actions
        .iter()
        .map(|a| {
            let said = simulate::describe(a);
            let node = lines[at.min(lines.len())..]
                .iter()
                .position(|l| l.starts_with('[') && l.split_once("] ").is_some_and(|(_, rest)| rest == said));
            let name = match node {
                Some(k) => {
                    at += k + 1;
                    let line = &lines[at - 1];
                    line[1..].split_once("] ").map_or_else(String::new, |(n, _)| n.to_string())
                }
                None => String::new(),
            };
            (name, format!("{a:?}"))
        })
        .collect()
}

/// Where a played call ended, without node names: `hangup`, `transfer to NUMBER`, `waits for
/// input`, `the caller left (...)`, ...
fn end_of(lines: &[String], actions: &[&Action]) -> String {
    let dialled = actions.iter().rev().find_map(|a| match a {
        Action::MakeCall(c) => Some(c.destination.clone()),
        _ => None,
    });
    let status = lines.iter().rev().find(|l| !l.starts_with("note: ")).map_or("", String::as_str);
    if status == "call ended: hangup" {
        "hangup".into()
    } else if let Some(to) = status.strip_prefix("call ended: transferred to ") {
        format!("transfer to {to}")
    } else if status.starts_with("call transferred at node") {
        format!("transfer to {}", dialled.unwrap_or_default())
    } else if status.starts_with("no more input") {
        "waits for input".into()
    } else {
        status.strip_prefix("call ended: ").unwrap_or(status).to_string()
    }
}

// --- impact ---

/// Replays `calls` (each with the name it was read from) through NEW: the calls of NEW's
/// machine (by name, OLD's too) are counted, others skipped.
pub fn impact(old: &Machine, new: &Machine, calls: &[(String, Call)]) -> Impact {
    let mut impact =
        Impact { calls: 0, other_machines: 0, differ: 0, end_differently: 0, listed: Vec::new() };
    for (file, call) in calls {
        if call.machine != new.name() && call.machine != old.name() {
            impact.other_machines += 1;
            continue;
        }
        impact.calls += 1;
        let replayed = history::replay_through(new, call);
        let now = replayed.outcome.map_or_else(|| "error".to_string(), str::to_string);
        if now != call.outcome {
            impact.end_differently += 1;
        }
        if let Some(d) = replayed.difference {
            impact.differ += 1;
            if impact.listed.len() < CALLS_LISTED_MAX {
                impact.listed.push(CallChange {
                    file: file.clone(),
                    session: call.session.clone(),
                    difference: d.to_string(),
                    was: call.outcome.clone(),
                    now,
                });
            }
        }
    }
    impact
}

// --- output ---

/// A path as a reader sees it: its inputs, or the call's start alone.
fn shown(inputs: &[String]) -> String {
    if inputs.is_empty() { "(the call's start)".into() } else { format!("`{}`", inputs.join(" ")) }
}

/// ` (new path)` or ` (path gone)` after a listed command.
fn marked(p: &PathChange) -> &'static str {
    match p.path {
        Kind::Kept => "",
        Kind::New => " (new path)",
        Kind::Gone => " (path gone)",
    }
}

fn path_line(p: &PathChange) -> String {
    let new = match p.path {
        Kind::Kept => "",
        Kind::New => "new path ",
        Kind::Gone => "path gone ",
    };
    match p.how {
        PathHow::Ends => format!("{new}{}: was {}, now {}", shown(&p.inputs), p.was, p.now),
        PathHow::Heard => format!("{new}{}: prompt changed", shown(&p.inputs)),
    }
}

/// The paths whose only change is what they hear, by where the words first differ: "`menu`'s
/// prompt changed on", or "hears `b` where it heard `a` on" (each followed by the paths).
fn by_prompt(diff: &Diff) -> Vec<(String, Vec<&PathChange>)> {
    let mut groups: Vec<(String, Vec<&PathChange>)> = Vec::new();
    for p in diff.behaviour.iter().filter(|p| p.how == PathHow::Heard) {
        let (now, was) = (p.node.clone().unwrap_or_default(), p.was_node.clone().unwrap_or_default());
        let head = if now == was && now == explore::RESUME_NODE {
            "the resume offer's prompt changed on".to_string()
        } else if now == was {
            format!("`{now}`'s prompt changed on")
        } else {
            format!("hears `{now}` where it heard `{was}` on")
        };
        match groups.iter_mut().find(|(h, _)| *h == head) {
            Some((_, paths)) => paths.push(p),
            None => groups.push((head, vec![p])),
        }
    }
    groups
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 { format!("{n} {one}") } else { format!("{n} {one}s") }
}

/// The diff for a terminal.
pub fn text(diff: &Diff) -> String {
    let mut out = format!("diff {} → {} (`{}`)\n", diff.old.file, diff.new.file, diff.new.machine);
    if diff.is_empty() {
        out.push_str("no structural change, no behavioural change\n");
    } else {
        out.push_str("structure:\n");
        if diff.structure.is_empty() {
            out.push_str("  no structural change\n");
        }
        for c in &diff.structure {
            out.push_str(&format!("  {}\n", c.text));
        }
        out.push_str("behaviour:\n");
        if diff.behaviour.is_empty() {
            out.push_str("  no behavioural change\n");
        }
        for p in diff.behaviour.iter().filter(|p| p.how == PathHow::Ends) {
            out.push_str(&format!("  {}\n    {}\n", path_line(p), p.simulate));
        }
        for (head, paths) in by_prompt(diff) {
            out.push_str(&format!("  {head} {}:\n", plural(paths.len(), "path")));
            for p in paths.iter().take(PROMPT_PATHS_LISTED_MAX) {
                out.push_str(&format!("    {}{}\n", p.simulate, marked(p)));
            }
            if paths.len() > PROMPT_PATHS_LISTED_MAX {
                out.push_str(&format!("    ... and {} more\n", paths.len() - PROMPT_PATHS_LISTED_MAX));
            }
        }
    }
    if !diff.paths_complete {
        out.push_str(&format!("note: the first {} paths were played, not all\n", diff.paths));
    }
    if let Some(i) = &diff.impact {
        out.push_str(&impact_text(i, &diff.new.file, ""));
    }
    out
}

fn impact_text(i: &Impact, new_file: &str, bullet: &str) -> String {
    let mut out = format!(
        "impact: {} of {} recorded {} replay differently on {new_file}, {} end differently{}\n",
        i.differ,
        i.calls,
        if i.calls == 1 { "call" } else { "calls" },
        i.end_differently,
        if i.other_machines > 0 {
            format!(" ({} of other machines skipped)", i.other_machines)
        } else {
            String::new()
        }
    );
    for c in &i.listed {
        out.push_str(&format!(
            "  {bullet}{} (session {}): {}; was {}, now {}\n",
            c.file, c.session, c.difference, c.was, c.now
        ));
    }
    out
}

/// The diff as a pull-request comment.
pub fn markdown(diff: &Diff) -> String {
    let mut out = format!(
        "### phonetree diff: `{}` ({} → {})\n\n",
        diff.new.machine, diff.old.version, diff.new.version
    );
    if diff.is_empty() {
        out.push_str("No structural change, no behavioural change.\n");
    } else {
        out.push_str("**Structure**\n\n");
        if diff.structure.is_empty() {
            out.push_str("- no structural change\n");
        }
        for c in &diff.structure {
            out.push_str(&format!("- {}\n", c.text));
        }
        out.push_str("\n**Behaviour**\n\n");
        if diff.behaviour.is_empty() {
            out.push_str("- no behavioural change\n");
        }
        for p in diff.behaviour.iter().filter(|p| p.how == PathHow::Ends) {
            out.push_str(&format!("- {}: `{}`\n", path_line(p), p.simulate));
        }
        for (head, paths) in by_prompt(diff) {
            out.push_str(&format!("- {head} {}:\n", plural(paths.len(), "path")));
            for p in paths.iter().take(PROMPT_PATHS_LISTED_MAX) {
                out.push_str(&format!("  - `{}`{}\n", p.simulate, marked(p)));
            }
            if paths.len() > PROMPT_PATHS_LISTED_MAX {
                out.push_str(&format!("  - ... and {} more\n", paths.len() - PROMPT_PATHS_LISTED_MAX));
            }
        }
    }
    if !diff.paths_complete {
        out.push_str(&format!("\n_The first {} paths were played, not all._\n", diff.paths));
    }
    if let Some(i) = &diff.impact {
        out.push_str("\n**Impact**\n\n");
        out.push_str(&impact_text(i, &diff.new.file, "- "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(text: &str) -> Action {
        Action::Say(crate::callflow::Say {
            text: text.into(),
            voice_profile: "v".into(),
            repetition: None,
            speed: None,
        })
    }

    #[test]
    fn actions_are_labelled_with_their_node_and_ends_lose_node_names() {
        let (a, b) = (action("hi"), Action::Hangup);
        let lines: Vec<String> = [
            "call to m",
            "[greet] hears: \"hi\"",
            "[bye] hangup",
            "call ended: hangup",
            "note: 1 input(s) after",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let heard = label(&lines, &[&a, &b]);
        assert_eq!(heard.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(), ["greet", "bye"]);
        assert_eq!(end_of(&lines, &[&a, &b]), "hangup");
        let waits = ["no more input: the call waits at menu `x`".to_string()];
        assert_eq!(end_of(&waits, &[]), "waits for input");
    }
}
