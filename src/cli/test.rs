//! `phonetree test`: finds scenario files (`*.calls.toml`) and recorded calls (`calls export`'s
//! JSON), loads the machines they name, plays each scenario and prints what failed with a diff;
//! `--update` writes golden transcripts back, `--junit` a JUnit XML report. Reading scenarios,
//! playing and judging them is `proof::scenario`'s.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use phonetree::engine::transcript::Call;
use phonetree::machine::{Diagnostic, Machine, Severity, Source};
use phonetree::node::guard::{self, CallPolicy};
use phonetree::proof::history;
use phonetree::proof::scenario::{self, Case, Scenario, Suite, Verdict};

use super::simulate;

/// Most scenario files and recorded calls one run reads.
const FILES_MAX: usize = 10_000;
/// The folders read when no PATH is given: the machines folder is added before it.
const TESTS_DIR: &str = "tests";
/// A folder's subfolder whose scenario files are read with its own (`machines/tests/`).
const SCENARIOS_SUBDIR: &str = "tests";

#[derive(clap::Args)]
pub struct Args {
    /// Scenario files (`*.calls.toml`), recorded calls (`phonetree calls export` JSON), or folders
    /// whose `*.calls.toml` (and their `tests/` subfolder's) are read. Default: the machines folder
    /// and `tests/`.
    paths: Vec<PathBuf>,
    /// Rewrite each scenario's golden `transcript` with what it plays now (added where missing);
    /// the rest of the file stays as written.
    #[arg(long)]
    update: bool,
    /// Write a JUnit XML report here (a `<testsuite>` per file, a `<testcase>` per scenario).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Where machine names are looked up (then the scenario file's folder and the one above it).
    #[arg(long, env = "PHONETREE_MACHINES", default_value = "machines")]
    machines: PathBuf,
    /// Folder of the modules machines use (`module` nodes). Default: `modules/` beside the machine
    /// file.
    #[arg(long, env = "PHONETREE_MODULES")]
    modules: Option<PathBuf>,
    /// The voice profiles `voice_profile`s are checked against (as `simulate --voices`).
    #[arg(long, env = "PHONETREE_VOICES")]
    voices: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no scenario file (`*{}`) in {}", scenario::FILE_SUFFIX, .0.join(", "))]
    Nothing(Vec<String>),
    #[error("more than {FILES_MAX} scenario files")]
    TooMany,
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{}: cannot update the transcripts: {why}", path.display())]
    Update { path: PathBuf, why: String },
    /// The lines on stdout say which and why.
    #[error("{failed} of {all} test(s) failed, {errors} could not be run")]
    Failed { failed: usize, errors: usize, all: usize },
}

pub fn run(args: &Args) -> Result<(), Error> {
    let (files, mut problems) = files(args)?;
    let mut machines = Machines { args, loaded: BTreeMap::new() };
    let mut suites = Vec::new();
    let mut stdout = std::io::stdout().lock();
    // Problems are printed with their file's scenarios; those of PATHs, first.
    let mut printed = 0;
    for file in &files {
        let suite = if file.extension().is_some_and(|e| e == "json") {
            recorded_call(file, &mut machines)
        } else {
            scenario_file(file, args.update, &mut machines, &mut problems)?
        };
        for d in &problems[printed..] {
            let _ = writeln!(stdout, "{d}");
        }
        printed = problems.len();
        for c in &suite.cases {
            let _ = match &c.verdict {
                Verdict::Passed => writeln!(stdout, "ok    {}: {}", suite.name, c.name),
                Verdict::Failed { detail, .. } => {
                    writeln!(stdout, "FAIL  {}: {}\n{}", suite.name, c.name, indent(detail))
                }
                Verdict::Error { detail, .. } => {
                    writeln!(stdout, "ERROR {}: {}\n{}", suite.name, c.name, indent(detail))
                }
            };
        }
        suites.push(suite);
    }
    for d in &problems[printed..] {
        let _ = writeln!(stdout, "{d}");
    }
    // A file's problems are one error case of its suite in the report.
    let mut by_file: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for d in problems.iter().filter(|d| d.is_error()) {
        by_file.entry(d.file.as_str()).or_default().push(d.to_string());
    }
    for (file, found) in by_file {
        let message = format!("{} problem(s) in the file", found.len());
        let case = Case {
            name: "(file)".into(),
            seconds: 0.0,
            verdict: Verdict::Error { message, detail: found.join("\n") },
        };
        match suites.iter_mut().find(|s| s.name == file) {
            Some(s) => s.cases.push(case),
            None => suites.push(Suite { name: file.to_string(), cases: vec![case] }),
        }
    }
    let all: Vec<&Case> = suites.iter().flat_map(|s| &s.cases).collect();
    let failed = all.iter().filter(|c| matches!(c.verdict, Verdict::Failed { .. })).count();
    let errors = all.iter().filter(|c| matches!(c.verdict, Verdict::Error { .. })).count();
    let _ = writeln!(stdout, "{} passed, {failed} failed, {errors} errors", all.len() - failed - errors);
    if let Some(path) = &args.junit {
        std::fs::write(path, scenario::junit(&suites))
            .map_err(|source| Error::Write { path: path.clone(), source })?;
    }
    if failed + errors > 0 {
        return Err(Error::Failed { failed, errors, all: all.len() });
    }
    Ok(())
}

/// The files to run (sorted, each once), and a problem for each PATH that cannot be read.
fn files(args: &Args) -> Result<(Vec<PathBuf>, Vec<Diagnostic>), Error> {
    let defaults = args.paths.is_empty();
    let paths =
        if defaults { vec![args.machines.clone(), PathBuf::from(TESTS_DIR)] } else { args.paths.clone() };
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in &paths {
        if path.is_dir() {
            for dir in [path.clone(), path.join(SCENARIOS_SUBDIR)] {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && p.to_str().is_some_and(|n| n.ends_with(scenario::FILE_SUFFIX)))
                    .collect();
                found.sort();
                files.extend(found);
            }
        } else if path.is_file() {
            files.push(path.clone());
        } else if !defaults {
            problems.push(file_error(&path.display().to_string(), None, "no such file or folder".into()));
        }
        if files.len() > FILES_MAX {
            return Err(Error::TooMany);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|f| seen.insert(f.clone()));
    if files.is_empty() && problems.is_empty() {
        return Err(Error::Nothing(paths.iter().map(|p| p.display().to_string()).collect()));
    }
    Ok((files, problems))
}

/// Runs one scenario file's scenarios (writing their transcripts back with `update`); its
/// problems go to `problems`.
fn scenario_file(
    file: &Path,
    update: bool,
    machines: &mut Machines<'_>,
    problems: &mut Vec<Diagnostic>,
) -> Result<Suite, Error> {
    let name = file.display().to_string();
    let mut suite = Suite { name: name.clone(), cases: Vec::new() };
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            problems.push(file_error(&name, None, format!("cannot read: {e}")));
            return Ok(suite);
        }
    };
    let source = Source::new(name.clone(), text);
    let (scenarios, found) = scenario::parse(&source);
    problems.extend(found);
    let mut rewrite = Vec::new();
    for s in &scenarios {
        let started = Instant::now();
        let verdict = match machines.get(file, s) {
            Err(d) => Verdict::Error { message: d.message.clone(), detail: d.to_string() },
            Ok(None) => {
                let message =
                    format!("machine `{}` does not compile (its diagnostics are on stderr)", s.machine);
                Verdict::Error { detail: message.clone(), message }
            }
            Ok(Some(m)) => play(s, &m, update, &mut rewrite),
        };
        suite.cases.push(Case { name: s.name.clone(), seconds: started.elapsed().as_secs_f64(), verdict });
    }
    if update && !rewrite.is_empty() {
        let text = scenario::update(&source.text, &rewrite)
            .map_err(|why| Error::Update { path: file.into(), why })?;
        std::fs::write(file, text).map_err(|source| Error::Write { path: file.into(), source })?;
        println!("updated {} transcript(s) in {name}", rewrite.len());
    }
    Ok(suite)
}

/// Plays one scenario and judges it; with `update`, a transcript to write goes to `rewrite`.
fn play(s: &Scenario, m: &Machine, update: bool, rewrite: &mut Vec<(usize, String)>) -> Verdict {
    let policy =
        CallPolicy { allow_prefixes: s.call_allow_prefix.clone(), ..CallPolicy::default() }.checked();
    let policy = match policy {
        Ok(p) => p,
        Err(e) => {
            return Verdict::Error { message: e.to_string(), detail: format!("`call_allow_prefix`: {e}") };
        }
    };
    let dial = |to: &str| guard::check_destination(&policy, to).map_err(|refused| refused.to_string());
    let played = match scenario::play(s, m, Some(&dial)) {
        Ok(p) => p,
        Err(why) => return Verdict::Error { message: why.clone(), detail: why },
    };
    if update && scenario::stale(s, &played) {
        rewrite.push((s.index, played.transcript_text()));
    }
    let failures = scenario::check(s, &played, update);
    match failures.first() {
        None => Verdict::Passed,
        Some(first) => Verdict::Failed {
            message: first.to_string().lines().next().unwrap_or_default().trim_end_matches(':').to_string(),
            detail: failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
        },
    }
}

/// A recorded call (`calls export`) as one test: replayed through its machine, it must come out
/// the same.
fn recorded_call(file: &Path, machines: &mut Machines<'_>) -> Suite {
    let name = file.display().to_string();
    let started = Instant::now();
    let call = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}")).and_then(|text| {
        serde_json::from_str::<Call>(&text)
            .map_err(|e| format!("not a recorded call (`phonetree calls export` writes them): {e}"))
    });
    let (case, verdict) = match call {
        Err(why) => {
            ("(file)".to_string(), Verdict::Error { message: why.clone(), detail: format!("{name}: {why}") })
        }
        Ok(call) => {
            let case = format!("session {}", call.session);
            let verdict = match machines.by_name(&call.machine, file) {
                Err(why) => Verdict::Error { message: why.clone(), detail: why },
                Ok(None) => {
                    let message = format!(
                        "machine `{}` does not compile (its diagnostics are on stderr)",
                        call.machine
                    );
                    Verdict::Error { detail: message.clone(), message }
                }
                Ok(Some(m)) => {
                    let told = history::replay_told(&m, &call);
                    match told.difference {
                        None => Verdict::Passed,
                        Some(d) => {
                            let recorded: Vec<&str> = told.recorded.iter().map(String::as_str).collect();
                            let replayed: Vec<&str> = told.replayed.iter().map(String::as_str).collect();
                            let diff = scenario::unified_diff(&recorded, &replayed, "recorded", "replayed");
                            Verdict::Failed { message: d.to_string(), detail: format!("{d}\n{diff}") }
                        }
                    }
                }
            };
            (case, verdict)
        }
    };
    Suite { name, cases: vec![Case { name: case, seconds: started.elapsed().as_secs_f64(), verdict }] }
}

/// The machines scenarios name, each loaded (compiled and proven, as `simulate` loads it) once.
struct Machines<'a> {
    args: &'a Args,
    /// By file: `None` for one that does not compile.
    loaded: BTreeMap<PathBuf, Option<std::rc::Rc<Machine>>>,
}

impl Machines<'_> {
    /// The machine scenario `s` of `file` names, or where it cannot be found.
    fn get(&mut self, file: &Path, s: &Scenario) -> Result<Option<std::rc::Rc<Machine>>, Box<Diagnostic>> {
        let dir = file.parent().unwrap_or(Path::new(""));
        let path = if s.machine.ends_with(".toml") || s.machine.ends_with(".json") {
            Some(dir.join(&s.machine)).filter(|p| p.is_file())
        } else {
            self.find(&s.machine, dir)
        };
        let Some(path) = path else {
            let hint = format!(
                "name a machine of `{}` (--machines), of the scenario file's folder or of the one above it, or give a machine file relative to the scenario file: `machine = \"../{}.toml\"`",
                self.args.machines.display(),
                s.machine
            );
            let mut d =
                file_error(&file.display().to_string(), s.machine_at, format!("no machine `{}`", s.machine));
            d.field = Some(format!("scenario.{}.machine", s.index));
            d.hint = Some(hint);
            return Err(Box::new(d));
        };
        Ok(self.load(&path))
    }

    /// The machine a recorded call was on, by name.
    fn by_name(&mut self, name: &str, file: &Path) -> Result<Option<std::rc::Rc<Machine>>, String> {
        let dir = file.parent().unwrap_or(Path::new(""));
        match self.find(name, dir) {
            Some(path) => Ok(self.load(&path)),
            None => Err(format!(
                "{}: no machine `{name}` in {} (pass --machines)",
                file.display(),
                self.args.machines.display()
            )),
        }
    }

    /// NAME.toml or NAME.json in the machines folder, else beside the scenario, else above it.
    fn find(&self, name: &str, dir: &Path) -> Option<PathBuf> {
        let dirs = [self.args.machines.as_path(), dir, dir.parent().unwrap_or(dir)];
        dirs.iter()
            .flat_map(|d| ["toml", "json"].map(|ext| d.join(format!("{name}.{ext}"))))
            .find(|p| p.is_file())
    }

    fn load(&mut self, path: &Path) -> Option<std::rc::Rc<Machine>> {
        let args = self.args;
        self.loaded
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                let voices = super::voices_file(args.voices.clone());
                let name = path.display().to_string();
                let loaded =
                    simulate::load(&name, &args.machines, args.modules.as_deref(), voices.as_deref(), &[]);
                match loaded {
                    Ok(m) => Some(std::rc::Rc::new(m)),
                    Err(e) => {
                        eprintln!("{e}");
                        None
                    }
                }
            })
            .clone()
    }
}

fn file_error(
    file: &str,
    position: Option<phonetree::machine::diagnostic::Position>,
    message: String,
) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.into(),
        position,
        node: None,
        field: None,
        message,
        hint: None,
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
