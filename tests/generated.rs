//! Generated machines: proptest builds random valid machine files (TOML) with every node kind —
//! menus, inputs, scripts (calling the loopback API as `127.0.0.1:PORT` or `localhost:PORT`),
//! routes on the clock, the caller, inputs, counters and stored values (every rule kind, `else`
//! for a missing key), sets, machine-wide keys, the machine's `variables`, multi-part prompts,
//! stored values with `max_chars`, texts within `LONG_SLACK` of 8x8's limit once filled,
//! transfers, say/play/hangup — and holds `check`, `simulate` and a real `phonetree serve` to one
//! answer:
//! - every machine `check` accepts plays every path `check` explores through the real node (one
//!   child process per test, machines swapped in with `POST /admin/reload`, scripts answered by a
//!   loopback API as the path's answer class says), with replies equal to `simulate`'s for that
//!   path and never the fallback (no input sent as `dtmf: null` and as `dtmf: ""`), and each
//!   webhook delivered again answered with the same bytes and no second script request;
//! - every machine made invalid (a dangling edge, a missing branch, an overlong prompt, a prompt
//!   over the limit only once filled, a number not E.164, ...) is refused by `check`, by the
//!   node's reload with the same diagnostics, and by a fresh `serve`, which exits saying them.
//!
//! The node reads the real clock: a path explored at another clock class than now's (a machine
//! with time rules) is played through `simulate` only, and counted apart.
//! `PROPTEST_CASES` sets the number of machines (default `CASES`).

use crate::common;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use phonetree::callflow::{ActionKey, Callflow, TEXT_CHARS_MAX};
use phonetree::engine::{Answer, Event, Request, SCRIPTS_PER_STEP_MAX};
use phonetree::machine::{Machine, NodeKind, VARIABLE_CHARS_MAX};
use phonetree::node::catalog::Catalog;
use phonetree::proof::explore;
use phonetree::proof::simulate::{self, Simulation};
use phonetree::webhook::wire;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::Value;
use warp::Filter;

/// Machines per test run, unless `PROPTEST_CASES` says otherwise: each plays every explored path
/// through the node, so a few keep `cargo test` quick.
const CASES: u32 = 16;
/// Most nodes a generated machine has before every open edge is closed with an end (a few more
/// may follow: the shared `bye`/`agent` ends and the closing say nodes).
const NODES_MAX: usize = 10;
/// Most nodes on a path from the start before it is closed with an end: keeps chains well
/// within 8x8's 16 actions and explored paths few.
const DEPTH_MAX: usize = 5;
/// Counter loops (set → route → back to an earlier prompt) per machine: each multiplies paths.
const LOOPS_MAX: usize = 1;
/// Routes on stored values per machine: the explorer answers each value its rules test, one
/// no rule names and the key missing, in every combination of one answer's values.
const STORED_ROUTES_MAX: usize = 2;
/// Rules on a stored value, one per kind, on values the stub's sample texts (words) never take:
/// the explorer's sampled answers reach each, and the samples the `else`.
const STORED_RULES: &[&str] = &[
    r#"equals = "alpha""#,
    r#"one_of = ["beta", "gamma"]"#,
    r#"matches = "^del[a-z]*$""#,
    r#"prefix = "eps""#,
    r#"at_least = 100"#,
    r#"at_most = 5"#,
];
/// The `max_chars` a stored value a route tests keeps at least: the values `STORED_RULES` name,
/// and those the explorer gives them (`eps` and digits), fit.
const STORED_RULE_CHARS: usize = 12;
/// How far under 8x8's limit a long text's worst case stays, at most (it may reach it).
const LONG_SLACK: usize = 60;
/// A generated script's `timeout_ms`: generous, so that a loaded machine never turns a planned
/// answer into a timeout (the stub answers `@!`, no usable answer, with a 503 at once: the same
/// `failure` branch without the wait; tests/scripts.rs times a real timeout out).
const SCRIPT_TIMEOUT_MS: u64 = 4000;
/// Shrinking steps after a failure (each replays a machine's paths through the node).
const SHRINK_ITERS: u32 = 64;
/// Paths played through the node at once.
const PARALLEL: usize = 6;
/// Explored paths a generated machine may have: the generator's bounds keep most far below;
/// a machine with more (tries, `back` and a counter loop multiply) is replaced by another.
const PATHS_MAX: u64 = 2_000;
/// Times a path is replayed when now's clock class changed while it played (a window edge).
const CLOCK_RETRIES: usize = 3;
/// The number the generated machines answer.
const NUMBER: &str = "+15557770000";
/// What the node says when it fails: a reply containing it fails the property.
const FALLBACK: &str = "Sorry, the generated line has failed.";
/// The default caller of explored paths (`--from` names others).
const CALLER: &str = "+15550000001";

const WORDS: &[&str] = &[
    "welcome", "to", "the", "line", "press", "for", "sales", "please", "hold", "thank", "you", "your",
    "order", "is", "ready", "hours", "and", "more", "account", "billing",
];
const VOICES: &[&str] = &["en-GB-Emma", "en-US-ZiraRUS", "es-ES-HelenaRUS"];
const TIMEZONES: &[&str] = &["Asia/Singapore", "Europe/London", "America/New_York"];
/// Time rules a clock route picks from, in this order: none shadows another, and each holds
/// somewhere the others do not (a Monday evening holds none).
const CLOCK_RULES: &[&str] = &[
    r#"dates = ["2026-12-25"]"#,
    r#"days = "mon-fri", hours = "09:00-17:00""#,
    r#"days = "sat,sun""#,
    r#"hours = "22:00-06:00""#,
];

// ---------------------------------------------------------------------------------------------
// The machine file, as tables of raw TOML values (mutations edit it before it is written).

#[derive(Debug, Clone)]
struct NodeOut {
    name: String,
    kind: &'static str,
    /// (field, TOML value) in order.
    fields: Vec<(String, String)>,
}

impl NodeOut {
    fn set(&mut self, field: &str, value: String) {
        match self.fields.iter_mut().find(|(f, _)| f == field) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((field.to_string(), value)),
        }
    }

    fn remove(&mut self, field: &str) -> bool {
        let before = self.fields.len();
        self.fields.retain(|(f, _)| f != field);
        before != self.fields.len()
    }

    fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|(f, _)| f == field)
    }
}

/// A generated machine: its tables, and the values the stub API answers for stored keys.
#[derive(Debug, Clone)]
struct Generated {
    start: String,
    timezone: Option<String>,
    tries: Option<u16>,
    keys: Vec<(String, String)>,
    nodes: Vec<NodeOut>,
    has_scripts: bool,
    /// Stored variable → the text the stub API gives it (longer than its `max_chars` at times).
    samples: HashMap<String, String>,
    /// The machine's `variables` (name, default): every call starts with them.
    variables: Vec<(String, String)>,
    /// Scripts call the stub API as `localhost:PORT`, `allow_hosts` listing it so.
    localhost: bool,
    /// Stored values a long text says: raising their `max_chars` crosses 8x8's limit once filled.
    raisable: Vec<Raisable>,
    /// Stored values with a default and `max_chars` (script node, variable, `max_chars`).
    capped: Vec<(usize, String, usize)>,
    /// A number `numbers` lists besides `NUMBER` (a mutation: one that is not E.164).
    extra_number: Option<String>,
}

/// A stored value with `max_chars` that a text near 8x8's limit says: `max_chars` raised to
/// `over` makes the text's worst case exceed the limit.
#[derive(Debug, Clone)]
struct Raisable {
    script: usize,
    var: String,
    max_chars: usize,
    over: usize,
}

/// A TOML basic string.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Generated {
    /// The file, its scripts calling the stub API at `api` (`http://127.0.0.1:PORT`).
    fn render(&self, api: &str) -> String {
        let mut out = String::new();
        out.push_str("name = \"generated\"\n");
        out.push_str(&format!("start = {}\n", q(&self.start)));
        match &self.extra_number {
            Some(n) => out.push_str(&format!("numbers = [{}, {}]\n", q(NUMBER), q(n))),
            None => out.push_str(&format!("numbers = [{}]\n", q(NUMBER))),
        }
        out.push_str(&format!("fallback = {}\n", q(FALLBACK)));
        if let Some(tz) = &self.timezone {
            out.push_str(&format!("timezone = {}\n", q(tz)));
        }
        if !self.variables.is_empty() {
            let vars: Vec<String> = self.variables.iter().map(|(k, v)| format!("{k} = {}", q(v))).collect();
            out.push_str(&format!("variables = {{ {} }}\n", vars.join(", ")));
        }
        // The loopback API by its IP address, or by the name `localhost`: one host rule calls
        // either when `allow_hosts` lists it with its port, in `check` and on the node.
        let api = match api.strip_prefix("http://127.0.0.1:") {
            Some(port) if self.localhost => format!("http://localhost:{port}"),
            _ => api.to_string(),
        };
        let host = api.trim_start_matches("http://");
        if self.has_scripts {
            out.push_str(&format!("allow_hosts = [{}]\n", q(host)));
        }
        out.push_str(&format!("\n[settings]\nagent = \"+6531589338\"\napi = {}\n", q(&api)));
        out.push_str("\n[defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\nmin_digits = 1\nmax_digits = 1\n");
        if let Some(t) = self.tries {
            out.push_str(&format!("tries = {t}\n"));
        }
        if !self.keys.is_empty() {
            out.push_str("\n[keys]\n");
            for (k, v) in &self.keys {
                out.push_str(&format!("{} = {}\n", q(k), q(v)));
            }
        }
        for n in &self.nodes {
            out.push_str(&format!("\n[nodes.{}]\nkind = {}\n", n.name, q(n.kind)));
            for (f, v) in &n.fields {
                out.push_str(&format!("{f} = {v}\n"));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The generator: a builder driven by a vector of dice (proptest shrinks them toward 0, which
// picks the simplest choice everywhere: an end node).

#[derive(Debug, Clone)]
enum VarKind {
    /// An input's variable: its digit bounds and example.
    Input {
        min: usize,
        example: String,
    },
    /// Text a set node, or a stored value with a default, gives.
    Text,
    Counter,
}

#[derive(Debug, Clone)]
struct Var {
    name: String,
    kind: VarKind,
    /// Its longest value, as `check` bounds it (an input's `max_digits`, a stored value's
    /// `max_chars`, 32 for a set value or the machine's `variables`, 10 for a counter).
    bound: usize,
    /// The script node that stores it, with its `max_chars` (it may be raised).
    stored: Option<(usize, usize)>,
}

/// What holds on the way to the node being built.
#[derive(Debug, Clone, Default)]
struct Ctx {
    depth: usize,
    /// Variables set on every way here (definite assignment).
    vars: Vec<Var>,
    /// The menus and inputs on the way here (a counter loop may go back to one).
    waits: Vec<String>,
    /// Scripts since the last prompt that waits: one webhook runs them all.
    requests: usize,
    /// Stored values (with a default or not) some answer on the way here gave a branch.
    stored: Vec<String>,
}

impl Ctx {
    fn deeper(&self) -> Ctx {
        Ctx { depth: self.depth + 1, ..self.clone() }
    }

    fn with(&self, var: Var) -> Ctx {
        let mut c = self.clone();
        c.vars.push(var);
        c
    }
}

struct Gen<'d> {
    dice: &'d [u16],
    at: usize,
    nodes: Vec<NodeOut>,
    bye: Option<String>,
    agent: Option<String>,
    timezone: Option<String>,
    loops: usize,
    caller_routed: bool,
    /// Some script stores a value without a default (an answer may leave it unset).
    may_miss: bool,
    vars: usize,
    has_scripts: bool,
    samples: HashMap<String, String>,
    /// Routes on stored values so far (each multiplies the paths by the values it tests).
    stored_routes: usize,
    raisable: Vec<Raisable>,
    capped: Vec<(usize, String, usize)>,
}

impl<'d> Gen<'d> {
    fn roll(&mut self, n: usize) -> usize {
        let v = if self.dice.is_empty() { 0 } else { self.dice[self.at % self.dice.len()] };
        self.at += 1;
        v as usize % n.max(1)
    }

    fn chance(&mut self, in_n: usize) -> bool {
        self.roll(in_n) == 1
    }

    fn new_node(&mut self, kind: &'static str) -> usize {
        let i = self.nodes.len();
        self.nodes.push(NodeOut { name: format!("n{i}_{kind}"), kind, fields: Vec::new() });
        i
    }

    fn name(&self, i: usize) -> String {
        self.nodes[i].name.clone()
    }

    fn set(&mut self, i: usize, field: &str, value: String) {
        self.nodes[i].set(field, value);
    }

    fn fresh_var(&mut self, prefix: &str) -> String {
        self.vars += 1;
        format!("{prefix}{}", self.vars)
    }

    fn words(&mut self, max: usize) -> String {
        let n = 1 + self.roll(max);
        let mut w: Vec<&str> = (0..n).map(|_| WORDS[self.roll(WORDS.len())]).collect();
        if w.is_empty() {
            w.push("hello");
        }
        w.join(" ")
    }

    /// A text template: words, maybe with a built-in or a variable set on every way here.
    fn template(&mut self, ctx: &Ctx) -> String {
        let mut text = self.words(6);
        let insert = match self.roll(9) {
            1 => Some("{caller}".to_string()),
            2 => Some("{virtual_number}".to_string()),
            3 => Some("{node}".to_string()),
            4 => Some("{keypress}".to_string()),
            5 => Some("{say:$caller}".to_string()),
            6..=8 if !ctx.vars.is_empty() => {
                let v = &ctx.vars[self.roll(ctx.vars.len())].name.clone();
                Some(if self.chance(2) { format!("{{say:${v}}}") } else { format!("{{{v}}}") })
            }
            _ => None,
        };
        if let Some(i) = insert {
            text.push(' ');
            text.push_str(&i);
        }
        let tail = self.words(3);
        format!("{text}, {tail}.")
    }

    /// A prompt: one text, or 2 to 3 parts, some in their own voice.
    fn prompt(&mut self, ctx: &Ctx) -> String {
        if self.long(ctx) {
            return q(&self.long_text(ctx));
        }
        if !self.chance(3) {
            return q(&self.template(ctx));
        }
        let parts = 2 + self.roll(2);
        let mut out = Vec::new();
        for _ in 0..parts {
            let text = self.template(ctx);
            if self.chance(2) {
                let voice = VOICES[self.roll(VOICES.len())];
                let speed = [0.75, 1.0, 1.25, 1.5][self.roll(4)];
                out.push(format!("{{ text = {}, voice_profile = {}, speed = {speed} }}", q(&text), q(voice)));
            } else {
                out.push(q(&text));
            }
        }
        format!("[{}]", out.join(", "))
    }

    fn bye(&mut self) -> String {
        if let Some(b) = &self.bye {
            return b.clone();
        }
        let i = self.new_node("hangup");
        self.nodes[i].name = "bye".into();
        self.bye = Some("bye".into());
        "bye".into()
    }

    fn agent(&mut self) -> String {
        if let Some(a) = &self.agent {
            return a.clone();
        }
        let i = self.new_node("transfer");
        self.nodes[i].name = "agent".into();
        self.set(i, "destination", q("{agent}"));
        self.agent = Some("agent".into());
        "agent".into()
    }

    /// An end: the shared hangup or transfer, a goodbye said first, or a transfer of its own.
    fn end(&mut self, ctx: &Ctx) -> String {
        match self.roll(4) {
            0 => self.bye(),
            1 => self.agent(),
            2 => {
                let i = self.new_node("say");
                let text = self.template(ctx);
                self.set(i, "text", q(&text));
                let bye = self.bye();
                self.set(i, "next", q(&bye));
                self.name(i)
            }
            _ => self.transfer(),
        }
    }

    fn transfer(&mut self) -> String {
        let i = self.new_node("transfer");
        let dest = if self.chance(2) { "{agent}" } else { "+6531589339" };
        self.set(i, "destination", q(dest));
        if self.chance(2) {
            self.set(i, "source", q("{virtual_number}"));
        }
        if self.chance(2) {
            self.set(i, "call_recording", "true".into());
        }
        self.name(i)
    }

    fn build(&mut self, ctx: &Ctx) -> String {
        if self.nodes.len() >= NODES_MAX || ctx.depth >= DEPTH_MAX {
            return self.end(ctx);
        }
        match self.roll(12) {
            0 => self.end(ctx),
            1 => self.say(ctx),
            2 => self.play(ctx),
            3 | 4 => self.menu(ctx),
            5 => self.input(ctx),
            // postmortem: a chain of 5 scripts without a prompt between them is refused by
            // `check` (more than `SCRIPTS_PER_STEP_MAX` requests in one step): the seed in
            // tests/generated.proptest-regressions made one.
            6 | 7 if ctx.requests < SCRIPTS_PER_STEP_MAX => self.script(ctx),
            6 | 7 => self.say(ctx),
            8 => self.route(ctx),
            9 => self.set_node(ctx),
            10 if !ctx.waits.is_empty() && self.loops < LOOPS_MAX => self.counter_loop(ctx),
            10 => self.menu(ctx),
            _ => self.transfer(),
        }
    }

    fn say(&mut self, ctx: &Ctx) -> String {
        let i = self.new_node("say");
        let text = if self.long(ctx) { self.long_text(ctx) } else { self.template(ctx) };
        self.set(i, "text", q(&text));
        if self.chance(4) {
            let voice = VOICES[self.roll(VOICES.len())];
            self.set(i, "voice_profile", q(voice));
        }
        if self.chance(4) {
            let r = 1 + self.roll(3);
            self.set(i, "repetition", r.to_string());
        }
        let next = self.build(&ctx.deeper());
        self.set(i, "next", q(&next));
        self.name(i)
    }

    fn play(&mut self, ctx: &Ctx) -> String {
        let i = self.new_node("play");
        self.set(i, "file_url", q(&format!("https://example.com/audio/{i}.mp3")));
        let next = self.build(&ctx.deeper());
        self.set(i, "next", q(&next));
        self.name(i)
    }

    fn menu(&mut self, ctx: &Ctx) -> String {
        let i = self.new_node("menu");
        let prompt = self.prompt(ctx);
        self.set(i, "prompt", prompt);
        if self.chance(2) {
            let reprompt = self.prompt(ctx);
            self.set(i, "reprompt", reprompt);
        }
        if self.chance(3) {
            let t = 1 + self.roll(2);
            self.set(i, "tries", t.to_string());
        }
        let mut child = ctx.deeper();
        child.waits.push(self.name(i));
        child.requests = 0;
        let k = 1 + self.roll(3);
        let mut keys: Vec<String> = (1..=k).map(|key| key.to_string()).collect();
        // A two-key branch (no one-key branch starts it), and 8x8's capture fields.
        if self.chance(4) {
            self.set(i, "max_digits", "2".into());
            keys.push(format!("4{}", 5 + self.roll(4)));
            if self.chance(2) {
                self.set(i, "complete_on_hash", "false".into());
            }
        }
        if self.chance(4) {
            self.set(i, "digit_timeout_ms", "3000".into());
            self.set(i, "overall_timeout_ms", "8000".into());
        }
        if self.chance(5) {
            self.set(i, "no_of_tries", "2".into());
            self.set(i, "success_message", q("Thank you."));
            self.set(i, "failure_message", q("Sorry, once more."));
        }
        let mut branches = Vec::new();
        for key in keys {
            let to = self.build(&child);
            branches.push(format!("{key} = {}", q(&to)));
        }
        self.set(i, "branches", format!("{{ {} }}", branches.join(", ")));
        let invalid = if self.chance(2) { self.build(&child) } else { self.bye() };
        self.set(i, "invalid", q(&invalid));
        if self.chance(3) {
            let no_input = self.build(&child);
            self.set(i, "no_input", q(&no_input));
        }
        self.name(i)
    }

    fn digits(&mut self, n: usize, first: &[char]) -> String {
        let mut s = String::new();
        s.push(first[self.roll(first.len())]);
        for _ in 1..n {
            s.push(char::from(b'1' + self.roll(8) as u8));
        }
        s
    }

    fn input(&mut self, ctx: &Ctx) -> String {
        let i = self.new_node("input");
        let var = self.fresh_var("v");
        let min = 2 + self.roll(2);
        let max = min + self.roll(3);
        // The example starts with 1..4; route rules test values starting with 5..8 (above it).
        let example = self.digits(min, &['1', '2', '3', '4']);
        let prompt = self.prompt(ctx);
        self.set(i, "prompt", prompt);
        self.set(i, "variable", q(&var));
        self.set(i, "min_digits", min.to_string());
        self.set(i, "max_digits", max.to_string());
        if self.chance(2) {
            self.set(i, "pattern", q(&format!("[0-9]{{{min},{max}}}")));
        }
        self.set(i, "example", q(&example));
        if self.chance(3) {
            self.set(i, "global_keys", "false".into());
        }
        let mut child = ctx.deeper();
        child.waits.push(self.name(i));
        child.requests = 0;
        let next = self.build(&child.with(Var {
            name: var,
            kind: VarKind::Input { min, example },
            bound: max,
            stored: None,
        }));
        self.set(i, "next", q(&next));
        let invalid = if self.chance(2) { self.build(&child) } else { self.bye() };
        self.set(i, "invalid", q(&invalid));
        if self.chance(3) {
            let no_input = self.build(&child);
            self.set(i, "no_input", q(&no_input));
        }
        self.name(i)
    }

    fn script(&mut self, ctx: &Ctx) -> String {
        let i = self.new_node("script");
        self.has_scripts = true;
        let name = self.name(i);
        // A keypress script asks for keys first (its prompt is the capture's) and sends them.
        let keypress = self.chance(4);
        if keypress || self.chance(2) {
            let prompt = self.template(ctx);
            self.set(i, "prompt", q(&prompt));
        }
        let mut url = format!("{{api}}/s/{name}?session={{session_id}}&caller={{caller}}");
        if keypress {
            url.push_str("&keys={keypress}");
            self.set(i, "allow_keypress", "true".into());
            let min = 1 + self.roll(2);
            self.set(i, "min_digits", min.to_string());
            let max = min + self.roll(3);
            self.set(i, "max_digits", max.to_string());
            if self.chance(2) {
                let repeat = self.roll(3);
                self.set(i, "repeat", repeat.to_string());
            }
            if self.chance(2) {
                let reprompt = self.template(ctx);
                self.set(i, "reprompt", q(&reprompt));
            }
        }
        self.set(i, "url", q(&url));
        if self.chance(3) {
            self.set(i, "body", q("caller={caller}&line={virtual_number}"));
            if self.chance(2) {
                self.set(i, "raw_json", "true".into());
            }
        }
        if self.chance(3) {
            self.set(i, "headers", q("Accept=application/json&X-Source=generated"));
        }
        self.set(i, "timeout_ms", SCRIPT_TIMEOUT_MS.to_string());
        let nested = self.chance(2);
        self.set(i, "response_key", q(if nested { "data.code" } else { "code" }));
        // Stored values: those with a default are set on every answer that takes a branch, so
        // later templates may say them; those without only sometimes, so nothing says them.
        // A keypress script waits for the caller first: the requests before it were answered.
        let mut after = ctx.deeper();
        after.requests = if keypress { 1 } else { ctx.requests + 1 };
        let mut ok = after.clone();
        let mut store = Vec::new();
        for _ in 0..self.roll(3) {
            let var = self.fresh_var("s");
            let mut entry = vec![format!("path = {}", q(&format!("data.{var}")))];
            let default = self.chance(2).then(|| self.words(3));
            let floor = default.as_ref().map_or(1, String::len);
            let max_chars = (self.chance(2)).then(|| floor.max(4 + self.roll(40)));
            self.may_miss |= default.is_none();
            if let Some(d) = &default {
                entry.push(format!("default = {}", q(d)));
                let bound = max_chars.unwrap_or(64);
                if let Some(m) = max_chars {
                    self.capped.push((i, var.clone(), m));
                }
                ok.vars.push(Var {
                    name: var.clone(),
                    kind: VarKind::Text,
                    bound,
                    stored: max_chars.map(|m| (i, m)),
                });
            }
            // postmortem: a value cut at `max_chars = 4` never equals "alpha", and `check` reports
            // the rule unreachable (the fourth seed in tests/generated.proptest-regressions).
            if max_chars.is_none_or(|m| m >= STORED_RULE_CHARS) {
                ok.stored.push(var.clone());
            }
            if let Some(m) = max_chars {
                entry.push(format!("max_chars = {m}"));
            }
            // The stub's text: up to 16 characters past the bound, often cut.
            let bound = max_chars.unwrap_or(64);
            let len = 1 + self.roll(bound + 16);
            let mut text = String::new();
            while text.len() < len {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(WORDS[self.roll(WORDS.len())]);
            }
            self.samples.insert(var.clone(), text);
            store.push(format!("{var} = {{ {} }}", entry.join(", ")));
        }
        if !store.is_empty() {
            self.set(i, "store", format!("{{ {} }}", store.join(", ")));
        }
        let values: &[&str] = if self.chance(2) { &["1", "2"] } else { &["ok", "busy"] };
        let k = 1 + self.roll(2);
        let mut branches = Vec::new();
        for v in &values[..k] {
            // Often a route on what the answer stored, at once (the explorer samples its values).
            let to = if !ok.stored.is_empty() && self.stored_routes < STORED_ROUTES_MAX && self.chance(2) {
                self.stored_route(&ok)
            } else {
                self.build(&ok)
            };
            branches.push(format!("{v} = {}", q(&to)));
        }
        self.set(i, "branches", format!("{{ {} }}", branches.join(", ")));
        if self.chance(2) {
            let default = self.build(&ok);
            self.set(i, "default", q(&default));
        }
        let failure = if self.chance(2) { self.build(&after) } else { self.bye() };
        self.set(i, "failure", q(&failure));
        if keypress {
            let mut waited = ctx.deeper();
            waited.requests = 0;
            let no_input = if self.chance(2) { self.build(&waited) } else { self.bye() };
            self.set(i, "no_input", q(&no_input));
        }
        name
    }

    /// A route on the caller, on an input's variable, on a stored value, or on the clock.
    fn route(&mut self, ctx: &Ctx) -> String {
        if self.timezone.is_none() && self.chance(2) {
            return self.clock_route(ctx);
        }
        if !ctx.stored.is_empty() && self.stored_routes < STORED_ROUTES_MAX && !self.chance(3) {
            return self.stored_route(ctx);
        }
        let i = self.new_node("route");
        let mut child = ctx.deeper();
        let mut rules = Vec::new();
        let inputs: Vec<(String, usize, String)> = ctx
            .vars
            .iter()
            .filter_map(|v| match &v.kind {
                VarKind::Input { min, example } => Some((v.name.clone(), *min, example.clone())),
                _ => None,
            })
            .collect();
        if !inputs.is_empty() && !self.chance(4) {
            let (var, min, example) = inputs[self.roll(inputs.len())].clone();
            // Past this route the variable is one value per rule: no later route tests it again.
            for v in child.vars.iter_mut().filter(|v| v.name == var) {
                v.kind = VarKind::Text;
            }
            // A value the input accepts, above its example; then one above that.
            let mut value = self.digits(min, &['5', '6', '7', '8']);
            if value == example {
                value = "5".repeat(min);
            }
            let both = self.roll(3);
            if both != 2 {
                let to = self.build(&child);
                rules.push(format!("{{ var = {}, equals = {}, next = {} }}", q(&var), q(&value), q(&to)));
            }
            if both != 1 {
                let above: u64 = value.parse::<u64>().unwrap_or(5) + 1;
                let to = self.build(&child);
                rules.push(format!("{{ var = {}, at_least = {above}, next = {} }}", q(&var), q(&to)));
            }
        }
        // One route on the caller per machine: the caller is the call's, so a second one under the
        // first could never see another.
        if rules.is_empty() && self.caller_routed {
            return self.set_node_at(i, ctx);
        }
        if !self.caller_routed && (rules.is_empty() || self.chance(3)) {
            self.caller_routed = true;
            for prefix in ["+44", "+65"].iter().take(1 + self.roll(2)) {
                let to = self.build(&child);
                rules.push(format!("{{ var = \"caller\", prefix = {}, next = {} }}", q(prefix), q(&to)));
            }
        }
        self.set(i, "rules", format!("[{}]", rules.join(", ")));
        let otherwise = self.build(&child);
        self.set(i, "else", q(&otherwise));
        self.name(i)
    }

    /// A route on a stored value (a default or not): one to three rules of different kinds, and
    /// `else` for any other value and for the key missing.
    fn stored_route(&mut self, ctx: &Ctx) -> String {
        self.stored_routes += 1;
        let i = self.new_node("route");
        let var = ctx.stored[self.roll(ctx.stored.len())].clone();
        // Past this route the value is one its rule holds for: no later route tests it again.
        let mut child = ctx.deeper();
        child.stored.retain(|s| *s != var);
        let first = self.roll(STORED_RULES.len());
        let mut rules = Vec::new();
        for k in 0..1 + self.roll(3) {
            let rule = STORED_RULES[(first + 2 * k) % STORED_RULES.len()];
            let to = self.build(&child);
            rules.push(format!("{{ var = {}, {rule}, next = {} }}", q(&var), q(&to)));
        }
        self.set(i, "rules", format!("[{}]", rules.join(", ")));
        let otherwise = self.build(&child);
        self.set(i, "else", q(&otherwise));
        self.name(i)
    }

    /// Whether a text is a long one: often when a stored value with `max_chars` is set here.
    fn long(&mut self, ctx: &Ctx) -> bool {
        let capped = ctx.vars.iter().any(|v| v.stored.is_some());
        self.chance(if capped { 3 } else { 7 })
    }

    /// A text whose worst case once filled is within `LONG_SLACK` of 8x8's 3000 characters:
    /// filler, then maybe a variable set on every way here, at its bound.
    fn long_text(&mut self, ctx: &Ctx) -> String {
        // Often a stored value with `max_chars` (a mutation raises it), else any variable.
        let capped: Vec<&Var> = ctx.vars.iter().filter(|v| v.stored.is_some()).collect();
        let var = if !capped.is_empty() && !self.chance(3) {
            Some(capped[self.roll(capped.len())].clone())
        } else {
            (!ctx.vars.is_empty() && !self.chance(4)).then(|| ctx.vars[self.roll(ctx.vars.len())].clone())
        };
        // " {var}." fills to a space, the value and a full stop.
        let tail = var.as_ref().map_or(1, |v| v.bound + 2);
        let slack = self.roll(LONG_SLACK + 1);
        let target = TEXT_CHARS_MAX - slack - tail;
        let mut text = String::new();
        while text.len() < target {
            text.push_str(WORDS[self.roll(WORDS.len())]);
            text.push(' ');
        }
        text.truncate(target);
        let Some(v) = var else { return format!("{text}.") };
        if let Some((script, max_chars)) = v.stored {
            let over = max_chars + slack + 1;
            if over <= 512 {
                self.raisable.push(Raisable { script, var: v.name.clone(), max_chars, over });
            }
        }
        format!("{text} {{{}}}.", v.name)
    }

    fn clock_route(&mut self, ctx: &Ctx) -> String {
        let i = self.new_node("route");
        self.timezone = Some(TIMEZONES[self.roll(TIMEZONES.len())].to_string());
        let child = ctx.deeper();
        let mask = 1 + self.roll((1 << CLOCK_RULES.len()) - 1);
        let mut rules = Vec::new();
        for (b, rule) in CLOCK_RULES.iter().enumerate() {
            if mask & (1 << b) != 0 {
                let to = self.build(&child);
                rules.push(format!("{{ {rule}, next = {} }}", q(&to)));
            }
        }
        self.set(i, "rules", format!("[{}]", rules.join(", ")));
        let otherwise = self.build(&child);
        self.set(i, "else", q(&otherwise));
        self.name(i)
    }

    fn set_node(&mut self, ctx: &Ctx) -> String {
        let i = self.new_node("set");
        self.set_node_at(i, ctx)
    }

    /// Makes node `i` a set node.
    fn set_node_at(&mut self, i: usize, ctx: &Ctx) -> String {
        self.nodes[i].kind = "set";
        self.nodes[i].name = format!("n{i}_set");
        let mut child = ctx.deeper();
        let text_var = self.fresh_var("t");
        // At most 32 characters, the bound of a variable: a few words, or the caller's number.
        let value = if self.chance(3) { "from {caller}".to_string() } else { self.words(2) };
        self.set(i, "values", format!("{{ {text_var} = {} }}", q(&value)));
        child.vars.push(Var { name: text_var, kind: VarKind::Text, bound: 32, stored: None });
        if self.chance(2) {
            let counter = self.fresh_var("k");
            let by = [1, 2, -1][self.roll(3)];
            self.set(i, "add", format!("{{ {counter} = {by} }}"));
            child.vars.push(Var { name: counter, kind: VarKind::Counter, bound: 10, stored: None });
        }
        let next = self.build(&child);
        self.set(i, "next", q(&next));
        self.name(i)
    }

    /// A counter loop: a set node adds to a counter, a route takes the caller on once it reaches
    /// 2 or 3, else back to a menu or input on the way here.
    fn counter_loop(&mut self, ctx: &Ctx) -> String {
        self.loops += 1;
        let set = self.new_node("set");
        let route = self.new_node("route");
        let counter = self.fresh_var("c");
        self.set(set, "add", format!("{{ {counter} = 1 }}"));
        let route_name = self.name(route);
        self.set(set, "next", q(&route_name));
        let limit = 2 + self.roll(2);
        let child =
            ctx.deeper().with(Var { name: counter.clone(), kind: VarKind::Counter, bound: 10, stored: None });
        let to = self.build(&child);
        self.set(
            route,
            "rules",
            format!("[{{ var = {}, at_least = {limit}, next = {} }}]", q(&counter), q(&to)),
        );
        let back = ctx.waits[self.roll(ctx.waits.len())].clone();
        self.set(route, "else", q(&back));
        self.name(set)
    }
}

fn generate(dice: &[u16]) -> Generated {
    let mut g = Gen {
        dice,
        at: 0,
        nodes: Vec::new(),
        bye: None,
        agent: None,
        timezone: None,
        loops: 0,
        caller_routed: false,
        may_miss: false,
        vars: 0,
        has_scripts: false,
        samples: HashMap::new(),
        stored_routes: 0,
        raisable: Vec::new(),
        capped: Vec::new(),
    };
    let tries = g.chance(2).then(|| 1 + g.roll(2) as u16);
    let localhost = g.chance(2);
    let mut root = Ctx::default();
    let mut variables = Vec::new();
    if g.chance(3) {
        for _ in 0..1 + g.roll(2) {
            let name = g.fresh_var("m");
            let default = g.words(3);
            variables.push((name.clone(), default));
            root.vars.push(Var { name, kind: VarKind::Text, bound: VARIABLE_CHARS_MAX, stored: None });
        }
    }
    let start = g.build(&root);
    // Machine keys are single keys: a menu captures them, the inputs here (two keys at least) do
    // not, so with no menu a key's target would be unreachable.
    let waits = g.nodes.iter().any(|n| n.kind == "menu");
    let mut keys = Vec::new();
    if waits {
        if g.chance(2) {
            keys.push(("*".to_string(), "repeat".to_string()));
        }
        // postmortem: `back` to a menu before a script whose stored values a route tests lets a
        // caller answer 64 prompts, each sampled answer a new state: `check` refuses it (the
        // third seed in tests/generated.proptest-regressions).
        if g.chance(2) && g.stored_routes == 0 {
            keys.push(("9".to_string(), "back".to_string()));
        }
        match g.roll(4) {
            1 => keys.push(("0".to_string(), g.agent())),
            // `start` with a counter loop, or with stored values an answer may leave unset,
            // multiplies the simple paths past `PATHS_MAX`.
            2 if g.loops == 0 && !g.may_miss => keys.push(("0".to_string(), "start".to_string())),
            3 => keys.push(("0".to_string(), g.bye())),
            _ => {}
        }
    }
    Generated {
        start,
        timezone: g.timezone,
        tries,
        keys,
        nodes: g.nodes,
        has_scripts: g.has_scripts,
        samples: g.samples,
        variables,
        localhost,
        raisable: g.raisable,
        capped: g.capped,
        extra_number: None,
    }
}

fn dice() -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(any::<u16>(), 16..200)
}

// ---------------------------------------------------------------------------------------------
// Invalid machines: one mutation of a valid one that `check` must refuse.

#[derive(Debug, Clone, Copy)]
enum Mutation {
    /// An edge to a node that does not exist.
    DanglingEdge,
    /// A required edge left out (`next`, `failure`, `else`, `branches`).
    MissingEdge,
    /// A text over 8x8's 3000 characters.
    OverlongText,
    /// A template naming a variable nothing sets.
    UnknownVariable,
    /// A number outside 8x8's bounds (`repetition = 4`).
    OutOfBounds,
    /// The start node missing.
    MissingStart,
    /// A text under 8x8's 3000 characters as written, over them once its variables are filled
    /// (a stored value's `max_chars` raised, or `{caller}` at E.164's 16 characters).
    FilledOverLimit,
    /// A number that is not E.164 (in `numbers`, or a transfer's `destination`).
    NotE164,
}

const MUTATIONS: &[Mutation] = &[
    Mutation::DanglingEdge,
    Mutation::MissingEdge,
    Mutation::OverlongText,
    Mutation::UnknownVariable,
    Mutation::OutOfBounds,
    Mutation::MissingStart,
    Mutation::FilledOverLimit,
    Mutation::NotE164,
];

/// The fields holding a node's one required edge, by kind.
fn required_edge(kind: &str) -> Option<&'static str> {
    match kind {
        "say" | "play" | "input" | "set" => Some("next"),
        "menu" => Some("branches"),
        "script" => Some("failure"),
        "route" => Some("else"),
        _ => None,
    }
}

/// Applies `m` to the node `pick` selects among those it applies to; says what it did.
fn mutate(g: &mut Generated, m: Mutation, pick: usize) -> String {
    let candidates = |g: &Generated, f: &dyn Fn(&NodeOut) -> bool| -> Vec<usize> {
        (0..g.nodes.len()).filter(|&i| f(&g.nodes[i])).collect()
    };
    match m {
        Mutation::DanglingEdge | Mutation::MissingEdge => {
            let c = candidates(g, &|n| required_edge(n.kind).is_some());
            if c.is_empty() {
                return mutate(g, Mutation::MissingStart, pick);
            }
            let n = &mut g.nodes[c[pick % c.len()]];
            let field = required_edge(n.kind).unwrap_or("next");
            if matches!(m, Mutation::DanglingEdge) {
                let value =
                    if field == "branches" { "{ 1 = \"nowhere\" }".to_string() } else { q("nowhere") };
                n.set(field, value);
                format!("node `{}`: `{field}` to a node that does not exist", n.name)
            } else {
                n.remove(field);
                format!("node `{}`: `{field}` left out", n.name)
            }
        }
        Mutation::OverlongText | Mutation::UnknownVariable => {
            let c = candidates(g, &|n| n.has("text") || n.has("prompt"));
            if c.is_empty() {
                return mutate(g, Mutation::MissingStart, pick);
            }
            let n = &mut g.nodes[c[pick % c.len()]];
            let field = if n.has("text") { "text" } else { "prompt" };
            let text = if matches!(m, Mutation::OverlongText) {
                "too long ".repeat(340)
            } else {
                "hello {nobody_sets_this}".to_string()
            };
            n.set(field, q(&text));
            format!(
                "node `{}`: `{field}` {}",
                n.name,
                if text.len() > 3000 { "over 3000 characters" } else { "names an unknown variable" }
            )
        }
        Mutation::OutOfBounds => {
            let c = candidates(g, &|n| n.kind == "say" || n.kind == "menu");
            if c.is_empty() {
                return mutate(g, Mutation::MissingStart, pick);
            }
            let n = &mut g.nodes[c[pick % c.len()]];
            if n.kind == "say" {
                n.set("repetition", "4".into());
                format!("node `{}`: repetition = 4", n.name)
            } else {
                n.set("max_digits", "26".into());
                format!("node `{}`: max_digits = 26", n.name)
            }
        }
        Mutation::MissingStart => {
            g.start = "no_such_start".into();
            "start = \"no_such_start\"".into()
        }
        Mutation::FilledOverLimit => {
            if !pick.is_multiple_of(4) && g.raisable.is_empty() {
                // No long text says a capped value: make one of a text that says it, at its
                // `max_chars` exactly 3000 characters filled (fewer as written).
                for (script, var, max_chars) in g.capped.clone() {
                    let needle = format!("{{{var}}}");
                    let at = g.nodes.iter().position(|n| {
                        n.fields.iter().any(|(f, v)| {
                            (f == "text" || f == "prompt") && v.starts_with('"') && v.contains(&needle)
                        })
                    });
                    if let (Some(at), true) = (at, max_chars > needle.len()) {
                        let n = &mut g.nodes[at];
                        let field = if n.has("text") { "text" } else { "prompt" };
                        n.set(field, q(&format!("{} {needle}", "x".repeat(TEXT_CHARS_MAX - 1 - max_chars))));
                        g.raisable.push(Raisable { script, var, max_chars, over: max_chars + 1 });
                        break;
                    }
                }
            }
            if !pick.is_multiple_of(4) && !g.raisable.is_empty() {
                let r = g.raisable[pick / 4 % g.raisable.len()].clone();
                let n = &mut g.nodes[r.script];
                if let Some((_, store)) = n.fields.iter_mut().find(|(f, _)| f == "store")
                    && let Some(at) = store.find(&format!("{} = {{", r.var))
                    && let Some(m) = store[at..].find(&format!("max_chars = {}", r.max_chars))
                {
                    let (from, to) = (at + m, at + m + format!("max_chars = {}", r.max_chars).len());
                    store.replace_range(from..to, &format!("max_chars = {}", r.over));
                    return format!(
                        "node `{}`: `{}`'s max_chars raised from {} to {} (a text saying it crosses 3000 characters)",
                        n.name, r.var, r.max_chars, r.over
                    );
                }
            }
            let c = candidates(g, &|n| n.has("text") || n.has("prompt"));
            if c.is_empty() {
                return mutate(g, Mutation::MissingStart, pick);
            }
            let n = &mut g.nodes[c[pick % c.len()]];
            let field = if n.has("text") { "text" } else { "prompt" };
            // 2990 + 9 = 2999 characters written; 2990 + 1 + 16 = 3007 filled.
            let text = format!("{} {{caller}}", "x".repeat(2990));
            n.set(field, q(&text));
            format!("node `{}`: `{field}` of 2999 characters, 3007 with `{{caller}}` filled", n.name)
        }
        Mutation::NotE164 => {
            let c = candidates(g, &|n| n.kind == "transfer");
            let bad = ["12345", "+0123456789", "+1555abc0000", "+1234567890123456"][pick / 2 % 4];
            if pick.is_multiple_of(2) || c.is_empty() {
                g.extra_number = Some(bad.to_string());
                return format!("numbers lists {bad:?}");
            }
            let n = &mut g.nodes[c[pick / 8 % c.len()]];
            n.set("destination", q(bad));
            format!("node `{}`: destination {bad:?}", n.name)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The loopback API scripts call: each session's requests answered in order, as planned.

/// One request a path's script makes, and how the API answers it.
#[derive(Debug, Clone)]
struct Planned {
    node: String,
    answer: Answer,
}

#[derive(Default)]
struct Plans {
    by_session: HashMap<String, VecDeque<Planned>>,
    /// Requests nothing planned, or from another node than planned.
    unexpected: Vec<String>,
}

struct Api {
    base: String,
    plans: Arc<Mutex<Plans>>,
}

impl Api {
    async fn start() -> Api {
        let plans: Arc<Mutex<Plans>> = Arc::default();
        let shared = plans.clone();
        let route = warp::path!("s" / String).and(warp::query::<HashMap<String, String>>()).then(
            move |node: String, query: HashMap<String, String>| {
                let plans = shared.clone();
                async move {
                    let session = query.get("session").cloned().unwrap_or_default();
                    let next = {
                        let mut p = plans.lock().unwrap();
                        let next = p.by_session.get_mut(&session).and_then(VecDeque::pop_front);
                        match &next {
                            None => p.unexpected.push(format!("{session}: unplanned request from `{node}`")),
                            Some(plan) if plan.node != node => p
                                .unexpected
                                .push(format!("{session}: `{node}` asked where `{}` was planned", plan.node)),
                            _ => {}
                        }
                        next
                    };
                    let reply = |status: u16, body: Vec<u8>| {
                        warp::http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(body)
                            .unwrap()
                    };
                    match next.map(|p| p.answer) {
                        Some(Answer::Http { status, body }) => reply(status, body),
                        Some(Answer::Failed { .. }) => reply(503, b"{}".to_vec()),
                        None => reply(500, b"{}".to_vec()),
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Api { base, plans }
    }

    fn plan(&self, session: &str, planned: Vec<Planned>) {
        self.plans.lock().unwrap().by_session.insert(session.to_string(), planned.into());
    }

    /// What went wrong on `session`: an unexpected request, or planned ones never made.
    fn finish(&self, session: &str) -> Vec<String> {
        let mut p = self.plans.lock().unwrap();
        let mut bad: Vec<String> = p.unexpected.iter().filter(|u| u.starts_with(session)).cloned().collect();
        p.unexpected.retain(|u| !u.starts_with(session));
        if let Some(left) = p.by_session.remove(session)
            && !left.is_empty()
        {
            bad.push(format!("{session}: {} planned request(s) never made: {left:?}", left.len()));
        }
        bad
    }
}

// ---------------------------------------------------------------------------------------------
// One path: what simulate says, and what the node answers.

/// The answer an `@` token stands for at `request`'s script, with every stored key the token
/// keeps given the generated sample text (so values are cut at their `max_chars` alike), except
/// the keys the token gives itself (`@VALUE&NAME=TEXT`: a value a route tests, or the key
/// missing).
fn answer(m: &Machine, g: &Generated, r: &Request, token: &str) -> Result<Answer, String> {
    let id = m.node_id(&r.node).ok_or_else(|| format!("no node `{}`", r.node))?;
    let Some(NodeKind::Script(script)) = m.node(id).map(|n| &n.kind) else {
        return Err(format!("`{}` is not a script", r.node));
    };
    let answer = explore::answer_for_token(script, token).ok_or_else(|| format!("`{token}` is no answer"))?;
    let Answer::Http { status, body } = answer else { return Ok(answer) };
    let mut json: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let given: Vec<&str> =
        token.split('&').skip(1).map(|pair| pair.split_once('=').map_or(pair, |(var, _)| var)).collect();
    // postmortem: a value a route tests keeps the explorer's text even when the token does not
    // name it (`@1`: "1", which `at_most = 5` takes), else the path goes elsewhere than explored
    // (the fifth seed in tests/generated.proptest-regressions).
    let routed = |var: &str| {
        let needle = format!("var = {}", q(var));
        g.nodes.iter().any(|n| n.fields.iter().any(|(f, v)| f == "rules" && v.contains(&needle)))
    };
    for stored in script.store.iter().filter(|s| !given.contains(&s.var.as_str()) && !routed(&s.var)) {
        let pointer = format!("/{}", stored.path.join("/"));
        // A value `{play:$var}` plays stays the URL explore gives it.
        if Some(&stored.path) != script.response_key.as_ref()
            && !script.played.contains(&stored.var)
            && let Some(sample) = g.samples.get(&stored.var)
            && let Some(at) = json.pointer_mut(&pointer).filter(|v| v.is_string())
        {
            *at = Value::String(sample.clone());
        }
    }
    Ok(Answer::Http { status, body: serde_json::to_vec(&json).unwrap() })
}

/// One webhook of a path and the reply simulate gives it.
#[derive(Debug, Clone)]
struct Expected {
    event: Event,
    reply: Option<Callflow>,
}

/// Plays a path's events through `Simulation` (what `simulate` runs) at `at_ms`, its scripts
/// answered by the path's `@` tokens in order; the replies and the requests made.
fn expect(
    m: &Machine,
    g: &Generated,
    caller: &str,
    at_ms: u64,
    tokens: &[String],
) -> Result<(Vec<Expected>, Vec<Planned>), String> {
    let mut answers: VecDeque<&String> = tokens.iter().filter(|t| t.starts_with('@')).collect();
    let mut events = vec![Event::CallStarted];
    for t in tokens.iter().filter(|t| !t.starts_with('@')) {
        events.push(simulate::parse_input(t)?);
    }
    let mut sim = Simulation::new(m, caller, NUMBER).at(at_ms);
    let mut out = Vec::new();
    let mut planned = Vec::new();
    for event in events {
        if sim.state().ended() {
            break;
        }
        let mut answerer = |r: &Request| {
            let token = answers.pop_front().ok_or_else(|| simulate::needs_answer(r))?;
            let a = answer(m, g, r, token)?;
            planned.push(Planned { node: r.node.clone(), answer: a.clone() });
            Ok(a)
        };
        let turn = sim.play(&event, &mut answerer)?;
        out.push(Expected { event, reply: turn.reply });
    }
    Ok((out, planned))
}

/// Whether two plays of a path reply alike.
fn same(a: &[Expected], b: &[Expected]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.reply == y.reply)
}

/// How a path went.
enum Played {
    /// Through the node, every reply as simulate's.
    Live,
    /// At a clock class other than now's: through simulate only.
    EngineOnly,
}

struct Shared {
    api: Api,
    key: ActionKey,
    url: String,
    client: reqwest::Client,
}

/// Plays `path` (explore's tokens, maybe with `--at=` and `--from=`) on session `session`.
async fn play(
    s: Arc<Shared>,
    m: Arc<Machine>,
    g: Arc<Generated>,
    path: Vec<String>,
    session: String,
    empty_dtmf: bool,
) -> Result<Played, String> {
    let option = |name: &str| path.iter().find_map(|t| t.strip_prefix(name).map(str::to_string));
    let caller = option("--from=").unwrap_or_else(|| CALLER.to_string());
    let at_class = option("--at=").map(|at| simulate::parse_at(&at)).transpose()?;
    let tokens: Vec<String> = path.iter().filter(|t| !t.starts_with("--")).cloned().collect();
    for attempt in 0..CLOCK_RETRIES {
        let session = format!("{session}-{attempt}");
        let now = phonetree::node::now_ms();
        let (expected, planned) = match (at_class, expect(&m, &g, &caller, now, &tokens)) {
            (None, played) => played?,
            (Some(at), played) => {
                // The path as explored (at its clock class) must play; now, it must play alike.
                let (explored, _) = expect(&m, &g, &caller, at, &tokens)?;
                match played {
                    Ok((now_, planned)) if same(&explored, &now_) => (now_, planned),
                    _ => return Ok(Played::EngineOnly),
                }
            }
        };
        s.api.plan(&session, planned);
        let mut id: Option<String> = None;
        let mut mismatch = None;
        for (i, e) in expected.iter().enumerate() {
            let event_id = format!("e{i}");
            let (status, dtmf) = match &e.event {
                Event::CallStarted => ("CALL_RECEIVED", None),
                Event::Digits(d) => ("DTMF_RECEIVED", Some(d.as_str())),
                // No input is `dtmf: null`, as 8x8's IVR guides send it, or `dtmf: ""`.
                _ if empty_dtmf => ("DTMF_RECEIVED", Some("")),
                _ => ("DTMF_RECEIVED", None),
            };
            let body = Vca {
                session: &session,
                event: &event_id,
                dtmf,
                client_action_id: id.as_deref(),
                status,
                direction: "INBOUND",
                source: &caller,
                destination: NUMBER,
                event_data: false,
            }
            .body();
            let a = try_post(&s.client, &s.url, body.clone()).await?;
            let text = String::from_utf8_lossy(&a.body).to_string();
            if a.status != 200 || a.how != "applied" || text.contains(FALLBACK) {
                return Err(format!(
                    "webhook {i} ({:?}): {} {:?} {text}\nsimulate: {:?}",
                    e.event,
                    a.status,
                    a.how,
                    e.reply.as_ref().map(json)
                ));
            }
            let got: Value = serde_json::from_slice(&a.body).map_err(|e| e.to_string())?;
            let want = e.reply.clone().map(|f| wire::to_value(&signed(&s.key, &session, f)).unwrap());
            // The id's expiry and MAC depend on when the node signed it: compared without them.
            let unexpired: Value = serde_json::from_slice(&unexpired(&a.body)).map_err(|e| e.to_string())?;
            if want.as_ref() != Some(&unexpired) {
                mismatch = Some(format!(
                    "webhook {i} ({:?}):\n  node:     {got}\n  simulate: {}",
                    e.event,
                    want.map_or("no reply".into(), |w| w.to_string())
                ));
                break;
            }
            let violations = phonetree::callflow::validate(
                &wire::decode(&a.body).map_err(|e| e.to_string())?,
                phonetree::callflow::Use::WebhookReply,
            );
            if !violations.is_empty() {
                return Err(format!("webhook {i}: 8x8 would refuse {got}: {violations:?}"));
            }
            // Delivered again (8x8 retries): the same bytes, and no script asked again (the API
            // counts an unplanned request).
            let again = try_post(&s.client, &s.url, body).await?;
            if (again.status, again.how.as_str(), &again.body) != (200, "duplicate", &a.body) {
                return Err(format!(
                    "webhook {i} delivered again: {} {:?} {}
  first: {got}",
                    again.status,
                    again.how,
                    String::from_utf8_lossy(&again.body)
                ));
            }
            id = got["clientActionId"].as_str().map(str::to_string);
        }
        let api_bad = s.api.finish(&session);
        let moved = at_class.is_some()
            && !expect(&m, &g, &caller, phonetree::node::now_ms(), &tokens)
                .is_ok_and(|(later, _)| same(&later, &expected));
        if moved {
            // Now's clock class changed while the path played: once more.
            continue;
        }
        if let Some(mm) = mismatch {
            return Err(format!("{mm}\n  script API: {api_bad:?}"));
        }
        if !api_bad.is_empty() {
            return Err(format!("script API: {api_bad:?}"));
        }
        return Ok(Played::Live);
    }
    Err(format!("the clock class kept changing over {CLOCK_RETRIES} attempts"))
}

// ---------------------------------------------------------------------------------------------
// The node, and the two properties.

struct Harness {
    rt: tokio::runtime::Runtime,
    node: Node,
    shared: Arc<Shared>,
    file: PathBuf,
    _dir: tempfile::TempDir,
    cases: std::sync::atomic::AtomicUsize,
}

/// A machine that is valid whatever the generator does: the node needs one to start.
const FIRST: &str = "name = \"generated\"\nstart = \"bye\"\nnumbers = [\"+15557770000\"]\n\
[defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\n[nodes.bye]\nkind = \"hangup\"\n";

impl Harness {
    fn start() -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let machines = dir.path().join("machines");
        std::fs::create_dir_all(&machines).unwrap();
        let file = machines.join("generated.toml");
        std::fs::write(&file, FIRST).unwrap();
        let node =
            Node::start_with(&dir.path().join("data"), &machines, &[("PHONETREE_ACTION_KEY", ACTION_KEY)]);
        let api = rt.block_on(Api::start());
        let shared = Arc::new(Shared {
            api,
            key: action_key(),
            url: node.url("/webhooks/vca"),
            client: client_within(Duration::from_secs(30)),
        });
        Harness { rt, node, shared, file, _dir: dir, cases: Default::default() }
    }

    /// `check` on the file as the CLI runs it: the catalog's diagnostics, and its proof.
    fn check(&self) -> Catalog {
        Catalog::load_with(std::slice::from_ref(&self.file), None, &[], None)
    }

    /// `POST /admin/reload`: the status and the answer.
    fn reload(&self) -> (u16, Value) {
        self.rt.block_on(async {
            let r = self
                .shared
                .client
                .post(self.node.admin_url("/admin/reload"))
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        })
    }

    /// Property 1 for one machine: the paths played live and through simulate only.
    fn valid(&self, g: &Generated) -> Result<(usize, usize), TestCaseError> {
        let text = g.render(&self.shared.api.base);
        std::fs::write(&self.file, &text).unwrap();
        let catalog = self.check();
        let errors: Vec<String> =
            catalog.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
        prop_assert!(
            errors.is_empty(),
            "the generator made a machine `check` refuses:\n{}\n{text}",
            errors.join("\n")
        );
        let m = catalog.get("generated").cloned().expect("a proven machine is loaded");
        let (status, answer) = self.reload();
        prop_assert_eq!(status, 200, "{}\n{}", answer, text);
        prop_assert_eq!(&answer["machines"][0]["version"], &Value::from(m.version().hex()), "{}", answer);

        // Rare (tries, `back`, `start` and a counter loop together): another machine instead.
        // postmortem: the second seed in tests/generated.proptest-regressions has over a million
        // paths, which `check` accepts ("at least"); the count is read before the paths are.
        let counted = catalog.reports.iter().map(|(_, r)| r.paths).sum::<u64>();
        prop_assume!(counted <= PATHS_MAX, "{} paths", counted);
        let mut paths = Vec::new();
        let report = explore::explore_paths(&m, &mut |p| paths.push(p.to_vec()));
        prop_assert!(report.proven() && report.paths_complete, "{:?}", report.violations);
        prop_assert_eq!(paths.len() as u64, report.paths);

        let case = self.cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let g = Arc::new(g.clone());
        let shared = self.shared.clone();
        let results: Vec<(Vec<String>, Result<Played, String>)> = self.rt.block_on(async move {
            let gate = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
            let mut tasks = Vec::new();
            for (i, path) in paths.into_iter().enumerate() {
                let (s, m, g, gate) = (shared.clone(), m.clone(), g.clone(), gate.clone());
                tasks.push(tokio::spawn(async move {
                    let _permit = gate.acquire().await.unwrap();
                    let r = play(s, m, g, path.clone(), format!("g{case}-p{i}"), i % 2 == 1).await;
                    (path, r)
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let (mut live, mut engine_only) = (0, 0);
        for (path, r) in results {
            match r {
                Ok(Played::Live) => live += 1,
                Ok(Played::EngineOnly) => engine_only += 1,
                Err(why) => {
                    return Err(TestCaseError::fail(format!(
                        "path {} disagrees with the node:\n{why}\nmachine:\n{text}",
                        explore::replay("generated.toml", &path)
                    )));
                }
            }
        }
        Ok((live, engine_only))
    }

    /// Property 2 for one machine: `check` refuses it, and so does the node's reload, saying the
    /// same; the running machines stay.
    fn invalid(&self, g: &Generated, what: &str) -> Result<(), TestCaseError> {
        let text = g.render(&self.shared.api.base);
        std::fs::write(&self.file, &text).unwrap();
        let catalog = self.check();
        let diagnostics: Vec<String> = catalog.diagnostics.iter().map(ToString::to_string).collect();
        prop_assert!(catalog.has_errors(), "`check` accepts a machine with {what}:\n{text}");
        let before = self.machines();
        let (status, answer) = self.reload();
        prop_assert_eq!(status, 422, "the node accepts a machine with {}: {}\n{}", what, answer, text);
        prop_assert_eq!(&answer["result"], "failed");
        let said: Vec<String> = answer["diagnostics"]
            .as_array()
            .map(|d| d.iter().filter_map(|d| d.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        prop_assert_eq!(said, diagnostics, "the reload says otherwise than `check` ({})", what);
        prop_assert_eq!(self.machines(), before, "a refused reload changed the running machines");
        // A fresh node on the file does not start, and says the same.
        let (code, stderr) = fresh_serve(self.file.parent().unwrap());
        prop_assert!(code != Some(0), "`serve` started on a machine with {what} ({code:?})\n{stderr}");
        for d in catalog.diagnostics.iter().filter(|d| d.is_error()) {
            let first = d.to_string().lines().next().unwrap_or_default().to_string();
            prop_assert!(stderr.contains(&first), "`serve` did not say {first:?}:\n{stderr}");
        }
        Ok(())
    }

    fn machines(&self) -> Value {
        self.rt.block_on(async {
            let r = self.shared.client.get(self.node.admin_url("/admin/machines")).send().await.unwrap();
            r.json::<Value>().await.unwrap()["machines"].clone()
        })
    }
}

/// How long a `serve` that should refuse its machines may take to exit.
const REFUSAL_WAIT: Duration = Duration::from_secs(30);

/// Starts `phonetree serve` on `machines` with a store of its own and waits for it to exit: its
/// exit code (`None`: it was still running at `REFUSAL_WAIT`, and is killed) and its stderr.
fn fresh_serve(machines: &std::path::Path) -> (Option<i32>, String) {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("serve.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data"])
        .arg(data.path().join("data"))
        .arg("--machines")
        .arg(machines)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + REFUSAL_WAIT;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (code, std::fs::read_to_string(&log).unwrap_or_default())
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(CASES);
    Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        // Each case plays every path through the node: shrink in few steps.
        max_shrink_iters: SHRINK_ITERS,
        ..Config::default()
    }
}

#[test]
fn every_machine_check_accepts_plays_every_explored_path_on_the_node_as_simulate_says() {
    let h = Harness::start();
    let mut runner = TestRunner::new(config());
    let tally = Arc::new(Mutex::new((0usize, 0usize, 0usize, [0usize; 4])));
    let counted = tally.clone();
    let result = runner.run(&dice(), |dice| {
        let g = generate(&dice);
        let (live, engine_only) = h.valid(&g)?;
        let mut t = counted.lock().unwrap();
        *t = (t.0 + 1, t.1 + live, t.2 + engine_only, t.3);
        for (n, has) in t.3.iter_mut().zip(features(&g)) {
            *n += usize::from(has);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nthe node's last warnings and errors:\n{}", tail(&h.node.log()));
    }
    let (machines, live, engine_only, [stored, long, localhost, variables]) = *tally.lock().unwrap();
    eprintln!(
        "{machines} generated machine(s): {live} explored path(s) played through the node as simulate says; \
         {engine_only} at a clock class other than now's through simulate only; {stored} with routes on \
         stored values, {long} with texts near 8x8's limit, {localhost} calling `localhost:PORT`, \
         {variables} with `variables`"
    );
    assert!(live > 0);
}

#[test]
fn every_machine_check_refuses_the_node_refuses_too() {
    let h = Harness::start();
    let mut runner = TestRunner::new(config());
    let raised = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&(dice(), 0..MUTATIONS.len(), any::<usize>()), |(dice, m, pick)| {
        let mut g = generate(&dice);
        let what = mutate(&mut g, MUTATIONS[m], pick);
        if what.contains("max_chars raised") {
            raised.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        h.invalid(&g, &what)
    });
    if let Err(e) = result {
        panic!("{e}\nthe node's last warnings and errors:\n{}", tail(&h.node.log()));
    }
    eprintln!(
        "{} machine(s) refused for a stored value's `max_chars` raised past a long text",
        raised.into_inner()
    );
}

/// Which of the generator's rarer parts a machine has: routes on stored values, a text near
/// 8x8's limit, scripts calling `localhost:PORT`, the machine's `variables`.
fn features(g: &Generated) -> [bool; 4] {
    let field =
        |f: &dyn Fn(&str, &str) -> bool| g.nodes.iter().any(|n| n.fields.iter().any(|(k, v)| f(k, v)));
    [
        field(&|k, v| k == "rules" && v.contains("var = \"s")),
        field(&|_, v| v.len() > TEXT_CHARS_MAX - 2 * LONG_SLACK - 512),
        g.localhost && g.has_scripts,
        !g.variables.is_empty(),
    ]
}

/// The last warnings and errors of a node's log (it logs at debug).
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
