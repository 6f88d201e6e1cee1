//! Text templates: `{name}` inserts a variable, `{say:$name}` speaks it key by key (an order
//! number is read "1 2 3 4", not "one thousand two hundred..."), `{{` and `}}` are literal braces.
//!
//! Settings are inlined when a machine compiles, so a compiled template holds only the variables
//! that exist at call time (caller, called number, ...). Rendering never yields an unresolved
//! placeholder: a variable the call does not have is an error, never an empty string.

use std::fmt;

/// Longest variable name accepted; names are identifiers, not prose.
pub const VAR_NAME_CHARS_MAX: usize = 64;

/// Longest value the engine keeps of the keys pressed, an input's keys or a set node's value: 8x8
/// captures at most 25 digits plus `#`. (A script's stored values have their own `max_chars`.)
pub const VALUE_CHARS_MAX: usize = 32;

/// Variables every call has, set by the engine.
pub const BUILTINS: &[(&str, &str)] = &[
    ("caller", "the person on the phone: who called in, or who phonetree called"),
    ("virtual_number", "the machine's own number on this call"),
    ("session_id", "8x8's session id"),
    ("call_id", "8x8's id of the call leg"),
    ("keypress", "the keys the caller pressed last"),
    ("node", "the node the call is at"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var(String),
    /// `{say:$name}`: the value spoken key by key.
    Say(String),
    /// `{play:$name}`: the audio file at the URL the value holds, played where it stands.
    Play(String),
}

/// A rendered piece of text with `{play:$name}` in it: text to say, or a file to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Play(String),
}

/// A value as `{say:$name}` speaks it: keypad keys one by one, anything else as it is.
pub fn spoken(value: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#') {
        let keys: Vec<String> = value.chars().map(|c| c.to_string()).collect();
        keys.join(" ")
    } else {
        value.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{` at character {0}")]
    Unclosed(usize),
    #[error("stray `}}` at character {0} (write `}}}}` for a literal brace)")]
    StrayClose(usize),
    #[error("`{{{0}}}` is not a variable name (letters, digits and `_`, starting with a letter)")]
    BadName(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        // Most texts hold no placeholder: one literal, copied at once.
        if !text.contains(['{', '}']) {
            let parts = if text.is_empty() { Vec::new() } else { vec![Part::Lit(text.to_string())] };
            return Ok(Template { parts });
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => return Err(TemplateError::StrayClose(at)),
                '{' => {
                    let rest = &text[at + 1..];
                    let end = rest.find('}').ok_or(TemplateError::Unclosed(at))?;
                    let inner = &rest[..end];
                    let (part, name) = if let Some(name) = inner.strip_prefix("say:$") {
                        (Part::Say(name.to_string()), name)
                    } else if let Some(name) = inner.strip_prefix("play:$") {
                        (Part::Play(name.to_string()), name)
                    } else {
                        (Part::Var(inner.to_string()), inner)
                    };
                    if !is_var_name(name) {
                        return Err(TemplateError::BadName(inner.to_string()));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(part);
                    // Skip the placeholder and the closing brace.
                    for _ in 0..inner.chars().count() + 1 {
                        chars.next();
                    }
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// A template with no variables.
    pub fn literal(text: &str) -> Template {
        Template { parts: vec![Part::Lit(text.to_string())] }
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The variable names the template uses.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) | Part::Say(v) | Part::Play(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Replaces the variables `resolve` knows by literal text; the others stay.
    pub fn inline(&self, resolve: impl Fn(&str) -> Option<String>) -> Template {
        let mut parts: Vec<Part> = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let part = match part {
                Part::Var(v) => resolve(v).map_or_else(|| part.clone(), Part::Lit),
                Part::Say(v) => resolve(v).map_or_else(|| part.clone(), |value| Part::Lit(spoken(&value))),
                Part::Lit(_) | Part::Play(_) => part.clone(),
            };
            match (parts.last_mut(), part) {
                (Some(Part::Lit(prev)), Part::Lit(next)) => prev.push_str(&next),
                (_, part) => parts.push(part),
            }
        }
        Template { parts }
    }

    /// The text, when the template has no variables left.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Renders the template; the first variable `lookup` does not know is the error.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Result<String, String> {
        self.render_with(lookup, str::to_string)
    }

    /// Renders the template with every variable's text passed through `encode` (for a URL, say).
    pub fn render_with<'a>(
        &self,
        lookup: impl Fn(&str) -> Option<&'a str>,
        encode: impl Fn(&str) -> String,
    ) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => out.push_str(&encode(lookup(v).ok_or_else(|| v.clone())?)),
                Part::Say(v) => out.push_str(&encode(&spoken(lookup(v).ok_or_else(|| v.clone())?))),
                // Text-only renderings say the URL; `segments` plays it.
                Part::Play(v) => out.push_str(&encode(lookup(v).ok_or_else(|| v.clone())?)),
            }
        }
        Ok(out)
    }

    /// The pieces of text around `{play:$name}` files, each a template: what `segments` says.
    pub fn between_plays(&self) -> Vec<Template> {
        self.parts.split(|p| matches!(p, Part::Play(_))).map(|p| Template { parts: p.to_vec() }).collect()
    }

    /// The variables `{play:$name}` plays.
    pub fn played(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| if let Part::Play(v) = p { Some(v.as_str()) } else { None })
    }

    /// Renders text with `{play:$name}` in it as pieces to say and files to play, in order
    /// (empty text between them left out).
    pub fn segments<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Result<Vec<Segment>, String> {
        let mut out = Vec::new();
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => text.push_str(s),
                Part::Var(v) => text.push_str(lookup(v).ok_or_else(|| v.clone())?),
                Part::Say(v) => text.push_str(&spoken(lookup(v).ok_or_else(|| v.clone())?)),
                Part::Play(v) => {
                    if !text.trim().is_empty() {
                        out.push(Segment::Text(std::mem::take(&mut text)));
                    }
                    text.clear();
                    out.push(Segment::Play(lookup(v).ok_or_else(|| v.clone())?.to_string()));
                }
            }
        }
        if !text.trim().is_empty() {
            out.push(Segment::Text(text));
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    /// The template as it would be written in a machine file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Lit(s) => f.write_str(&s.replace('{', "{{").replace('}', "}}"))?,
                Part::Var(v) => write!(f, "{{{v}}}")?,
                Part::Say(v) => write!(f, "{{say:${v}}}")?,
                Part::Play(v) => write!(f, "{{play:${v}}}")?,
            }
        }
        Ok(())
    }
}

pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= VAR_NAME_CHARS_MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vars_and_escapes() {
        let t = Template::parse("call {caller} {{now}} at {agent}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["caller", "agent"]);
        let got = t.render(|v| Some(if v == "caller" { "+1" } else { "+2" })).unwrap();
        assert_eq!(got, "call +1 {now} at +2");
        assert_eq!(t.to_string(), "call {caller} {{now}} at {agent}");
    }

    #[test]
    fn say_speaks_keys_one_by_one() {
        let t = Template::parse("Order {say:$order}, ETA {eta}.").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["order", "eta"]);
        let got = t.render(|v| Some(if v == "order" { "40213" } else { "today" })).unwrap();
        assert_eq!(got, "Order 4 0 2 1 3, ETA today.");
        assert_eq!(t.to_string(), "Order {say:$order}, ETA {eta}.");
        assert_eq!(spoken("tomorrow"), "tomorrow");
        assert_eq!(Template::parse("{say:order}"), Err(TemplateError::BadName("say:order".into())));
    }

    #[test]
    fn play_splits_text_around_files() {
        let t = Template::parse("Your message: {play:$clip} Press 1 to hear it again.").unwrap();
        assert_eq!(t.played().collect::<Vec<_>>(), ["clip"]);
        let got = t.segments(|_| Some("https://x.test/m.mp3")).unwrap();
        assert_eq!(
            got,
            [
                Segment::Text("Your message: ".into()),
                Segment::Play("https://x.test/m.mp3".into()),
                Segment::Text(" Press 1 to hear it again.".into())
            ]
        );
        assert_eq!(t.to_string(), "Your message: {play:$clip} Press 1 to hear it again.");
    }

    #[test]
    fn rejects_broken_templates() {
        assert_eq!(Template::parse("a {b"), Err(TemplateError::Unclosed(2)));
        assert_eq!(Template::parse("a } b"), Err(TemplateError::StrayClose(2)));
        assert_eq!(Template::parse("{1x}"), Err(TemplateError::BadName("1x".into())));
    }

    #[test]
    fn inline_merges_literals_and_unknown_vars_fail_render() {
        let t = Template::parse("to {agent} from {caller}").unwrap();
        let t = t.inline(|v| (v == "agent").then(|| "+65".to_string()));
        assert_eq!(t.parts()[0], Part::Lit("to +65 from ".into()));
        assert_eq!(t.render(|_| None), Err("caller".to_string()));
    }
}
