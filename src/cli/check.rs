//! `phonetree check`: compiles and proves machine files, prints every diagnostic and a summary
//! (or one JSON report).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use petgraph::visit::EdgeRef;

use phonetree::machine::hosts::AllowedHost;
use phonetree::node::catalog::Catalog;
use phonetree::proof::explore::{self, Report};

#[derive(clap::Args)]
pub struct Args {
    /// Machine files (.toml, .json) or folders holding them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
    /// The voice profiles `voice_profile`s are checked against, one a line (`phonetree voices`
    /// writes it). Default: `voices.txt` when there is one, else the voices bundled with phonetree.
    #[arg(long, env = "PHONETREE_VOICES")]
    voices: Option<PathBuf>,
    /// The `--script-allow` of the node that will serve the machines: script URLs are checked by
    /// the host rule with it, as that node checks them. Without it, `check` proves what a node
    /// without `--script-allow` does.
    #[arg(long, env = "PHONETREE_SCRIPT_ALLOW", value_delimiter = ',', value_parser = super::script_host)]
    script_allow: Vec<AllowedHost>,
    /// Folder of the modules machines use (`module` nodes). Default: `modules/` beside the
    /// machines given, where there is one.
    #[arg(long, env = "PHONETREE_MODULES")]
    modules: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Some machine has an error; the report on stdout lists them.
    #[error("{errors} error(s)")]
    Invalid { errors: usize },
}

pub fn run(args: &Args) -> Result<(), Error> {
    let voices = super::voices_file(args.voices.clone());
    let catalog =
        Catalog::load_with(&args.paths, voices.as_deref(), &args.script_allow, args.modules.as_deref());
    let errors = catalog.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = catalog.diagnostics.len() - errors;
    let reports = || catalog.reports.iter().map(|(_, r)| r);
    let sum = |f: fn(&Report) -> u64| reports().map(f).sum::<u64>();
    let (nodes, edges) = (sum(|r| r.nodes as u64), sum(|r| r.edges as u64));
    let (covered, paths_explored) = (sum(|r| r.edges_covered as u64), sum(|r| r.paths));
    let bounded = if reports().all(|r| r.paths_complete) { "" } else { "at least " };
    let modules = module_coverage(&catalog);
    if args.json {
        let machines: Vec<serde_json::Value> = catalog
            .reports
            .iter()
            .map(|(file, r)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["file"] = file.as_str().into();
                v["replay_longest"] = explore::replay(file, &r.longest).into();
                v
            })
            .collect();
        let report = serde_json::json!({
            "files": catalog.files.len(), "machines_valid": catalog.len(), "nodes": nodes, "edges": edges,
            "edges_covered": covered, "paths": paths_explored, "errors": errors, "warnings": warnings,
            "machines": machines, "modules": modules, "diagnostics": catalog.diagnostics,
        });
        println!("{report:#}");
    } else {
        for d in &catalog.diagnostics {
            println!("{d}");
        }
        for (file, r) in catalog.reports.iter().filter(|(_, r)| r.proven()) {
            println!(
                "{file}: proven `{}` ({}): {} states, {} transitions, {}/{} edges covered, {}{} paths, longest {} answers: {}",
                r.machine,
                r.version,
                r.states,
                r.transitions,
                r.edges_covered,
                r.edges,
                if r.paths_complete { "" } else { "at least " },
                r.paths,
                r.longest.len(),
                explore::replay(file, &r.longest),
            );
        }
        for m in &modules {
            let via = if m.machines == 1 { "machine" } else { "machines" };
            println!(
                "module {}: {}/{} edges covered (via {} {via})",
                m.module, m.edges_covered, m.edges, m.machines
            );
        }
        println!(
            "checked {} file(s): {} machine(s) valid and proven, {nodes} nodes, {edges} edges, {covered}/{edges} edges covered, {bounded}{paths_explored} paths explored; {errors} error(s), {warnings} warning(s)",
            catalog.files.len(),
            catalog.len(),
        );
    }
    if errors > 0 { Err(Error::Invalid { errors }) } else { Ok(()) }
}

/// One module's coverage across the proven machines that use it.
#[derive(serde::Serialize)]
struct ModuleCoverage {
    module: String,
    /// The module's edges in any machine that uses it: its node and the edge's label.
    edges: usize,
    /// Those some input takes in some machine's proof.
    edges_covered: usize,
    machines: usize,
}

/// Each module's edges (by its own node names, so that every use counts the same edge once) and
/// those the proofs of the machines using it cover.
fn module_coverage(catalog: &Catalog) -> Vec<ModuleCoverage> {
    type Edges = BTreeSet<(String, String)>;
    let mut by_module: BTreeMap<&str, (Edges, Edges, BTreeSet<&str>)> = BTreeMap::new();
    for m in catalog.machines() {
        let Some((_, report)) = catalog.reports.iter().find(|(_, r)| r.machine == m.name()) else { continue };
        for u in m.modules() {
            let (all, covered, users) = by_module.entry(u.module.as_str()).or_default();
            users.insert(m.name());
            for e in m.graph().edge_references() {
                if let Some(local) = u.local(&m.graph()[e.source()].name) {
                    all.insert((local.to_string(), e.weight().to_string()));
                }
            }
            for (node, label) in &report.covered {
                if let Some(local) = u.local(node) {
                    covered.insert((local.to_string(), label.clone()));
                }
            }
        }
    }
    by_module
        .into_iter()
        .map(|(module, (all, covered, users))| ModuleCoverage {
            module: module.to_string(),
            edges: all.len(),
            edges_covered: covered.intersection(&all).count(),
            machines: users.len(),
        })
        .collect()
}
