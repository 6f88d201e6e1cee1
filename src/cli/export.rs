//! `phonetree export`: loads one machine as `simulate` does and prints its compiled graph in one
//! format (`export`'s).

use std::path::PathBuf;

use phonetree::export;

use super::simulate;

#[derive(clap::Args)]
pub struct Args {
    /// A machine file, or the name of a machine in --machines.
    machine: String,
    /// What to print: a Graphviz digraph, a Mermaid flowchart, a VoiceXML 2.1 document, or JSON.
    #[arg(long, value_enum)]
    format: Format,
    /// Where machine names are looked up.
    #[arg(long, env = "PHONETREE_MACHINES", default_value = "machines")]
    machines: PathBuf,
    /// Folder of the modules machines use (`module` nodes). Default: `modules/` beside the machine
    /// file.
    #[arg(long, env = "PHONETREE_MODULES")]
    modules: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Dot,
    Mermaid,
    Vxml,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The machine did not load or compile (its diagnostics are printed).
    #[error(transparent)]
    Load(#[from] simulate::Error),
}

pub fn run(args: &Args) -> Result<(), Error> {
    let m = simulate::load(
        &args.machine,
        &args.machines,
        args.modules.as_deref(),
        super::voices_file(None).as_deref(),
        &[],
    )?;
    let text = match args.format {
        Format::Dot => export::dot(&m),
        Format::Mermaid => export::mermaid(&m),
        Format::Vxml => export::vxml(&m),
        Format::Json => format!("{:#}\n", export::json(&m)),
    };
    print!("{text}");
    Ok(())
}
