//! Which calls a load test places: every machine's explored paths (`proof::explore`, the same
//! exploration `check` runs), each also ended by every answer its last prompt takes, played
//! offline at the start of the run to learn the edges each takes; a greedy cover of every edge
//! first, then paths drawn from the seed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path as FsPath, PathBuf};

use crate::engine::script::Method;
use crate::engine::{self, Answer, CallInfo, CallState, Direction, Event, Phase, Request, Stepped};
use crate::machine::{self, Edge, Machine, NodeId, NodeKind, Source};
use crate::node::catalog;
use crate::proof::{explore, scenario, simulate};

/// Most explored paths kept per machine: enough to cover every edge of machines far larger than
/// the bundled ones; the rest of a larger machine's paths are not needed for a cover.
pub const PATHS_KEPT_MAX: usize = 20_000;
/// Most machine files a load test reads.
pub const MACHINES_MAX: usize = 256;
/// The caller's number a call gets unless the path names one: `+1555` and the call's index, so
/// that every call's script requests differ (the stub answers each request by what it is).
const CALLER_PREFIX: &str = "+1555";

/// A deterministic stream of numbers (SplitMix64): the same seed draws the same run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// True with `pct` percent chance.
    pub fn percent(&mut self, pct: u8) -> bool {
        self.below(100) < u64::from(pct)
    }
}

/// A 64-bit hash of `parts` under `seed` (FNV-1a, then mixed): what the stub answers is a
/// function of the seed and the request.
pub fn hash(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Rng::new(seed, h).next()
}

/// One webhook of a planned call: the caller's event and the script answers (`@VALUE` tokens, as
/// `simulate` takes them) the step should meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub event: Event,
    pub answers: Vec<String>,
}

/// One planned call: a machine, a caller (when the path names one) and the turns, the first
/// being the call's start.
#[derive(Debug, Clone)]
pub struct Path {
    pub machine: usize,
    pub caller: Option<String>,
    /// The clock class the explorer played it at (`--at=`, ms since the epoch), when the run moves
    /// the nodes' clocks (`--clock-control`); `None`: the real clock.
    pub at: Option<u64>,
    pub turns: Vec<Turn>,
    /// The caller hangs up where the turns leave the call (waiting at a menu of a machine with
    /// `[resume]`) and calls again at once: the new call must open with the resume offer.
    pub again: bool,
}

impl Path {
    /// The caller's number for the call of rank `index`.
    pub fn caller_for(&self, index: u64) -> String {
        self.caller.clone().unwrap_or_else(|| format!("{CALLER_PREFIX}{:07}", index % 10_000_000))
    }
}

/// The calls of a run: the cover (every edge each machine's paths take, at the clock of the
/// run), then the other paths to draw from.
pub struct Plan {
    pub machines: Vec<Loaded>,
    pub cover: Vec<Path>,
    pub all: Vec<Path>,
}

/// A machine of the run: compiled, the number it is called on, its edges.
pub struct Loaded {
    pub machine: Machine,
    pub file: PathBuf,
    pub number: String,
    /// Every edge of the machine, as (from, label).
    pub edges: BTreeSet<(NodeId, Edge)>,
    /// The edges the planned paths take at the run's clock.
    pub reachable: HashSet<(NodeId, Edge)>,
    /// The shortest script timeout of the requests the planned paths make (ms).
    pub timeout_ms_min: Option<u32>,
    /// host:port of each script request the planned paths make.
    pub hosts: BTreeSet<String>,
}

/// Machines that cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} does not compile (run `phonetree check {}`)", .0.display(), .0.display())]
    DoesNotCompile(PathBuf),
    #[error("{} holds no machine file (*.toml, *.json)", .0.display())]
    NoMachines(PathBuf),
    #[error("{} holds more than {MACHINES_MAX} machine files", .0.display())]
    TooManyMachines(PathBuf),
}

/// Reads and compiles every machine file in `dir`, with the modules in `dir/modules` (as a node
/// serving `dir` without `--modules` does).
pub fn load(dir: &FsPath) -> Result<Vec<(PathBuf, Machine)>, PlanError> {
    let read = |path: &FsPath| {
        std::fs::read_dir(path).map_err(|source| PlanError::Read { path: path.into(), source })
    };
    let mut files: Vec<PathBuf> = read(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml" || x == "json"))
        // A scenario file (`phonetree test`) beside the machines is not one.
        .filter(|p| !p.to_str().is_some_and(|n| n.ends_with(scenario::FILE_SUFFIX)))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(PlanError::NoMachines(dir.into()));
    }
    if files.len() > MACHINES_MAX {
        return Err(PlanError::TooManyMachines(dir.into()));
    }
    let (modules, _) = catalog::read_modules(&catalog::modules_dirs(&[dir.into()], None));
    let options = machine::Options { modules: &modules, ..Default::default() };
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|source| PlanError::Read { path: file.clone(), source })?;
        let compiled = machine::compile_with(&Source::new(file.display().to_string(), text), options);
        let m = compiled.machine.ok_or_else(|| PlanError::DoesNotCompile(file.clone()))?;
        out.push((file, m));
    }
    Ok(out)
}

/// An explored path's turns (read by `simulate::parse_path`, as `simulate` reads them): the
/// call's start, then one per keypress or no input, each with the `@` answers after it.
fn turns(path: &simulate::PathCall) -> Vec<Turn> {
    let mut turns = vec![Turn { event: Event::CallStarted, answers: Vec::new() }];
    for input in &path.inputs {
        match input {
            simulate::Input::Answer(a) => {
                if let Some(last) = turns.last_mut() {
                    last.answers.push(a.clone());
                }
            }
            simulate::Input::Event(e) => turns.push(Turn { event: e.clone(), answers: Vec::new() }),
        }
    }
    turns
}

/// What a planned path does when played offline at `now_ms`: the edges it takes, its requests'
/// hosts and timeouts, and the state before each turn. `None` when it cannot be played (it ends
/// early, or needs more answers).
struct Played {
    edges: Vec<(NodeId, Edge)>,
    hosts: Vec<String>,
    timeout_ms_min: Option<u32>,
    /// The state before each turn, and the one after the last.
    states: Vec<CallState>,
    /// The script the last turn asked first, if any.
    first_script: Option<String>,
}

fn play(m: &Machine, number: &str, caller: &str, turns: &[Turn], now_ms: u64) -> Option<Played> {
    let info = CallInfo {
        session_id: "loadtest-plan".into(),
        direction: Direction::Inbound,
        source: caller.into(),
        destination: number.into(),
        call_id: Some("loadtest-plan".into()),
    };
    let mut state = CallState::new(m, info, now_ms);
    let mut out = Played {
        edges: Vec::new(),
        hosts: Vec::new(),
        timeout_ms_min: None,
        states: Vec::new(),
        first_script: None,
    };
    // The stub answers a request as it first did (within a call too: a PIN tried again is the
    // same request): the offline play gives it the same answer, so it takes the edges the call will.
    let mut memo: HashMap<Key, Answer> = HashMap::new();
    for turn in turns {
        if state.phase == Phase::Ended {
            return None;
        }
        out.first_script = None;
        let mut answers = Vec::new();
        let step = loop {
            match engine::step_with(m, &state, &turn.event, now_ms, &answers).ok()? {
                Stepped::Done(step) => break step,
                Stepped::Needs(request) => {
                    if answers.len() >= engine::SCRIPTS_PER_STEP_MAX {
                        return None;
                    }
                    let script = script_of(m, &request.node)?;
                    if out.first_script.is_none() {
                        out.first_script = Some(request.node.clone());
                    }
                    let token = turn.answers.get(answers.len()).map_or("@*", String::as_str);
                    if let Ok(url) = url::Url::parse(&request.url) {
                        let host = url.host_str().unwrap_or_default();
                        out.hosts.push(format!("{host}:{}", url.port_or_known_default().unwrap_or(80)));
                    }
                    out.timeout_ms_min =
                        Some(out.timeout_ms_min.map_or(request.timeout_ms, |t| t.min(request.timeout_ms)));
                    let answer = explore::answer_for_token(script, token)
                        .unwrap_or(Answer::Failed { reason: "none".into() });
                    answers.push(match key_of(&request) {
                        Some(key) => memo.entry(key).or_insert(answer).clone(),
                        None => answer,
                    });
                }
            }
        };
        out.edges.extend(step.edges.iter().map(|(f, e, _)| (*f, e.clone())));
        out.states.push(state);
        state = step.state;
    }
    out.states.push(state);
    Some(out)
}

/// Most nodes of one machine at which a planned caller hangs up to call again (one call each).
const INTERRUPTED_MAX: usize = 256;

/// Most call states whose every answer is tried on top of the explored paths.
const EXPANSIONS_MAX: usize = 20_000;

/// The answer classes of script `node` (as `simulate` tokens): each branch value, another value,
/// no answer, and each without the stored keys when one has no default.
fn answer_classes(m: &Machine, node: &str) -> Vec<String> {
    let Some(id) = m.node_id(node) else { return vec!["@*".into()] };
    let may_miss = script_of(m, node).is_some_and(|s| s.store.iter().any(|v| v.default.is_none()));
    let mut out = Vec::new();
    for (edge, _) in m.edges(id) {
        match edge {
            Edge::Response(v) => {
                out.push(format!("@{v}"));
                if may_miss {
                    out.push(format!("@?{v}"));
                }
            }
            Edge::Default => {
                out.push("@*".into());
                if may_miss {
                    out.push("@?*".into());
                }
            }
            _ => {}
        }
    }
    out.push("@!".into());
    out
}

/// The script node named `node`.
pub fn script_of<'m>(m: &'m Machine, node: &str) -> Option<&'m machine::Script> {
    match m.node(m.node_id(node)?).map(|n| &n.kind) {
        Some(NodeKind::Script(s)) => Some(s),
        _ => None,
    }
}

/// The answers tried at a waiting state besides the explored paths' own: every key it takes,
/// no input, keys none takes, and the keypad junk explore tries. Explore's paths keep one
/// transition per state they lead to (and none back to a state on the path), so the edges of the
/// others (a `repeat` key, a retry, a second script answer to the same next state) come from these.
fn alternatives(m: &Machine, node: NodeId) -> Vec<Event> {
    let mut out = vec![Event::NoInput, Event::Digits("#".into()), Event::Digits("*".into())];
    for (edge, _) in m.edges(node) {
        if let Edge::Key(k) | Edge::Repeat(k) | Edge::Back(k) = edge {
            out.push(Event::Digits(k.clone()));
            out.push(Event::Digits(format!("{k}#")));
        }
    }
    if let Some(NodeKind::Input(input)) = m.node(node).map(|n| &n.kind) {
        out.push(Event::Digits(input.example.clone()));
        out.push(Event::Digits(format!("{}#", input.example)));
    }
    for junk in ["0", "1", "9", "00", "11#", "1234567890123456789012345"] {
        out.push(Event::Digits(junk.into()));
    }
    out
}

/// The plan of a run over `machines` at the run's clock `now_ms`: paths that cover every edge the
/// explored paths reach, machine after machine in turn, then every path kept. `clocked`: the run
/// moves the nodes' clocks, so each path plays at its clock class (else all at `now_ms`).
pub fn plan(machines: Vec<(PathBuf, Machine)>, now_ms: u64, clocked: bool) -> Plan {
    let mut loaded = Vec::new();
    let mut covers: Vec<Vec<Path>> = Vec::new();
    let mut all = Vec::new();
    for (file, m) in machines {
        let index = loaded.len();
        let number = m.numbers().first().cloned().unwrap_or_else(|| "+15550000000".into());
        let mut kept: Vec<Vec<String>> = Vec::new();
        explore::explore_paths(&m, &mut |p| {
            if kept.len() < PATHS_KEPT_MAX {
                kept.push(p.to_vec());
            }
        });
        let edges: BTreeSet<(NodeId, Edge)> = m
            .graph()
            .edge_indices()
            .filter_map(|e| Some((m.graph().edge_endpoints(e)?.0, m.graph()[e].clone())))
            .collect();
        let mut reachable = HashSet::new();
        let mut cover = Vec::new();
        let (mut hosts, mut timeout_ms_min) = (BTreeSet::new(), None::<u32>);
        let mut candidates: Vec<Path> = Vec::new();
        for tokens in &kept {
            // A path from the resume offer (`--resume-from`) answers the offer first: a call
            // played again by its caller (`call::run`) makes the offer, not a path. (A path's
            // `--session=` is not played: a planned call has its own session id.)
            let Ok(path) = simulate::parse_path(tokens) else { continue };
            if path.resume_from.is_some() {
                continue;
            }
            let (caller, at, turns) = (path.from.clone(), path.at_ms.filter(|_| clocked), turns(&path));
            candidates.push(Path { machine: index, caller, at, turns, again: false });
        }
        let explored = candidates.len();
        let mut expanded: HashSet<String> = HashSet::new();
        // The nodes a planned caller hangs up at to call again, and those calls.
        let (mut interrupted, mut hang_ups): (HashSet<NodeId>, Vec<Path>) = Default::default();
        let mut i = 0;
        while i < candidates.len() {
            let path = candidates[i].clone();
            i += 1;
            let caller = path.caller_for(0);
            let at = path.at.unwrap_or(now_ms);
            let Some(played) = play(&m, &number, &caller, &path.turns, at) else { continue };
            hosts.extend(played.hosts.iter().cloned());
            if let Some(t) = played.timeout_ms_min {
                timeout_ms_min = Some(timeout_ms_min.map_or(t, |m| m.min(t)));
            }
            // A turn whose script has other answers: the same turn with each of them.
            if let (Some(script), Some(last)) = (&played.first_script, path.turns.last())
                && i > explored
                && last.answers.is_empty()
            {
                for token in answer_classes(&m, script) {
                    let mut other = path.clone();
                    if let Some(t) = other.turns.last_mut() {
                        t.answers = vec![token];
                    }
                    candidates.push(other);
                }
            }
            if played.edges.iter().any(|e| !reachable.contains(e)) {
                reachable.extend(played.edges.iter().cloned());
                cover.push(path.clone());
            }
            // With `[resume]`: a caller who hangs up at each node that waits for keys, after an
            // answer at least (a submenu, an input), and calls again.
            if i <= explored && m.resume().is_some() {
                for (k, state) in played.states.iter().enumerate().skip(2) {
                    let waits = m.node(state.node).is_some_and(|n| n.kind.capture().is_some());
                    if state.phase == Phase::AwaitingInput
                        && waits
                        && !state.closed
                        && !state.offering()
                        && interrupted.len() < INTERRUPTED_MAX
                        && interrupted.insert(state.node)
                    {
                        let turns = path.turns[..k].to_vec();
                        hang_ups.push(Path { turns, again: true, ..path.clone() });
                    }
                }
            }
            // Every other answer at each waiting state the explored paths pass.
            if i <= explored {
                all.push(path.clone());
                for (k, state) in played.states.iter().enumerate().skip(1) {
                    let key = format!(
                        "{:?}",
                        (state.node, &state.phase, state.tries, &state.vars, state.closed, path.at)
                    );
                    if state.phase != Phase::AwaitingInput
                        || expanded.len() >= EXPANSIONS_MAX
                        || !expanded.insert(key)
                    {
                        continue;
                    }
                    for event in alternatives(&m, state.node) {
                        let mut other = Path {
                            machine: index,
                            caller: path.caller.clone(),
                            at: path.at,
                            turns: path.turns[..k].to_vec(),
                            again: false,
                        };
                        other.turns.push(Turn { event, answers: Vec::new() });
                        candidates.push(other);
                    }
                }
            }
        }
        cover.extend(hang_ups);
        covers.push(cover);
        loaded.push(Loaded { machine: m, file, number, edges, reachable, timeout_ms_min, hosts });
    }
    // Machine after machine in turn, so a short run covers each machine alike.
    let mut cover = Vec::new();
    let longest = covers.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        for c in &covers {
            if let Some(p) = c.get(k) {
                cover.push(p.clone());
            }
        }
    }
    Plan { machines: loaded, cover, all }
}

/// A request as the stub sees it: method, path and query, body.
pub(super) type Key = (String, String, Vec<u8>);

/// What the stub API tells requests apart by (`None`: not a URL).
pub(super) fn key_of(request: &Request) -> Option<Key> {
    let url = url::Url::parse(&request.url).ok()?;
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let method = match request.method {
        Method::Get => "GET",
        Method::Post => "POST",
    };
    let body = request.body.as_ref().map(|(_, b)| b.clone()).unwrap_or_default();
    Some((method.to_string(), target, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_covers_every_edge_of_the_bundled_machines_the_clock_lets_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("machines");
        // 2026-01-05 (a Monday) 10:00 in Singapore: bank_balance is open.
        let p = plan(load(&dir).unwrap(), 1_767_578_400_000, false);
        for l in &p.machines {
            if l.machine.timezone().is_none() {
                assert_eq!(l.reachable.len(), l.edges.len(), "{}", l.machine.name());
            } else {
                // One clock takes one rule of a route on time: the holiday and closed edges wait.
                assert!(l.reachable.len() > l.edges.len() / 2, "{}: {}", l.machine.name(), l.reachable.len());
            }
        }
        let covered: usize = p.machines.iter().map(|l| l.edges.len()).sum();
        assert!(p.cover.len() < covered, "{} paths for {covered} edges", p.cover.len());
        assert!(p.machines.iter().all(|l| l.hosts.iter().all(|h| h.starts_with("127.0.0.1:"))));
        assert!(p.cover.iter().all(|c| c.at.is_none()));
    }

    #[test]
    fn the_cover_hangs_up_once_at_each_node_that_waits_for_keys_of_a_machine_with_resume() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("machines");
        let now = 1_767_578_400_000;
        let p = plan(load(&dir).unwrap(), now, false);
        let mut at = BTreeSet::new();
        for path in p.cover.iter().filter(|c| c.again) {
            let l = &p.machines[path.machine];
            assert_eq!(l.machine.name(), "clinic_appointments", "only a machine with [resume]");
            let played = play(&l.machine, &l.number, &path.caller_for(0), &path.turns, now).unwrap();
            let last = played.states.last().unwrap();
            assert_eq!(last.phase, Phase::AwaitingInput);
            assert!(path.turns.len() >= 2, "after an answer at least");
            assert!(at.insert(l.machine.node(last.node).unwrap().name.clone()), "once per node");
        }
        let want: BTreeSet<String> =
            ["main", "book", "ask_day", "confirm_day", "change"].map(String::from).into_iter().collect();
        assert_eq!(at, want);
    }

    #[test]
    fn with_the_clock_moved_to_each_class_the_plan_covers_every_edge_of_every_bundled_machine() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("machines");
        let p = plan(load(&dir).unwrap(), 1_767_578_400_000, true);
        for l in &p.machines {
            assert_eq!(l.reachable.len(), l.edges.len(), "{}", l.machine.name());
        }
        let bank = p.machines.iter().position(|l| l.machine.name() == "bank_balance").unwrap();
        let classes: BTreeSet<Option<u64>> =
            p.cover.iter().filter(|c| c.machine == bank).map(|c| c.at).collect();
        assert!(classes.len() >= 3 && classes.iter().all(Option::is_some), "{classes:?}");
    }
}
