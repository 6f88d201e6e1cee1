//! `phonetree replay`: plays recorded calls (`phonetree calls export`) through a machine file
//! offline and prints, per call, "same" or where its transcript first differs.

use std::path::{Path, PathBuf};

use phonetree::engine::transcript::Call;
use phonetree::machine::Machine;
use phonetree::proof::history::{self, REPLAY_CALLS_MAX};

#[derive(clap::Args)]
pub struct Args {
    /// Recorded calls: JSON files as `phonetree calls export` writes them.
    #[arg(required = true, num_args = 1..=REPLAY_CALLS_MAX)]
    calls: Vec<PathBuf>,
    /// The machine file to play them through.
    #[arg(long)]
    machine: PathBuf,
    /// Folder of the modules machines use (`module` nodes). Default: `modules/` beside the machine
    /// file.
    #[arg(long, env = "PHONETREE_MODULES")]
    modules: Option<PathBuf>,
    /// Exit 1 when any call differs.
    #[arg(long)]
    expect_same: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: not a recorded call: {source}", path.display())]
    NotACall { path: PathBuf, source: serde_json::Error },
    /// Its diagnostics are on stderr already.
    #[error("{} does not compile", .0.display())]
    DoesNotCompile(PathBuf),
    #[error("{differ} of {all} call(s) differ")]
    Differs { differ: usize, all: usize },
}

pub fn run(args: &Args) -> Result<(), Error> {
    let m = load(&args.machine, args.modules.as_deref())?;
    let mut differ = 0;
    for path in &args.calls {
        let text = read(path)?;
        let call: Call =
            serde_json::from_str(&text).map_err(|source| Error::NotACall { path: path.clone(), source })?;
        let masked = history::masked(&call);
        let masked = if masked.is_empty() {
            String::new()
        } else {
            format!(" (masked keys, played as the input's example: {})", masked.join(", "))
        };
        match history::replay(&m, &call) {
            None => println!("{} (session {}): same{masked}", path.display(), call.session),
            Some(d) => {
                differ += 1;
                println!("{} (session {}): {d}{masked}", path.display(), call.session);
            }
        }
    }
    if args.expect_same && differ > 0 {
        return Err(Error::Differs { differ, all: args.calls.len() });
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.into(), source })
}

fn load(path: &Path, modules: Option<&Path>) -> Result<Machine, Error> {
    super::compile_file(path, modules)
        .map_err(|source| Error::Read { path: path.into(), source })?
        .ok_or_else(|| Error::DoesNotCompile(path.into()))
}
