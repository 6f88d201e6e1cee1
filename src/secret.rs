//! A secret (API key, webhook secret, admin token, action key): its `Debug` and `Display` never
//! show it, and it is read from a flag, the environment or a file.

use std::fmt;
use std::path::Path;

/// A secret value; only `expose` shows it, for the one place that must send or compare it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from text, trimmed (a trailing newline from `echo` or an editor is not part of
    /// it).
    pub fn new(text: &str) -> Secret {
        Secret(text.trim().to_string())
    }

    /// The first non-empty line of `file`, or an error naming the file (never its content).
    pub fn from_file(file: &Path) -> Result<Secret, SecretFileError> {
        let text = std::fs::read_to_string(file)
            .map_err(|source| SecretFileError { file: file.display().to_string(), source })?;
        let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        Ok(Secret::new(line))
    }

    /// The secret of a pair of options, text or file (the file's first line wins); `None` when
    /// neither is given.
    pub fn from_either(text: Option<&str>, file: Option<&Path>) -> Result<Option<Secret>, SecretFileError> {
        match (text, file) {
            (_, Some(file)) => Secret::from_file(file).map(Some),
            (Some(text), None) => Ok(Some(Secret::new(text))),
            (None, None) => Ok(None),
        }
    }

    /// Every non-empty line of `file` (a file of several secrets, for rotation).
    pub fn lines_of(file: &Path) -> Result<Vec<Secret>, SecretFileError> {
        let text = std::fs::read_to_string(file)
            .map_err(|source| SecretFileError { file: file.display().to_string(), source })?;
        Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(Secret::new).collect())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A secret file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the secret file {file}: {source}")]
pub struct SecretFileError {
    pub file: String,
    pub source: std::io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_never_shown() {
        let s = Secret::new(" hunter2-hunter2-hunter2\n");
        assert_eq!(s.expose(), "hunter2-hunter2-hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }

    #[test]
    fn files_give_their_first_line_or_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "\n  first-secret-value \nsecond-secret-value\n").unwrap();
        assert_eq!(Secret::from_file(&f).unwrap().expose(), "first-secret-value");
        let all = Secret::lines_of(&f).unwrap();
        assert_eq!(
            all.iter().map(Secret::expose).collect::<Vec<_>>(),
            ["first-secret-value", "second-secret-value"]
        );
        let missing = Secret::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
