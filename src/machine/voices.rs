//! 8x8's voice profiles as `check` knows them: a small list bundled into the binary, or the full
//! list a user fetched from 8x8's speech-profiles API (`phonetree voices`) into a file, one name a
//! line. The compiler gets the list as an input and warns on a `voice_profile` it does not hold.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use super::diagnostic::closest;

/// The voice profiles 8x8's own documentation names (the only source bundled): the examples of the
/// Voice API's OpenAPI document (`voiceProfile` and the speech-profiles response: `en-GB-Emma`,
/// `en-US-Neural2-C`, `en-US-Standard-A`, `da-DK-Naja`), the IVR tutorials (`en-US-BenjaminRUS`)
/// and the call action guide (`en-US-ZiraRUS`); and one not from 8x8's pages: `es-ES-HelenaRUS`,
/// the Spanish voice of the same `RUS` family, which the bilingual bundled machine uses (issue 14
/// names it). 8x8 has many more; `phonetree voices` fetches the real list for an account.
pub const BUNDLED: &[&str] = &[
    "da-DK-Naja",
    "en-GB-Emma",
    "en-US-BenjaminRUS",
    "en-US-Neural2-C",
    "en-US-Standard-A",
    "en-US-ZiraRUS",
    "es-ES-HelenaRUS",
];

/// Most names a voices file may hold: 8x8 lists a few hundred; a file far beyond that is not one.
pub const VOICES_MAX: usize = 10_000;
/// Longest voice profile name in a voices file (8x8's are about 25 characters).
const VOICE_CHARS_MAX: usize = 128;

/// The voice names `check` knows, and where they come from (for hints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voices {
    names: BTreeSet<String>,
    origin: String,
}

/// Why a voices file cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoicesError {
    #[error("{origin}: more than {VOICES_MAX} voice names")]
    TooMany { origin: String },
    #[error(
        "{origin}:{line}: `{name}` is not a voice profile name (letters, digits and `-`, at most {VOICE_CHARS_MAX})"
    )]
    BadName { origin: String, line: usize, name: String },
    #[error("{origin}: no voice names")]
    Empty { origin: String },
}

impl Voices {
    /// The bundled list (`BUNDLED`).
    pub fn bundled() -> &'static Voices {
        static BUNDLED_VOICES: OnceLock<Voices> = OnceLock::new();
        BUNDLED_VOICES.get_or_init(|| Voices {
            names: BUNDLED.iter().map(|v| v.to_string()).collect(),
            origin: "the voices bundled with phonetree".into(),
        })
    }

    /// A voices file's text: one name a line; blank lines and lines starting with `#` are skipped.
    pub fn parse(text: &str, origin: &str) -> Result<Voices, VoicesError> {
        let mut names = BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let name = line.trim();
            if name.is_empty() || name.starts_with('#') {
                continue;
            }
            if !is_voice_name(name) {
                let (origin, line) = (origin.to_string(), i + 1);
                return Err(VoicesError::BadName { origin, line, name: name.chars().take(64).collect() });
            }
            names.insert(name.to_string());
            if names.len() > VOICES_MAX {
                return Err(VoicesError::TooMany { origin: origin.to_string() });
            }
        }
        if names.is_empty() {
            return Err(VoicesError::Empty { origin: origin.to_string() });
        }
        Ok(Voices { names, origin: origin.to_string() })
    }

    /// The names as a voices file holds them, with a comment line saying where they came from.
    pub fn to_file(names: &[String], source: &str) -> String {
        let sorted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let mut text =
            format!("# 8x8 voice profiles, from {source}; `phonetree voices` rewrites this file\n");
        for name in sorted {
            text.push_str(name);
            text.push('\n');
        }
        text
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The known name nearest to `name`, if one is near enough to be a typo of it.
    pub fn closest(&self, name: &str) -> Option<&str> {
        closest(name, self.names.iter().map(String::as_str))
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A voice profile name as 8x8 spells them: letters, digits and `-` (`en-US-Neural2-C`).
pub fn is_voice_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= VOICE_CHARS_MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voices_file_is_read_and_written_back() {
        let text = Voices::to_file(&["es-ES-HelenaRUS".into(), "en-GB-Emma".into()], "a test");
        let v = Voices::parse(&text, "voices.txt").unwrap();
        assert!(v.contains("es-ES-HelenaRUS") && v.contains("en-GB-Emma") && v.len() == 2);
        assert_eq!(v.closest("es-ES-HelenaRSU-typo"), Some("es-ES-HelenaRUS"));
        assert!(matches!(Voices::parse("en GB\n", "f"), Err(VoicesError::BadName { line: 1, .. })));
        assert!(matches!(Voices::parse("# nothing\n", "f"), Err(VoicesError::Empty { .. })));
    }

    #[test]
    fn the_bundled_list_holds_the_voices_of_the_bundled_machines() {
        assert!(Voices::bundled().contains("en-US-BenjaminRUS"));
        assert_eq!(Voices::bundled().closest("en-US-BenjaminRSU"), Some("en-US-BenjaminRUS"));
    }
}
