//! Diagnostics: one problem in a machine file, with where it is and how to fix it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the end).
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position { line, col: before[line_start..].chars().count() + 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub position: Option<Position>,
    /// The node the problem is in, if any.
    pub node: Option<String>,
    /// The field, as a dotted path inside the node (or the file, for machine-level fields).
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: error: node `n`, field `f`: message`, then `  = hint: ...` on its own line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {severity}: ")?;
        match (&self.node, &self.field) {
            (Some(n), Some(field)) => write!(f, "node `{n}`, field `{field}`: ")?,
            (Some(n), None) => write!(f, "node `{n}`: ")?,
            (None, Some(field)) => write!(f, "field `{field}`: ")?,
            (None, None) => {}
        }
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  = hint: {h}")?;
        }
        Ok(())
    }
}

/// The candidate nearest to a misspelt `word`, for "did you mean" hints: within one edit per three
/// characters, counting a swap of two neighbours (`txet`) as one edit, and never one that shares
/// nothing with it (`c` for `a`: every one-letter name is one edit from every other).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(word, c), c))
        .filter(|(d, c)| *d <= limit && *d < word.chars().count().max(c.chars().count()))
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_chars() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(Position::of_offset(text, 0), Position { line: 1, col: 1 });
        assert_eq!(Position::of_offset(text, 6), Position { line: 2, col: 1 });
        assert_eq!(Position::of_offset(text, 12), Position { line: 2, col: 6 });
    }

    #[test]
    fn closest_finds_typos_only() {
        let names = ["reservations", "main_menu", "hours"];
        assert_eq!(closest("reservatons", names), Some("reservations"));
        assert_eq!(closest("zzz", names), None);
        assert_eq!(closest("txet", ["text", "next"]), Some("text"));
        assert_eq!(closest("c", ["a", "b"]), None);
        assert_eq!(closest("b", ["a", "b2"]), Some("b2"));
        assert_eq!(closest("x1", ["x2"]), Some("x2"));
    }
}
