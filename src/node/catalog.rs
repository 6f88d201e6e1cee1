//! The catalog: machine files read from disk, compiled, proven (`explore`), and kept by name and
//! by virtual number. A machine with any error or violated proof is not kept.
//!
//! This is the one place that reads machine files; the compiler itself never touches the disk.
//! A folder's `policies.toml` is not a machine: its policies are added to those of every machine
//! file beside it before the proof (`policies_beside`). Nor is a scenario file (`*.calls.toml`,
//! `phonetree test`) beside the machines.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::machine::hosts::AllowedHost;
use crate::machine::policy::{self, POLICIES_FILE, Policy};
use crate::machine::{self, Compiled, Diagnostic, Machine, Modules, Severity, Source, Voices};
use crate::proof::explore::{self, Report};
use crate::proof::scenario;

/// Most machine files one catalog loads: a node serving thousands of menus wants a database.
pub const FILES_MAX: usize = 10_000;

/// The compiled machines of a set of files, and every diagnostic found while loading them.
#[derive(Debug, Default)]
pub struct Catalog {
    machines: BTreeMap<String, (Arc<Machine>, Source)>,
    /// Virtual number (digits only) → machine name.
    by_number: BTreeMap<String, String>,
    /// Every diagnostic, errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// The files read.
    pub files: Vec<PathBuf>,
    /// The proof of every machine that compiled, with the file it came from.
    pub reports: Vec<(String, Report)>,
    /// The voice profiles machines are checked against (`None`: the bundled list).
    voices: Option<Voices>,
    /// The node's `--script-allow`, which script URLs are checked with (the host rule).
    script_allow: Vec<AllowedHost>,
    /// The modules `module` nodes may use (`--modules`, else each machines folder's `modules/`).
    modules: Modules,
    /// The modules some machine read so far uses (compiled, or partly with errors).
    used_modules: BTreeSet<String>,
    /// The policies of each folder's `policies.toml` read so far (empty without one).
    policies: HashMap<PathBuf, Vec<Policy>>,
}

/// A voices file (one voice profile name a line), or why it is not one.
pub fn read_voices(file: &Path) -> Result<Voices, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read the voices file: {e}"))?;
    Voices::parse(&text, &file.display().to_string()).map_err(|e| e.to_string())
}

impl Catalog {
    /// Loads every `.toml` and `.json` file among `paths` (files, or folders read one level deep).
    pub fn load(paths: &[PathBuf]) -> Catalog {
        Catalog::load_with(paths, None, &[], None)
    }

    /// `load`, checking voice profiles against the voices file `voices` (one name a line, as
    /// `phonetree voices` writes it) instead of the bundled list (a file that cannot be read as
    /// one is an error), and script URLs with the node's `script_allow` (`--script-allow`); the
    /// modules machines use are read from `modules` (`--modules`), else from `modules/` beside
    /// the machines (see `modules_dirs`).
    pub fn load_with(
        paths: &[PathBuf],
        voices: Option<&Path>,
        script_allow: &[AllowedHost],
        modules: Option<&Path>,
    ) -> Catalog {
        let mut catalog = Catalog { script_allow: script_allow.to_vec(), ..Catalog::default() };
        let (found, problems) = read_modules(&modules_dirs(paths, modules));
        catalog.modules = found;
        catalog.diagnostics.extend(problems);
        if let Some(file) = voices {
            match read_voices(file) {
                Ok(v) => catalog.voices = Some(v),
                Err(why) => catalog.diagnostics.push(file_error(file, why)),
            }
        }
        let mut files = Vec::new();
        for path in paths {
            match list(path) {
                Ok(found) => {
                    files.extend(found.into_iter().filter(|f| !is_policies_file(f) && !is_scenario_file(f)));
                }
                Err(e) => catalog.diagnostics.push(file_error(path, format!("cannot read: {e}"))),
            }
        }
        if files.len() > FILES_MAX {
            catalog.diagnostics.push(file_error(
                &paths[0],
                format!("{} machine files; the limit is {FILES_MAX}", files.len()),
            ));
            return catalog;
        }
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => catalog.add(Source::new(file.display().to_string(), text)),
                Err(e) => catalog.diagnostics.push(file_error(&file, format!("cannot read: {e}"))),
            }
            catalog.files.push(file);
        }
        catalog.check_unused_modules();
        catalog.check_callbacks();
        catalog
    }

    /// Every transfer's `on_unanswered` names a machine loaded with it (the callback runs it).
    fn check_callbacks(&mut self) {
        let mut missing = Vec::new();
        for (m, source) in self.machines.values() {
            for (node, cb) in m.callbacks() {
                let callee = self.machines.get(&cb.machine);
                if callee.is_some_and(|(c, _)| !c.numbers().is_empty()) {
                    continue;
                }
                // The machine's name as written after the node's `on_unanswered`.
                let quoted = format!("\"{}\"", cb.machine);
                let after = source.text.find("on_unanswered").unwrap_or(0);
                let position = source.text[after..]
                    .find(&quoted)
                    .map(|at| crate::machine::diagnostic::Position::of_offset(&source.text, after + at + 1));
                let names: Vec<&str> = self.machines.keys().map(String::as_str).collect();
                missing.push(Diagnostic {
                    severity: Severity::Error,
                    file: source.file.clone(),
                    position,
                    node: Some(node.to_string()),
                    field: Some("on_unanswered.machine".into()),
                    message: match callee {
                        Some(_) => format!(
                            "`on_unanswered` names machine `{}`, which has no `numbers` to call from",
                            cb.machine
                        ),
                        None => format!(
                            "`on_unanswered` names machine `{}`, which is not loaded with this one",
                            cb.machine
                        ),
                    },
                    hint: Some(match callee {
                        Some(_) => {
                            "give it `numbers = [\"+65...\"]`: its first number is the callback's caller ID"
                                .to_string()
                        }
                        None => crate::machine::diagnostic::closest(&cb.machine, names.iter().copied())
                            .map_or_else(
                                || "name a machine of the same folder (its `name`)".to_string(),
                                |c| format!("did you mean `{c}`?"),
                            ),
                    }),
                });
            }
        }
        self.diagnostics.extend(missing);
    }

    /// A module no machine uses is still checked on its own: a warning that nothing uses it, and
    /// what a machine using it would be told of its file, as warnings (nothing runs it).
    fn check_unused_modules(&mut self) {
        let unused: Vec<String> =
            self.modules.names().filter(|n| !self.used_modules.contains(*n)).map(str::to_string).collect();
        for name in unused {
            let Some(source) = self.modules.get(&name) else { continue };
            self.diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                file: source.file.clone(),
                position: None,
                node: None,
                field: None,
                message: format!("module `{name}` is used by no machine: checked on its own"),
                hint: Some(format!(
                    "use it from a machine (`kind = \"module\"`, `module = \"{name}\"`), or remove the file"
                )),
            });
            for mut d in self.modules.check_alone(&name) {
                d.severity = Severity::Warning;
                if !self.diagnostics.contains(&d) {
                    self.diagnostics.push(d);
                }
            }
        }
    }

    /// Compiles `source` as this catalog compiles its machines (its voices and `--script-allow`).
    pub fn compile(&self, source: &Source) -> Compiled {
        let voices = self.voices.as_ref().unwrap_or(Voices::bundled());
        let options = machine::Options { voices, script_allow: &self.script_allow, modules: &self.modules };
        machine::compile_with(source, options)
    }

    /// `compile`, with `modules` in place of the catalog's (a stored version's own).
    pub fn compile_with_modules(&self, source: &Source, modules: &Modules) -> Compiled {
        let voices = self.voices.as_ref().unwrap_or(Voices::bundled());
        machine::compile_with(source, machine::Options { voices, script_allow: &self.script_allow, modules })
    }

    /// The modules the catalog's machines may use.
    pub fn modules(&self) -> &Modules {
        &self.modules
    }

    /// Compiles one source into the catalog; names and numbers must be unique across machines.
    pub fn add(&mut self, source: Source) {
        let compiled = self.compile(&source);
        if let Some(m) = compiled.machine.as_ref().or(compiled.partial.as_ref()) {
            self.used_modules.extend(m.modules().iter().map(|u| u.module.clone()));
        }
        // A module's own problems are told once, however many machines use it.
        for d in compiled.diagnostics {
            if !(self.modules.has_file(&d.file) && self.diagnostics.contains(&d)) {
                self.diagnostics.push(d);
            }
        }
        let folder = Path::new(&source.file).parent().map(Path::to_path_buf).unwrap_or_default();
        if !self.policies.contains_key(&folder) {
            let (policies, diagnostics) = policies_beside(Path::new(&source.file));
            self.diagnostics.extend(diagnostics);
            self.policies.insert(folder.clone(), policies);
        }
        let Some(mut m) = compiled.machine else {
            // A loop with no exit is reported with the other errors, not once they are fixed.
            if let Some(partial) = &compiled.partial {
                let traps = explore::traps_of(partial);
                self.diagnostics.extend(traps.iter().map(|v| v.diagnostic(&source, partial, &self.modules)));
            }
            return;
        };
        m.add_policies(self.policies.get(&folder).map_or(&[], Vec::as_slice));
        let report = explore::explore(&m);
        let proven = report.proven();
        self.diagnostics.extend(report.violations.iter().map(|v| v.diagnostic(&source, &m, &self.modules)));
        self.reports.push((source.file.clone(), report));
        if !proven {
            return;
        }
        // A literal transfer destination passes the outbound guard once, here: E.164, not barred.
        for id in m.graph.node_indices() {
            let node = &m.graph[id];
            let crate::machine::NodeKind::Transfer(t) = &node.kind else { continue };
            let Some(to) = t.destination.as_literal() else { continue };
            if let Err(refused) = super::guard::check_static(to) {
                self.diagnostics.push(file_error(
                    Path::new(&source.file),
                    format!(
                        "machine `{}` node `{}`: the transfer's destination is refused: {refused}; write another number",
                        m.name(),
                        node.name
                    ),
                ));
                return;
            }
        }
        if self.machines.contains_key(m.name()) {
            self.diagnostics.push(file_error(
                Path::new(&source.file),
                format!("a machine named `{}` is already loaded from another file", m.name()),
            ));
            return;
        }
        for number in m.numbers() {
            if let Some(other) = self.by_number.get(digits(number)) {
                self.diagnostics.push(file_error(
                    Path::new(&source.file),
                    format!("number {number} is already answered by machine `{other}`"),
                ));
                return;
            }
        }
        for number in m.numbers() {
            self.by_number.insert(digits(number).to_string(), m.name().to_string());
        }
        self.machines.insert(m.name().to_string(), (Arc::new(m), source));
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Machine>> {
        self.machines.get(name).map(|(m, _)| m)
    }

    /// The source a loaded machine was compiled from.
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.machines.get(name).map(|(_, s)| s)
    }

    /// The machine that answers `number` (`+6568888888` and `6568888888` are the same number).
    pub fn by_number(&self, number: &str) -> Option<&Arc<Machine>> {
        self.by_number.get(digits(number)).and_then(|name| self.get(name))
    }

    pub fn machines(&self) -> impl Iterator<Item = &Arc<Machine>> {
        self.machines.values().map(|(m, _)| m)
    }

    pub fn len(&self) -> usize {
        self.machines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }
}

/// The folders modules are read from: `explicit` (`--modules DIR`), else `modules/` in each
/// machines folder (beside each machine file) that has one.
pub fn modules_dirs(paths: &[PathBuf], explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![dir.to_path_buf()];
    }
    let beside = |p: &PathBuf| {
        if p.is_dir() { p.join("modules") } else { p.parent().unwrap_or(Path::new(".")).join("modules") }
    };
    let mut dirs: Vec<PathBuf> = paths.iter().map(beside).filter(|d| d.is_dir()).collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Every `.toml` and `.json` module file in `dirs`, by its `name`; a folder or file that cannot be
/// read, and two modules of one name, are diagnostics.
pub fn read_modules(dirs: &[PathBuf]) -> (Modules, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut sources = Vec::new();
    for dir in dirs {
        let files = match list(dir) {
            Ok(files) => files,
            Err(e) => {
                diagnostics.push(file_error(dir, format!("cannot read the modules folder: {e}")));
                continue;
            }
        };
        if sources.len() + files.len() > machine::MODULES_MAX {
            diagnostics.push(file_error(dir, format!("more than {} module files", machine::MODULES_MAX)));
            break;
        }
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => sources.push(Source::new(file.display().to_string(), text)),
                Err(e) => diagnostics.push(file_error(&file, format!("cannot read: {e}"))),
            }
        }
    }
    let (modules, problems) = Modules::of(sources);
    diagnostics.extend(problems);
    (modules, diagnostics)
}

/// The policies of the `policies.toml` in the folder of machine file `file` (none without one), and
/// the problems of that file.
pub fn policies_beside(file: &Path) -> (Vec<Policy>, Vec<Diagnostic>) {
    let path = file.parent().unwrap_or(Path::new("")).join(POLICIES_FILE);
    if !path.is_file() {
        return (Vec::new(), Vec::new());
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => policy::read_file(&Source::new(path.display().to_string(), text)),
        Err(e) => (Vec::new(), vec![file_error(&path, format!("cannot read: {e}"))]),
    }
}

/// A folder's policies file, which is never loaded as a machine.
fn is_policies_file(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == POLICIES_FILE)
}

/// A scenario file (`phonetree test`), which is never loaded as a machine.
fn is_scenario_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(scenario::FILE_SUFFIX))
}

/// A number without its leading `+`.
fn digits(number: &str) -> &str {
    number.trim().trim_start_matches('+')
}

fn list(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("toml" | "json")))
        .collect();
    files.sort();
    Ok(files)
}

fn file_error(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: path.display().to_string(),
        position: None,
        node: None,
        field: None,
        message,
        hint: None,
    }
}
