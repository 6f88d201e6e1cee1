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

    /// The token kept in `file`, made (`GENERATED_BYTES` random bytes, hex) and written there with
    /// mode 0600 when there is no such file; `true` when it was made now. Refused when the file is
    /// empty, or (on Unix) readable by others than its owner.
    pub fn kept_in(file: &Path) -> Result<(Secret, bool), KeptSecretError> {
        let failed = |e: &std::io::Error| KeptSecretError::Io {
            file: file.to_path_buf(),
            why: e.to_string(),
            kind: e.kind(),
        };
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
        }
        let mut bytes = [0u8; GENERATED_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| KeptSecretError::Io {
            file: file.to_path_buf(),
            why: format!("no randomness: {e}"),
            kind: std::io::ErrorKind::Other,
        })?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // Written whole to a file of its own first, then linked in place: a full disk or a crash
        // mid-write never leaves an empty or cut token file behind (which the next start would
        // refuse), and a token made meanwhile by another start is kept (the link fails).
        let mut draft = file.as_os_str().to_owned();
        draft.push(format!(".{}.new", std::process::id()));
        let draft = std::path::PathBuf::from(draft);
        let written = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&draft)?;
            use std::io::Write;
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()?;
            std::fs::hard_link(&draft, file)
        })();
        let _ = std::fs::remove_file(&draft);
        match written {
            Ok(()) => return Ok((Secret(token), true)),
            // Made before (or by another node starting on the same folder): read it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed(&e)),
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file).map_err(|e| failed(&e))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeptSecretError::Readable { file: file.to_path_buf(), mode: mode & 0o777 });
            }
        }
        let secret = Secret::from_file(file).map_err(|e| failed(&e.source))?;
        if secret.is_empty() {
            return Err(KeptSecretError::Empty(file.to_path_buf()));
        }
        Ok((secret, false))
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

/// Random bytes in a token `Secret::kept_in` makes (64 hex digits).
pub const GENERATED_BYTES: usize = 32;

/// A kept token (`Secret::kept_in`) that cannot be made or used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeptSecretError {
    #[error("cannot keep a token in {}: {why}", file.display())]
    Io { file: std::path::PathBuf, why: String, kind: std::io::ErrorKind },
    #[error("the token file {} is empty: delete it to have a new token made, or write one (at least 16 characters)", .0.display())]
    Empty(std::path::PathBuf),
    #[error("the token file {} can be read by others (mode {mode:o}): `chmod 600 {}`", file.display(), file.display())]
    Readable { file: std::path::PathBuf, mode: u32 },
}

impl KeptSecretError {
    /// Whether the token could not be written for lack of space (a start on a full disk tries
    /// again, as it does for the store).
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            KeptSecretError::Io {
                kind: std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded,
                ..
            }
        )
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

    #[test]
    fn a_kept_token_is_made_once_private_and_never_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub").join("token");
        let (made, fresh) = Secret::kept_in(&f).unwrap();
        assert!(fresh);
        assert_eq!(made.len(), 2 * GENERATED_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (again, fresh) = Secret::kept_in(&f).unwrap();
        assert_eq!((again, fresh), (made, false), "the same token on the next start");
        std::fs::write(&f, "\n").unwrap();
        assert_eq!(Secret::kept_in(&f).unwrap_err(), KeptSecretError::Empty(f.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&f, "a-token-others-can-read-0123456789\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = Secret::kept_in(&f).unwrap_err();
            assert!(e.to_string().contains("can be read by others (mode 644)"), "{e}");
        }
    }
}
