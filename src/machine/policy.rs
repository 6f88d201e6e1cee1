//! Policies: rules a machine's author (or the folder's `policies.toml`) states over every path of
//! a call, which `check` proves with the machine (`proof::policy`): a node before every recorded
//! transfer, a node within N answers of every waiting node, no bridge once a route said closed,
//! at most N answers per call.
//!
//! This module reads them (`[[policies]]` in a machine file, or a `policies.toml` of the same
//! array) into `Policy` values, each with the file, line and column it was written at; a policy
//! that does not say one thing is an error there. Node names are resolved when a machine is
//! proven: a machine's own policies must name its nodes (checked by the compiler, with "did you
//! mean"), while a folder's `policies.toml` applies to machines that may not have every node it
//! names (a node a machine lacks is one its calls never enter).

use serde::{Deserialize, Serialize};

use super::definition::PolicyDef;
use super::diagnostic::{Diagnostic, Position, Severity};
use super::source::{self, Format, Source};

/// Most answers a policy counts (`within_answers`, `max_answers`): the prover's product of call
/// states with an answer counter holds `STATES_MAX` × (this + 2) states at most, and no caller
/// sits through more answers than this in one call.
pub const POLICY_ANSWERS_MAX: i64 = 100;
/// Most policies one file states: each is one more walk over the machine's call states.
pub const POLICIES_MAX: usize = 64;
/// The name of a folder's policies file, applied to every machine in the folder (never a machine).
pub const POLICIES_FILE: &str = "policies.toml";

/// What a policy targets: a kind of transfer, or a node by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every transfer node (a bridge).
    Transfer,
    /// Every transfer node with `call_recording = true`.
    RecordedTransfer,
    /// The node of that name.
    Node(String),
}

impl Target {
    fn of(text: &str) -> Target {
        match text {
            "transfer" => Target::Transfer,
            "recorded_transfer" => Target::RecordedTransfer,
            name => Target::Node(name.to_string()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Transfer => f.write_str("transfer"),
            Target::RecordedTransfer => f.write_str("recorded_transfer"),
            Target::Node(n) => write!(f, "`{n}`"),
        }
    }
}

/// Where `after` starts a policy: once the call enters a node, or takes one edge of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub node: String,
    /// The edge as written after the `:` (`else`, `2`, `failure`); `None`: entering the node.
    pub edge: Option<String>,
}

/// What a policy says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Every path that enters `to` entered `first` before.
    Before { first: String, to: Target },
    /// From every waiting state, some `within` answers or fewer enter `node`.
    Reach { node: String, within: u32 },
    /// No path enters `what` after `after`.
    Never { what: Target, after: After },
    /// No call asks for more than this many answers.
    MaxAnswers(u32),
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Before { first, to } => write!(f, "`{first}` before every {to}"),
            Rule::Reach { node, within: 1 } => write!(f, "`{node}` within 1 answer"),
            Rule::Reach { node, within } => write!(f, "`{node}` within {within} answers"),
            Rule::Never { what, after } => match &after.edge {
                Some(edge) => write!(f, "never {what} after `{}:{edge}`", after.node),
                None => write!(f, "never {what} after `{}`", after.node),
            },
            Rule::MaxAnswers(1) => f.write_str("at most 1 answer"),
            Rule::MaxAnswers(n) => write!(f, "at most {n} answers"),
        }
    }
}

/// Where a policy was written: its file, and the line and column of its entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: String,
    pub position: Option<Position>,
}

/// One policy, read and checked for shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub rule: Rule,
    pub origin: Origin,
    /// Its place in its file's `[[policies]]` (from 0).
    pub index: usize,
    /// Written in a machine's own `[[policies]]` (its node names were checked at compile time).
    pub own: bool,
}

/// A `policies.toml`: the same `[[policies]]` array a machine file may hold, nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoliciesFile {
    #[serde(default)]
    policies: Vec<PolicyDef>,
}

/// Reads a folder's `policies.toml` (or `.json` of the same shape): its policies, and every
/// problem at its file, line and column.
pub fn read_file(source: &Source) -> (Vec<Policy>, Vec<Diagnostic>) {
    let parsed: Result<PoliciesFile, (String, Option<usize>)> = match source.format {
        Format::Toml => toml::from_str(&source.text)
            .map_err(|e| (source::toml_message(e.message()), e.span().map(|s| s.start))),
        Format::Json => serde_json::from_str(&source.text).map_err(|e| (e.to_string(), None)),
    };
    match parsed {
        Ok(file) => read(source, &file.policies, false),
        Err((message, offset)) => {
            let d = Diagnostic {
                severity: Severity::Error,
                file: source.file.clone(),
                position: offset.map(|o| Position::of_offset(&source.text, o)),
                node: None,
                field: Some("policies".into()),
                message,
                hint: Some(HINT.into()),
            };
            (Vec::new(), vec![d])
        }
    }
}

const HINT: &str = "write each policy as `[[policies]]` with one of: `before` and `on_every_path_to`, \
                    `reach` and `within_answers`, `never` and `after`, or `max_answers`";

/// The policies `defs` state (from `source`, at `policies.N`), and a diagnostic for each that
/// does not say exactly one thing. `own`: a machine's own `[[policies]]`.
pub(crate) fn read(source: &Source, defs: &[PolicyDef], own: bool) -> (Vec<Policy>, Vec<Diagnostic>) {
    let index = std::cell::OnceCell::new();
    let at = |path: &[&str]| {
        let index = index.get_or_init(|| source::index(source));
        index.value(path).map(|o| Position::of_offset(&source.text, o))
    };
    let error =
        |position: Option<Position>, field: String, message: String, hint: Option<String>| Diagnostic {
            severity: Severity::Error,
            file: source.file.clone(),
            position,
            node: None,
            field: Some(field),
            message,
            hint,
        };
    let mut policies = Vec::new();
    let mut diags = Vec::new();
    if defs.len() > POLICIES_MAX {
        let message = format!("{} policies; the limit is {POLICIES_MAX}", defs.len());
        diags.push(error(at(&["policies"]), "policies".into(), message, None));
        return (policies, diags);
    }
    for (i, def) in defs.iter().enumerate() {
        let n = i.to_string();
        let field = format!("policies.{i}");
        let entry = at(&["policies", &n]);
        let answers = |name: &str, value: i64| -> Result<u32, Box<Diagnostic>> {
            u32::try_from(value)
                .ok()
                .filter(|v| (1..=POLICY_ANSWERS_MAX).contains(&i64::from(*v)))
                .ok_or_else(|| {
                    Box::new(error(
                        at(&["policies", &n, name]),
                        format!("{field}.{name}"),
                        format!(
                            "policy {}: `{name}` is {value}; it must be 1 to {POLICY_ANSWERS_MAX}",
                            i + 1
                        ),
                        Some("count the answers a caller gives (a key press, an input)".into()),
                    ))
                })
        };
        let rule = match def {
            PolicyDef {
                before: Some(first),
                on_every_path_to: Some(to),
                reach: None,
                within_answers: None,
                never: None,
                after: None,
                max_answers: None,
            } => Ok(Rule::Before { first: first.clone(), to: Target::of(to) }),
            PolicyDef {
                reach: Some(node),
                within_answers: Some(n),
                before: None,
                on_every_path_to: None,
                never: None,
                after: None,
                max_answers: None,
            } => answers("within_answers", *n)
                .map(|within| Rule::Reach { node: node.clone(), within })
                .map_err(|d| *d),
            PolicyDef {
                never: Some(what),
                after: Some(after),
                before: None,
                on_every_path_to: None,
                reach: None,
                within_answers: None,
                max_answers: None,
            } => {
                let after = match after.split_once(':') {
                    Some((node, edge)) => After { node: node.to_string(), edge: Some(edge.to_string()) },
                    None => After { node: after.clone(), edge: None },
                };
                Ok(Rule::Never { what: Target::of(what), after })
            }
            PolicyDef {
                max_answers: Some(n),
                before: None,
                on_every_path_to: None,
                reach: None,
                within_answers: None,
                never: None,
                after: None,
            } => answers("max_answers", *n).map(Rule::MaxAnswers).map_err(|d| *d),
            _ => Err(error(
                entry,
                field.clone(),
                format!("policy {} does not say one thing", i + 1),
                Some(HINT.into()),
            )),
        };
        match rule {
            Ok(rule) => {
                let origin = Origin { file: source.file.clone(), position: entry };
                policies.push(Policy { rule, origin, index: i, own });
            }
            Err(d) => diags.push(d),
        }
    }
    (policies, diags)
}

/// The node names a policy uses, with the field each is written in (for the compiler's check of
/// a machine's own policies).
pub(crate) fn names(rule: &Rule) -> Vec<(&'static str, &str)> {
    fn target<'r>(field: &'static str, t: &'r Target) -> Vec<(&'static str, &'r str)> {
        match t {
            Target::Node(n) => vec![(field, n.as_str())],
            _ => Vec::new(),
        }
    }
    match rule {
        Rule::Before { first, to } => {
            let mut names = vec![("before", first.as_str())];
            names.extend(target("on_every_path_to", to));
            names
        }
        Rule::Reach { node, .. } => vec![("reach", node.as_str())],
        Rule::Never { what, after } => {
            let mut names = target("never", what);
            names.push(("after", after.node.as_str()));
            names
        }
        Rule::MaxAnswers(_) => Vec::new(),
    }
}

/// Whether `edge` is the one `text` names after a node's `:` in `after`: `else`, `default`,
/// `failure`, `invalid`, `no_input`, `next`, `not_number`, `rule N` (1-based, as `check` prints it), or a
/// branch key or script answer value (`2`, `ok`), or a split's variant (`a`).
pub fn names_edge(edge: &super::Edge, text: &str) -> bool {
    use super::Edge;
    match edge {
        Edge::Else => text == "else",
        Edge::NotNumber => text == "not_number",
        Edge::Default => text == "default",
        Edge::Failure => text == "failure",
        Edge::Invalid => text == "invalid",
        Edge::NoInput => text == "no_input",
        Edge::Next => text == "next",
        Edge::Rule(i, _) => text
            .strip_prefix("rule")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .is_some_and(|n| n == i.saturating_add(1)),
        Edge::Key(k) | Edge::Repeat(k) | Edge::Back(k) => k == text,
        Edge::Response(v) | Edge::Variant(v) => v == text,
    }
}
