//! Modules: files shaped like a machine without numbers (`machines/modules/NAME.toml`), with
//! `inputs`, `outputs` and `exits`, used by `module` nodes. A module is compiled by inlining its
//! nodes under the using node's name (`verify_pin/ask`), its `exit` nodes replaced by the nodes the
//! using node maps them to, so that the engine, the store and the explorer see one plain machine.
//!
//! This pass runs on the `Definition`, before every other: a module cycle, a deeper nesting than
//! `MODULE_DEPTH_MAX`, an unmapped exit and a missing input are reported here, each at its own
//! file's line and column. What a module's `outputs` promise is a duty per use (`OutputDuty`),
//! with the edges that leave the use by each exit (`ExitField`, resolved once the graph is built),
//! which the explorer proves with the machine (`proof::outputs`), so a broken promise comes with
//! the call that shows it. A module no machine uses is judged on its own graph instead
//! (`check_alone`, `unset_outputs`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::super::definition::{Definition, FieldSet, Kind, Next, NodeDef, Outputs};
use super::super::diagnostic::{Diagnostic, Position, Severity, closest};
use super::super::policy::Origin;
use super::super::source::{self, Source};
use super::super::{ModuleUse, OutputDuty, Version};
use super::fields::field_index;
use super::shape::{self, Point};

/// Deepest nesting of modules in modules: a module used by a module used by a machine is depth 2.
/// Past a few levels a caller's path is no longer something an author can follow, and the bound
/// keeps the inlined machine's size (and its names, which travel in every clientActionId) small.
pub const MODULE_DEPTH_MAX: usize = 4;
/// Most module files one folder holds: as `catalog::FILES_MAX` bounds machine files.
pub const MODULES_MAX: usize = 1_000;

/// The modules machines may use, by their `name`: the sources, read by the caller (the compiler
/// never touches the disk).
#[derive(Debug, Clone, Default)]
pub struct Modules {
    by_name: BTreeMap<String, Source>,
}

/// No modules: what a machine compiled without a modules folder sees.
pub static NO_MODULES: Modules = Modules { by_name: BTreeMap::new() };

impl Modules {
    /// The modules of `sources`, keyed by their `name`; a file that names none, or a name that two
    /// files give, is a diagnostic (and the file is left out).
    pub fn of(sources: Vec<Source>) -> (Modules, Vec<Diagnostic>) {
        let mut modules = Modules::default();
        let mut diags = Vec::new();
        for source in sources {
            let name = shape::read(&source).ok().map(|(def, _)| def.name).unwrap_or_default();
            let at = |message: String, hint: &str| Diagnostic {
                severity: Severity::Error,
                file: source.file.clone(),
                position: Some(Position { line: 1, col: 1 }),
                node: None,
                field: Some("name".into()),
                message,
                hint: Some(hint.into()),
            };
            if name.is_empty() {
                diags.push(at("a module needs `name`".into(), "add `name = \"...\"` at the top of the file"));
            } else if let Some(other) = modules.by_name.get(&name) {
                let message = format!("module `{name}` is already read from {}", other.file);
                diags.push(at(message, "give each module file a name of its own"));
            } else {
                modules.by_name.insert(name, source);
            }
        }
        (modules, diags)
    }

    pub fn get(&self, name: &str) -> Option<&Source> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Whether `file` is one of these modules' files.
    pub fn has_file(&self, file: &str) -> bool {
        self.by_name.values().any(|s| s.file == file)
    }

    /// What a machine using module `name` would be told of the module's own file — its shape, its
    /// fields and exits, an output left unset, the modules it uses in turn — for a module no
    /// machine uses (its nodes are compiled only inlined, with a machine's defaults).
    pub fn check_alone(&self, name: &str) -> Vec<Diagnostic> {
        let Some(source) = self.get(name) else { return Vec::new() };
        let mut inliner = Inliner { modules: self, out: Inlined::default(), checked: BTreeSet::new() };
        let node = NodeDef { kind: Some(Kind::Module), module: Some(name.to_string()), ..NodeDef::default() };
        let Some(module) = inliner.module_of(&source.clone(), name, &node, &mut Vec::new()) else {
            return inliner.out.diagnostics;
        };
        // No machine's calls prove its outputs: its own graph does, along every path regardless
        // of what the answers decide.
        for (exit, output, path) in unset_outputs(&module.def) {
            let message = format!("output `{output}` is not set on every path to exit `{exit}`");
            let hint = format!(
                "on the path {} it is never set: set it there (a `set` node) or drop it from `outputs`",
                path.join(" -> ")
            );
            let mut d = diagnostic(source, &["outputs"], Point::Key, message, &hint);
            d.position = output_position(source, &module.def.outputs, &exit, &output).or(d.position);
            (d.node, d.field) = (path.last().cloned(), None);
            inliner.out.diagnostics.push(d);
        }
        inliner.out.diagnostics
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// What inlining did to a machine's definition.
#[derive(Debug, Default)]
pub(super) struct Inlined {
    pub diagnostics: Vec<Diagnostic>,
    /// Inlined node name → the module source it came from (an index in `sources`) and its name there.
    pub origins: HashMap<String, (usize, String)>,
    /// The modules used, each once, in the order first used.
    pub sources: Vec<Source>,
    /// Every `module` node inlined, with the module it uses.
    pub uses: Vec<ModuleUse>,
    /// What each use's `outputs` promise; their `exits` are found once the graph is built, from
    /// `exit_fields`.
    pub duties: Vec<OutputDuty>,
    /// The fields of inlined nodes that named an `exit` node of their module.
    pub exit_fields: Vec<ExitField>,
}

/// A field of an inlined node (`verify_pin/check`, `branches.ok`) that named an `exit` node of
/// its module: the edge it becomes leaves the use `namespace` by `exit`.
#[derive(Debug, Clone)]
pub(super) struct ExitField {
    pub node: String,
    /// The field's path as the compiler names it (`next`, `branches.1`, `rules.0.next`).
    pub field: String,
    pub namespace: String,
    pub exit: String,
    pub exit_node: String,
}

impl Inlined {
    /// The machine's version: its own text's hash without modules; with them, the hash of its text
    /// and every module it uses (by name), so that editing a module gives it a new version.
    pub fn version(&self, source: &Source) -> Version {
        if self.sources.is_empty() {
            return Version::of_text(&source.text);
        }
        let mut sorted: Vec<&Source> = self.sources.iter().collect();
        sorted.sort_by(|a, b| a.file.cmp(&b.file));
        let mut all = source.text.clone();
        for s in sorted {
            all.push_str("\0module\0");
            all.push_str(&s.text);
        }
        Version::of_text(&all)
    }
}

/// Inlines every `module` node of `def` (the machine read from `source`), recursively.
pub(super) fn inline(def: &mut Definition, source: &Source, modules: &Modules) -> Inlined {
    let mut out = Inlined::default();
    let given = [
        ("inputs", def.inputs.is_empty()),
        ("outputs", def.outputs.is_empty()),
        ("exits", def.exits.is_empty()),
    ];
    for (field, empty) in given {
        if !empty {
            let hint = "a machine is used by calls, not by `module` nodes: move it to a module file";
            let d = diagnostic(source, &[field], Point::Key, format!("only a module has `{field}`"), hint);
            out.diagnostics.push(d);
        }
    }
    let mut inliner = Inliner { modules, out, checked: BTreeSet::new() };
    let expanded = inliner.expand(def, source, &mut Vec::new());
    inliner.out.origins = expanded.origins;
    inliner.out.uses = expanded.uses;
    inliner.out.duties = expanded.duties;
    inliner.out.exit_fields = expanded.exit_fields;
    inliner.out
}

struct Inliner<'a> {
    modules: &'a Modules,
    out: Inlined,
    /// The modules whose own file was checked (reported once, however often used).
    checked: BTreeSet<String>,
}

impl Inliner<'_> {
    /// Replaces each `module` node of `def` (read from `file`) by the module's nodes. Returns the
    /// origins of the nodes now in `def` that came from modules and the module uses, both by their
    /// names in `def`. `stack`: the modules being inlined, outermost first.
    fn expand(&mut self, def: &mut Definition, file: &Source, stack: &mut Vec<String>) -> Expanded {
        let mut expanded = Expanded::default();
        let calls: Vec<String> =
            def.nodes.iter().filter(|(_, n)| n.kind == Some(Kind::Module)).map(|(c, _)| c.clone()).collect();
        if calls.is_empty() {
            return expanded;
        }
        let mut renames: HashMap<String, String> = HashMap::new();
        let mut added: Vec<(String, NodeDef)> = Vec::new();
        for call in calls {
            let Some(at) = def.nodes.iter().position(|(c, _)| *c == call) else { continue };
            let node = def.nodes[at].1.clone();
            let Some(module) = self.module_of(file, &call, &node, stack) else {
                // Reported: the node stays, not compiled.
                def.nodes[at].1.broken = true;
                continue;
            };
            let Module { index, def: mut mdef, inner } = module;
            self.check_use(file, &call, &node, &mdef);
            let exit_of: HashMap<String, String> = mdef
                .nodes
                .iter()
                .filter(|(_, n)| n.kind == Some(Kind::Exit))
                .map(|(e, n)| (e.clone(), n.exit.clone().unwrap_or_default()))
                .collect();
            let mapped = node.exits.clone().unwrap_or_default();
            let msource = self.out.sources[index].clone();
            expanded.duties.extend(duties(&msource, &mdef, &call));
            for (local, mut n) in std::mem::take(&mut mdef.nodes) {
                if n.kind == Some(Kind::Exit) {
                    continue;
                }
                let inlined = format!("{call}/{local}");
                map_targets(&mut n, &mut |field, t| match exit_of.get(t) {
                    Some(exit) => {
                        expanded.exit_fields.push(ExitField {
                            node: inlined.clone(),
                            field: field.to_string(),
                            namespace: call.clone(),
                            exit: exit.clone(),
                            exit_node: t.to_string(),
                        });
                        mapped.get(exit).cloned().unwrap_or_else(|| format!("{call}/{t}"))
                    }
                    None => format!("{call}/{t}"),
                });
                let origin = inner.origins.get(&local).cloned().unwrap_or((index, local));
                expanded.origins.insert(inlined.clone(), origin);
                added.push((inlined, n));
            }
            expanded.uses.push(ModuleUse { module: mdef.name.clone(), namespace: call.clone() });
            expanded.uses.extend(
                inner
                    .uses
                    .into_iter()
                    .map(|u| ModuleUse { module: u.module, namespace: format!("{call}/{}", u.namespace) }),
            );
            expanded.duties.extend(
                inner
                    .duties
                    .into_iter()
                    .map(|d| OutputDuty { namespace: format!("{call}/{}", d.namespace), ..d }),
            );
            expanded.exit_fields.extend(inner.exit_fields.into_iter().map(|f| ExitField {
                node: format!("{call}/{}", f.node),
                namespace: format!("{call}/{}", f.namespace),
                ..f
            }));
            let entry = format!("{call}/{}", mdef.start);
            let with = node.with.clone().unwrap_or_default();
            if with.is_empty() {
                def.nodes.remove(at);
                renames.insert(call, entry);
            } else {
                // The using node sets the module's inputs, then enters it.
                let mut fields = FieldSet::default();
                for f in ["values", "next"].iter().filter_map(|f| field_index(f)) {
                    fields.insert(f);
                }
                def.nodes[at].1 = NodeDef {
                    kind: Some(Kind::Set),
                    fields,
                    values: Some(with),
                    next: Some(Next::Node(entry)),
                    ..NodeDef::default()
                };
            }
        }
        def.nodes.extend(added);
        if !renames.is_empty() {
            let rename = |t: &str| renames.get(t).cloned().unwrap_or_else(|| t.to_string());
            for (_, n) in &mut def.nodes {
                map_targets(n, &mut |_, t| rename(t));
            }
            def.start = rename(&def.start);
            for t in def.keys.values_mut() {
                *t = rename(t);
            }
        }
        def.nodes.sort_by(|a, b| a.0.cmp(&b.0));
        expanded
    }

    /// The module a `module` node uses, read, checked and itself expanded; `None` (reported) when
    /// there is none to inline.
    fn module_of(
        &mut self,
        file: &Source,
        call: &str,
        node: &NodeDef,
        stack: &mut Vec<String>,
    ) -> Option<Module> {
        let modules = self.modules;
        let Some(name) = node.module.as_deref() else {
            let hint = "add `module = \"NAME\"`: a module file's `name`";
            self.error(file, &["nodes", call], Point::Key, "a `module` node needs `module`".into(), hint);
            return None;
        };
        let here = ["nodes", call, "module"];
        let Some(msource) = modules.get(name) else {
            let hint = match closest(name, modules.names()) {
                Some(c) => format!("did you mean `{c}`?"),
                None if modules.is_empty() => {
                    "no modules are loaded: put the module in the machines folder's `modules/` or name its folder with `--modules`".into()
                }
                None => format!("the modules loaded are {}", modules.names().collect::<Vec<_>>().join(", ")),
            };
            self.error(file, &here, Point::Value, format!("unknown module `{name}`"), &hint);
            return None;
        };
        if let Some(first) = stack.iter().position(|m| m == name) {
            let cycle: Vec<&str> = stack[first..].iter().map(String::as_str).chain([name]).collect();
            let message = format!("module cycle {}", cycle.join(" -> "));
            let hint = "a module cannot use itself, directly or through another: break the cycle";
            self.error(file, &here, Point::Value, message, hint);
            return None;
        }
        if stack.len() >= MODULE_DEPTH_MAX {
            let message = format!(
                "module `{name}` is nested {} deep; the limit is {MODULE_DEPTH_MAX}",
                stack.len() + 1
            );
            self.error(file, &here, Point::Value, message, "inline a level of modules into its user");
            return None;
        }
        let msource = msource.clone();
        let index = match self.out.sources.iter().position(|s| s.file == msource.file) {
            Some(i) => i,
            None => {
                self.out.sources.push(msource.clone());
                self.out.sources.len() - 1
            }
        };
        let first_use = self.checked.insert(name.to_string());
        let (mut mdef, shaped) = match shape::read(&msource) {
            Ok(read) => read,
            Err(e) => {
                if first_use {
                    let position = e.offset().map(|o| Position::of_offset(&msource.text, o));
                    self.out.diagnostics.push(Diagnostic {
                        severity: Severity::Error,
                        file: msource.file.clone(),
                        position,
                        node: None,
                        field: None,
                        message: e.to_string(),
                        hint: None,
                    });
                }
                return None;
            }
        };
        if first_use {
            for problem in shaped {
                let path: Vec<&str> = problem.path.iter().map(String::as_str).collect();
                let hint = problem.hint.as_deref().unwrap_or("");
                self.error(&msource, &path, problem.point, problem.error.to_string(), hint);
            }
            self.check_module(&msource, &mdef);
        }
        stack.push(name.to_string());
        let inner = self.expand(&mut mdef, &msource, stack);
        stack.pop();
        Some(Module { index, def: mdef, inner })
    }

    /// What a module file must be: a name, a start, exits that its `exit` nodes use, no machine
    /// fields.
    fn check_module(&mut self, file: &Source, def: &Definition) {
        let machine_only = [
            ("numbers", def.numbers.is_empty()),
            ("fallback", def.fallback.is_none()),
            ("allow_hosts", def.allow_hosts.is_empty()),
            ("timezone", def.timezone.is_none()),
            ("settings", def.settings.is_empty()),
            ("variables", def.variables.is_empty()),
            ("keys", def.keys.is_empty()),
            ("language_variable", def.language_variable.is_none()),
            ("voices", def.voices.is_empty()),
        ];
        for (field, absent) in machine_only {
            if !absent {
                let hint = "a module uses the settings, keys, hosts and zone of the machine that uses it: move it there";
                self.error(file, &[field], Point::Key, format!("a module has no `{field}`"), hint);
            }
        }
        // The languages its tables may hold beyond a using machine's: names, as a machine's are.
        for (i, l) in def.languages.iter().enumerate() {
            if !super::languages::is_language(l) {
                let at = i.to_string();
                let hint = "write a short BCP 47 tag: `en`, `es`, `pt-BR`";
                self.error(
                    file,
                    &["languages", &at],
                    Point::Value,
                    format!("`{l}` is not a language name"),
                    hint,
                );
            }
        }
        if def.exits.is_empty() {
            let hint = "list the ways out: `exits = [\"ok\", \"failed\"]`";
            self.error(file, &["exits"], Point::Key, "a module needs `exits`".into(), hint);
        }
        if let Outputs::ByExit(by) = &def.outputs {
            for exit in by.keys().filter(|e| !def.exits.contains(e)) {
                let hint = format!("the module's `exits` are {}", def.exits.join(", "));
                let message = format!("`outputs` names `{exit}`, not one of the module's `exits`");
                self.error(file, &["outputs", exit], Point::Key, message, &hint);
            }
        }
        for (name, n) in &def.nodes {
            match (n.kind, n.exit.as_deref()) {
                (Some(Kind::Exit), None) => {
                    let hint = format!("add `exit = \"...\"`, one of {}", def.exits.join(", "));
                    self.error(
                        file,
                        &["nodes", name],
                        Point::Key,
                        "an `exit` node needs `exit`".into(),
                        &hint,
                    );
                }
                (Some(Kind::Exit), Some(e)) if !def.exits.iter().any(|x| x == e) => {
                    let hint = format!("the module's `exits` are {}", def.exits.join(", "));
                    let message = format!("`{e}` is not one of the module's `exits`");
                    self.error(file, &["nodes", name, "exit"], Point::Value, message, &hint);
                }
                _ => {}
            }
        }
    }

    /// What a `module` node must give its module: every input and nothing else in `with`, every
    /// exit and nothing else in `exits`.
    fn check_use(&mut self, file: &Source, call: &str, node: &NodeDef, module: &Definition) {
        let name = &module.name;
        let with = node.with.clone().unwrap_or_default();
        for input in &module.inputs {
            if !with.contains_key(input) {
                let message = format!("module `{name}` reads input `{input}`, which `with` does not give");
                let hint = format!("add `with = {{ {input} = \"...\" }}`");
                self.error(file, &["nodes", call, "with"], Point::Key, message, &hint);
            }
        }
        for given in with.keys().filter(|g| !module.inputs.contains(g)) {
            let message = format!("`{given}` is not an input of module `{name}`");
            let hint = format!("its inputs are: {}", module.inputs.join(", "));
            self.error(file, &["nodes", call, "with", given], Point::Key, message, &hint);
        }
        let exits = node.exits.clone().unwrap_or_default();
        for exit in &module.exits {
            if !exits.contains_key(exit) {
                let message = format!("exit `{exit}` of module `{name}` is not mapped");
                let hint = format!("add `exits = {{ {exit} = \"NODE\" }}`: every exit leads somewhere");
                self.error(file, &["nodes", call, "exits"], Point::Key, message, &hint);
            }
        }
        for given in exits.keys().filter(|g| !module.exits.contains(g)) {
            let message = format!("`{given}` is not an exit of module `{name}`");
            let hint = format!("its exits are: {}", module.exits.join(", "));
            self.error(file, &["nodes", call, "exits", given], Point::Key, message, &hint);
        }
    }

    fn error(&mut self, file: &Source, path: &[&str], point: Point, message: String, hint: &str) {
        self.out.diagnostics.push(diagnostic(file, path, point, message, hint));
    }
}

/// A module as inlined: its index in `Inlined::sources`, its definition (its own modules already
/// inlined), and what inlining them gave.
struct Module {
    index: usize,
    def: Definition,
    inner: Expanded,
}

#[derive(Debug, Default)]
struct Expanded {
    origins: HashMap<String, (usize, String)>,
    uses: Vec<ModuleUse>,
    duties: Vec<OutputDuty>,
    exit_fields: Vec<ExitField>,
}

/// An error at `path` in `file`.
fn diagnostic(file: &Source, path: &[&str], point: Point, message: String, hint: &str) -> Diagnostic {
    let index = source::index(file);
    let offset = match point {
        Point::Offset(o) => Some(o),
        Point::Key => index.key(path),
        Point::Value => index.value(path),
    };
    let (node, field) = match path {
        ["nodes", node, rest @ ..] => (Some(node.to_string()), (!rest.is_empty()).then(|| rest.join("."))),
        _ => (None, (!path.is_empty()).then(|| path.join("."))),
    };
    Diagnostic {
        severity: Severity::Error,
        file: file.file.clone(),
        position: offset.map(|o| Position::of_offset(&file.text, o)),
        node,
        field,
        message,
        hint: (!hint.is_empty()).then(|| hint.to_string()),
    }
}

/// Every node a node names, rewritten by `f`, which is given the field's path as the compiler
/// names it (`next`, `branches.1`, `rules.0.next`, `next.a`, `else`) and the target.
fn map_targets(n: &mut NodeDef, f: &mut dyn FnMut(&str, &str) -> String) {
    match &mut n.next {
        Some(Next::Node(t)) => *t = f("next", t),
        Some(Next::Variants(variants)) => {
            for (v, t) in variants.iter_mut() {
                *t = f(&format!("next.{v}"), t);
            }
        }
        None => {}
    }
    let named = [
        ("invalid", &mut n.invalid),
        ("no_input", &mut n.no_input),
        ("default", &mut n.default),
        ("failure", &mut n.failure),
        ("else", &mut n.otherwise),
        ("not_number", &mut n.not_number),
    ];
    for (field, target) in named {
        if let Some(t) = target {
            *t = f(field, t);
        }
    }
    for (key, t) in n.branches.iter_mut().flatten() {
        *t = f(&format!("branches.{key}"), t);
    }
    for t in n.exits.iter_mut().flatten().map(|(_, t)| t) {
        *t = f("exits", t);
    }
    for (i, rule) in n.rules.iter_mut().flatten().enumerate() {
        if let Some(t) = &mut rule.next {
            *t = f(&format!("rules.{i}.next"), t);
        }
    }
}

/// Where `outputs` (in `file`) promises `output` on `exit`: its entry in the list.
fn output_position(file: &Source, outputs: &Outputs, exit: &str, output: &str) -> Option<Position> {
    let at = |list: &[String]| list.iter().position(|o| o == output).map(|i| i.to_string());
    let path: Vec<String> = match outputs {
        Outputs::All(all) => ["outputs".to_string()].into_iter().chain(at(all)).collect(),
        Outputs::ByExit(by) => ["outputs".to_string(), exit.to_string()]
            .into_iter()
            .chain(by.get(exit).and_then(|l| at(l)))
            .collect(),
    };
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    source::index(file).value(&path).map(|o| Position::of_offset(&file.text, o))
}

/// What module `def` (read from `file`) promises by its `outputs`, for its use `call`: one duty
/// per output that is not also an input, with the exits it is promised on and where. Their
/// edges are found once the graph is built.
fn duties(file: &Source, def: &Definition, call: &str) -> Vec<OutputDuty> {
    if def.outputs.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for output in def.outputs.names().into_iter().filter(|o| !def.inputs.contains(o)) {
        let required = def
            .exits
            .iter()
            .filter(|exit| def.outputs.required(exit, output))
            .map(|exit| {
                let position = output_position(file, &def.outputs, exit, output);
                (exit.clone(), Origin { file: file.file.clone(), position })
            })
            .collect();
        out.push(OutputDuty {
            module: def.name.clone(),
            namespace: call.to_string(),
            output: output.clone(),
            required,
            exits: Vec::new(),
        });
    }
    out
}

/// The outputs of a module (its own modules inlined) that some path from its start to an exit
/// leaves unset: the exit, the output and such a path (node names, the exit last), for a module
/// no machine uses. The variables an edge sets are those `flow` counts: an input's on `next`, a
/// script's stored ones on an answer, a set's on `next` (what its answers decide is not known
/// here: an answer without a stored key is counted as setting it; the explorer knows better for
/// a used module). A module with a node that did not parse is not judged.
fn unset_outputs(def: &Definition) -> Vec<(String, String, Vec<String>)> {
    if def.outputs.is_empty() || def.nodes.iter().any(|(_, n)| n.broken || n.kind.is_none()) {
        return Vec::new();
    }
    // node → (target, variables the edge sets)
    let mut edges: HashMap<&str, Vec<(String, Vec<String>)>> = HashMap::new();
    for (name, n) in &def.nodes {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut push = |t: Option<&String>, sets: Vec<String>| {
            if let Some(t) = t {
                out.push((t.clone(), sets));
            }
        };
        match n.kind {
            Some(Kind::Input) => {
                push(n.next.as_ref().and_then(Next::node), n.variable.iter().cloned().collect());
                push(n.invalid.as_ref(), Vec::new());
                push(n.no_input.as_ref(), Vec::new());
            }
            Some(Kind::Script) => {
                let stored: Vec<String> = n.store.iter().flat_map(|s| s.keys()).cloned().collect();
                for t in n.branches.iter().flatten().map(|(_, t)| t) {
                    push(Some(t), stored.clone());
                }
                push(n.default.as_ref(), stored);
                push(n.failure.as_ref(), Vec::new());
                push(n.no_input.as_ref(), Vec::new());
            }
            Some(Kind::Set) => {
                let set = n.values.iter().flat_map(|v| v.keys()).chain(n.add.iter().flat_map(|a| a.keys()));
                push(n.next.as_ref().and_then(Next::node), set.cloned().collect());
                push(n.not_number.as_ref(), Vec::new());
            }
            _ => {
                match &n.next {
                    Some(Next::Node(t)) => push(Some(t), Vec::new()),
                    Some(Next::Variants(variants)) => {
                        variants.values().for_each(|t| push(Some(t), Vec::new()))
                    }
                    None => {}
                }
                for t in [&n.invalid, &n.no_input, &n.failure, &n.otherwise] {
                    push(t.as_ref(), Vec::new());
                }
                for t in n.branches.iter().flatten().map(|(_, t)| t) {
                    push(Some(t), Vec::new());
                }
                for rule in n.rules.iter().flatten() {
                    push(rule.next.as_ref(), Vec::new());
                }
            }
        }
        edges.insert(name.as_str(), out);
    }
    let exits: BTreeMap<&str, &str> = def
        .nodes
        .iter()
        .filter(|(_, n)| n.kind == Some(Kind::Exit))
        .map(|(e, n)| (e.as_str(), n.exit.as_deref().unwrap_or("")))
        .collect();
    let mut problems = Vec::new();
    for output in def.outputs.names().into_iter().filter(|o| !def.inputs.contains(o)) {
        // A breadth-first walk on the edges that do not set `output`: any exit it reaches is
        // reached on a path that leaves it unset.
        let mut before: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([def.start.as_str()]);
        let mut seen: BTreeSet<&str> = BTreeSet::from([def.start.as_str()]);
        while let Some(at) = queue.pop_front() {
            if let Some(exit) = exits.get(at) {
                if !def.outputs.required(exit, output) {
                    continue;
                }
                let mut path = vec![at.to_string()];
                let mut here = at;
                while let Some(prev) = before.get(here) {
                    path.push(prev.to_string());
                    here = prev;
                }
                path.reverse();
                problems.push((exit.to_string(), output.clone(), path));
                continue;
            }
            for (t, sets) in edges.get(at).into_iter().flatten() {
                if !sets.contains(output) && seen.insert(t.as_str()) {
                    before.insert(t.as_str(), at);
                    queue.push_back(t.as_str());
                }
            }
        }
    }
    problems
}
