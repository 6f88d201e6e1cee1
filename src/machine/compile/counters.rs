//! Counters that add a variable (`add = { total = "{amount}" }`): what may be added, whether it is
//! always a number, and the `not_number` edge a set node needs exactly when it may not be.
//!
//! A value `add` reads is a number when it is an integer within ±`COUNTER_MAX` (`route::number`).
//! The compiler proves it for a counter (only `add` writes one, within those bounds) and for an
//! input that takes digit keys only (a `pattern` of digits: a keypad also has `*`) and at most
//! `NUMBER_DIGITS_MAX` of them. Anything else may not be one: the node then needs `not_number`,
//! where the call goes, having set nothing; `explore` answers with a value that is not a number
//! there, so the edge is proven like any other.

use regex_syntax::hir::{Class, Hir, HirKind};

use super::super::route::{Addend, COUNTER_MAX};
use super::super::{Edge, Input, Machine, NodeId, NodeKind};
use super::{At, Compiler};

/// Most digit keys an input may take for its value to be proven a number: 9 digits stay within
/// `COUNTER_MAX` (999 999 999).
pub const NUMBER_DIGITS_MAX: usize = 9;

/// What `add` may find in a variable, from the nodes that write it.
struct Writers {
    /// Always a number.
    numeric: bool,
    /// Always digit keys (a number at least 0).
    digits: bool,
    /// Why it may not be a number, for the error.
    why: Vec<String>,
    /// A writer `add` may not read: (what it is, the hint).
    refused: Option<(String, String)>,
}

impl Compiler<'_> {
    /// Each variable a set node adds: readable by `add`, and proven a number or caught by the
    /// node's `not_number`; the proof is kept on the `Addend` (for `explore` and the engine).
    pub(super) fn check_counted(&mut self, m: &mut Machine, failed: &[bool]) {
        let ids: Vec<NodeId> = m.graph.node_indices().collect();
        for id in ids {
            let NodeKind::Set(set) = &m.graph[id].kind else { continue };
            let reads: Vec<(String, String)> = (set.add.iter())
                .filter_map(|(counter, a)| a.var().map(|v| (counter.clone(), v.to_string())))
                .collect();
            let name = m.graph[id].name.clone();
            let has_edge = m.target(id, &Edge::NotNumber).is_some();
            if reads.is_empty() {
                if has_edge {
                    self.error(
                        At::Node(&name, "not_number"),
                        "`not_number` is never taken: this node's `add`s are whole numbers, not variables"
                            .into(),
                        Some("remove `not_number`".into()),
                    );
                }
                continue;
            }
            let mut proofs = Vec::new();
            let mut unproven: Vec<String> = Vec::new();
            let mut first_unproven = None;
            for (counter, var) in &reads {
                let field = format!("add.{counter}");
                let w = writers(m, var, failed);
                if let Some((what, hint)) = &w.refused {
                    self.error(
                        At::Node(&name, &field),
                        format!("`add` reads `{var}`, {what}: a counter adds an input's keys, a script's stored value or another counter"),
                        Some(hint.clone()),
                    );
                } else if m.sensitive.contains(var) {
                    self.error(
                        At::Node(&name, &field),
                        format!(
                            "`add` reads `{var}`, a sensitive input: the counter would keep what it holds"
                        ),
                        Some(format!("count something else, or make `{var}` not sensitive")),
                    );
                }
                if !w.numeric {
                    first_unproven.get_or_insert_with(|| field.clone());
                    unproven.push(format!("`{var}` ({})", w.why.join("; ")));
                }
                proofs.push((w.numeric, w.digits));
            }
            match (first_unproven, has_edge) {
                (Some(field), false) => self.error(
                    At::Node(&name, &field),
                    format!("`add` reads a value that may not be a number: {}", unproven.join(", ")),
                    Some(format!(
                        "add `not_number = \"NODE\"`: where the call goes when it is not one (the node then sets nothing); or give the input a `pattern` of at most {NUMBER_DIGITS_MAX} digits (`[0-9]{{1,{NUMBER_DIGITS_MAX}}}`)"
                    )),
                ),
                (None, true) => self.error(
                    At::Node(&name, "not_number"),
                    "`not_number` is never taken: every variable this node adds is always a number".into(),
                    Some("remove `not_number`".into()),
                ),
                _ => {}
            }
            if let NodeKind::Set(set) = &mut m.graph[id].kind {
                let addends = set.add.iter_mut().filter(|(_, a)| a.var().is_some());
                for ((_, addend), (proven, only_digits)) in addends.zip(proofs) {
                    if let Addend::Var { numeric, digits, .. } = addend {
                        (*numeric, *digits) = (proven, only_digits);
                    }
                }
            }
        }
    }
}

/// What the nodes that write `var` can leave in it.
fn writers(m: &Machine, var: &str, failed: &[bool]) -> Writers {
    let mut w = Writers { numeric: true, digits: true, why: Vec::new(), refused: None };
    if m.variables.contains_key(var) {
        w.refused = Some((
            "one of the machine's `variables`".into(),
            "have the caller key it in with an `input`, or add a whole number".into(),
        ));
    }
    for id in m.graph.node_indices() {
        let node = &m.graph[id];
        if failed[id.index()] {
            continue;
        }
        match &node.kind {
            NodeKind::Input(input) if input.variable == var => {
                if let Err(why) = digits_only(input) {
                    w.numeric = false;
                    w.digits = false;
                    w.why.push(format!("node `{}` {why}", node.name));
                }
            }
            NodeKind::Script(s) if s.store.iter().any(|s| s.var == var) => {
                w.numeric = false;
                w.digits = false;
                w.why.push(format!("node `{}` stores it from an API's answer", node.name));
            }
            NodeKind::Set(set) => {
                if set.add.iter().any(|(c, _)| c == var) {
                    w.digits = false;
                }
                if set.values.iter().any(|(v, _)| v == var) {
                    w.refused = Some((
                        format!("which node `{}` sets to a text", node.name),
                        "add an input's variable, a script's stored one or a counter".into(),
                    ));
                }
            }
            _ => {}
        }
    }
    w
}

/// `Ok` when every input the node accepts is a number of digit keys: a `pattern` of digits only,
/// and at most `NUMBER_DIGITS_MAX` of them; else why not.
fn digits_only(input: &Input) -> Result<(), String> {
    let max = usize::from(input.prompt.capture.max_digits.unwrap_or(u8::MAX));
    let Some(re) = &input.pattern else {
        return Err("takes any keypad keys, `*` too, having no `pattern`".into());
    };
    let hir =
        regex_syntax::Parser::new().parse(re.as_str()).map_err(|_| "has a `pattern` of more than digits")?;
    if !digit_keys(&hir, 0) {
        return Err("has a `pattern` that takes more than digits".into());
    }
    let longest = hir.properties().maximum_len().map_or(max, |l| l.min(max));
    if longest > NUMBER_DIGITS_MAX {
        return Err(format!(
            "takes up to {longest} digits; at most {NUMBER_DIGITS_MAX} stay within {COUNTER_MAX}"
        ));
    }
    Ok(())
}

/// Most nesting of a pattern followed: an input's pattern is short.
const PATTERN_DEPTH_MAX: usize = 32;

/// Whether every text `hir` matches is made of ASCII digits.
fn digit_keys(hir: &Hir, depth: usize) -> bool {
    if depth > PATTERN_DEPTH_MAX {
        return false;
    }
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(lit) => lit.0.iter().all(u8::is_ascii_digit),
        HirKind::Class(Class::Unicode(c)) => c.ranges().iter().all(|r| r.start() >= '0' && r.end() <= '9'),
        HirKind::Class(Class::Bytes(c)) => c.ranges().iter().all(|r| r.start() >= b'0' && r.end() <= b'9'),
        HirKind::Repetition(r) => digit_keys(&r.sub, depth + 1),
        HirKind::Capture(c) => digit_keys(&c.sub, depth + 1),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => {
            parts.iter().all(|p| digit_keys(p, depth + 1))
        }
    }
}
