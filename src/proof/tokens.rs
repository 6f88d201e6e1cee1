//! The flags an explored path starts with, as `simulate` takes them on its command line: the
//! call's clock class, caller, session, the node an interrupted call stopped at (the call opens
//! with the resume offer) and each variable it kept. `explore` writes them, `simulate::parse_path`
//! reads them (for `diff` and `loadtest`), `check` prints them in its `simulate` commands.

pub(super) const AT_FLAG: &str = "--at=";
pub(super) const FROM_FLAG: &str = "--from=";
pub(super) const SESSION_FLAG: &str = "--session=";
pub(super) const RESUME_FROM_FLAG: &str = "--resume-from=";
pub(super) const VAR_FLAG: &str = "--var=";
