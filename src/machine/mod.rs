//! Machines: the file format (`definition`, `source`), the compiler (`compile`) and the compiled,
//! immutable `Machine` every call runs on — a petgraph graph whose nodes are IVR nodes and whose
//! edges are the labelled transitions between them.
//!
//! A `Machine` is identified by its name and its version, the SHA-256 of its source text (and of
//! the modules it uses, `compile::Modules`), so two calls that started on different revisions of
//! a file can each be resumed on their own.

pub mod callback;
pub mod compile;
pub mod definition;
pub mod diagnostic;
pub mod hosts;
pub mod policy;
pub mod route;
pub mod schema;
pub mod source;
pub mod split;
pub mod template;
pub mod voices;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::callflow::{Callflow, MakeCall, PlayFile, Say, SayAndCapture, Speed};
pub use compile::{Compiled, MODULE_DEPTH_MAX, MODULES_MAX, Modules, Options, compile, compile_with};
pub use diagnostic::{Diagnostic, Severity};
pub use source::{Format, Source};
pub use template::Template;
pub use voices::Voices;

/// A node's index in its machine's graph; stable for one version of a machine.
pub type NodeId = NodeIndex<u32>;

/// The content hash of a machine's source text (with its modules' texts, when it uses any).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub [u8; 32]);

impl Version {
    pub fn of_text(text: &str) -> Version {
        use sha2::Digest;
        Version(sha2::Sha256::digest(text.as_bytes()).into())
    }

    /// The first 12 hex digits: what logs, clientActionIds and transcripts show.
    pub fn short(&self) -> String {
        lower_hex(&self.0[..6])
    }

    pub fn hex(&self) -> String {
        lower_hex(&self.0)
    }
}

/// `bytes` as lowercase hex digits (the short form is on every reply: no `format!` per byte).
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.short())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

/// A transition's label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Edge {
    /// The caller pressed these keys (normalised: no trailing `#`).
    Key(String),
    /// The keys matched no branch and the node's tries are used up.
    Invalid,
    /// Nothing was pressed (8x8 sent `dtmf: null`) and the node's tries are used up.
    NoInput,
    /// A say or play node finished.
    Next,
    /// A script's answer selected this branch value.
    Response(String),
    /// A script's answer matched no branch (or the script routes on no key).
    Default,
    /// A script got no usable answer: timeout, transport error, non-2xx, not JSON, no response
    /// key (a stored key missing never takes it).
    Failure,
    /// A route's rule fired: its index (from 0) and what it says (`mon-fri 09:00-18:00`).
    Rule(usize, String),
    /// No rule of a route fired.
    Else,
    /// A machine-wide key (`[keys]`) that says the current prompt again, tries unchanged: a loop on
    /// its node.
    Repeat(String),
    /// A machine-wide key that goes back to the previous waiting node on the call's path (known only
    /// during the call: in the graph a loop on its node; the engine records the node it went to).
    Back(String),
    /// A split picked this variant.
    Variant(String),
    /// A set node's `add` read a variable whose value is not a number: the node set nothing.
    NotNumber,
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edge::Key(k) => write!(f, "key {k}"),
            Edge::Invalid => f.write_str("invalid"),
            Edge::NoInput => f.write_str("no input"),
            Edge::Next => f.write_str("next"),
            Edge::Response(v) => write!(f, "response {v}"),
            Edge::Default => f.write_str("default"),
            Edge::Failure => f.write_str("failure"),
            Edge::Rule(i, label) => write!(f, "rule {} ({label})", i.saturating_add(1)),
            Edge::Else => f.write_str("else"),
            Edge::NotNumber => f.write_str("not_number"),
            Edge::Repeat(k) => write!(f, "key {k} (repeat)"),
            Edge::Back(k) => write!(f, "key {k} (back)"),
            Edge::Variant(v) => write!(f, "variant {v}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Menu(Menu),
    Input(Input),
    Say(Say<Template>),
    Play(PlayFile<Template>),
    Transfer(MakeCall<Template>),
    Script(Script),
    Hangup,
    Route(route::Route),
    Set(route::SetVars),
    Split(split::Split),
}

impl NodeKind {
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Menu(_) => "menu",
            NodeKind::Input(_) => "input",
            NodeKind::Say(_) => "say",
            NodeKind::Play(_) => "play",
            NodeKind::Transfer(_) => "transfer",
            NodeKind::Script(_) => "script",
            NodeKind::Hangup => "hangup",
            NodeKind::Route(_) => "route",
            NodeKind::Set(_) => "set",
            NodeKind::Split(_) => "split",
        }
    }

    /// The capturing prompt of a node that asks the caller for keys (menu, input, a script with
    /// `allow_keypress`): its capture settings, re-prompt and tries.
    pub fn capture(&self) -> Option<&Menu> {
        match self {
            NodeKind::Menu(menu) => Some(menu),
            NodeKind::Input(input) => Some(&input.prompt),
            NodeKind::Script(script) => script.capture.as_ref(),
            _ => None,
        }
    }

    /// Nodes that wait for 8x8's next webhook once their action is sent.
    pub fn waits(&self) -> bool {
        self.capture().is_some() || matches!(self, NodeKind::Transfer(_))
    }
}

#[derive(Debug, Clone)]
pub struct Menu {
    /// The first prompt, with every capture setting resolved.
    pub capture: SayAndCapture<Template>,
    /// The prompt of every further try (the first prompt when the machine gives none).
    pub reprompt: Template,
    /// phonetree's attempts at this menu, at least 1.
    pub tries: u8,
    /// The parts of a multi-part prompt before its last (which is the capture's prompt): `say`
    /// actions sent before the capture, in the same reply, each in its own voice.
    pub lead: Vec<Say<Template>>,
    /// The re-prompt's parts before its last.
    pub relead: Vec<Say<Template>>,
    /// The voice profile and speed of the re-prompt's last part, when they differ from the capture's.
    pub revoice: Option<(String, Option<Speed>)>,
}

/// A node that calls an HTTP API and routes on its answer (the IVR builders' "Script widget").
#[derive(Debug, Clone)]
pub struct Script {
    /// Said before the request when the caller is not asked for keys.
    pub say: Option<Say<Template>>,
    /// With `allow_keypress`: the capture prompt; its tries are the prompt's repeats.
    pub capture: Option<Menu>,
    pub request: RequestTemplate,
    /// Dotted path in the JSON answer whose value picks the branch.
    pub response_key: Option<Vec<String>>,
    /// Call variables set from the answer.
    pub store: Vec<Stored>,
    /// Identical requests within this many minutes are answered from the cache.
    pub cache_minutes: Option<u16>,
    /// The stored variables some `{play:$name}` plays: their values must be http(s) URLs.
    pub played: Vec<String>,
}

/// A call variable a script sets from its answer.
#[derive(Debug, Clone)]
pub struct Stored {
    pub var: String,
    /// Dotted path of the value in the JSON answer.
    pub path: Vec<String>,
    /// The value when the answer has no such key; `None`: the variable is left unset.
    pub default: Option<String>,
    /// Most characters kept of the value (cut at a word boundary where there is one).
    pub max_chars: usize,
}

/// An HTTP request with templates, resolved when the call reaches the script.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub url: Template,
    /// POST body fields, in order; `None`: the request is a GET.
    pub body: Option<Vec<(String, Template)>>,
    /// Send the body as a JSON object of strings instead of a form.
    pub raw_json: bool,
    pub headers: Vec<(String, Template)>,
    pub timeout_ms: u32,
}

/// A node that captures several keys into a call variable.
#[derive(Debug, Clone)]
pub struct Input {
    /// The prompt and capture settings, as for a menu.
    pub prompt: Menu,
    /// The call variable the accepted keys are stored in.
    pub variable: String,
    /// The whole input must match (anchored); `None`: any keys within the digit bounds.
    pub pattern: Option<regex::Regex>,
    /// An input this node accepts.
    pub example: String,
}

impl Input {
    /// The keys as stored when they are acceptable here: no completing `#`, within the capture's
    /// digit bounds, matching the pattern.
    pub fn accept(&self, keys: &str) -> Option<String> {
        let keys = keys.trim().trim_end_matches('#');
        let c = &self.prompt.capture;
        let len = keys.chars().count();
        let (min, max) =
            (usize::from(c.min_digits.unwrap_or(1)), usize::from(c.max_digits.unwrap_or(u8::MAX)));
        let keypad = keys.chars().all(|k| k.is_ascii_digit() || k == '*');
        let fits = self.pattern.as_ref().is_none_or(|p| p.is_match(keys));
        (keypad && (min.max(1)..=max).contains(&len) && fits).then(|| keys.to_string())
    }
}

/// Longest value of one of a machine's `variables` (its default, or the value a placed call gives
/// it): the bound every call variable a key or a `set` writes keeps (`engine::KEYPRESS_CHARS_MAX`),
/// so a stored call stays small.
pub const VARIABLE_CHARS_MAX: usize = 32;
/// Most `variables` one machine declares: with `VARIABLE_CHARS_MAX`, what a placed call may add
/// to a stored call is bounded (1 KiB of values), and 32 inputs to one call is already a form no
/// caller would sit through.
pub const VARIABLES_MAX: usize = 32;

/// A compiled machine: immutable, shared by every call on it.
#[derive(Debug, Clone)]
pub struct Machine {
    pub(crate) name: String,
    pub(crate) version: Version,
    pub(crate) description: Option<String>,
    pub(crate) numbers: Vec<String>,
    pub(crate) graph: DiGraph<Node, Edge, u32>,
    pub(crate) by_name: HashMap<String, NodeId>,
    pub(crate) start: NodeId,
    pub(crate) fallback: Callflow,
    /// The hosts its scripts may call (empty: any host at a public address).
    pub(crate) allow_hosts: Vec<hosts::AllowedHost>,
    /// The zone route rules read the clock in (`timezone`), when the machine names one.
    pub(crate) timezone: Option<jiff::tz::TimeZone>,
    /// The call variables every call starts with (`variables`), each with its default value.
    pub(crate) variables: BTreeMap<String, String>,
    /// Its `[settings]` (the valid ones), already filled into the nodes' templates: kept so that
    /// `diff` can name a changed setting.
    pub(crate) settings: BTreeMap<String, String>,
    /// The sensitive call variables (`sensitive = true` on an input or a stored value): the
    /// engine forgets them at the end of every step (`compile/sensitive.rs` has the rules).
    pub(crate) sensitive: BTreeSet<String>,
    /// The `module` nodes inlined into it, with the module each uses.
    pub(crate) modules: Vec<ModuleUse>,
    /// The policies `check` proves it by: its own `[[policies]]`, then its folder's.
    pub(crate) policies: Vec<policy::Policy>,
    /// What its modules' `outputs` promise, per use: proven with the machine (`proof::outputs`).
    pub(crate) outputs: Vec<OutputDuty>,
    /// The languages it speaks (`languages`), the first the one a call starts in; empty for a
    /// machine that names none.
    pub(crate) languages: Vec<String>,
    /// The call variable that picks the language (`language_variable`).
    pub(crate) language_variable: Option<String>,
    /// For each language after the first: every node as it speaks in that language (by `NodeId`
    /// index: the same graph, other texts and voices), and the fallback in it.
    pub(crate) translations: Vec<Translation>,
    /// Its `[resume]` table, compiled (in the first language).
    pub(crate) resume: Option<Resume>,
    /// Each transfer's `on_unanswered`, by the transfer's node.
    pub(crate) callbacks: HashMap<NodeId, callback::OnUnanswered>,
}

/// A machine's `[resume]` table: how long after an interrupted call its caller is offered to go
/// on, and the offer (a one-key capture: `1` goes on, anything else starts at `start`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub within_ms: u64,
    pub prompt: SayAndCapture,
}

/// A multilingual machine's nodes and fallback in one of its languages after the first.
#[derive(Debug, Clone)]
pub(crate) struct Translation {
    pub(crate) kinds: Vec<NodeKind>,
    pub(crate) fallback: Callflow,
    /// The resume offer in that language.
    pub(crate) resume: Option<SayAndCapture>,
}

/// A `module` node, inlined: its module's nodes are named `NAMESPACE/NODE` in the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleUse {
    /// The module's `name`.
    pub module: String,
    /// The using node's name (within a module: prefixed by its own use's namespace).
    pub namespace: String,
}

/// An output a module promises on some of its exits (`outputs`), for one use of it: `check`
/// proves it set on every path from the use's entry to each of those exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDuty {
    /// The module's `name`, and the use's namespace (its using node's name).
    pub module: String,
    pub namespace: String,
    /// The call variable promised.
    pub output: String,
    /// The exits it is promised on, each with where `outputs` says so (the module's file).
    pub required: Vec<(String, policy::Origin)>,
    /// Every edge that leaves the use by one of its exits (whether the output is promised there
    /// or not).
    pub exits: Vec<ExitEdge>,
}

/// An edge of a machine that leaves a module's use by one of the module's exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitEdge {
    pub from: NodeId,
    pub edge: Edge,
    /// The module's exit, and the name of its `exit` node in the module.
    pub exit: String,
    pub exit_node: String,
}

impl OutputDuty {
    /// Whether machine node `name` is inside the use (its module's nodes, nested ones included).
    pub fn contains(&self, name: &str) -> bool {
        name.strip_prefix(self.namespace.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }
}

impl ModuleUse {
    /// The module's own name of a machine node that is this use's (`verify_pin/ask` → `ask`), not
    /// a nested module's.
    pub fn local<'n>(&self, node: &'n str) -> Option<&'n str> {
        node.strip_prefix(self.namespace.as_str())?.strip_prefix('/').filter(|rest| !rest.contains('/'))
    }
}

impl Machine {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The virtual numbers this machine answers.
    pub fn numbers(&self) -> &[String] {
        &self.numbers
    }

    pub fn start(&self) -> NodeId {
        self.start
    }

    /// What the caller hears when phonetree cannot go on with the call: an apology, then hangup.
    pub fn fallback(&self) -> &Callflow {
        &self.fallback
    }

    /// The languages the machine speaks, the first the one a call starts in (empty: it names none).
    pub fn languages(&self) -> &[String] {
        &self.languages
    }

    /// The call variable that picks a call's language, when the machine speaks two or more.
    pub fn language_variable(&self) -> Option<&str> {
        self.language_variable.as_deref().filter(|_| self.languages.len() > 1)
    }

    /// The index in `languages` of the language a call whose variables `var` reads speaks: the
    /// language variable's value when it is one of the languages, else the first (0).
    pub fn language_of<'v>(&self, var: impl Fn(&str) -> Option<&'v str>) -> usize {
        let Some(name) = self.language_variable() else { return 0 };
        var(name).and_then(|v| self.languages.iter().position(|l| l == v)).unwrap_or(0)
    }

    /// Node `id` as it speaks in language `language` (an index in `languages`): its texts and
    /// voices in that language; the same node for the first language or one the machine lacks.
    pub fn spoken(&self, id: NodeId, language: usize) -> Option<&NodeKind> {
        let translated = language.checked_sub(1).and_then(|i| self.translations.get(i));
        match translated {
            Some(t) => t.kinds.get(id.index()),
            None => self.node(id).map(|n| &n.kind),
        }
    }

    /// The fallback in language `language` (an index in `languages`; the first for any other).
    pub fn fallback_in(&self, language: usize) -> &Callflow {
        language.checked_sub(1).and_then(|i| self.translations.get(i)).map_or(&self.fallback, |t| &t.fallback)
    }

    /// The `[resume]` table, when the machine has one.
    pub fn resume(&self) -> Option<&Resume> {
        self.resume.as_ref()
    }

    /// The resume offer in language `language` (an index in `languages`; the first for any other).
    pub fn resume_prompt_in(&self, language: usize) -> Option<&SayAndCapture> {
        let translated = language.checked_sub(1).and_then(|i| self.translations.get(i));
        translated.map_or_else(|| self.resume.as_ref().map(|r| &r.prompt), |t| t.resume.as_ref())
    }

    /// The call variables every call starts with (`variables`), by name, with their defaults: the
    /// only names a call phonetree places may give values to.
    /// The machine's `[settings]`, by name.
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }

    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }

    /// The sensitive call variables, by name.
    pub fn sensitive(&self) -> &BTreeSet<String> {
        &self.sensitive
    }

    /// Whether the answers of script node `name` may hold a sensitive value (one it stores is
    /// sensitive): the node never writes them to its store.
    pub fn answers_are_sensitive(&self, name: &str) -> bool {
        match self.node_id(name).and_then(|id| self.node(id)).map(|n| &n.kind) {
            Some(NodeKind::Script(s)) => s.store.iter().any(|st| self.sensitive.contains(&st.var)),
            _ => false,
        }
    }

    /// The hosts its scripts may call (`allow_hosts`); empty when the machine lists none.
    pub fn allow_hosts(&self) -> &[hosts::AllowedHost] {
        &self.allow_hosts
    }

    /// The zone route rules read the clock in, when the machine names one.
    pub fn timezone(&self) -> Option<&jiff::tz::TimeZone> {
        self.timezone.as_ref()
    }

    /// The policies `check` proves it by (`policy`).
    pub fn policies(&self) -> &[policy::Policy] {
        &self.policies
    }

    /// Adds the policies of the machine's folder (`policies.toml`) to its own.
    pub fn add_policies(&mut self, extra: &[policy::Policy]) {
        self.policies.extend(extra.iter().cloned());
    }

    pub fn graph(&self) -> &DiGraph<Node, Edge, u32> {
        &self.graph
    }

    /// The callback a transfer at `id` schedules when the bridged leg is not answered.
    pub fn on_unanswered(&self, id: NodeId) -> Option<&callback::OnUnanswered> {
        self.callbacks.get(&id)
    }

    /// Every transfer's callback: (transfer node, callback).
    pub fn callbacks(&self) -> impl Iterator<Item = (&str, &callback::OnUnanswered)> {
        self.callbacks.iter().filter_map(|(id, cb)| Some((self.node(*id)?.name.as_str(), cb)))
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.graph.node_weight(id)
    }

    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.by_name.get(name).copied()
    }

    /// The target of the edge from `id` labelled `edge`.
    pub fn target(&self, id: NodeId, edge: &Edge) -> Option<NodeId> {
        self.graph.edges_directed(id, Direction::Outgoing).find(|e| e.weight() == edge).map(|e| e.target())
    }

    /// The labelled edges leaving `id`, in a stable order (keys sorted, then the other labels).
    pub fn edges(&self, id: NodeId) -> Vec<(Edge, NodeId)> {
        let mut edges: Vec<(Edge, NodeId)> = self
            .graph
            .edges_directed(id, Direction::Outgoing)
            .map(|e| (e.weight().clone(), e.target()))
            .collect();
        edges.sort();
        edges
    }

    /// The `module` nodes inlined into this machine, outermost first.
    pub fn modules(&self) -> &[ModuleUse] {
        &self.modules
    }

    /// What its modules' `outputs` promise, per use.
    pub fn outputs(&self) -> &[OutputDuty] {
        &self.outputs
    }

    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }
}

/// Most actions in one reply. 8x8 sets none; a caller should not sit through more than this many
/// announcements before being asked something, and it bounds a reply's size.
pub const CHAIN_ACTIONS_MAX: usize = 16;

/// Why the nodes entered from one node cannot make one reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// say/play nodes lead back to themselves without a node that waits.
    #[error("say/play nodes loop without waiting")]
    Loop,
    /// route/set nodes lead back to themselves without a node that waits.
    #[error("route/set nodes loop without waiting")]
    RouteLoop,
    /// More actions than fit in one callflow.
    #[error("{0} actions exceed the limit of {CHAIN_ACTIONS_MAX}")]
    TooLong(usize),
}

/// The nodes entered from `id` on: those that need no input, up to the first that waits or ends.
pub fn chain(m: &Machine, id: NodeId) -> Result<Vec<NodeId>, ChainError> {
    chain_until(m, id, |_| false)
}

/// `chain`, ending early at a node `stop` picks (for the compiler: a node that did not compile).
fn chain_until(m: &Machine, id: NodeId, stop: impl Fn(NodeId) -> bool) -> Result<Vec<NodeId>, ChainError> {
    let mut nodes = vec![id];
    let mut at = id;
    // A set node that checks its `add`s for numbers decides between `next` and `not_number`.
    let goes_on = |at: NodeId| {
        m.node(at).is_some_and(|n| !n.kind.waits()) && !stop(at) && m.target(at, &Edge::NotNumber).is_none()
    };
    while let Some(next) = Some(at).filter(|&at| goes_on(at)).and_then(|at| m.target(at, &Edge::Next)) {
        if nodes.contains(&next) {
            return Err(ChainError::Loop);
        }
        nodes.push(next);
        if nodes.len() > CHAIN_ACTIONS_MAX {
            return Err(ChainError::TooLong(nodes.len()));
        }
        at = next;
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fallback_say(text: &str) -> Say {
        let m = compile(&Source::new("f.toml", text)).machine.unwrap();
        match m.fallback().actions.first() {
            Some(crate::callflow::Action::Say(say)) => say.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// A machine with languages: the call's language variable picks the texts and the voice (the
    /// first language when unset or another value), the fallback included.
    #[test]
    fn a_call_speaks_the_language_its_variable_names() {
        let text = "name = \"f\"\nstart = \"hi\"\nlanguages = [\"en\", \"es\"]\nlanguage_variable = \"lang\"\n\
            voices = { en = \"en-US-BenjaminRUS\", es = \"es-ES-HelenaRUS\" }\n\
            fallback = { en = \"Sorry.\", es = \"Lo siento.\" }\n\
            [nodes.hi]\nkind = \"say\"\ntext = { en = \"Hi.\", es = \"Hola.\" }\nnext = \"bye\"\n\
            [nodes.bye]\nkind = \"hangup\"\n";
        let m = compile(&Source::new("f.toml", text)).machine.unwrap();
        let lang = |v: Option<&'static str>| m.language_of(move |name| if name == "lang" { v } else { None });
        assert_eq!((lang(None), lang(Some("en")), lang(Some("es")), lang(Some("fr"))), (0, 0, 1, 0));
        let hi = m.node_id("hi").unwrap();
        let said = |i: usize| match m.spoken(hi, i) {
            Some(NodeKind::Say(s)) => (s.text.as_literal().unwrap().to_string(), s.voice_profile.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(said(0), ("Hi.".to_string(), "en-US-BenjaminRUS".to_string()));
        assert_eq!(said(1), ("Hola.".to_string(), "es-ES-HelenaRUS".to_string()));
        let fallback = |i: usize| match m.fallback_in(i).actions.first() {
            Some(crate::callflow::Action::Say(say)) => (say.text.clone(), say.voice_profile.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(fallback(0), ("Sorry.".to_string(), "en-US-BenjaminRUS".to_string()));
        assert_eq!(fallback(1), ("Lo siento.".to_string(), "es-ES-HelenaRUS".to_string()));
    }

    #[test]
    fn the_fallback_speaks_in_the_machine_s_voice() {
        let body =
            "[nodes.hi]\nkind = \"say\"\ntext = \"Hola.\"\nnext = \"bye\"\n[nodes.bye]\nkind = \"hangup\"\n";
        let defaults = format!(
            "name = \"f\"\nstart = \"hi\"\n[defaults]\nvoice_profile = \"es-ES-HelenaRUS\"\nspeed = 0.9\n{body}"
        );
        let say = fallback_say(&defaults);
        assert_eq!((say.voice_profile.as_str(), say.speed), ("es-ES-HelenaRUS", Some(Speed(90))));
        // No `[defaults]` voice: the one the start node speaks in.
        let node = format!(
            "name = \"f\"\nstart = \"hi\"\n{}",
            body.replace(
                "text = \"Hola.\"",
                "text = \"Hola.\"\nvoice_profile = \"es-ES-HelenaRUS\"\nspeed = 1.1"
            )
        );
        let say = fallback_say(&node);
        assert_eq!((say.voice_profile.as_str(), say.speed), ("es-ES-HelenaRUS", Some(Speed(110))));
    }
}
