//! `phonetree schema`: prints the JSON Schema of machine files, for editors (taplo / Even Better
//! TOML, VS Code's JSON support) to complete and check machine files as they are typed.

use std::io::Write;

use phonetree::machine::schema::machine_schema;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the schema to stdout: {0}")]
    Write(#[from] std::io::Error),
}

pub fn run() -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{:#}", machine_schema()).and_then(|()| out.flush()) {
        // `phonetree schema | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => Ok(result?),
    }
}
