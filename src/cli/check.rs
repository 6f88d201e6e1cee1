//! `phonetree check`: compiles and proves machine files, prints every diagnostic and a summary
//! (or one JSON report).

use std::path::PathBuf;

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
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Some machine has an error; the report on stdout lists them.
    #[error("{errors} error(s)")]
    Invalid { errors: usize },
}

pub fn run(args: &Args) -> Result<(), Error> {
    let voices = super::voices_file(args.voices.clone());
    let catalog = Catalog::load_with(&args.paths, voices.as_deref(), &args.script_allow);
    let errors = catalog.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = catalog.diagnostics.len() - errors;
    let reports = || catalog.reports.iter().map(|(_, r)| r);
    let sum = |f: fn(&Report) -> u64| reports().map(f).sum::<u64>();
    let (nodes, edges) = (sum(|r| r.nodes as u64), sum(|r| r.edges as u64));
    let (covered, paths_explored) = (sum(|r| r.edges_covered as u64), sum(|r| r.paths));
    let bounded = if reports().all(|r| r.paths_complete) { "" } else { "at least " };
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
            "machines": machines, "diagnostics": catalog.diagnostics,
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
        println!(
            "checked {} file(s): {} machine(s) valid and proven, {nodes} nodes, {edges} edges, {covered}/{edges} edges covered, {bounded}{paths_explored} paths explored; {errors} error(s), {warnings} warning(s)",
            catalog.files.len(),
            catalog.len(),
        );
    }
    if errors > 0 { Err(Error::Invalid { errors }) } else { Ok(()) }
}
