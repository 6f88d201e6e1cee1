//! Scenario files (`*.calls.toml`, `phonetree test`): calls written down with what the caller must
//! hear and where the call must end, played through `simulate` as `phonetree simulate` plays them.
//!
//! Pure: `parse` reads a file's text into scenarios and every problem in it (at its line and
//! column), `play` and `check` run one against a compiled machine, `update` rewrites golden
//! transcripts keeping the rest of the text, `unified_diff` and `junit` write what a person or a
//! CI system reads. Finding files and machines, the clock and the outbound guard are the command
//! line's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::simulate::{self, Canned, Guard, Input, Parties};
use crate::callflow::{Action, Callflow};
use crate::engine::Answer;
use crate::export::xml_text;
use crate::machine::diagnostic::{Position, closest};
use crate::machine::source::toml_message;
use crate::machine::{Diagnostic, Machine, Severity, Source};

/// How a scenario file's name ends: `check` and `serve` never read such a file as a machine.
pub const FILE_SUFFIX: &str = ".calls.toml";
/// Largest scenario file read: thousands of scenarios with their transcripts.
const FILE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most scenarios one file holds.
const SCENARIOS_PER_FILE_MAX: usize = 1000;
/// Most `hears` expectations of one scenario: far more than any call's prompts.
const HEARS_MAX: usize = 1000;
/// Largest compiled `regex` expectation (the regex crate's size limit): a pattern for one line
/// of speech is far smaller.
const REGEX_BYTES_MAX: usize = 1024 * 1024;
/// Lines of context around each change in a unified diff, as `diff -u` gives.
const DIFF_CONTEXT: usize = 3;
/// Most cells of the line table a diff fills (lines expected × lines played, once the common
/// head and tail are left out): past it the differing middle is shown whole, removed then added.
const DIFF_CELLS_MAX: usize = 4_000_000;
/// Most problems listed for one file.
const DIAGNOSTICS_MAX: usize = 256;

/// The fields of a scenario, for "did you mean" hints and the unknown-field message.
const SCENARIO_FIELDS: &[&str] = &[
    "name",
    "machine",
    "from",
    "to",
    "session",
    "at",
    "outbound",
    "resume_from",
    "vars",
    "call_allow_prefix",
    "inputs",
    "answers",
    "hears",
    "ends",
    "transcript",
];
/// The fields of the file around its scenarios.
const FILE_FIELDS: &[&str] = &["machine", "scenario"];

/// What a line of speech, or the end of a call, must be.
#[derive(Debug, Clone)]
pub enum Match {
    /// The whole text.
    Exact(String),
    /// Somewhere in the text.
    Contains(String),
    /// A regular expression found in the text (`^...$` for the whole).
    Regex(regex::Regex),
}

impl Match {
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Match::Exact(s) => text == s,
            Match::Contains(s) => text.contains(s.as_str()),
            Match::Regex(r) => r.is_match(text),
        }
    }
}

impl std::fmt::Display for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Match::Exact(s) => write!(f, "{s:?}"),
            Match::Contains(s) => write!(f, "text containing {s:?}"),
            Match::Regex(r) => write!(f, "text matching /{}/", r.as_str()),
        }
    }
}

/// One scenario: a call, and what must come of it.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    /// Its place in the file's `[[scenario]]` (from 0).
    pub index: usize,
    /// A machine name, or a machine file (`.toml`, `.json`) relative to the scenario file.
    pub machine: String,
    /// Where `machine` is written (for a machine that cannot be found).
    pub machine_at: Option<Position>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub session: Option<String>,
    /// The call's fixed clock (`simulate --at`), ms since the Unix epoch.
    pub at_ms: Option<u64>,
    pub outbound: bool,
    /// As `simulate --resume-from`: the call opens with the machine's resume offer, as for a
    /// caller interrupted at this node (with `vars`).
    pub resume_from: Option<String>,
    pub vars: BTreeMap<String, String>,
    /// As `simulate --call-allow-prefix`: the outbound guard's prefixes.
    pub call_allow_prefix: Vec<String>,
    pub inputs: Vec<Input>,
    /// Each script node's answers, in order (the last one again when they run out).
    pub answers: BTreeMap<String, Vec<Answer>>,
    /// What the caller must hear, in this order (other speech may come between).
    pub hears: Vec<Match>,
    /// Where the call must end: the transcript's last line, without `call ended: `.
    pub ends: Option<Match>,
    /// The golden transcript: every line `simulate` prints but its first (which names the
    /// machine's version).
    pub transcript: Option<String>,
}

/// What a played scenario produced.
#[derive(Debug, Clone)]
pub struct Played {
    /// The transcript, without its first line.
    pub transcript: Vec<String>,
    /// Every text said, every prompt asked and every file played, in order.
    pub heard: Vec<String>,
    /// The transcript's last line, without `call ended: `.
    pub ends: String,
}

impl Played {
    /// The transcript as a scenario file keeps it: a line each, ending in a newline.
    pub fn transcript_text(&self) -> String {
        self.transcript.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// Reads a scenario file: its scenarios, and every problem in it (a scenario with a problem is
/// left out). `machine` is the file's default machine when its scenarios name none.
pub fn parse(source: &Source) -> (Vec<Scenario>, Vec<Diagnostic>) {
    let mut p = Parser { source, diagnostics: Vec::new() };
    if source.text.len() > FILE_BYTES_MAX {
        let message = format!("the file is {} bytes; the limit is {FILE_BYTES_MAX}", source.text.len());
        p.error(None, None, message, None);
        return (Vec::new(), p.diagnostics);
    }
    let (root, errors) = DeTable::parse_recoverable(&source.text);
    for e in &errors {
        let at = e.span().map(|s| s.start);
        p.error(at, None, toml_message(e.message()), Some("see machines/README.md, \"Scenario files\""));
    }
    let scenarios = if errors.is_empty() { p.file(root.get_ref()) } else { Vec::new() };
    let mut diagnostics = p.diagnostics;
    diagnostics.sort_by_key(|d| d.position);
    if diagnostics.len() > DIAGNOSTICS_MAX {
        let more = diagnostics.len() - DIAGNOSTICS_MAX;
        diagnostics.truncate(DIAGNOSTICS_MAX);
        let mut last = diagnostics[DIAGNOSTICS_MAX - 1].clone();
        last.message = format!("{more} more problems after this one are not listed");
        last.hint = None;
        diagnostics.push(last);
    }
    (scenarios, diagnostics)
}

type Value<'i> = Spanned<DeValue<'i>>;

struct Parser<'s> {
    source: &'s Source,
    diagnostics: Vec<Diagnostic>,
}

impl Parser<'_> {
    fn error(&mut self, offset: Option<usize>, field: Option<String>, message: String, hint: Option<&str>) {
        self.diagnostics.push(Diagnostic {
            severity: Severity::Error,
            file: self.source.file.clone(),
            position: offset.map(|o| Position::of_offset(&self.source.text, o)),
            node: None,
            field,
            message,
            hint: hint.map(str::to_string),
        });
    }

    /// An error about the value `v` of field `field`.
    fn bad(&mut self, v: &Value<'_>, field: &str, message: String, hint: Option<&str>) {
        self.error(Some(v.span().start), Some(field.to_string()), message, hint);
    }

    fn file(&mut self, root: &DeTable<'_>) -> Vec<Scenario> {
        let mut machine = None;
        let mut list = None;
        for (key, value) in root.iter() {
            match key.get_ref().as_ref() {
                "machine" => machine = self.string(value, "machine"),
                "scenario" => list = Some(value),
                other => self.unknown(key, other, FILE_FIELDS, ""),
            }
        }
        let Some(list) = list else {
            self.error(
                Some(0),
                None,
                "no scenario: the file has no `[[scenario]]`".into(),
                Some("write each scenario as `[[scenario]]` with a `name`, its `inputs` and what must be heard"),
            );
            return Vec::new();
        };
        let Some(items) = list.get_ref().as_array() else {
            self.bad(
                list,
                "scenario",
                "`scenario` must be an array of tables".into(),
                Some("write `[[scenario]]`"),
            );
            return Vec::new();
        };
        if items.len() > SCENARIOS_PER_FILE_MAX {
            let message = format!("{} scenarios; the limit is {SCENARIOS_PER_FILE_MAX}", items.len());
            self.bad(list, "scenario", message, Some("split them into several files"));
            return Vec::new();
        }
        let default_machine = machine.map(|m| (m, None::<Position>));
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut scenarios = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let before = self.diagnostics.len();
            let scenario = self.scenario(i, item, default_machine.as_ref().map(|(m, _)| m.as_str()));
            if let Some(s) = &scenario
                && let Some(first) = names.insert(s.name.clone(), i)
            {
                let message =
                    format!("scenario {} has the name of scenario {}: `{}`", i + 1, first + 1, s.name);
                self.bad(
                    item,
                    &format!("scenario.{i}.name"),
                    message,
                    Some("give each scenario its own name"),
                );
            }
            if self.diagnostics.len() == before
                && let Some(s) = scenario
            {
                scenarios.push(s);
            }
        }
        scenarios
    }

    fn unknown(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        name: &str,
        known: &[&str],
        prefix: &str,
    ) {
        let hint = match closest(name, known.iter().copied()) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("the fields are: {}", known.join(", ")),
        };
        self.error(
            Some(key.span().start),
            Some(format!("{prefix}{name}")),
            format!("unknown field `{name}`"),
            Some(&hint),
        );
    }

    fn scenario(&mut self, i: usize, item: &Value<'_>, default_machine: Option<&str>) -> Option<Scenario> {
        let at = format!("scenario.{i}");
        let Some(table) = item.get_ref().as_table() else {
            self.bad(item, &at, format!("scenario {} must be a table", i + 1), Some("write `[[scenario]]`"));
            return None;
        };
        let mut s = Scenario {
            name: String::new(),
            index: i,
            machine: default_machine.unwrap_or_default().to_string(),
            machine_at: None,
            from: None,
            to: None,
            session: None,
            at_ms: None,
            outbound: false,
            resume_from: None,
            vars: BTreeMap::new(),
            call_allow_prefix: Vec::new(),
            inputs: Vec::new(),
            answers: BTreeMap::new(),
            hears: Vec::new(),
            ends: None,
            transcript: None,
        };
        let mut vars_at = None;
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let field = format!("{at}.{name}");
            match name {
                "name" => s.name = self.string(value, &field).unwrap_or_default(),
                "machine" => {
                    if let Some(m) = self.string(value, &field) {
                        s.machine = m;
                        s.machine_at = Some(Position::of_offset(&self.source.text, value.span().start));
                    }
                }
                "from" => s.from = self.string(value, &field),
                "to" => s.to = self.string(value, &field),
                "session" => s.session = self.string(value, &field),
                "at" => s.at_ms = self.at(value, &field),
                "outbound" => match value.get_ref().as_bool() {
                    Some(b) => s.outbound = b,
                    None => self.bad(value, &field, "`outbound` must be true or false".into(), None),
                },
                "resume_from" => s.resume_from = self.string(value, &field),
                "vars" => {
                    vars_at = Some(value);
                    s.vars = self.strings_table(value, &field);
                }
                "call_allow_prefix" => s.call_allow_prefix = self.strings(value, &field),
                "inputs" => s.inputs = self.inputs(value, &field),
                "answers" => s.answers = self.answers(value, &field),
                "hears" => s.hears = self.hears(value, &field),
                "ends" => s.ends = self.matcher(value, &field),
                "transcript" => s.transcript = self.string(value, &field),
                other => self.unknown(key, other, SCENARIO_FIELDS, &format!("{at}.")),
            }
        }
        if s.name.trim().is_empty() {
            self.bad(
                item,
                &format!("{at}.name"),
                format!("scenario {} has no `name`", i + 1),
                Some("name it for what the caller does: `name = \"books a table\"`"),
            );
        }
        if s.machine.is_empty() {
            let hint = "name the machine in the scenario, or once at the top of the file: `machine = \"abc_restaurant\"`";
            self.bad(
                item,
                &format!("{at}.machine"),
                format!("scenario {} names no machine", i + 1),
                Some(hint),
            );
        }
        if s.hears.is_empty() && s.ends.is_none() && s.transcript.is_none() {
            let hint = "add `hears`, `ends` or a `transcript` (`phonetree test --update` writes it)";
            self.bad(item, &at, format!("scenario {} expects nothing", i + 1), Some(hint));
        }
        if s.outbound && s.resume_from.is_some() {
            let hint = "a resume offer opens a call the caller makes: drop `outbound` or `resume_from`";
            self.bad(
                item,
                &format!("{at}.resume_from"),
                "`resume_from` with `outbound = true`".into(),
                Some(hint),
            );
        }
        if let Some(v) = vars_at.filter(|_| !s.outbound && s.resume_from.is_none()) {
            let hint = "set `outbound = true` (a call phonetree places) or `resume_from` (the interrupted call's variables)";
            self.bad(
                v,
                &format!("{at}.vars"),
                "`vars` without `outbound = true` or `resume_from`".into(),
                Some(hint),
            );
        }
        Some(s)
    }

    fn string(&mut self, v: &Value<'_>, field: &str) -> Option<String> {
        match v.get_ref().as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                let what = match last(field).parse::<usize>() {
                    Ok(i) => format!("item {}", i + 1),
                    Err(_) => format!("`{}`", last(field)),
                };
                let message = format!("{what} must be a string, not {}", type_name(v.get_ref()));
                self.bad(v, field, message, None);
                None
            }
        }
    }

    fn strings(&mut self, v: &Value<'_>, field: &str) -> Vec<String> {
        let Some(items) = v.get_ref().as_array() else {
            self.bad(v, field, format!("`{}` must be an array of strings", last(field)), None);
            return Vec::new();
        };
        items.iter().enumerate().filter_map(|(i, item)| self.string(item, &format!("{field}.{i}"))).collect()
    }

    fn strings_table(&mut self, v: &Value<'_>, field: &str) -> BTreeMap<String, String> {
        let Some(table) = v.get_ref().as_table() else {
            self.bad(v, field, format!("`{}` must be a table of strings", last(field)), None);
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (key, value) in table.iter() {
            let name = key.get_ref().to_string();
            if let Some(s) = self.string(value, &format!("{field}.{name}")) {
                out.insert(name, s);
            }
        }
        out
    }

    fn at(&mut self, v: &Value<'_>, field: &str) -> Option<u64> {
        let text = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Datetime(d) => d.to_string(),
            other => {
                let message = format!("`at` must be an RFC 3339 time, not {}", type_name(other));
                self.bad(v, field, message, Some("e.g. `at = 2026-11-23T10:00:00+08:00`"));
                return None;
            }
        };
        match simulate::parse_at(&text) {
            Ok(ms) => Some(ms),
            Err(why) => {
                self.bad(v, field, why, Some("give the time with its offset: `2026-11-23T10:00:00+08:00`"));
                None
            }
        }
    }

    fn inputs(&mut self, v: &Value<'_>, field: &str) -> Vec<Input> {
        let Some(items) = v.get_ref().as_array() else {
            let hint = "e.g. `inputs = [\"1\", \"-\", \"@200\"]`";
            self.bad(v, field, "`inputs` must be an array of strings".into(), Some(hint));
            return Vec::new();
        };
        if items.len() > simulate::INPUTS_MAX {
            let message = format!("{} inputs; the limit is {}", items.len(), simulate::INPUTS_MAX);
            self.bad(v, field, message, None);
            return Vec::new();
        }
        let mut inputs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let field = format!("{field}.{i}");
            let Some(text) = self.string(item, &field) else { continue };
            // A path's flags, as `check` and `diff` print them, are the scenario's own fields.
            let hint = text.starts_with("--").then_some(
                "`simulate`'s flags are fields of the scenario: `at`, `from`, `session`, `resume_from`, `vars`",
            );
            match simulate::parse_input_or_answer(&text) {
                Ok(input) => inputs.push(input),
                Err(why) => self.bad(item, &field, why, hint),
            }
        }
        inputs
    }

    fn answers(&mut self, v: &Value<'_>, field: &str) -> BTreeMap<String, Vec<Answer>> {
        let hint = "e.g. `answers.lookup = [{ status = 200, body = { status = \"in_transit\" } }, { failed = \"timeout\" }]`";
        let Some(table) = v.get_ref().as_table() else {
            self.bad(v, field, "`answers` must be a table: script node → its answers".into(), Some(hint));
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (key, list) in table.iter() {
            let node = key.get_ref().to_string();
            let field = format!("{field}.{node}");
            let Some(items) = list.get_ref().as_array() else {
                self.bad(
                    list,
                    &field,
                    format!("the answers of `{node}` must be an array of tables"),
                    Some(hint),
                );
                continue;
            };
            let mut answers = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match simulate::canned_answer(&json(item.get_ref())) {
                    Ok(a) => answers.push(a),
                    Err(why) => self.bad(item, &format!("{field}.{i}"), why.to_string(), Some(hint)),
                }
            }
            out.insert(node, answers);
        }
        out
    }

    fn hears(&mut self, v: &Value<'_>, field: &str) -> Vec<Match> {
        let Some(items) = v.get_ref().as_array() else {
            let hint =
                "e.g. `hears = [\"Welcome.\", { contains = \"press 1\" }, { regex = \"order \\\\d+\" }]`";
            self.bad(v, field, "`hears` must be an array".into(), Some(hint));
            return Vec::new();
        };
        if items.len() > HEARS_MAX {
            self.bad(v, field, format!("{} expectations; the limit is {HEARS_MAX}", items.len()), None);
            return Vec::new();
        }
        items.iter().enumerate().filter_map(|(i, item)| self.matcher(item, &format!("{field}.{i}"))).collect()
    }

    /// A text (exact), `{ contains = "..." }` or `{ regex = "..." }`.
    fn matcher(&mut self, v: &Value<'_>, field: &str) -> Option<Match> {
        let hint = "write the exact text, `{ contains = \"...\" }` or `{ regex = \"...\" }`";
        match v.get_ref() {
            DeValue::String(s) => Some(Match::Exact(s.to_string())),
            DeValue::Table(t) if t.len() == 1 => {
                let (key, value) = t.iter().next()?;
                let field = format!("{field}.{}", key.get_ref());
                match key.get_ref().as_ref() {
                    "contains" => self.string(value, &field).map(Match::Contains),
                    "regex" => {
                        let pattern = self.string(value, &field)?;
                        match regex::RegexBuilder::new(&pattern).size_limit(REGEX_BYTES_MAX).build() {
                            Ok(r) => Some(Match::Regex(r)),
                            Err(e) => {
                                let why = e.to_string();
                                let why =
                                    why.lines().last().unwrap_or("").trim().trim_start_matches("error: ");
                                self.bad(
                                    value,
                                    &field,
                                    format!("`{pattern}` is not a regular expression: {why}"),
                                    None,
                                );
                                None
                            }
                        }
                    }
                    other => {
                        self.bad(value, &field, format!("unknown match `{other}`"), Some(hint));
                        None
                    }
                }
            }
            other => {
                self.bad(
                    v,
                    field,
                    format!("a match must be a string or a table of one key, not {}", type_name(other)),
                    Some(hint),
                );
                None
            }
        }
    }
}

/// The last part of a dotted field path.
fn last(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A TOML value as the JSON value canned answers are read from.
fn json(v: &DeValue<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(&digits, i.radix()).map_or(J::Null, J::from)
        }
        DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().map_or(J::Null, J::from),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(a) => J::Array(a.iter().map(|x| json(x.get_ref())).collect()),
        DeValue::Table(t) => {
            J::Object(t.iter().map(|(k, x)| (k.get_ref().to_string(), json(x.get_ref()))).collect())
        }
    }
}

/// Plays a scenario through `m` as `phonetree simulate` plays its inputs; `guard` is the outbound
/// guard templated transfers ask. `Err` when the call cannot be played (an engine error, a script
/// nothing answers).
pub fn play(s: &Scenario, m: &Machine, guard: Option<&Guard<'_>>) -> Result<Played, String> {
    let number = m.numbers().first().cloned().unwrap_or_else(|| simulate::NUMBER.into());
    let (from, to) = if s.outbound {
        (s.from.clone().unwrap_or(number), s.to.clone().unwrap_or_else(|| simulate::PERSON.into()))
    } else {
        (s.from.clone().unwrap_or_else(|| simulate::PERSON.into()), s.to.clone().unwrap_or(number))
    };
    let parties = Parties {
        from: &from,
        to: &to,
        outbound: s.outbound,
        vars: &s.vars,
        guard,
        session: s.session.as_deref(),
        resume_from: s.resume_from.as_deref(),
    };
    let mut canned = Canned::of(s.answers.clone());
    let mut answer = |r: &crate::engine::Request| canned.next(&r.node).ok_or_else(|| needs_answer(r));
    let (lines, flows) = simulate::run(m, parties, &s.inputs, s.at_ms, &mut answer)?;
    // The status is the last line but a note on inputs left over.
    let status = lines.iter().rev().find(|l| !l.starts_with("note: "));
    let ends = status.map(|l| l.strip_prefix("call ended: ").unwrap_or(l).to_string()).unwrap_or_default();
    Ok(Played { transcript: lines.into_iter().skip(1).collect(), heard: heard(&flows), ends })
}

/// The message for a script request a scenario gives no answer for.
fn needs_answer(r: &crate::engine::Request) -> String {
    format!(
        "node `{}` asks {} {}: give its answer in `inputs` after the keys (`@VALUE`, `@*`, `@!`, `@?VALUE`, as `simulate` takes them) or in `answers.{}`",
        r.node,
        r.method,
        r.url,
        toml_edit::Key::new(r.node.as_str()).display_repr()
    )
}

/// Every text said, prompt asked and file played by the callflows, in order.
fn heard(flows: &[Callflow]) -> Vec<String> {
    flows
        .iter()
        .flat_map(|f| &f.actions)
        .filter_map(|a| match a {
            Action::Say(s) => Some(s.text.clone()),
            Action::SayAndCapture(c) => Some(c.prompt_message.clone()),
            Action::PlayFile(p) => Some(p.file_url.clone()),
            Action::MakeCall(_) | Action::Hangup => None,
        })
        .collect()
}

/// Why a played scenario fails: a line each (a diff's lines follow its first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The transcript differs from the golden one: a unified diff.
    Transcript(String),
    /// A `hears` expectation met no text (in order after the ones before it).
    Hears {
        expected: String,
        heard: Vec<String>,
    },
    Ends {
        expected: String,
        ended: String,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transcript(diff) => {
                write!(f, "the transcript differs (- expected, + played):\n{}", diff.trim_end())
            }
            Failure::Hears { expected, heard } => {
                write!(f, "the caller never hears {expected} (in order); heard:")?;
                for h in heard {
                    write!(f, "\n  {h:?}")?;
                }
                Ok(())
            }
            Failure::Ends { expected, ended } => {
                write!(f, "the call ends \"{ended}\", not {expected}")
            }
        }
    }
}

/// How `played` fails `s`'s expectations (none: it passes). With `update`, a transcript that
/// differs is not a failure (the caller rewrites it).
pub fn check(s: &Scenario, played: &Played, update: bool) -> Vec<Failure> {
    let mut failures = Vec::new();
    if let Some(expected) = &s.transcript
        && !update
    {
        let expected: Vec<&str> = expected.lines().collect();
        let played: Vec<&str> = played.transcript.iter().map(String::as_str).collect();
        if expected != played {
            failures.push(Failure::Transcript(unified_diff(&expected, &played, "expected", "played")));
        }
    }
    let mut rest = played.heard.iter();
    for m in &s.hears {
        if !rest.any(|h| m.matches(h)) {
            failures.push(Failure::Hears { expected: m.to_string(), heard: played.heard.clone() });
            break;
        }
    }
    if let Some(m) = &s.ends
        && !m.matches(&played.ends)
    {
        failures.push(Failure::Ends { expected: m.to_string(), ended: played.ends.clone() });
    }
    failures
}

/// Whether `--update` rewrites this scenario's transcript: it has none, or a different one.
pub fn stale(s: &Scenario, played: &Played) -> bool {
    s.transcript.as_deref().is_none_or(|t| !t.lines().eq(played.transcript.iter().map(String::as_str)))
}

/// The file's text with the transcripts of scenarios (by their place in `[[scenario]]`) set to
/// the given ones; everything else (comments, order, layout) as it was.
pub fn update(text: &str, transcripts: &[(usize, String)]) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| toml_message(e.message()))?;
    let list = doc
        .get_mut("scenario")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
        .ok_or("the file has no `[[scenario]]` tables to update")?;
    for (i, transcript) in transcripts {
        let table = list.get_mut(*i).ok_or_else(|| format!("there is no scenario {}", i + 1))?;
        table["transcript"] = toml_edit::value(transcript.as_str());
    }
    Ok(doc.to_string())
}

/// `expected` against `actual` as `diff -u` shows them: `---`/`+++` lines naming both, then
/// hunks of changed lines with `DIFF_CONTEXT` lines around each.
pub fn unified_diff(expected: &[&str], actual: &[&str], expected_name: &str, actual_name: &str) -> String {
    let ops = line_ops(expected, actual);
    let mut out = format!("--- {expected_name}\n+++ {actual_name}\n");
    // Hunks: runs of ops within 2 * DIFF_CONTEXT of a change.
    let changed: Vec<usize> =
        ops.iter().enumerate().filter(|(_, o)| !matches!(o, Op::Same(..))).map(|(i, _)| i).collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(DIFF_CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * DIFF_CONTEXT {
            end = changed[k];
            k += 1;
        }
        let end = (end + DIFF_CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let (mut old_start, mut new_start) = (0, 0);
        // Line numbers (from 1) of the hunk's first line on each side.
        for o in &ops[..start] {
            match o {
                Op::Same(..) => {
                    old_start += 1;
                    new_start += 1;
                }
                Op::Removed(_) => old_start += 1,
                Op::Added(_) => new_start += 1,
            }
        }
        let old_len = hunk.iter().filter(|o| !matches!(o, Op::Added(_))).count();
        let new_len = hunk.iter().filter(|o| !matches!(o, Op::Removed(_))).count();
        // As GNU diff writes a range: `3` for one line, `3,0` for none (after line 3), `3,4`.
        let range = |start: usize, len: usize| match len {
            0 => format!("{start},0"),
            1 => format!("{}", start + 1),
            _ => format!("{},{len}", start + 1),
        };
        let _ = writeln!(out, "@@ -{} +{} @@", range(old_start, old_len), range(new_start, new_len));
        for o in hunk {
            let _ = match o {
                Op::Same(l) => writeln!(out, " {l}"),
                Op::Removed(l) => writeln!(out, "-{l}"),
                Op::Added(l) => writeln!(out, "+{l}"),
            };
        }
    }
    out
}

enum Op<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// The edit from `a` to `b`: the longest common subsequence of lines, between their common head
/// and tail.
fn line_ops<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..].iter().rev().zip(b[head..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops: Vec<Op<'a>> = a[..head].iter().map(|l| Op::Same(l)).collect();
    let cells = (ma.len() + 1).saturating_mul(mb.len() + 1);
    if cells > DIFF_CELLS_MAX {
        ops.extend(ma.iter().map(|l| Op::Removed(l)));
        ops.extend(mb.iter().map(|l| Op::Added(l)));
    } else {
        // lcs[i][j]: the longest common subsequence of ma[i..] and mb[j..].
        let w = mb.len() + 1;
        let mut lcs = vec![0u32; cells];
        for i in (0..ma.len()).rev() {
            for j in (0..mb.len()).rev() {
                lcs[i * w + j] = if ma[i] == mb[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < ma.len() || j < mb.len() {
            if i < ma.len() && j < mb.len() && ma[i] == mb[j] {
                ops.push(Op::Same(ma[i]));
                i += 1;
                j += 1;
            } else if i < ma.len() && (j == mb.len() || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
                // A line removed before a line added, as `diff -u` shows a change.
                ops.push(Op::Removed(ma[i]));
                i += 1;
            } else {
                ops.push(Op::Added(mb[j]));
                j += 1;
            }
        }
    }
    ops.extend(a[a.len() - tail..].iter().map(|l| Op::Same(l)));
    ops
}

/// One test case of a JUnit report.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// Seconds it took.
    pub seconds: f64,
    pub verdict: Verdict,
}

/// How a test case came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// Its expectations failed: a one-line summary and the whole story.
    Failed {
        message: String,
        detail: String,
    },
    /// It could not be run (a malformed file, a machine that cannot be found or played).
    Error {
        message: String,
        detail: String,
    },
}

/// One file's cases.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The file, as the command line names it.
    pub name: String,
    pub cases: Vec<Case>,
}

/// A JUnit XML report (`<testsuites>`, a `<testsuite>` per file, a `<testcase>` per scenario), as
/// CI systems read it; `tests/data/junit/junit.xsd` is its schema.
pub fn junit(suites: &[Suite]) -> String {
    let count = |s: &Suite, f: fn(&Verdict) -> bool| s.cases.iter().filter(|c| f(&c.verdict)).count();
    let failed = |v: &Verdict| matches!(v, Verdict::Failed { .. });
    let error = |v: &Verdict| matches!(v, Verdict::Error { .. });
    let seconds = |s: &Suite| s.cases.iter().map(|c| c.seconds).sum::<f64>();
    let total = |f: &dyn Fn(&Suite) -> usize| suites.iter().map(f).sum::<usize>();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"phonetree test\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3}\">",
        total(&|s| s.cases.len()),
        total(&|s| count(s, failed)),
        total(&|s| count(s, error)),
        suites.iter().map(seconds).sum::<f64>()
    );
    for s in suites {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{:.3}\">",
            xml(&s.name),
            s.cases.len(),
            count(s, failed),
            count(s, error),
            seconds(s)
        );
        for c in &s.cases {
            let head = format!(
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                xml(&c.name),
                xml(&s.name),
                c.seconds
            );
            match &c.verdict {
                Verdict::Passed => {
                    let _ = writeln!(out, "{head}/>");
                }
                Verdict::Failed { message, detail } | Verdict::Error { message, detail } => {
                    let tag = if failed(&c.verdict) { "failure" } else { "error" };
                    let _ = writeln!(
                        out,
                        "{head}>\n      <{tag} message=\"{}\" type=\"{tag}\">{}</{tag}>\n    </testcase>",
                        xml(message),
                        xml_text(detail)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Text as an XML attribute value: `xml_text`, with newlines and tabs as references (an
/// attribute's own would be read as spaces).
fn xml(text: &str) -> String {
    xml_text(text).replace('\n', "&#10;").replace('\t', "&#9;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unified_diff_shows_changed_lines_with_context() {
        let a: Vec<String> = ('a'..='o').map(String::from).collect();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut b = a.clone();
        b[1] = "B";
        b.push("p");
        assert_eq!(
            unified_diff(&a, &b, "expected", "played"),
            "--- expected\n+++ played\n@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n@@ -13,3 +13,4 @@\n m\n n\n o\n+p\n"
        );
        assert_eq!(unified_diff(&["x"], &[], "e", "p"), "--- e\n+++ p\n@@ -1 +0,0 @@\n-x\n");
        // Changes six lines apart or closer share a hunk, as in `diff -u`.
        let c = ["1", "2", "3", "4", "5", "6", "7", "8"];
        let d = ["1", "X", "3", "4", "5", "6", "7", "Y"];
        assert_eq!(unified_diff(&c, &d, "e", "p").matches("@@ -").count(), 1);
    }

    #[test]
    fn xml_text_is_escaped_and_kept_valid() {
        assert_eq!(xml("<a href=\"x\">&'\u{1}\n"), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;?&#10;");
        assert_eq!(xml_text("a\tb\n<c>"), "a\tb\n&lt;c&gt;");
    }

    #[test]
    fn an_update_keeps_comments_and_layout() {
        let text = "# top\nmachine = \"m\"\n\n[[scenario]]\nname = \"a\" # why\ninputs = [\"1\"]\n\n[[scenario]]\nname = \"b\"\ntranscript = \"old\"\n";
        let out = update(text, &[(1, "line 1\nline 2\n".into())]).unwrap();
        assert!(out.starts_with("# top\nmachine = \"m\"\n\n[[scenario]]\nname = \"a\" # why\n"), "{out}");
        assert!(out.contains("transcript = \"\"\"\nline 1\nline 2\n\"\"\""), "{out}");
    }
}
