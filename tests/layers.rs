//! The crate's layers, enforced: reads every file of `src/` and fails when a module uses a higher
//! layer, when files use each other in a circle, when a pure layer names I/O or a clock, when a
//! file outside `src/store/` names sled, PostgreSQL's crates or MessagePack (`STORE_ONLY`), or
//! when a file outside `src/webhook/` and `src/callflow/` spells 8x8's JSON keys (`WIRE_KEYS`).
//!
//! What counts as a use: every path in a `use` item (trees expanded: `use crate::{a::X, b}` is
//! `crate::a::X` and `crate::b`) and every path in code (`crate::x::f()`, `super::y::Z`,
//! `self::w`, `tokio::spawn`, `std::fs::read`), comments and string literals left out. `super::`
//! and `self::` resolve from the file's module (and from inline modules inside it). A path names
//! the file of its longest prefix that is a file. Items under `#[cfg(test)]` are left out: unit
//! tests may reach anywhere, what ships may not. A file and the files of its own submodules (a
//! `mod.rs` and its children) are one unit for the cycle rule, as Rust's module tree has them.
//!
//! The binary (`src/main.rs`, `src/cli/`) is the `cli` layer: its `crate::` is the binary, its
//! `phonetree::` the library.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// The layers, bottom first, each with its rank: a module uses its own layer and layers of a lower
/// rank only. Two layers of one rank are peers and use neither each other. `secret` is a leaf
/// beside them all; the library root (`lib.rs`) only declares the modules.
const LAYERS: &[(&str, u32)] = &[
    ("secret", 0),   // secrets that never show: used from 8x8's model upwards
    ("callflow", 1), // 8x8's callflow model, its rules and limits
    ("machine", 2),  // machine files compiled onto 8x8's actions
    ("engine", 3),   // step(machine, state, event, now): the pure core, the call transcript
    ("export", 3),   // DOT, Mermaid, VoiceXML, JSON: reads only the machine
    ("proof", 4),    // the offline proof and simulation: runs the engine
    ("store", 4),    // sled, PostgreSQL, MessagePack: keeps engine state, knows no prover
    ("webhook", 4),  // 8x8's JSON in and out
    ("node", 5),     // the durable webhook node
    ("http", 6),     // the listeners over the node
    ("loadtest", 6), // a client of running nodes
    ("cli", 7),      // the binary on top of all of them
];

/// The pure layers: no I/O, no clock (the house rule of the project brief).
const PURE: &[&str] = &["callflow", "machine", "engine", "proof", "export"];

/// Path prefixes a pure layer must not name: async runtimes, stores, network stacks, files,
/// sockets, processes, the environment, threads, randomness and clocks. `std::net`'s address
/// types are plain values and stay allowed (see `PURE_ALLOWED`).
const IMPURE: &[&str] = &[
    "tokio",
    "tokio_postgres",
    "tokio_postgres_rustls",
    "postgres",
    "deadpool_postgres",
    "sled",
    "hyper",
    "hyper_util",
    "warp",
    "reqwest",
    "rustls",
    "rustls_platform_verifier",
    "getrandom",
    "std::fs",
    "std::io",
    "std::net",
    "std::os",
    "std::env",
    "std::process",
    "std::thread",
    "std::time::SystemTime",
    "std::time::Instant",
    "std::time::UNIX_EPOCH",
    "SystemTime",
    "Instant::now",
    "jiff::Timestamp::now",
    "jiff::Zoned::now",
    "Timestamp::now",
    "Zoned::now",
    "TimeZone::system",
    "jiff::tz::TimeZone::system",
];

/// Exceptions to `IMPURE`: IP addresses are values (the host rule ranges them), not sockets.
const PURE_ALLOWED: &[&str] = &[
    "std::net::IpAddr",
    "std::net::Ipv4Addr",
    "std::net::Ipv6Addr",
    "std::net::SocketAddr",
    "std::net::AddrParseError",
];

/// Crates only the store names: the brief's "only `store` knows sled, PostgreSQL and
/// MessagePack". Checked on every file outside `src/store/`, the binary's included.
const STORE_ONLY: &[&str] =
    &["sled", "tokio_postgres", "tokio_postgres_rustls", "postgres", "deadpool_postgres", "rmp_serde", "rmp"];

/// The layers that spell 8x8's JSON: the webhook layer and 8x8's model beside it.
const WIRE_HOMES: &[&str] = &["webhook", "callflow"];

/// Keys of 8x8's JSON (callflows, webhooks, the Send Callflow API's answers) that no other layer
/// writes or reads by hand: a string literal that is one of them used as a key (`"k":` as in
/// `json!` or a JSON text, `v["k"]`, `.get("k")`), or a literal holding `"k"` (JSON written out),
/// breaks the brief's "only `webhook` knows 8x8's JSON". Names that phonetree's own API shares
/// (`sessionId`, `statusCode`, ...) and the machine compiler's mapping of 8x8's action fields to
/// the machine file's names (match arms, not JSON) are left out.
const WIRE_KEYS: &[&str] = &[
    "callflow",
    "clientActionId",
    "eventId",
    "eventType",
    "callStatus",
    "sessionStatus",
    "callFlowRequestId",
    "promptMessage",
    "noOfTries",
    "completeOnHash",
    "digitTimeout",
    "overallTimeout",
    "successMessage",
    "failureMessage",
    "voiceProfile",
    "fileUrl",
    "subAccount",
];

/// Files outside `WIRE_HOMES` that spell a wire key today, each with the key and why.
const WIRE_EXCEPTIONS: &[(&str, &str, &str)] = &[
    ("src/loadtest/api.rs", "sessionStatus", "a stand-in for 8x8's Send Callflow API answers as 8x8 does"),
    (
        "src/loadtest/api.rs",
        "callFlowRequestId",
        "a stand-in for 8x8's Send Callflow API answers as 8x8 does",
    ),
    (
        "src/node/calls.rs",
        "callflow",
        "LAST_RESORT, the hangup written out for when encoding fails: to move to webhook",
    ),
];

/// One broken rule, at a file and line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    rule: &'static str,
    detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {} rule: {}", self.file, self.line, self.rule, self.detail)
    }
}

/// Which crate a file belongs to: paths starting `crate::` resolve in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Krate {
    Lib,
    Bin,
}

/// A source file: its path as shown (`src/node/calls.rs`), crate and module path.
struct File<'a> {
    path: String,
    krate: Krate,
    module: Vec<String>,
    text: &'a str,
}

/// Maps `src/x/y.rs` (relative to `src/`) to its crate and module path.
fn module_of(rel: &str) -> (Krate, Vec<String>) {
    let rel = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    let krate = if parts.first().map(String::as_str) == Some("cli") || rel == "main" {
        Krate::Bin
    } else {
        Krate::Lib
    };
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    (krate, parts)
}

/// The layer a file belongs to, or `None` for the library root.
fn layer_of(file: &File) -> Option<&'static str> {
    if file.krate == Krate::Bin {
        return Some("cli");
    }
    let first = file.module.first()?;
    LAYERS.iter().map(|(n, _)| *n).find(|n| n == first)
}

fn rank(layer: &str) -> Option<u32> {
    LAYERS.iter().find(|(n, _)| *n == layer).map(|(_, r)| *r)
}

/// The text with comments, string and char literals blanked (newlines kept, so offsets and
/// lines stay true).
fn blank_comments_and_strings(text: &str) -> String {
    scan(text).0
}

/// A string literal: the char that starts it (its `"`, or the `r` of a raw string: kept when
/// the literal is blanked) and the char range of its body.
struct Literal {
    at: usize,
    body: (usize, usize),
}

/// The text blanked as `blank_comments_and_strings` says, and every string literal in it.
fn scan(text: &str) -> (String, Vec<Literal>) {
    let mut literals = Vec::new();
    let b: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = b.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in out.iter_mut().take(to.min(b.len())).skip(from) {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = (i..b.len()).find(|&j| b[j] == '\n').unwrap_or(b.len());
            blank(&mut out, i, end);
            i = end;
        } else if c == '/' && next == Some('*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < b.len() && depth > 0 {
                if b[j] == '/' && b.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == '*' && b.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if c == 'r'
            && (i == 0 || !ident(b[i - 1]) || (b[i - 1] == 'b' && (i < 2 || !ident(b[i - 2]))))
            && matches!(next, Some('#' | '"'))
        {
            let hashes = (i + 1..b.len()).take_while(|&j| b[j] == '#').count();
            if b.get(i + 1 + hashes) != Some(&'"') {
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let body = i + 2 + hashes;
            let rest: String = b[body..].iter().collect();
            let end =
                rest.find(&close).map(|k| body + rest[..k].chars().count() + close.len()).unwrap_or(b.len());
            blank(&mut out, i + 1, end);
            literals.push(Literal { at: i, body: (body, end.saturating_sub(close.len()).max(body)) });
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i + 1, j);
            literals.push(Literal { at: i, body: (i + 1, j.min(b.len())) });
            i = j + 1;
        } else if c == '\'' {
            if next == Some('\\') {
                let end = (i + 2..b.len()).find(|&j| b[j] == '\'').unwrap_or(b.len());
                blank(&mut out, i + 1, end);
                i = end + 1;
            } else if b.get(i + 2) == Some(&'\'') {
                blank(&mut out, i + 1, i + 2);
                i += 3;
            } else {
                i += 1; // a lifetime
            }
        } else {
            i += 1;
        }
    }
    (out.into_iter().collect(), literals)
}

/// The index just past the brace that closes the one at `open`.
fn matching_brace(b: &[char], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, &c) in b.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    b.len()
}

/// Blanks every item under `#[cfg(test)]` (up to its `;` or its closing brace).
fn blank_test_items(code: &str) -> String {
    let mut b: Vec<char> = code.chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + marker.len() <= b.len() {
        if b[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        let semi = (i..b.len()).find(|&j| b[j] == ';').unwrap_or(b.len());
        let brace = (i..b.len()).find(|&j| b[j] == '{').unwrap_or(b.len());
        let end = if brace < semi { matching_brace(&b, brace) } else { (semi + 1).min(b.len()) };
        for c in b.iter_mut().take(end).skip(i) {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = end;
    }
    b.into_iter().collect()
}

/// Inline modules (`mod name { ... }`): their name and the char range of their body.
fn inline_modules(b: &[char]) -> Vec<(usize, usize, String)> {
    let text: String = b.iter().collect();
    let re = regex::Regex::new(r"\bmod\s+([A-Za-z_]\w*)\s*\{").expect("a valid pattern");
    let mut out = Vec::new();
    for m in re.captures_iter(&text) {
        let whole = m.get(0).expect("the match");
        let open = text[..whole.end()].chars().count() - 1;
        out.push((open, matching_brace(b, open), m[1].to_string()));
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into full paths.
fn expand_use_tree(tree: &str) -> Vec<String> {
    fn go(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        if tree.is_empty() {
            return;
        }
        if let Some(open) = tree.find('{') {
            let head = tree[..open].trim().trim_end_matches("::").trim();
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let base = join(prefix, head);
            let (mut depth, mut start) = (0, 0);
            let mut items = Vec::new();
            for (k, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&inner[start..k]);
                        start = k + 1;
                    }
                    _ => {}
                }
            }
            items.push(&inner[start..]);
            for item in items {
                go(&base, item, out);
            }
        } else {
            let path = tree.split(" as ").next().unwrap_or(tree).trim();
            let path = path.trim_end_matches("::*").trim_end_matches("::self");
            if path == "self" {
                out.push(prefix.to_string());
            } else if path != "*" {
                out.push(join(prefix, path));
            }
        }
    }
    fn join(prefix: &str, rest: &str) -> String {
        let rest: String = rest.split_whitespace().collect();
        match (prefix.is_empty(), rest.is_empty()) {
            (true, _) => rest,
            (_, true) => prefix.to_string(),
            _ => format!("{prefix}::{rest}"),
        }
    }
    let mut out = Vec::new();
    go("", tree, &mut out);
    out
}

/// Every path a file names, with its line and the module it is named from (the file's module
/// plus any inline module around it).
fn paths_of(file: &File) -> Vec<(usize, Vec<String>, String)> {
    let code = blank_test_items(&blank_comments_and_strings(file.text));
    let mut b: Vec<char> = code.chars().collect();
    let inline = inline_modules(&b);
    let line_at = |b: &[char], at: usize| 1 + b[..at].iter().filter(|&&c| c == '\n').count();
    let module_at = |at: usize| {
        let mut m = file.module.clone();
        let mut around: Vec<_> = inline.iter().filter(|(s, e, _)| *s <= at && at < *e).collect();
        around.sort();
        m.extend(around.into_iter().map(|(_, _, n)| n.clone()));
        m
    };
    let mut found = Vec::new();
    let text: String = b.iter().collect();
    let use_re = regex::Regex::new(r"\buse\s").expect("a valid pattern");
    let mut spans = Vec::new();
    for m in use_re.find_iter(&text) {
        let start = text[..m.start()].chars().count();
        let end = (start..b.len()).find(|&j| b[j] == ';').unwrap_or(b.len());
        let tree: String = b[start + 4..end].iter().collect();
        for path in expand_use_tree(&tree) {
            found.push((line_at(&b, start), module_at(start), path));
        }
        spans.push((start, end));
    }
    for (s, e) in spans {
        for c in b.iter_mut().take(e).skip(s) {
            if *c != '\n' {
                *c = ' ';
            }
        }
    }
    let text: String = b.iter().collect();
    let path_re = regex::Regex::new(r"[A-Za-z_]\w*(?:\s*::\s*[A-Za-z_]\w*)+").expect("a valid pattern");
    for m in path_re.find_iter(&text) {
        let before = text[..m.start()].trim_end();
        if before.ends_with("::") || before.ends_with('.') {
            continue; // the tail of a longer path (`<T as X>::y`, `Vec::<u8>::new`) or a method
        }
        let at = text[..m.start()].chars().count();
        let path: String = m.as_str().split_whitespace().collect();
        found.push((line_at(&b, at), module_at(at), path));
    }
    found
}

/// What a path points at inside the crates: the file (key into `files`) of its longest prefix
/// that is a file, or `None` for an external or local-item path.
fn resolve(files: &[File], from: &File, module: &[String], path: &str) -> Option<usize> {
    let segs: Vec<&str> = path.split("::").collect();
    let (krate, mut abs): (Krate, Vec<String>) = match segs[0] {
        "crate" => (from.krate, Vec::new()),
        "phonetree" => (Krate::Lib, Vec::new()),
        "self" => (from.krate, module.to_vec()),
        "super" => (from.krate, module.to_vec()),
        _ => return None,
    };
    let mut rest = &segs[..];
    if segs[0] == "crate" || segs[0] == "phonetree" || segs[0] == "self" {
        rest = &segs[1..];
    }
    while let Some(&"super") = rest.first() {
        abs.pop();
        rest = &rest[1..];
    }
    abs.extend(rest.iter().map(|s| s.to_string()));
    // The binary's root is `main.rs`: `crate::cli::x` is `src/cli/x.rs`, `crate::f` is main.
    (0..=abs.len()).rev().find_map(|n| files.iter().position(|f| f.krate == krate && f.module == abs[..n]))
}

/// The external path a path names, as written (`tokio::spawn`), if its head is not the crate's.
fn external(path: &str) -> Option<&str> {
    let head = path.split("::").next()?;
    (!matches!(head, "crate" | "self" | "super" | "phonetree" | "Self")).then_some(path)
}

/// Checks the files against the five rules; every violation, sorted.
fn check(files: &[File]) -> Vec<Violation> {
    let mut out = BTreeSet::new();
    // edges[a][b] = the first line of `a` that uses `b`.
    let mut edges: BTreeMap<usize, BTreeMap<usize, usize>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let layer = layer_of(file);
        for (line, module, path) in paths_of(file) {
            if let Some(j) = resolve(files, file, &module, &path) {
                let target = &files[j];
                let (a, b) = (&file.module, &target.module);
                let related = file.krate == target.krate && (a.starts_with(b) || b.starts_with(a));
                if !related {
                    edges.entry(i).or_default().entry(j).or_insert(line);
                }
                if let (Some(from), Some(to)) = (layer, layer_of(target))
                    && from != to
                {
                    let (rf, rt) = (rank(from).unwrap_or(u32::MAX), rank(to).unwrap_or(u32::MAX));
                    if rt >= rf {
                        let how = if rt == rf { "a peer layer" } else { "a higher layer" };
                        out.insert(Violation {
                            file: file.path.clone(),
                            line,
                            rule: "layer",
                            detail: format!(
                                "`{from}` uses `{path}` ({}), {how}: a layer uses only layers below it \
                                 (LAYERS in tests/layers.rs); move what it needs down",
                                target.path
                            ),
                        });
                    }
                }
            } else if let (Some(layer), Some(ext)) = (layer, external(&path))
                && PURE.contains(&layer)
            {
                let named = |p: &str| ext == p || ext.starts_with(&format!("{p}::"));
                if let Some(bad) = IMPURE.iter().find(|p| named(p))
                    && !PURE_ALLOWED.iter().any(|p| named(p))
                {
                    out.insert(Violation {
                        file: file.path.clone(),
                        line,
                        rule: "purity",
                        detail: format!(
                            "pure layer `{layer}` names `{ext}` ({bad}): callflow, machine, engine, proof \
                             and export do no I/O and read no clock; pass the value in from the node"
                        ),
                    });
                }
            }
        }
    }
    for file in files {
        let layer = layer_of(file);
        let who = layer.unwrap_or("the library root");
        if layer != Some("store") {
            for (line, _, path) in paths_of(file) {
                let Some(ext) = external(&path) else { continue };
                let head = ext.split("::").next().unwrap_or(ext);
                if STORE_ONLY.contains(&head) {
                    out.insert(Violation {
                        file: file.path.clone(),
                        line,
                        rule: "store",
                        detail: format!(
                            "`{who}` names `{ext}` ({head}): only the store knows sled, PostgreSQL and \
                             MessagePack; go through `store::Store` or move the code into `src/store/`"
                        ),
                    });
                }
            }
        }
        if !layer.is_some_and(|l| WIRE_HOMES.contains(&l)) {
            for (line, key) in wire_keys(file) {
                if WIRE_EXCEPTIONS.iter().any(|(f, k, _)| *f == file.path && *k == key) {
                    continue;
                }
                out.insert(Violation {
                    file: file.path.clone(),
                    line,
                    rule: "wire",
                    detail: format!(
                        "`{who}` spells 8x8's JSON key `{key}`: only the webhook layer knows 8x8's JSON; \
                         use `webhook`'s types and functions (or list the file in WIRE_EXCEPTIONS, saying why)"
                    ),
                });
            }
        }
    }
    for cycle in cycles(&edges) {
        let mut shown = Vec::new();
        for (k, &a) in cycle.iter().enumerate() {
            let b = cycle[(k + 1) % cycle.len()];
            shown.push(format!("{}:{} uses {}", files[a].path, edges[&a][&b], files[b].path));
        }
        let first = cycle[0];
        out.insert(Violation {
            file: files[first].path.clone(),
            line: edges[&first][&cycle[1 % cycle.len()]],
            rule: "cycle",
            detail: format!("files use each other in a circle: {}; cut one edge", shown.join(", ")),
        });
    }
    out.into_iter().collect()
}

/// The 8x8 wire keys (`WIRE_KEYS`) a file spells in shipped code, with their lines.
fn wire_keys(file: &File) -> Vec<(usize, &'static str)> {
    let (blanked, literals) = scan(file.text);
    let shipped: Vec<char> = blank_test_items(&blanked).chars().collect();
    let b: Vec<char> = file.text.chars().collect();
    let mut out = Vec::new();
    for lit in literals {
        if shipped.get(lit.at).is_none_or(|c| c.is_whitespace()) {
            continue; // under #[cfg(test)]
        }
        let (from, to) = (lit.body.0.min(b.len()), lit.body.1.min(b.len()));
        let body: String = b[from..to].iter().collect();
        let after: String = b[to..].iter().skip(1).take(8).collect();
        let after = after.trim_start();
        let before: String = b[..lit.at].iter().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        let before = before.trim_end();
        for &key in WIRE_KEYS {
            let as_key = body == key
                && ((after.starts_with(':') && !after.starts_with("::"))
                    || (before.ends_with('[') && after.starts_with(']'))
                    || before.ends_with(".get("));
            let written = body.contains(&format!("\"{key}\"")) || body.contains(&format!("\\\"{key}\\\""));
            if as_key || written {
                out.push((1 + b[..lit.at].iter().filter(|&&c| c == '\n').count(), key));
            }
        }
    }
    out
}

/// One circle through each strongly connected group of files (Tarjan, then a shortest way back).
fn cycles(edges: &BTreeMap<usize, BTreeMap<usize, usize>>) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<usize, BTreeMap<usize, usize>>,
        index: BTreeMap<usize, usize>,
        low: BTreeMap<usize, usize>,
        stack: Vec<usize>,
        groups: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for &w in
                self.edges.get(&v).map(|m| m.keys().copied().collect::<Vec<_>>()).unwrap_or_default().iter()
            {
                if !self.index.contains_key(&w) {
                    self.visit(w);
                    let lw = self.low[&w];
                    let lv = self.low.get_mut(&v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w) {
                    let iw = self.index[&w];
                    let lv = self.low.get_mut(&v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[&v] == self.index[&v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    group.push(w);
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    self.groups.push(group);
                }
            }
        }
    }
    let mut t =
        Tarjan { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), groups: Vec::new() };
    for &v in edges.keys() {
        if !t.index.contains_key(&v) {
            t.visit(v);
        }
    }
    let mut out = Vec::new();
    for group in t.groups {
        let start = *group.iter().min().expect("a group has members");
        // Breadth first from `start` back to it, inside the group.
        let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        'search: while let Some(v) = queue.pop_front() {
            for &w in edges.get(&v).map(|m| m.keys().copied().collect::<Vec<_>>()).unwrap_or_default().iter()
            {
                if !group.contains(&w) {
                    continue;
                }
                if w == start {
                    let mut cycle = vec![v];
                    let mut at = v;
                    while at != start {
                        at = prev[&at];
                        cycle.push(at);
                    }
                    cycle.reverse();
                    out.push(cycle);
                    break 'search;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(w) {
                    e.insert(v);
                    queue.push_back(w);
                }
            }
        }
    }
    out
}

/// Reads every `.rs` file under `dir` (relative paths from `root`).
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("src/ is readable").map(|e| e.expect("an entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src/").to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&path).expect("a readable source file")));
        }
    }
}

fn files_of<'a>(sources: &'a [(String, String)]) -> Vec<File<'a>> {
    sources
        .iter()
        .map(|(rel, text)| {
            let (krate, module) = module_of(rel);
            File { path: format!("src/{rel}"), krate, module, text }
        })
        .collect()
}

#[test]
fn src_keeps_its_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    read_tree(&root, &root, &mut sources);
    assert!(sources.len() > 50, "src/ holds the crate: read only {} files", sources.len());
    let files = files_of(&sources);
    // Every top-level module of the library has a row in LAYERS.
    for file in &files {
        if file.krate == Krate::Lib && !file.module.is_empty() {
            assert!(
                layer_of(file).is_some(),
                "{}: module `{}` has no row in LAYERS",
                file.path,
                file.module[0]
            );
        }
    }
    let found = check(&files);
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(found.is_empty(), "{} layer violation(s):\n{}", found.len(), shown.join("\n"));
}

/// The checker itself: given bad files as strings, each rule fails with file, line and rule.
#[test]
fn the_checker_catches_what_it_forbids() {
    let sources: Vec<(String, String)> = [
        ("lib.rs", "//! root\npub mod store;\npub mod node;\npub mod engine;\n"),
        ("store/mod.rs", "//! store\nmod a;\n\nuse crate::node::Node; // the wrong way\n"),
        ("store/a.rs", "//! a\nuse super::b::X;\n"),
        ("store/b.rs", "//! b\n\n\nfn f() { super::a::g() }\n"),
        ("node/mod.rs", "//! node\nuse crate::{engine::step, store::Store};\n"),
        (
            "engine/mod.rs",
            "//! engine\n/// tokio::spawn in a comment is fine\nconst S: &str = \"std::fs\";\n\
             fn f() {\n    let t = std::time::Instant::now();\n    tokio::spawn(async {});\n}\n\
             use std::net::IpAddr;\n#[cfg(test)]\nmod tests {\n    use std::fs;\n}\n",
        ),
        (
            "http/mod.rs",
            "//! http\nfn f() {\n    let db = sled::open(\"x\");\n    \
             let v = json!({\"clientActionId\": 1, \"note\": \"clientActionId\"});\n    \
             let k = &v[\"eventId\"];\n}\nconst R: &[u8] = br#\"{\"callflow\":[]}\"#;\n\
             #[cfg(test)]\nmod tests {\n    fn t() { let _ = json!({\"eventId\": 1}); }\n}\n",
        ),
        ("webhook/mod.rs", "//! webhook\nfn f() { let v = json!({\"clientActionId\": 1}); }\n"),
        ("store/c.rs", "//! c\nfn f() { let _ = (sled::open(\"x\"), rmp_serde::to_vec(&1)); }\n"),
        ("main.rs", "//! bin\nfn main() { let _ = rmp_serde::to_vec(&1); }\n"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let files = files_of(&sources);
    let found: Vec<String> = check(&files).iter().map(ToString::to_string).collect();
    let expect = [
        "src/engine/mod.rs:5: purity rule: pure layer `engine` names `std::time::Instant::now` (std::time::Instant)",
        "src/engine/mod.rs:6: purity rule: pure layer `engine` names `tokio::spawn` (tokio)",
        "src/http/mod.rs:3: store rule: `http` names `sled::open` (sled): only the store knows",
        "src/http/mod.rs:4: wire rule: `http` spells 8x8's JSON key `clientActionId`",
        "src/http/mod.rs:5: wire rule: `http` spells 8x8's JSON key `eventId`",
        "src/http/mod.rs:7: wire rule: `http` spells 8x8's JSON key `callflow`",
        "src/main.rs:2: store rule: `cli` names `rmp_serde::to_vec` (rmp_serde)",
        "src/store/a.rs:2: cycle rule: files use each other in a circle: src/store/a.rs:2 uses src/store/b.rs, \
         src/store/b.rs:4 uses src/store/a.rs",
        "src/store/mod.rs:4: cycle rule: files use each other in a circle: src/store/mod.rs:4 uses src/node/mod.rs, \
         src/node/mod.rs:2 uses src/store/mod.rs",
        "src/store/mod.rs:4: layer rule: `store` uses `crate::node::Node` (src/node/mod.rs), a higher layer",
    ];
    assert_eq!(found.len(), expect.len(), "found:\n{}", found.join("\n"));
    for (got, want) in found.iter().zip(expect) {
        assert!(got.starts_with(want), "got:  {got}\nwant: {want}...");
    }
}

#[test]
fn use_trees_expand() {
    assert_eq!(
        expand_use_tree("crate::{a::{B, c::D as E}, f, g::*, self}"),
        ["crate::a::B", "crate::a::c::D", "crate::f", "crate::g", "crate"]
    );
    assert_eq!(expand_use_tree("super::x"), ["super::x"]);
}
