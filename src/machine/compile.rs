//! The compiler: `Definition` → `Machine`, collecting every problem of a file in one run.
//!
//! Stages: parse (shape), names and fields per node kind, settings and templates, the graph and its
//! targets, each node's 8x8 action checked with `callflow::validate`, every callflow a webhook can be
//! answered with (chains of nodes that need no input), and the graph rules: all nodes reachable from
//! the start, an end reachable from every node, digit keys the caller can actually type.
//! A machine with any error is not built: a machine 8x8 would reject never loads.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use petgraph::Direction;
use petgraph::graph::DiGraph;
use petgraph::visit::EdgeRef;

use super::definition::{Defaults, Definition, Kind, NodeDef};
use super::diagnostic::{Diagnostic, Position, Severity, closest};
use super::source::{self, Source, SpanIndex};
use super::template::{self, Template};
use super::{CHAIN_ACTIONS_MAX, ChainError, chain};
use super::{Edge, Input, Machine, Menu, Node, NodeId, NodeKind, RequestTemplate, Script, Version};
use crate::callflow::ClientActionId;
use crate::callflow::{
    self, Action, Callflow, MakeCall, PlayFile, Say, SayAndCapture, Speed, Use, Violation,
};

/// Most nodes in one machine: a generated 10,000-node tree compiles in milliseconds; far beyond
/// that a menu tree is no longer something a caller can navigate.
pub const NODES_MAX: usize = 50_000;
/// Longest machine or node name: names travel in every `clientActionId`.
pub const NAME_CHARS_MAX: usize = 48;
/// Most phonetree tries at one menu: three is usual, nine is already unkind.
pub const TRIES_MAX: u8 = 9;
/// Most branches of one menu: 12 keys on a phone, and multi-digit codes for extensions.
pub const BRANCHES_MAX: usize = 1000;
/// Longest a script waits for its API: 8x8 waits for phonetree's reply meanwhile, and a caller in
/// silence for longer hangs up.
pub const SCRIPT_TIMEOUT_MAX_MS: i64 = 10_000;
/// A script's timeout when the machine sets none.
pub const SCRIPT_TIMEOUT_DEFAULT_MS: i64 = 3_000;
/// The widget's default wait for each key.
pub const DIGIT_GAP_DEFAULT_MS: i64 = 4_000;
/// What a caller hears when phonetree fails and the machine sets no `fallback`.
pub const DEFAULT_FALLBACK: &str =
    "We are sorry, we cannot take your call right now. Please call again later.";
/// The voice of the fallback when the machine has no default voice profile.
const FALLBACK_VOICE: &str = "en-US-BenjaminRUS";

/// The speech fields of every node that says something.
const SPEECH_FIELDS: &[&str] = &["voice_profile", "speed", "repetition"];
/// 8x8's capture fields, for the nodes that ask with `sayAndCapture` and their own retries.
const CAPTURE_FIELDS: &[&str] = &[
    "min_digits",
    "max_digits",
    "digit_timeout_ms",
    "overall_timeout_ms",
    "complete_on_hash",
    "no_of_tries",
    "success_message",
    "failure_message",
];

/// The fields each node kind takes, besides `kind`, in groups.
pub const FIELDS_BY_KIND: &[(Kind, &[&[&str]])] = &[
    (
        Kind::Menu,
        &[&["prompt", "reprompt", "tries", "branches", "invalid", "no_input"], SPEECH_FIELDS, CAPTURE_FIELDS],
    ),
    (
        Kind::Input,
        &[
            &["prompt", "reprompt", "tries", "variable", "pattern", "example", "next", "invalid", "no_input"],
            SPEECH_FIELDS,
            CAPTURE_FIELDS,
        ],
    ),
    (
        Kind::Script,
        &[
            &["prompt", "reprompt", "allow_keypress", "min_digits", "max_digits", "digit_gap_ms", "repeat"],
            &["url", "body", "raw_json", "headers", "timeout_ms", "cache_minutes"],
            &["response_key", "branches", "default", "failure", "no_input", "store"],
            SPEECH_FIELDS,
        ],
    ),
    (Kind::Say, &[&["text", "next"], SPEECH_FIELDS]),
    (Kind::Play, &[&["file_url", "repetition", "next"]]),
    (Kind::Transfer, &[&["destination", "source", "call_recording", "after"]]),
    (Kind::Hangup, &[]),
];

/// Whether a node of `kind` takes `field`.
fn takes(kind: Kind, field: &str) -> bool {
    FIELDS_BY_KIND
        .iter()
        .filter(|(k, _)| *k == kind)
        .flat_map(|(_, groups)| groups.iter())
        .any(|g| g.contains(&field))
}

/// The result of a compile: the machine when there is no error, and every diagnostic.
#[derive(Debug)]
pub struct Compiled {
    pub machine: Option<Machine>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

/// Where node `node` is declared in `source` (its `[nodes.NAME]` key), for problems found after
/// compiling, such as `explore`'s.
pub fn locate_node(source: &Source, node: &str) -> Option<Position> {
    source::index(source).key(&["nodes", node]).map(|o| Position::of_offset(&source.text, o))
}

/// Compiles one machine source.
pub fn compile(source: &Source) -> Compiled {
    let def = match source::parse(source) {
        Ok(parsed) => parsed,
        Err(d) => return Compiled { machine: None, diagnostics: vec![*d] },
    };
    let declared = def
        .nodes
        .values()
        .flat_map(|n| match n.kind {
            Kind::Input => n.variable.iter().cloned().collect::<Vec<_>>(),
            Kind::Script => n.store.iter().flat_map(|s| s.keys().cloned()).collect(),
            _ => Vec::new(),
        })
        .collect();
    let mut c = Compiler { source, index: OnceCell::new(), def: &def, diags: Vec::new(), declared };
    let machine = c.run();
    let mut diagnostics = c.diags;
    diagnostics
        .sort_by(|a, b| (a.position, a.severity, &a.message).cmp(&(b.position, b.severity, &b.message)));
    // A bad default is inherited by many nodes but reported once, at `[defaults]`.
    diagnostics.dedup();
    let machine = machine.filter(|_| !diagnostics.iter().any(Diagnostic::is_error));
    Compiled { machine, diagnostics }
}

struct Compiler<'a> {
    source: &'a Source,
    /// Positions, found when the first diagnostic needs one (a valid file never needs them).
    index: OnceCell<SpanIndex>,
    def: &'a Definition,
    diags: Vec<Diagnostic>,
    /// Call variables the machine's `input` nodes set.
    declared: BTreeSet<String>,
}

/// Where a diagnostic points: a node's field, or a machine-level field.
#[derive(Clone, Copy)]
enum At<'a> {
    Machine(&'a str),
    Node(&'a str, &'a str),
    NodeKey(&'a str),
}

impl<'a> Compiler<'a> {
    fn index(&self) -> &SpanIndex {
        self.index.get_or_init(|| source::index(self.source))
    }

    fn report(&mut self, severity: Severity, at: At<'_>, message: String, hint: Option<String>) {
        let (node, field, offset) = match at {
            At::Machine(field) => {
                let path: Vec<&str> = field.split('.').collect();
                (None, Some(field.to_string()), self.index().value(&path))
            }
            At::Node(node, field) => {
                let mut path = vec!["nodes", node];
                path.extend(field.split('.'));
                match self.index().get(&path) {
                    Some((_, v)) => (Some(node.to_string()), Some(field.to_string()), Some(v)),
                    // Not set on the node: inherited from `[defaults]`, which is where to fix it.
                    None => match self.index().get(&["defaults", field]) {
                        Some((_, v)) => (None, Some(format!("defaults.{field}")), Some(v)),
                        None => (Some(node.to_string()), Some(field.to_string()), self.index().key(&path)),
                    },
                }
            }
            At::NodeKey(node) => (Some(node.to_string()), None, self.index().key(&["nodes", node])),
        };
        self.diags.push(Diagnostic {
            severity,
            file: self.source.file.clone(),
            position: offset.map(|o| Position::of_offset(&self.source.text, o)),
            node,
            field,
            message,
            hint,
        });
    }

    fn error(&mut self, at: At<'_>, message: String, hint: Option<String>) {
        self.report(Severity::Error, at, message, hint);
    }

    fn run(&mut self) -> Option<Machine> {
        let def = self.def;
        self.check_name(At::Machine("name"), &def.name, "machine");
        for (i, number) in def.numbers.iter().enumerate() {
            if let Err(why) = callflow::check_number(number) {
                self.error(At::Machine(&format!("numbers.{i}")), why, None);
            }
        }
        let settings = self.settings();
        if def.nodes.is_empty() {
            self.error(
                At::Machine("nodes"),
                "the machine has no nodes".into(),
                Some("add at least a `[nodes.NAME]` table with `kind = \"hangup\"`".into()),
            );
            return None;
        }
        if def.nodes.len() > NODES_MAX {
            self.error(
                At::Machine("nodes"),
                format!("{} nodes; the limit is {NODES_MAX}", def.nodes.len()),
                None,
            );
            return None;
        }

        // Nodes first, so that every target can be resolved.
        let mut graph: DiGraph<Node, Edge, u32> = DiGraph::with_capacity(def.nodes.len(), 0);
        let mut by_name = HashMap::with_capacity(def.nodes.len());
        let mut ok = true;
        for (name, node) in &def.nodes {
            self.check_name(At::NodeKey(name), name, "node");
            self.check_fields(name, node);
            let kind = self.node_kind(name, node, &settings);
            ok &= kind.is_some();
            let kind = kind.unwrap_or(NodeKind::Hangup);
            by_name.insert(name.clone(), graph.add_node(Node { name: name.clone(), kind }));
        }
        let start = match by_name.get(&def.start) {
            Some(&s) => Some(s),
            None => {
                let hint = closest(&def.start, def.nodes.keys().map(String::as_str))
                    .map(|c| format!("did you mean `{c}`?"))
                    .or_else(|| Some("`start` must name one of the `[nodes.*]` tables".into()));
                self.error(At::Machine("start"), format!("start node `{}` does not exist", def.start), hint);
                None
            }
        };
        for (name, node) in &def.nodes {
            ok &= self.edges(name, node, &by_name, &mut graph);
        }
        let fallback = self.fallback();
        let (start, true) = (start?, ok) else { return None };

        let machine = Machine {
            name: def.name.clone(),
            version: Version::of_text(&self.source.text),
            description: def.description.clone(),
            numbers: def.numbers.clone(),
            graph,
            by_name,
            start,
            fallback,
        };
        let mut machine = machine;
        self.check_play(&mut machine);
        let chains_ok = self.check_chains(&machine);
        if chains_ok {
            self.check_reachability(&machine);
            self.check_assigned(&machine);
        }
        Some(machine)
    }

    fn check_name(&mut self, at: At<'_>, name: &str, what: &str) {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && name.chars().count() <= NAME_CHARS_MAX;
        if !valid {
            self.error(
                at,
                format!("`{name}` is not a valid {what} name"),
                Some(format!(
                    "use letters, digits, `_` and `-`, starting with a letter, at most {NAME_CHARS_MAX} characters"
                )),
            );
        }
    }

    /// Settings become literal text in templates; their names must not shadow call variables.
    fn settings(&mut self) -> BTreeMap<String, String> {
        let mut ok = BTreeMap::new();
        for (name, value) in &self.def.settings {
            let at = format!("settings.{name}");
            if !template::is_var_name(name) {
                self.error(
                    At::Machine(&at),
                    format!("`{name}` is not a valid setting name"),
                    Some("use letters, digits and `_`, starting with a letter".into()),
                );
            } else if template::BUILTINS.iter().any(|(b, _)| b == name) {
                self.error(
                    At::Machine(&at),
                    format!("setting `{name}` shadows the call variable of the same name"),
                    Some("rename the setting".into()),
                );
            } else {
                ok.insert(name.clone(), value.clone());
            }
        }
        ok
    }

    fn check_fields(&mut self, name: &str, node: &NodeDef) {
        for field in present_fields(node) {
            if !takes(node.kind, field) {
                let owners = FIELDS_BY_KIND
                    .iter()
                    .filter(|(k, _)| takes(*k, field))
                    .map(|(k, _)| format!("`{}`", kind_name(*k)))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.error(
                    At::Node(name, field),
                    format!("field `{field}` does not apply to a `{}` node", kind_name(node.kind)),
                    Some(format!("`{field}` belongs to {owners} nodes; remove it or change `kind`")),
                );
            }
        }
    }

    fn required<'d>(&mut self, name: &str, field: &str, value: &'d Option<String>) -> Option<&'d str> {
        if value.is_none() {
            self.error(
                At::NodeKey(name),
                format!("a `{}` node needs `{field}`", kind_name(self.def.nodes[name].kind)),
                None,
            );
        }
        value.as_deref()
    }

    /// Parses a template field and inlines settings; unknown variables are errors.
    fn template(
        &mut self,
        name: &str,
        field: &str,
        text: &str,
        settings: &BTreeMap<String, String>,
    ) -> Option<Template> {
        let parsed = match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                self.error(At::Node(name, field), e.to_string(), None);
                return None;
            }
        };
        let inlined = parsed.inline(|v| settings.get(v).cloned());
        let mut ok = true;
        for var in inlined.vars() {
            if !template::BUILTINS.iter().any(|(b, _)| *b == var) && !self.declared.contains(var) {
                let known = settings
                    .keys()
                    .map(String::as_str)
                    .chain(template::BUILTINS.iter().map(|b| b.0))
                    .chain(self.declared.iter().map(String::as_str));
                let hint = closest(var, known).map_or_else(
                    || {
                        "define it under `[settings]`, set it with an `input` node, or use a call variable (caller, keypress, ...)"
                            .to_string()
                    },
                    |c| format!("did you mean `{c}`?"),
                );
                self.error(At::Node(name, field), format!("unknown variable `{{{var}}}`"), Some(hint));
                ok = false;
            }
        }
        ok.then_some(inlined)
    }

    fn node_kind(
        &mut self,
        name: &str,
        n: &NodeDef,
        settings: &BTreeMap<String, String>,
    ) -> Option<NodeKind> {
        match n.kind {
            Kind::Menu => {
                self.required(name, "invalid", &n.invalid);
                if n.branches.as_ref().is_none_or(|b| b.is_empty()) {
                    self.error(
                        At::NodeKey(name),
                        "a `menu` node needs at least one entry in `branches`".into(),
                        Some("e.g. `branches = { 1 = \"sales\", 2 = \"support\" }`".into()),
                    );
                }
                self.prompt(name, n, settings).map(NodeKind::Menu)
            }
            Kind::Input => {
                self.required(name, "invalid", &n.invalid);
                self.required(name, "next", &n.next);
                let variable = self.required(name, "variable", &n.variable).map(str::to_string);
                if let Some(v) = &variable
                    && (!template::is_var_name(v)
                        || template::BUILTINS.iter().any(|(b, _)| b == v)
                        || settings.contains_key(v))
                {
                    self.error(
                        At::Node(name, "variable"),
                        format!("`{v}` cannot name a call variable: it is not a name, or a setting or built-in has it"),
                        Some("use letters, digits and `_`, starting with a letter, and a name of its own".into()),
                    );
                }
                let pattern = match &n.pattern {
                    None => Some(None),
                    Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
                        Ok(re) => Some(Some(re)),
                        Err(e) => {
                            let last = e.to_string().lines().last().unwrap_or("").trim().to_string();
                            let first = last.strip_prefix("error: ").unwrap_or(&last).to_string();
                            self.error(
                                At::Node(name, "pattern"),
                                format!("not a regular expression: {first}"),
                                None,
                            );
                            None
                        }
                    },
                };
                let prompt = self.prompt(name, n, settings);
                let (prompt, variable, pattern) = (prompt?, variable?, pattern?);
                let min = usize::from(prompt.capture.min_digits.unwrap_or(1).max(1));
                let example = match (&n.example, &pattern) {
                    (Some(e), _) => e.clone(),
                    (None, None) => "1".repeat(min),
                    (None, Some(_)) => {
                        self.error(
                            At::Node(name, "pattern"),
                            "a node with a `pattern` needs an `example` the pattern accepts".into(),
                            Some("`check` plays the example to prove the node's way on".into()),
                        );
                        return None;
                    }
                };
                let input = Input { prompt, variable, pattern, example };
                if input.accept(&input.example).is_none() {
                    self.error(
                        At::Node(name, if n.example.is_some() { "example" } else { "min_digits" }),
                        format!("the example `{}` is not accepted: keypad keys only, within min/max digits, matching the pattern", input.example),
                        None,
                    );
                    return None;
                }
                Some(NodeKind::Input(input))
            }
            Kind::Script => self.script(name, n, settings).map(NodeKind::Script),
            Kind::Say => {
                self.required(name, "next", &n.next);
                let text = self.required(name, "text", &n.text);
                let text = self.template(name, "text", text?, settings);
                let speech = self.speech(name, n.voice_profile.as_ref(), n.speed, n.repetition);
                let say =
                    Say { text: text?, voice_profile: speech.0?, repetition: speech.1, speed: speech.2 };
                self.check_action(name, &Action::Say(say.clone()));
                Some(NodeKind::Say(say))
            }
            Kind::Play => {
                self.required(name, "next", &n.next);
                let url = self.required(name, "file_url", &n.file_url);
                let play = PlayFile {
                    file_url: self.template(name, "file_url", url?, settings)?,
                    repetition: self.int(name, "repetition", n.repetition),
                };
                self.check_action(name, &Action::PlayFile(play.clone()));
                if let Some(url) = play.file_url.as_literal() {
                    let path = url.split(['?', '#']).next().unwrap_or("").to_ascii_lowercase();
                    if !(path.ends_with(".wav") || path.ends_with(".mp3")) {
                        self.report(
                            Severity::Warning,
                            At::Node(name, "file_url"),
                            format!("`{url}` does not end in .wav or .mp3, the formats 8x8 plays"),
                            None,
                        );
                    }
                }
                Some(NodeKind::Play(play))
            }
            Kind::Transfer => {
                let destination = self.required(name, "destination", &n.destination);
                let destination = self.template(name, "destination", destination?, settings);
                let source = self.template(
                    name,
                    "source",
                    n.source.as_deref().unwrap_or("{virtual_number}"),
                    settings,
                );
                let call =
                    MakeCall { source: source?, destination: destination?, call_recording: n.call_recording };
                self.check_action(name, &Action::MakeCall(call.clone()));
                Some(NodeKind::Transfer(call))
            }
            Kind::Hangup => Some(NodeKind::Hangup),
        }
    }

    /// A script node (the Script widget): its prompt or capture, its request, how it routes.
    fn script(&mut self, name: &str, n: &NodeDef, settings: &BTreeMap<String, String>) -> Option<Script> {
        self.required(name, "failure", &n.failure);
        let url = self.required(name, "url", &n.url).and_then(|u| self.template(name, "url", u, settings));
        if let Some(u) = &url {
            let head = match u.parts().first() {
                Some(template::Part::Lit(l)) => l.to_ascii_lowercase(),
                _ => String::new(),
            };
            if !(head.starts_with("http://") || head.starts_with("https://")) {
                self.error(At::Node(name, "url"), "the url must start with http:// or https://".into(), None);
            }
        }
        let pairs = |c: &mut Self, field: &str, text: &Option<String>| -> Option<Vec<(String, Template)>> {
            let mut out = Vec::new();
            for pair in text.as_deref().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)) {
                    c.error(
                        At::Node(name, field),
                        if k.is_empty() {
                            "a field has no name".into()
                        } else {
                            format!("`{k}` is not a field name")
                        },
                        Some("write `name=value&name=value`".into()),
                    );
                    return None;
                }
                out.push((k.to_string(), c.template(name, field, v, settings)?));
            }
            Some(out)
        };
        let body = match &n.body {
            None => Some(None),
            Some(_) => pairs(self, "body", &n.body).map(Some),
        };
        let headers = pairs(self, "headers", &n.headers);
        let timeout_ms = n.timeout_ms.unwrap_or(SCRIPT_TIMEOUT_DEFAULT_MS);
        if !(100..=SCRIPT_TIMEOUT_MAX_MS).contains(&timeout_ms) {
            self.error(
                At::Node(name, "timeout_ms"),
                format!("timeout_ms {timeout_ms} is outside 100..{SCRIPT_TIMEOUT_MAX_MS}"),
                Some("8x8 waits for the reply while the API answers".into()),
            );
        }
        let path = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
        let bad_path = |p: &str| p.is_empty() || p.split('.').any(str::is_empty);
        let response_key = n.response_key.as_deref().map(path);
        if n.response_key.as_deref().is_some_and(bad_path) {
            self.error(
                At::Node(name, "response_key"),
                "a key path is names joined by dots, like `data.code`".into(),
                None,
            );
        }
        if n.response_key.is_some() && n.branches.as_ref().is_none_or(|b| b.is_empty()) && n.default.is_none()
        {
            self.error(
                At::NodeKey(name),
                "a script that routes on `response_key` needs `branches` or a `default`".into(),
                None,
            );
        }
        if n.response_key.is_none() && n.branches.is_some() {
            self.error(
                At::Node(name, "branches"),
                "`branches` need a `response_key` to pick one".into(),
                None,
            );
        }
        let mut store = Vec::new();
        for (var, p) in n.store.iter().flatten() {
            if !template::is_var_name(var)
                || template::BUILTINS.iter().any(|(b, _)| b == var)
                || settings.contains_key(var)
            {
                self.error(
                    At::Node(name, &format!("store.{var}")),
                    format!("`{var}` cannot name a call variable"),
                    None,
                );
            } else if bad_path(p) {
                self.error(
                    At::Node(name, &format!("store.{var}")),
                    "a key path is names joined by dots, like `data.eta`".into(),
                    None,
                );
            } else {
                store.push((var.clone(), path(p)));
            }
        }
        let cache_minutes = match n.cache_minutes {
            None => Some(None),
            Some(c @ 1..=999) => Some(Some(c as u16)),
            Some(c) => {
                self.error(
                    At::Node(name, "cache_minutes"),
                    format!("cache_minutes {c} is outside 1..999"),
                    None,
                );
                None
            }
        };
        let (say, capture) = if n.allow_keypress == Some(true) {
            self.required(name, "no_input", &n.no_input);
            self.required(name, "prompt", &n.prompt);
            let gap = n.digit_gap_ms.unwrap_or(DIGIT_GAP_DEFAULT_MS);
            let repeat = n.repeat.unwrap_or(0);
            if !(0..i64::from(TRIES_MAX)).contains(&repeat) {
                self.error(
                    At::Node(name, "repeat"),
                    format!("repeat {repeat} is outside 0..{}", TRIES_MAX - 1),
                    None,
                );
            }
            let mut menu = self.prompt(name, n, settings)?;
            let max = i64::from(menu.capture.max_digits.unwrap_or(1));
            menu.capture.digit_timeout_ms = u32::try_from(gap).ok();
            menu.capture.overall_timeout_ms = u32::try_from(gap * max).ok();
            menu.tries = (repeat + 1).clamp(1, i64::from(TRIES_MAX)) as u8;
            self.check_action(name, &Action::SayAndCapture(menu.capture.clone()));
            (None, Some(menu))
        } else {
            for field in ["no_input", "digit_gap_ms", "repeat", "reprompt", "min_digits", "max_digits"] {
                if present_fields(n).contains(&field) {
                    self.error(
                        At::Node(name, field),
                        format!("`{field}` needs `allow_keypress = true`"),
                        None,
                    );
                }
            }
            let say = match &n.prompt {
                None => None,
                Some(p) => {
                    let text = self.template(name, "prompt", p, settings)?;
                    let speech = self.speech(name, n.voice_profile.as_ref(), n.speed, n.repetition);
                    let say = Say { text, voice_profile: speech.0?, repetition: speech.1, speed: speech.2 };
                    self.check_action(name, &Action::Say(say.clone()));
                    Some(say)
                }
            };
            (say, None)
        };
        let request = RequestTemplate {
            url: url?,
            body: body?,
            raw_json: n.raw_json.unwrap_or(false),
            headers: headers?,
            timeout_ms: timeout_ms.clamp(100, SCRIPT_TIMEOUT_MAX_MS) as u32,
        };
        Some(Script {
            say,
            capture,
            request,
            response_key,
            store,
            cache_minutes: cache_minutes?,
            played: Vec::new(),
        })
    }

    /// A capturing prompt (menu or input): the prompt, re-prompt, capture settings and tries.
    fn prompt(&mut self, name: &str, n: &NodeDef, settings: &BTreeMap<String, String>) -> Option<Menu> {
        let d = &self.def.defaults;
        let prompt = self.required(name, "prompt", &n.prompt);
        let prompt = self.template(name, "prompt", prompt?, settings);
        let reprompt = match &n.reprompt {
            Some(r) => self.template(name, "reprompt", r, settings),
            None => prompt.clone(),
        };
        let success = self.opt_template(
            name,
            "success_message",
            n.success_message.as_ref().or(d.success_message.as_ref()),
            settings,
        );
        let failure = self.opt_template(
            name,
            "failure_message",
            n.failure_message.as_ref().or(d.failure_message.as_ref()),
            settings,
        );
        let speech = self.speech(name, n.voice_profile.as_ref(), n.speed, n.repetition);
        let capture = SayAndCapture {
            prompt_message: prompt?,
            voice_profile: speech.0?,
            repetition: speech.1,
            speed: speech.2,
            min_digits: self.int(name, "min_digits", n.min_digits.or(d.min_digits)),
            max_digits: self.int(name, "max_digits", n.max_digits.or(d.max_digits)),
            digit_timeout_ms: self.int(name, "digit_timeout_ms", n.digit_timeout_ms.or(d.digit_timeout_ms)),
            overall_timeout_ms: self.int(
                name,
                "overall_timeout_ms",
                n.overall_timeout_ms.or(d.overall_timeout_ms),
            ),
            complete_on_hash: n.complete_on_hash.or(d.complete_on_hash),
            no_of_tries: self.int(name, "no_of_tries", n.no_of_tries.or(d.no_of_tries)),
            success_message: success?,
            failure_message: failure?,
        };
        let tries = self.int(name, "tries", n.tries.or(d.tries)).unwrap_or(1);
        if !(1..=TRIES_MAX).contains(&tries) {
            self.error(At::Node(name, "tries"), format!("tries {tries} is outside 1..{TRIES_MAX}"), None);
        }
        self.check_action(name, &Action::SayAndCapture(capture.clone()));
        Some(Menu { capture, reprompt: reprompt?, tries })
    }

    fn opt_template(
        &mut self,
        name: &str,
        field: &str,
        text: Option<&String>,
        settings: &BTreeMap<String, String>,
    ) -> Option<Option<Template>> {
        match text {
            None => Some(None),
            Some(t) => self.template(name, field, t, settings).map(Some),
        }
    }

    /// The voice profile (required, from the node or `[defaults]`), repetition and speed.
    fn speech(
        &mut self,
        name: &str,
        voice: Option<&String>,
        speed: Option<f64>,
        repetition: Option<i64>,
    ) -> (Option<String>, Option<u8>, Option<Speed>) {
        let d: &Defaults = &self.def.defaults;
        let voice = voice.or(d.voice_profile.as_ref()).cloned();
        if voice.is_none() {
            self.error(
                At::NodeKey(name),
                "no voice profile: 8x8 needs `voiceProfile` to speak".into(),
                Some(
                    "set `voice_profile` under `[defaults]` or on the node, e.g. \"en-US-BenjaminRUS\""
                        .into(),
                ),
            );
        }
        let repetition = self.int(name, "repetition", repetition.or(d.repetition));
        let speed = speed.or(d.speed).and_then(|s| {
            let hundredths = (s * 100.0).round();
            if (hundredths - s * 100.0).abs() > 1e-6 {
                self.error(At::Node(name, "speed"), format!("speed {s} has more than two decimals"), None);
                None
            } else if !(0.0..=f64::from(u16::MAX)).contains(&hundredths) {
                self.error(At::Node(name, "speed"), format!("speed {s} is outside 0.5..2.0"), None);
                None
            } else {
                Some(Speed(hundredths as u16))
            }
        });
        (voice, repetition, speed)
    }

    /// An integer field narrowed to its Rust type; out-of-range values are errors, not wraps.
    fn int<T: TryFrom<i64>>(&mut self, name: &str, field: &str, value: Option<i64>) -> Option<T> {
        let v = value?;
        match T::try_from(v) {
            Ok(t) => Some(t),
            Err(_) => {
                self.error(At::Node(name, field), format!("{field} {v} is out of range"), None);
                None
            }
        }
    }

    /// Runs 8x8's rules on a node's action, with sample values for call variables.
    fn check_action(&mut self, name: &str, action: &Action<Template>) {
        let flow = Callflow { client_action_id: None, actions: vec![sample(action)] };
        for v in callflow::validate(&flow, Use::WebhookReply) {
            self.violation(name, &v);
        }
    }

    fn violation(&mut self, name: &str, v: &Violation) {
        let field = field_of_param(v.param);
        self.error(
            At::Node(name, field),
            format!("{} (8x8 would answer status {})", v.message, v.status_code),
            None,
        );
    }

    fn edges(
        &mut self,
        name: &str,
        n: &NodeDef,
        by_name: &HashMap<String, NodeId>,
        graph: &mut DiGraph<Node, Edge, u32>,
    ) -> bool {
        let from = by_name[name];
        let mut targets: Vec<(String, Edge, &String)> = Vec::new();
        match n.kind {
            Kind::Menu => {
                if let Some(branches) = &n.branches {
                    if branches.len() > BRANCHES_MAX {
                        self.error(
                            At::Node(name, "branches"),
                            format!("{} branches; the limit is {BRANCHES_MAX}", branches.len()),
                            None,
                        );
                    }
                    for (key, target) in branches {
                        let field = format!("branches.{key}");
                        if self.check_key(name, &field, key, n) {
                            targets.push((field, Edge::Key(key.clone()), target));
                        }
                    }
                    self.check_prefixes(name, branches, n);
                }
                if let Some(t) = &n.invalid {
                    targets.push(("invalid".into(), Edge::Invalid, t));
                }
                if let Some(t) = n.no_input.as_ref().or(n.invalid.as_ref()) {
                    let field = if n.no_input.is_some() { "no_input" } else { "invalid" };
                    targets.push((field.into(), Edge::NoInput, t));
                }
            }
            Kind::Input => {
                if let Some(t) = &n.next {
                    targets.push(("next".into(), Edge::Next, t));
                }
                if let Some(t) = &n.invalid {
                    targets.push(("invalid".into(), Edge::Invalid, t));
                }
                if let Some(t) = n.no_input.as_ref().or(n.invalid.as_ref()) {
                    let field = if n.no_input.is_some() { "no_input" } else { "invalid" };
                    targets.push((field.into(), Edge::NoInput, t));
                }
            }
            Kind::Script => {
                for (value, target) in n.branches.iter().flatten() {
                    targets.push((format!("branches.{value}"), Edge::Response(value.clone()), target));
                }
                if let Some(t) = &n.default {
                    targets.push(("default".into(), Edge::Default, t));
                }
                if let Some(t) = &n.failure {
                    targets.push(("failure".into(), Edge::Failure, t));
                }
                if let (Some(true), Some(t)) = (n.allow_keypress, &n.no_input) {
                    targets.push(("no_input".into(), Edge::NoInput, t));
                }
            }
            Kind::Say | Kind::Play => {
                if let Some(t) = &n.next {
                    targets.push(("next".into(), Edge::Next, t));
                }
            }
            Kind::Transfer => {
                if let Some(t) = &n.after {
                    targets.push(("after".into(), Edge::AfterTransfer, t));
                }
            }
            Kind::Hangup => {}
        }
        let mut ok = true;
        for (field, edge, target) in targets {
            match by_name.get(target.as_str()) {
                Some(&to) => {
                    graph.add_edge(from, to, edge);
                }
                None => {
                    ok = false;
                    let hint = closest(target, by_name.keys().map(String::as_str)).map_or_else(
                        || "targets must name a `[nodes.*]` table".to_string(),
                        |c| format!("did you mean `{c}`?"),
                    );
                    self.error(At::Node(name, &field), format!("unknown target node `{target}`"), Some(hint));
                }
            }
        }
        ok
    }

    /// A key that is the start of another only works if the caller finishes it with `#` or waits.
    fn check_prefixes(&mut self, name: &str, branches: &BTreeMap<String, String>, n: &NodeDef) {
        let on_hash = n.complete_on_hash.or(self.def.defaults.complete_on_hash) != Some(false);
        // Sorted keys: a key's extensions follow it directly.
        let keys: Vec<&String> = branches.keys().collect();
        for (i, short) in keys.iter().enumerate() {
            if let Some(long) = keys[i + 1..].iter().find(|k| k.starts_with(short.as_str())) {
                let finish = if on_hash { "press # or wait" } else { "wait" };
                self.report(
                    Severity::Warning,
                    At::Node(name, &format!("branches.{short}")),
                    format!("key `{short}` is the start of key `{long}`: callers who mean `{short}` must {finish} for the digit timeout"),
                    Some("give the keys of one menu the same length".into()),
                );
            }
        }
    }

    /// Checks that a branch key can be typed at this menu.
    fn check_key(&mut self, name: &str, field: &str, key: &str, n: &NodeDef) -> bool {
        let d = &self.def.defaults;
        if key.contains('#') {
            self.error(
                At::Node(name, field),
                format!("key `{key}` contains `#`, the key that completes input"),
                Some("8x8 ends capture on `#`; use digits and `*` only".into()),
            );
            return false;
        }
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_digit() || c == '*') {
            self.error(
                At::Node(name, field),
                format!("key `{key}` cannot be typed on a phone keypad"),
                Some("keys are digits 0-9 and `*`".into()),
            );
            return false;
        }
        let len = key.len() as i64;
        let min = n.min_digits.or(d.min_digits).unwrap_or(1);
        let max = n.max_digits.or(d.max_digits).unwrap_or(i64::from(callflow::DIGITS_MAX));
        // min above max is reported on its own; every key would fail it.
        if (len < min || len > max) && min <= max {
            self.error(
                At::Node(name, field),
                format!(
                    "key `{key}` has {len} digit{} but the menu captures {}",
                    if len == 1 { "" } else { "s" },
                    if min == max { format!("exactly {min}") } else { format!("{min} to {max}") }
                ),
                Some("change the key or the menu's `min_digits` / `max_digits`".into()),
            );
            return false;
        }
        true
    }

    fn fallback(&mut self) -> Callflow {
        let text = self.def.fallback.clone().unwrap_or_else(|| DEFAULT_FALLBACK.to_string());
        let say = Say {
            text,
            voice_profile: self.def.defaults.voice_profile.clone().unwrap_or_else(|| FALLBACK_VOICE.into()),
            repetition: None,
            speed: None,
        };
        let flow = Callflow { client_action_id: None, actions: vec![Action::Say(say), Action::Hangup] };
        for v in callflow::validate(&flow, Use::WebhookReply) {
            self.error(At::Machine("fallback"), v.message, None);
        }
        flow
    }

    /// Every callflow phonetree can send: the chain from each node a webhook can lead to, and the
    /// opening request of an outbound call. Returns false when a chain never waits (a loop).
    fn check_chains(&mut self, m: &Machine) -> bool {
        let mut ok = true;
        let entries: Vec<NodeId> = m.graph.node_indices().collect();
        let version = m.version.short();
        for id in entries {
            let name = m.graph[id].name.clone();
            match chain(m, id) {
                Err(ChainError::Loop) => {
                    ok = false;
                    self.error(
                        At::NodeKey(&name),
                        "say/play nodes from here loop back without waiting for the caller".into(),
                        Some("break the loop with a `menu`, `transfer` or `hangup`".into()),
                    );
                }
                Err(ChainError::TooLong(n)) => {
                    ok = false;
                    self.error(
                        At::NodeKey(&name),
                        format!("entering this node sends {n} actions in one callflow; the limit is {CHAIN_ACTIONS_MAX}"),
                        Some("split the chain of say/play nodes with a menu".into()),
                    );
                }
                // A chain that reaches a script goes on with whatever the answer picks: the whole
                // reply is only known then, and `explore` checks each one.
                Ok(nodes)
                    if matches!(
                        nodes.last().map(|&n| &m.graph[n].kind),
                        Some(NodeKind::Script(Script { capture: None, .. }))
                    ) => {}
                Ok(nodes) => {
                    let mut flow = Callflow {
                        client_action_id: Some(
                            ClientActionId {
                                machine: m.name.clone(),
                                node: name.clone(),
                                seq: 1,
                                version: version.clone(),
                            }
                            .to_string(),
                        ),
                        actions: nodes.iter().filter_map(|&n| action_of(m, n)).map(|a| sample(&a)).collect(),
                    };
                    // Each action's own parameters were checked with its node; here, the callflow's shape.
                    for v in
                        callflow::validate(&flow, Use::WebhookReply).iter().filter(|v| v.param == "action")
                    {
                        self.violation(&name, v);
                    }
                    if id == m.start {
                        let call = MakeCall {
                            source: "+15550000001".into(),
                            destination: "+15550000002".into(),
                            call_recording: None,
                        };
                        flow.actions.insert(0, Action::MakeCall(call));
                        for v in callflow::validate(&flow, Use::OutboundRequest)
                            .iter()
                            .filter(|v| v.param == "action")
                        {
                            self.error(
                                At::Machine("start"),
                                format!("the outbound call's first callflow is invalid: {v}"),
                                None,
                            );
                        }
                    }
                }
            }
        }
        ok
    }

    /// Every node is reachable from the start. (Whether every call can end is proven by
    /// `explore`, which walks the engine itself and gives a counterexample.)
    fn check_reachability(&mut self, m: &Machine) {
        let reachable = bfs(m, [m.start], Direction::Outgoing);
        for id in m.graph.node_indices() {
            if !reachable.contains(&id) {
                let name = m.graph[id].name.clone();
                self.error(
                    At::NodeKey(&name),
                    format!("node is unreachable from the start node `{}`", m.graph[m.start].name),
                    Some("link to it from another node, or remove it".into()),
                );
            }
        }
    }
}

impl Compiler<'_> {
    /// Every variable a node's templates use is set on every path to it: the sets of variables
    /// certainly set on entering each node, to a fixed point (an `input` sets its variable on its
    /// `next` edge only).
    fn check_assigned(&mut self, m: &Machine) {
        if self.declared.is_empty() {
            return;
        }
        let mut set_on_entry: HashMap<NodeId, BTreeSet<String>> = HashMap::from([(m.start, BTreeSet::new())]);
        let mut queue = VecDeque::from([m.start]);
        while let Some(id) = queue.pop_front() {
            let here = set_on_entry[&id].clone();
            for e in m.graph.edges_directed(id, Direction::Outgoing) {
                let mut out = here.clone();
                match (&m.graph[id].kind, e.weight()) {
                    (NodeKind::Input(input), Edge::Next) => {
                        out.insert(input.variable.clone());
                    }
                    (NodeKind::Script(script), Edge::Response(_) | Edge::Default) => {
                        out.extend(script.store.iter().map(|(v, _)| v.clone()));
                    }
                    _ => {}
                }
                let changed = match set_on_entry.get_mut(&e.target()) {
                    None => {
                        set_on_entry.insert(e.target(), out);
                        true
                    }
                    Some(there) => {
                        let meet: BTreeSet<String> = there.intersection(&out).cloned().collect();
                        let shrunk = meet.len() < there.len();
                        *there = meet;
                        shrunk
                    }
                };
                if changed {
                    queue.push_back(e.target());
                }
            }
        }
        for id in m.graph.node_indices() {
            let Some(set) = set_on_entry.get(&id) else { continue };
            let name = m.graph[id].name.clone();
            for (field, t) in templates_of(&m.graph[id].kind) {
                let unset: Vec<String> = t
                    .vars()
                    .filter(|v| self.declared.contains(*v) && !set.contains(*v))
                    .map(str::to_string)
                    .collect();
                for var in unset {
                    self.error(
                        At::Node(&name, field),
                        format!("call variable `{var}` may be unset here: not every way to this node passes an `input` that sets it"),
                        Some("reach this node only after the `input` node's `next`, or use another variable".into()),
                    );
                }
            }
        }
    }
}

impl Compiler<'_> {
    /// `{play:$name}` plays a file 8x8 fetches: only in a say node's text or a script's spoken
    /// prompt, and only a variable a script stores from its answer (whose value is then checked
    /// to be an http(s) URL when the answer comes).
    fn check_play(&mut self, m: &mut Machine) {
        let stored: BTreeSet<String> = m
            .graph
            .node_weights()
            .filter_map(|n| if let NodeKind::Script(s) = &n.kind { Some(s) } else { None })
            .flat_map(|s| s.store.iter().map(|(v, _)| v.clone()))
            .collect();
        let mut played = BTreeSet::new();
        for id in m.graph.node_indices() {
            let node = &m.graph[id];
            let name = node.name.clone();
            let mut problems = Vec::new();
            for (field, t) in templates_of(&node.kind) {
                let spoken_text = matches!((&node.kind, field), (NodeKind::Say(_), "text"))
                    || matches!((&node.kind, field), (NodeKind::Script(s), "prompt") if s.capture.is_none());
                for var in t.played() {
                    if !spoken_text {
                        problems.push((field, format!("`{{play:${var}}}` only works in a say node's `text` or a script's spoken `prompt`"), None));
                    } else if !stored.contains(var) {
                        problems.push((field, format!("`{{play:${var}}}` plays a URL a script stores from its answer; `{var}` is not one"), Some("store it with a script's `store`, or use a `play` node".to_string())));
                    } else {
                        played.insert(var.to_string());
                    }
                }
            }
            // A re-prompt that is the prompt holds the same template: one report.
            problems.dedup_by(|a, b| a.1 == b.1);
            for (field, message, hint) in problems {
                self.error(At::Node(&name, field), message, hint);
            }
        }
        for node in m.graph.node_weights_mut() {
            if let NodeKind::Script(s) = &mut node.kind {
                s.played = s.store.iter().map(|(v, _)| v.clone()).filter(|v| played.contains(v)).collect();
            }
        }
    }
}

/// The templates a node renders, by field.
fn templates_of(kind: &NodeKind) -> Vec<(&'static str, &Template)> {
    fn capture(m: &Menu) -> Vec<(&'static str, &Template)> {
        let mut t = vec![("prompt", &m.capture.prompt_message), ("reprompt", &m.reprompt)];
        t.extend(m.capture.success_message.iter().map(|s| ("success_message", s)));
        t.extend(m.capture.failure_message.iter().map(|s| ("failure_message", s)));
        t
    }
    match kind {
        NodeKind::Menu(menu) => capture(menu),
        NodeKind::Input(input) => capture(&input.prompt),
        NodeKind::Say(s) => vec![("text", &s.text)],
        NodeKind::Play(p) => vec![("file_url", &p.file_url)],
        NodeKind::Transfer(t) => vec![("destination", &t.destination), ("source", &t.source)],
        NodeKind::Script(s) => {
            let mut t = s.capture.as_ref().map(capture).unwrap_or_default();
            t.extend(s.say.iter().map(|say| ("prompt", &say.text)));
            t.push(("url", &s.request.url));
            t.extend(s.request.body.iter().flatten().map(|(_, v)| ("body", v)));
            t.extend(s.request.headers.iter().map(|(_, v)| ("headers", v)));
            t
        }
        NodeKind::Hangup => vec![],
    }
}

/// The action a node sends, with its templates.
fn action_of(m: &Machine, id: NodeId) -> Option<Action<Template>> {
    Some(match &m.graph[id].kind {
        NodeKind::Say(s) => Action::Say(s.clone()),
        NodeKind::Play(p) => Action::PlayFile(p.clone()),
        NodeKind::Menu(menu) => Action::SayAndCapture(menu.capture.clone()),
        NodeKind::Input(input) => Action::SayAndCapture(input.prompt.capture.clone()),
        NodeKind::Transfer(t) => Action::MakeCall(t.clone()),
        NodeKind::Script(s) => match (&s.capture, &s.say) {
            (Some(c), _) => Action::SayAndCapture(c.capture.clone()),
            (None, Some(say)) => Action::Say(say.clone()),
            (None, None) => return None,
        },
        NodeKind::Hangup => Action::Hangup,
    })
}

fn bfs(m: &Machine, from: impl IntoIterator<Item = NodeId>, dir: Direction) -> HashSet<NodeId> {
    let mut seen: HashSet<NodeId> = from.into_iter().collect();
    let mut queue: VecDeque<NodeId> = seen.iter().copied().collect();
    while let Some(id) = queue.pop_front() {
        for e in m.graph.edges_directed(id, dir) {
            let other = if dir == Direction::Outgoing { e.target() } else { e.source() };
            if seen.insert(other) {
                queue.push_back(other);
            }
        }
    }
    seen
}

/// A template with each call variable replaced by a plausible value, for checking 8x8's rules.
fn sample_text(t: &Template) -> String {
    t.render(|v| Some(if matches!(v, "caller" | "called" | "virtual_number") { "+15550000000" } else { "0" }))
        .unwrap_or_default()
}

fn sample(action: &Action<Template>) -> Action {
    let opt = |t: &Option<Template>| t.as_ref().map(sample_text);
    match action {
        Action::Say(s) => Action::Say(Say {
            text: sample_text(&s.text),
            voice_profile: s.voice_profile.clone(),
            repetition: s.repetition,
            speed: s.speed,
        }),
        Action::SayAndCapture(c) => Action::SayAndCapture(SayAndCapture {
            prompt_message: sample_text(&c.prompt_message),
            voice_profile: c.voice_profile.clone(),
            repetition: c.repetition,
            speed: c.speed,
            min_digits: c.min_digits,
            max_digits: c.max_digits,
            digit_timeout_ms: c.digit_timeout_ms,
            overall_timeout_ms: c.overall_timeout_ms,
            complete_on_hash: c.complete_on_hash,
            no_of_tries: c.no_of_tries,
            success_message: opt(&c.success_message),
            failure_message: opt(&c.failure_message),
        }),
        Action::PlayFile(p) => {
            Action::PlayFile(PlayFile { file_url: sample_text(&p.file_url), repetition: p.repetition })
        }
        Action::MakeCall(m) => Action::MakeCall(MakeCall {
            source: sample_text(&m.source),
            destination: sample_text(&m.destination),
            call_recording: m.call_recording,
        }),
        Action::Hangup => Action::Hangup,
    }
}

/// The machine-file field an 8x8 parameter comes from.
fn field_of_param(param: &str) -> &'static str {
    match param {
        "text" => "text",
        "promptMessage" => "prompt",
        "voiceProfile" => "voice_profile",
        "repetition" => "repetition",
        "speed" => "speed",
        "minDigits" => "min_digits",
        "maxDigits" => "max_digits",
        "digitTimeout" => "digit_timeout_ms",
        "overallTimeout" => "overall_timeout_ms",
        "noOfTries" => "no_of_tries",
        "successMessage" => "success_message",
        "failureMessage" => "failure_message",
        "fileUrl" => "file_url",
        "source" => "source",
        "destination" => "destination",
        _ => "kind",
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Menu => "menu",
        Kind::Input => "input",
        Kind::Script => "script",
        Kind::Say => "say",
        Kind::Play => "play",
        Kind::Transfer => "transfer",
        Kind::Hangup => "hangup",
    }
}

/// The optional fields a node sets.
fn present_fields(n: &NodeDef) -> Vec<&'static str> {
    let set = [
        ("prompt", n.prompt.is_some()),
        ("reprompt", n.reprompt.is_some()),
        ("tries", n.tries.is_some()),
        ("branches", n.branches.is_some()),
        ("invalid", n.invalid.is_some()),
        ("no_input", n.no_input.is_some()),
        ("variable", n.variable.is_some()),
        ("pattern", n.pattern.is_some()),
        ("example", n.example.is_some()),
        ("url", n.url.is_some()),
        ("body", n.body.is_some()),
        ("raw_json", n.raw_json.is_some()),
        ("headers", n.headers.is_some()),
        ("timeout_ms", n.timeout_ms.is_some()),
        ("response_key", n.response_key.is_some()),
        ("default", n.default.is_some()),
        ("failure", n.failure.is_some()),
        ("store", n.store.is_some()),
        ("cache_minutes", n.cache_minutes.is_some()),
        ("allow_keypress", n.allow_keypress.is_some()),
        ("digit_gap_ms", n.digit_gap_ms.is_some()),
        ("repeat", n.repeat.is_some()),
        ("text", n.text.is_some()),
        ("file_url", n.file_url.is_some()),
        ("next", n.next.is_some()),
        ("destination", n.destination.is_some()),
        ("source", n.source.is_some()),
        ("call_recording", n.call_recording.is_some()),
        ("after", n.after.is_some()),
        ("voice_profile", n.voice_profile.is_some()),
        ("speed", n.speed.is_some()),
        ("repetition", n.repetition.is_some()),
        ("min_digits", n.min_digits.is_some()),
        ("max_digits", n.max_digits.is_some()),
        ("digit_timeout_ms", n.digit_timeout_ms.is_some()),
        ("overall_timeout_ms", n.overall_timeout_ms.is_some()),
        ("complete_on_hash", n.complete_on_hash.is_some()),
        ("no_of_tries", n.no_of_tries.is_some()),
        ("success_message", n.success_message.is_some()),
        ("failure_message", n.failure_message.is_some()),
    ];
    set.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect()
}
