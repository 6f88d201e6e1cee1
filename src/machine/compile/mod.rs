//! The compiler's driver: `compile()` runs every pass over a machine file and collects every
//! problem of every pass in one run, through `Compiler::report`.
//!
//! Passes, one module each: `shape` (the file's tables read leniently into a `Definition`),
//! `fields` (which fields a node kind takes), `nodes` (menu, input, say, play, transfer, hangup),
//! `scripts` (the Script widget), `numbers` (every integer within its field's bounds), `edges`
//! (targets and keys), `keys` (machine-wide keys), `chains` (each node's 8x8 action and every callflow a webhook can be answered
//! with) and `flow` (reachability, definite assignment of call variables, `{play:$var}`), and
//! `languages` (every spoken text in every language; a machine with languages runs the passes
//! once per language, its nodes' texts and voice in it). A node
//! that does not parse or compile stays in the graph as a placeholder with its targets, so that the
//! graph passes still check every other node.
//! A machine with any error is not built: a machine 8x8 would reject never loads.

mod callbacks;
mod chains;
mod counters;
mod edges;
mod fields;
mod flow;
mod keys;
mod languages;
mod lengths;
mod modules;
mod nodes;
mod numbers;
mod policies;
mod resume;
mod routes;
mod scripts;
mod sensitive;
mod split;

pub(crate) use fields::kinds_and_fields;
pub use languages::LANGUAGES_MAX;
pub use modules::{MODULE_DEPTH_MAX, MODULES_MAX, Modules};
pub(crate) use numbers::integer_bounds;
pub use resume::RESUME_WITHIN_MINUTES_MAX;
pub use scripts::SCRIPT_TIMEOUT_MAX_MS;
mod shape;

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::graph::DiGraph;

use super::definition::{Definition, Kind, SPOKEN_FIELDS};
use super::diagnostic::{Diagnostic, Position, Severity, closest};
use super::hosts::{self, ALLOW_HOSTS_MAX, AllowedHost};
use super::source::SyntaxError;
use super::source::{self, Source, SpanIndex};
use super::template;
use super::voices::Voices;
use super::{Edge, Machine, Node, NodeId, NodeKind, Translation, VARIABLE_CHARS_MAX, VARIABLES_MAX, Version};
use crate::callflow::{self, ACTION_ID_NAMES_CHARS_MAX, Action, Callflow, Say, Use};
use shape::{Point, Shaped};

/// Most nodes in one machine: a generated 10,000-node tree compiles in milliseconds; far beyond
/// that a menu tree is no longer something a caller can navigate.
pub const NODES_MAX: usize = 50_000;
/// Longest machine or node name: names travel in every `clientActionId`.
pub(super) const NAME_CHARS_MAX: usize = 48;
/// What a caller hears when phonetree fails and the machine sets no `fallback`.
pub const DEFAULT_FALLBACK: &str =
    "We are sorry, we cannot take your call right now. Please call again later.";
/// The voice of the fallback when the machine has no default voice profile.
const FALLBACK_VOICE: &str = "en-US-BenjaminRUS";

/// The result of a compile: the machine when there is no error, and every diagnostic.
#[derive(Debug)]
pub struct Compiled {
    pub machine: Option<Machine>,
    /// With errors: the machine as far as it compiled, each node that did not as a `hangup` with
    /// its targets, for the proofs that still hold on it (`explore`'s traps), so that they are
    /// reported in the same run. `None` without a start node.
    pub partial: Option<Machine>,
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

/// What the compiler is given besides the source.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The voice profiles a `voice_profile` is checked against (a warning for any other).
    pub voices: &'a Voices,
    /// The node's `--script-allow`: script URLs are checked by the host rule (`hosts`) with it
    /// and the machine's `allow_hosts`, as the node that runs them checks them.
    pub script_allow: &'a [AllowedHost],
    /// The modules `module` nodes may use (`--modules`).
    pub modules: &'a Modules,
}

impl Default for Options<'static> {
    fn default() -> Self {
        Options { voices: Voices::bundled(), script_allow: &[], modules: &modules::NO_MODULES }
    }
}

/// Compiles one machine source, with the bundled voices.
pub fn compile(source: &Source) -> Compiled {
    compile_with(source, Options::default())
}

/// Compiles one machine source.
pub fn compile_with(source: &Source, options: Options<'_>) -> Compiled {
    let (mut def, shaped) = match shape::read(source) {
        Ok(read) => read,
        Err(e) => {
            return Compiled {
                machine: None,
                partial: None,
                diagnostics: vec![syntax_diagnostic(source, &e)],
            };
        }
    };
    let inlined = modules::inline(&mut def, source, options.modules);
    let declared = declared(&def);
    let unread = Unread::of(&shaped);
    let version = inlined.version(source);
    // A machine with languages is compiled once per language, each time with that language's
    // texts and voice: every rule is checked on every language's texts.
    let languages = languages::valid(&def);
    let compilers = if languages.is_empty() { vec![None] } else { languages.iter().map(Some).collect() };
    let mut diagnostics = inlined.diagnostics.clone();
    let mut exit_fields: HashMap<(String, String), Vec<modules::ExitField>> = HashMap::new();
    for f in &inlined.exit_fields {
        exit_fields.entry((f.node.clone(), f.field.clone())).or_default().push(f.clone());
    }
    let mut compiled: Vec<Option<Machine>> = Vec::with_capacity(compilers.len());
    for (i, language) in compilers.into_iter().enumerate() {
        let mut c = Compiler {
            source,
            index: OnceCell::new(),
            def: &def,
            diags: Vec::new(),
            declared: declared.clone(),
            allow_hosts: Vec::new(),
            timezone: None,
            voices: options.voices,
            script_allow: options.script_allow,
            unread: unread.clone(),
            version,
            origins: inlined.origins.clone(),
            module_sources: inlined.sources.clone(),
            module_uses: inlined.uses.clone(),
            module_index: OnceCell::new(),
            duties: inlined.duties.clone(),
            exit_fields: exit_fields.clone(),
            exit_edges: Vec::new(),
            language: language.cloned(),
            language_voice: language.and_then(|l| def.voices.get(l).cloned()),
            languages: languages.clone(),
        };
        if i == 0 {
            for problem in shaped.iter().cloned() {
                c.shape_problem(problem);
            }
        }
        compiled.push(c.run());
        diagnostics.extend(c.diags);
    }
    diagnostics
        .sort_by(|a, b| (a.position, a.severity, &a.message).cmp(&(b.position, b.severity, &b.message)));
    // A bad default is inherited by many nodes but reported once, at `[defaults]`; a problem of
    // every language's compile, once.
    dedup(&mut diagnostics);
    let mut compiled = compiled.into_iter();
    let machine = compiled.next().flatten().map(|mut m| {
        m.translations = compiled
            .flatten()
            .map(|t| Translation {
                kinds: t.graph.node_weights().map(|n| n.kind.clone()).collect(),
                fallback: t.fallback,
                resume: t.resume.map(|r| r.prompt),
            })
            .collect();
        m
    });
    let has_start = def.nodes.iter().any(|(name, _)| *name == def.start);
    let (machine, partial) = match machine {
        Some(m) if diagnostics.iter().any(Diagnostic::is_error) => (None, Some(m).filter(|_| has_start)),
        m => (m, None),
    };
    Compiled { machine, partial, diagnostics }
}

/// Removes the repeats of a diagnostic from `sorted` (sorted by position, severity and message).
fn dedup(sorted: &mut Vec<Diagnostic>) {
    let mut out: Vec<Diagnostic> = Vec::with_capacity(sorted.len());
    for d in sorted.drain(..) {
        let same =
            |o: &&Diagnostic| (o.position, o.severity, &o.message) == (d.position, d.severity, &d.message);
        if !out.iter().rev().take_while(same).any(|o| *o == d) {
            out.push(d);
        }
    }
    *sorted = out;
}

/// What a TOML syntax error left unread: nodes whose table holds one (placeholders, which may link
/// anywhere), and the dotted paths of values dropped from the tree (nothing else is said of them).
#[derive(Debug, Clone, Default)]
struct Unread {
    nodes: BTreeSet<String>,
    dropped: Vec<String>,
}

impl Unread {
    fn of(shaped: &[Shaped]) -> Unread {
        let mut unread = Unread::default();
        for s in shaped {
            if let shape::ShapeError::Syntax { dropped, .. } = s.error {
                if let ["nodes", name, ..] = s.path.iter().map(String::as_str).collect::<Vec<_>>().as_slice()
                {
                    unread.nodes.insert(name.to_string());
                }
                if dropped {
                    unread.dropped.push(s.path.join("."));
                }
            }
        }
        unread
    }

    /// Whether a diagnostic at `node` and `field` is about a value that was dropped.
    fn covers(&self, node: Option<&str>, field: Option<&str>) -> bool {
        let path = match (node, field) {
            (Some(n), Some(f)) => format!("nodes.{n}.{f}"),
            (Some(n), None) => format!("nodes.{n}"),
            (None, Some(f)) => f.to_string(),
            (None, None) => return false,
        };
        self.dropped
            .iter()
            .any(|d| path == *d || path.strip_prefix(d.as_str()).is_some_and(|r| r.starts_with('.')))
    }
}

/// The one diagnostic of a file that is not a machine file at all.
fn syntax_diagnostic(source: &Source, e: &SyntaxError) -> Diagnostic {
    let hint = match e {
        SyntaxError::TooLarge(_) => Some("split the machine into smaller ones".into()),
        SyntaxError::NotATable => {
            Some("a machine file holds `name`, `start` and `[nodes.NAME]` tables".into())
        }
        SyntaxError::Syntax { .. } => None,
    };
    Diagnostic {
        severity: Severity::Error,
        file: source.file.clone(),
        position: e.offset().map(|o| Position::of_offset(&source.text, o)),
        node: None,
        field: None,
        message: e.to_string(),
        hint,
    }
}

/// The call variables the machine's nodes set: an input's `variable`, a script's `store`, a set's
/// `values` and `add` (all, for a node whose kind is not known), and the machine's `variables`.
fn declared(def: &Definition) -> BTreeSet<String> {
    let mut declared: BTreeSet<String> = def.variables.keys().cloned().collect();
    for (_, n) in &def.nodes {
        if matches!(n.kind, Some(Kind::Input) | None) {
            declared.extend(n.variable.iter().cloned());
        }
        if matches!(n.kind, Some(Kind::Script) | None) {
            declared.extend(n.store.iter().flat_map(|s| s.keys().cloned()));
        }
        if matches!(n.kind, Some(Kind::Set) | None) {
            declared.extend(n.values.iter().flat_map(|v| v.keys().cloned()));
            declared.extend(n.add.iter().flat_map(|a| a.keys().cloned()));
        }
    }
    declared
}

/// The state of one compile: the definition, the diagnostics so far, and what every pass shares.
struct Compiler<'a> {
    source: &'a Source,
    /// Positions, found when the first diagnostic needs one (a valid file never needs them).
    index: OnceCell<SpanIndex>,
    def: &'a Definition,
    diags: Vec<Diagnostic>,
    /// Call variables the machine's `input` and `script` nodes set.
    declared: BTreeSet<String>,
    /// The machine's `allow_hosts` (those that are valid).
    allow_hosts: Vec<AllowedHost>,
    /// The machine's `timezone`, when it names one that exists.
    timezone: Option<jiff::tz::TimeZone>,
    /// The voice profiles known to exist.
    voices: &'a Voices,
    /// The node's `--script-allow` (see `Options`).
    script_allow: &'a [AllowedHost],
    /// What syntax errors left unread.
    unread: Unread,
    /// The machine's version: its text's and its modules' (`modules::Inlined::version`).
    version: Version,
    /// Each node inlined from a module: the module's source (in `module_sources`) and its name there.
    origins: HashMap<String, (usize, String)>,
    module_sources: Vec<Source>,
    module_uses: Vec<super::ModuleUse>,
    /// The modules' positions, found when a diagnostic in one needs them.
    module_index: OnceCell<Vec<SpanIndex>>,
    /// What each use's `outputs` promise (`modules::Inlined::duties`), and the fields of inlined
    /// nodes that leave a use by an exit, by (node, field path).
    duties: Vec<super::OutputDuty>,
    exit_fields: HashMap<(String, String), Vec<modules::ExitField>>,
    /// The edges `edges` found leaving a use by an exit, with the use's namespace.
    exit_edges: Vec<(String, super::ExitEdge)>,
    /// The language this compile reads the spoken texts in (`None`: a machine without languages).
    language: Option<String>,
    /// That language's voice (`voices`), which every node that names none speaks in.
    language_voice: Option<String>,
    /// The machine's languages (`languages::valid`).
    languages: Vec<String>,
}

/// The nodes that did not compile, by `NodeId` index: placeholders in the graph.
type Failed = Vec<bool>;

/// Where a diagnostic points: a node's field, or a machine-level field.
#[derive(Clone, Copy)]
enum At<'a> {
    Machine(&'a str),
    Node(&'a str, &'a str),
    NodeKey(&'a str),
}

impl Compiler<'_> {
    fn index(&self) -> &SpanIndex {
        self.index.get_or_init(|| source::index(self.source))
    }

    fn report(&mut self, severity: Severity, at: At<'_>, message: String, hint: Option<String>) {
        let (node, field, offset) = self.locate(at);
        self.push(severity, (node, field, offset), message, hint);
    }

    fn push(
        &mut self,
        severity: Severity,
        (node, field, offset): (Option<String>, Option<String>, Option<usize>),
        message: String,
        hint: Option<String>,
    ) {
        // A value the parser could not read: its syntax error says all there is to say.
        if self.unread.covers(node.as_deref(), field.as_deref()) {
            return;
        }
        self.record(severity, (node, field, offset), message, hint);
    }

    fn record(
        &mut self,
        severity: Severity,
        (node, field, offset): (Option<String>, Option<String>, Option<usize>),
        message: String,
        hint: Option<String>,
    ) {
        // A node inlined from a module: the problem is the module file's, at its own name there.
        let (source, node) = match node.as_ref().and_then(|n| self.origins.get(n)) {
            Some((i, local)) => (&self.module_sources[*i], Some(local.clone())),
            None => (self.source, node),
        };
        self.diags.push(Diagnostic {
            severity,
            file: source.file.clone(),
            position: offset.map(|o| Position::of_offset(&source.text, o)),
            node,
            field,
            message,
            hint,
        });
    }

    /// A problem of the shape pass, at its path.
    fn shape_problem(&mut self, problem: Shaped) {
        let path: Vec<&str> = problem.path.iter().map(String::as_str).collect();
        let offset = match problem.point {
            Point::Offset(o) => Some(o),
            Point::Key => self.index().key(&path),
            Point::Value => self.index().value(&path),
        };
        let (node, field) = match path.as_slice() {
            ["nodes", node, rest @ ..] => {
                (Some(node.to_string()), (!rest.is_empty()).then(|| rest.join(".")))
            }
            _ => (None, (!path.is_empty()).then(|| path.join("."))),
        };
        let at = (node, field, offset);
        match problem.error {
            shape::ShapeError::Syntax { .. } => {
                self.record(Severity::Error, at, problem.error.to_string(), problem.hint)
            }
            _ => self.push(Severity::Error, at, problem.error.to_string(), problem.hint),
        }
    }

    /// The node, field and byte offset a diagnostic at `at` shows.
    fn locate(&self, at: At<'_>) -> (Option<String>, Option<String>, Option<usize>) {
        // A spoken field of a table by language: this compile's language's entry in it.
        if let (Some(language), At::Node(node, field)) = (&self.language, at) {
            let (head, rest) = field.split_once('.').map_or((field, None), |(h, r)| (h, Some(r)));
            if SPOKEN_FIELDS.contains(&head) {
                let field = match rest {
                    Some(rest) => format!("{head}.{language}.{rest}"),
                    None => format!("{head}.{language}"),
                };
                let found = self.locate_plain(At::Node(node, &field));
                if found.1.as_deref() == Some(field.as_str()) && found.2.is_some() {
                    return found;
                }
            }
        }
        self.locate_plain(at)
    }

    fn locate_plain(&self, at: At<'_>) -> (Option<String>, Option<String>, Option<usize>) {
        if let Some(found) = self.locate_in_module(at) {
            return found;
        }
        match at {
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
        }
    }

    /// `locate` for a node inlined from a module: in the module's file (a field it inherits from
    /// the machine's `[defaults]`: there).
    fn locate_in_module(&self, at: At<'_>) -> Option<(Option<String>, Option<String>, Option<usize>)> {
        let (node, field) = match at {
            At::Node(node, field) => (node, Some(field)),
            At::NodeKey(node) => (node, None),
            At::Machine(_) => return None,
        };
        let (i, local) = self.origins.get(node)?;
        let index =
            &self.module_index.get_or_init(|| self.module_sources.iter().map(source::index).collect())[*i];
        let mut path = vec!["nodes", local.as_str()];
        path.extend(field.iter().flat_map(|f| f.split('.')));
        let offset = match (index.get(&path), field) {
            (Some((_, v)), Some(_)) => Some(v),
            (_, Some(f)) if index.get(&path).is_none() && self.index().get(&["defaults", f]).is_some() => {
                return None;
            }
            _ => index.key(&path),
        };
        Some((Some(node.to_string()), field.map(str::to_string), offset))
    }

    fn error(&mut self, at: At<'_>, message: String, hint: Option<String>) {
        self.report(Severity::Error, at, message, hint);
    }

    /// Every pass after the shape: nodes that did not compile stay in the graph as placeholders
    /// with their targets, so that the graph passes check every other node in the same run.
    fn run(&mut self) -> Option<Machine> {
        let settings = self.machine_fields();
        if self.language.as_ref() == self.languages.first() {
            self.check_languages(&settings);
        }
        if !self.node_count_ok() {
            return None;
        }
        let (mut graph, by_name, failed) = self.nodes(&settings);
        let start = self.start(&by_name);
        // Nodes were added in the definition's order: the i-th node is `NodeId` i.
        for (i, (name, n)) in self.def.nodes.iter().enumerate() {
            self.edges((NodeId::new(i), name, n), &by_name, &mut graph);
        }
        let keys = self.machine_keys(&by_name, start);
        self.key_edges(&keys, &mut graph);
        let fallback = self.fallback(&graph, start);
        let resume = self.resume(&fallback);
        let def = self.def;
        let mut machine = Machine {
            name: def.name.clone(),
            version: self.version,
            description: def.description.clone(),
            numbers: def.numbers.clone(),
            graph,
            by_name,
            start: start.unwrap_or_default(),
            fallback,
            allow_hosts: self.allow_hosts.clone(),
            timezone: self.timezone.clone(),
            variables: self.variables(&settings),
            settings: settings.clone(),
            sensitive: BTreeSet::new(),
            modules: self.module_uses.clone(),
            policies: Vec::new(),
            outputs: self.output_duties(),
            languages: self.languages.clone(),
            language_variable: def.language_variable.clone().filter(|_| !self.languages.is_empty()),
            translations: Vec::new(),
            resume,
            callbacks: HashMap::new(),
        };
        machine.callbacks = self.callbacks(&machine.by_name);
        self.check_sensitive(&mut machine, &failed, start.is_some());
        self.check_resume_skips(&machine);
        self.check_counted(&mut machine, &failed);
        self.check_policies(&mut machine);
        self.check_play(&mut machine);
        self.check_chains(&machine, &failed, start.is_some());
        self.check_lengths(&machine, &failed);
        if start.is_some() {
            self.check_reachability(&machine);
            self.check_assigned(&machine, &failed);
        }
        self.check_variables_read(&machine);
        Some(machine)
    }

    /// The uses' output duties, each with the edges that leave its use by an exit.
    fn output_duties(&self) -> Vec<super::OutputDuty> {
        let mut duties = self.duties.clone();
        for d in &mut duties {
            d.exits =
                self.exit_edges.iter().filter(|(ns, _)| *ns == d.namespace).map(|(_, e)| e.clone()).collect();
        }
        duties
    }

    /// The machine's name and numbers, and its settings (those that are valid).
    fn machine_fields(&mut self) -> BTreeMap<String, String> {
        let def = self.def;
        self.check_name(At::Machine("name"), &def.name, "machine");
        for (i, number) in def.numbers.iter().enumerate() {
            if let Err(why) = callflow::check_e164(number) {
                let hint = Some("write the number in E.164: `+`, the country code, then the number".into());
                self.error(At::Machine(&format!("numbers.{i}")), why, hint);
            }
        }
        self.allow_hosts();
        self.timezone = self.timezone();
        self.settings()
    }

    /// `allow_hosts`: each `HOST` or `HOST:PORT`; an address the host rule never calls is an
    /// error, and so is a non-public address (or `localhost`) without the port it is called on.
    fn allow_hosts(&mut self) {
        let def = self.def;
        if def.allow_hosts.len() > ALLOW_HOSTS_MAX {
            self.error(
                At::Machine("allow_hosts"),
                format!("{} hosts; the limit is {ALLOW_HOSTS_MAX}", def.allow_hosts.len()),
                None,
            );
            return;
        }
        for (i, entry) in def.allow_hosts.iter().enumerate() {
            let at = format!("allow_hosts.{i}");
            match AllowedHost::parse(entry) {
                Err(why) => self.error(
                    At::Machine(&at),
                    why,
                    Some("write `\"api.example.com\"` or `\"127.0.0.1:8090\"`".into()),
                ),
                Ok(host) => match hosts::entry_problem(&host) {
                    Some(problem) => {
                        self.error(At::Machine(&at), problem.message(&host), Some(problem.hint(&host)))
                    }
                    None => self.allow_hosts.push(host),
                },
            }
        }
    }

    fn node_count_ok(&mut self) -> bool {
        let count = self.def.nodes.len();
        if count == 0 {
            self.error(
                At::Machine("nodes"),
                "the machine has no nodes".into(),
                Some("add at least a `[nodes.NAME]` table with `kind = \"hangup\"`".into()),
            );
        } else if count > NODES_MAX {
            self.error(At::Machine("nodes"), format!("{count} nodes; the limit is {NODES_MAX}"), None);
        }
        (1..=NODES_MAX).contains(&count)
    }

    /// Every node in the graph, so that every target can be resolved: a node that does not compile
    /// (or did not parse) holds a placeholder, and is marked in the returned `failed`.
    fn nodes(
        &mut self,
        settings: &BTreeMap<String, String>,
    ) -> (DiGraph<Node, Edge, u32>, HashMap<String, NodeId>, Failed) {
        let def = self.def;
        let mut graph: DiGraph<Node, Edge, u32> = DiGraph::with_capacity(def.nodes.len(), 0);
        let mut by_name = HashMap::with_capacity(def.nodes.len());
        let mut failed = Vec::with_capacity(def.nodes.len());
        for (name, node) in &def.nodes {
            // A node inlined from a module is named `USE/NODE`: each part is a name.
            let parts: Vec<&str> =
                if self.origins.contains_key(name) { name.split('/').collect() } else { vec![name] };
            for part in parts {
                self.check_name(At::NodeKey(name), part, "node");
            }
            // Both names travel in every signed `clientActionId`, which 8x8 bounds.
            if def.name.len() + name.len() > ACTION_ID_NAMES_CHARS_MAX {
                self.error(
                    At::NodeKey(name),
                    format!("machine name `{}` and node name `{name}` are too long together", def.name),
                    Some(format!(
                        "keep the two names within {ACTION_ID_NAMES_CHARS_MAX} characters together: \
                         they travel in every clientActionId"
                    )),
                );
            }
            let kind = if node.broken {
                None
            } else {
                self.check_fields(name, node);
                self.node_kind(name, node, settings)
            };
            failed.push(kind.is_none());
            let kind = kind.unwrap_or(NodeKind::Hangup);
            by_name.insert(name.clone(), graph.add_node(Node { name: name.clone(), kind }));
        }
        (graph, by_name, failed)
    }

    fn start(&mut self, by_name: &HashMap<String, NodeId>) -> Option<NodeId> {
        let def = self.def;
        let start = by_name.get(&def.start).copied();
        if start.is_none() {
            let hint = closest(&def.start, def.nodes.iter().map(|(n, _)| n.as_str()))
                .map(|c| format!("did you mean `{c}`?"))
                .or_else(|| Some("`start` must name one of the `[nodes.*]` tables".into()));
            self.error(At::Machine("start"), format!("start node `{}` does not exist", def.start), hint);
        }
        start
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

    /// `variables`: call variables every call starts with, each a name of its own with a default
    /// within the per-variable bound; at most `VARIABLES_MAX`. Returns those that are valid.
    fn variables(&mut self, settings: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let def = self.def;
        if def.variables.len() > VARIABLES_MAX {
            self.error(
                At::Machine("variables"),
                format!("{} variables; the limit is {VARIABLES_MAX}", def.variables.len()),
                Some("keep the values a placed call needs; look the rest up with a script".into()),
            );
            return BTreeMap::new();
        }
        let mut ok = BTreeMap::new();
        for (name, default) in &def.variables {
            let at = format!("variables.{name}");
            if !self.is_own_var_name(name, settings) {
                self.error(
                    At::Machine(&at),
                    format!("`{name}` cannot name a call variable: it is not a name, or a setting or built-in has it"),
                    Some("use letters, digits and `_`, starting with a letter, and a name of its own".into()),
                );
            } else if default.chars().count() > VARIABLE_CHARS_MAX {
                self.error(
                    At::Machine(&at),
                    format!(
                        "the default of `{name}` has {} characters; a call variable keeps at most {VARIABLE_CHARS_MAX}",
                        default.chars().count()
                    ),
                    Some("shorten it".into()),
                );
            } else {
                ok.insert(name.clone(), default.clone());
            }
        }
        ok
    }

    /// The apology said when phonetree fails, in the machine's voice: `[defaults]`' voice and speed,
    /// else the voice the start node (or the first node that speaks) uses.
    fn fallback(&mut self, graph: &DiGraph<Node, Edge, u32>, start: Option<NodeId>) -> Callflow {
        let text = self.def.fallback.as_ref().and_then(|f| f.pick(self.language.as_deref()).cloned());
        let text = text.unwrap_or_else(|| DEFAULT_FALLBACK.to_string());
        let d = &self.def.defaults;
        let speed = |s: f64| {
            let hundredths = (s * 100.0).round();
            let ok = (f64::from(callflow::SPEED_HUNDREDTHS_MIN)..=f64::from(callflow::SPEED_HUNDREDTHS_MAX))
                .contains(&hundredths);
            ok.then_some(callflow::Speed(hundredths as u16))
        };
        let spoken = start.into_iter().chain(graph.node_indices()).find_map(|id| voice_of(&graph[id].kind));
        let (voice_profile, speed) = match (self.language_voice.as_ref().or(d.voice_profile.as_ref()), spoken)
        {
            (Some(v), _) => (v.clone(), d.speed.and_then(speed)),
            (None, Some((v, s))) => (v.to_string(), s),
            (None, None) => (FALLBACK_VOICE.to_string(), None),
        };
        let say = Say { text, voice_profile, repetition: None, speed };
        let flow = Callflow { client_action_id: None, actions: vec![Action::Say(say), Action::Hangup] };
        for v in callflow::validate(&flow, Use::WebhookReply) {
            self.error(At::Machine("fallback"), v.message, None);
        }
        flow
    }
}

/// The voice and speed a node speaks in, if it speaks.
fn voice_of(kind: &NodeKind) -> Option<(&str, Option<callflow::Speed>)> {
    match kind {
        NodeKind::Say(s) => Some((&s.voice_profile, s.speed)),
        NodeKind::Script(super::Script { say: Some(s), capture: None, .. }) => {
            Some((&s.voice_profile, s.speed))
        }
        k => k.capture().map(|c| (c.capture.voice_profile.as_str(), c.capture.speed)),
    }
}
