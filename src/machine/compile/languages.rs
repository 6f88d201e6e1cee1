//! Languages: `languages`, `language_variable` and `voices`, and every spoken text (`SPOKEN_FIELDS`
//! of each node and of `[defaults]`, and `fallback`) in every language. A missing translation is
//! an error naming the node, the field and the language; the compiler then compiles the machine
//! once per language (`compile_with`), so that every other rule (templates, 8x8's length limits,
//! voices) is checked on every language's texts.
//!
//! A module's texts are read in the languages of the machine that uses it: each of its tables
//! needs every one of them, and may hold more only when the module lists them in its own
//! `languages` (so that one module serves machines of fewer languages).

use std::collections::BTreeMap;

use super::super::definition::{Definition, NodeDef, SPOKEN_FIELDS, Spoken};
use super::super::diagnostic::Severity;
use super::nodes::Settings;
use super::{At, Compiler};

/// Most languages one machine speaks: every text is written (and proven) once per language, and
/// the explorer's states grow with them.
pub const LANGUAGES_MAX: usize = 16;
/// Longest language name (`pt-BR`, `zh-Hant-TW`): a short BCP 47 tag.
const LANGUAGE_CHARS_MAX: usize = 16;

/// Whether `tag` is a language name: a short BCP 47 tag, 2 or 3 lowercase letters, then
/// `-`-separated subtags of 2 to 8 letters or digits (`en`, `es`, `pt-BR`).
pub(super) fn is_language(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let first = parts.next().unwrap_or("");
    tag.len() <= LANGUAGE_CHARS_MAX
        && (2..=3).contains(&first.len())
        && first.chars().all(|c| c.is_ascii_lowercase())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The machine's languages the compiler compiles it in: those that are language names, each once,
/// at most `LANGUAGES_MAX` (the others are reported by `check_languages`).
pub(super) fn valid(def: &Definition) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in def.languages.iter().filter(|l| is_language(l)) {
        if !out.contains(l) && out.len() < LANGUAGES_MAX {
            out.push(l.clone());
        }
    }
    out
}

/// `a`, `a and b`, `a, b and c`: the languages a message lists.
fn listed(languages: &[String]) -> String {
    let quoted: Vec<String> = languages.iter().map(|l| format!("`{l}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// What a spoken field holds: one text (`Ok`), or a table by language (`Err` with its languages).
type Held<'d> = Result<(), Vec<&'d str>>;

/// A spoken field's value, whatever it holds: whether it is one text, and the languages of a table.
fn shape<T>(value: &Spoken<T>) -> Held<'_> {
    match value {
        Spoken::One(_) => Ok(()),
        Spoken::Languages(by) => Err(by.keys().map(String::as_str).collect()),
    }
}

impl Compiler<'_> {
    /// The machine-level rules on languages, and every spoken text in every language.
    pub(super) fn check_languages(&mut self, settings: &Settings) {
        // Positions here are the fields' own, not a language's entry in them (`locate`).
        let language = self.language.take();
        self.check_languages_in(settings);
        self.language = language;
    }

    fn check_languages_in(&mut self, settings: &Settings) {
        let def = self.def;
        let languages = valid(def);
        if def.languages.len() > LANGUAGES_MAX {
            self.error(
                At::Machine("languages"),
                format!("{} languages; the limit is {LANGUAGES_MAX}", def.languages.len()),
                Some("split the machine by region, each with the languages its callers speak".into()),
            );
        }
        for (i, l) in def.languages.iter().enumerate() {
            if !is_language(l) {
                self.error(
                    At::Machine(&format!("languages.{i}")),
                    format!("`{l}` is not a language name"),
                    Some("write a short BCP 47 tag: `en`, `es`, `pt-BR`".into()),
                );
            } else if def.languages[..i].contains(l) {
                self.error(
                    At::Machine(&format!("languages.{i}")),
                    format!("language `{l}` is listed twice"),
                    Some("list each language once".into()),
                );
            }
        }
        self.language_variable(&languages, settings);
        self.language_voices(&languages);
        match &def.fallback {
            Some(fallback) => self.spoken_text(At::Machine("fallback"), "fallback", fallback, &languages),
            // phonetree's own apology is English: a caller of another language hears one of theirs.
            None if languages.len() > 1 => self.error(
                At::Machine("languages"),
                format!("the machine speaks {} but has no `fallback` in them", listed(&languages)),
                Some(
                    "add `fallback = { ... }`: what a caller hears, in each language, when phonetree fails"
                        .into(),
                ),
            ),
            None => {}
        }
        for field in ["success_message", "failure_message"] {
            let value = if field == "success_message" {
                &def.defaults.success_message
            } else {
                &def.defaults.failure_message
            };
            if let Some(v) = value {
                let at = format!("defaults.{field}");
                self.spoken_text(At::Machine(&at), &at, v, &languages);
            }
        }
        let mut module_languages: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (name, n) in &def.nodes {
            // A module's node may hold more languages than the machine: those its module lists.
            let extra = match self.origins.get(name) {
                Some((i, _)) => module_languages
                    .entry(*i)
                    .or_insert_with(|| {
                        let module = &self.module_sources[*i];
                        super::shape::read(module).map(|(d, _)| d.languages).unwrap_or_default()
                    })
                    .clone(),
                None => Vec::new(),
            };
            self.node_texts(name, n, &languages, &extra);
        }
    }

    fn language_variable(&mut self, languages: &[String], settings: &Settings) {
        let def = self.def;
        match &def.language_variable {
            None if languages.len() > 1 => self.error(
                At::Machine("languages"),
                format!("the machine speaks {} but names no `language_variable`", listed(languages)),
                Some("add `language_variable = \"lang\"`: the call variable a `set` node gives the caller's language".into()),
            ),
            Some(_) if def.languages.is_empty() => self.error(
                At::Machine("language_variable"),
                "`language_variable` without `languages`".into(),
                Some("add `languages = [\"en\", \"es\"]`, or remove it".into()),
            ),
            Some(v) if !self.is_own_var_name(v, settings) => self.error(
                At::Machine("language_variable"),
                format!("`{v}` cannot name a call variable: it is not a name, or a setting or built-in has it"),
                Some("use letters, digits and `_`, starting with a letter, and a name of its own".into()),
            ),
            // Nothing gives it a value: every call is in the first language.
            Some(v) if languages.len() > 1 && !self.declared.contains(v) => self.report(
                Severity::Warning,
                At::Machine("language_variable"),
                format!("no node sets `{v}` and it is not one of `variables`: every caller hears `{}`", languages[0]),
                Some(format!("set it with a `set` node (`values = {{ {v} = \"{}\" }}`), or list it in `variables`", languages[1])),
            ),
            _ => {}
        }
    }

    /// Every language has a voice (checked against the known voices), and every voice a language.
    fn language_voices(&mut self, languages: &[String]) {
        let def = self.def;
        if languages.is_empty() {
            if !def.voices.is_empty() {
                self.error(
                    At::Machine("voices"),
                    "`voices` without `languages`".into(),
                    Some("add `languages`, or give the voice as `voice_profile` under `[defaults]`".into()),
                );
            }
            return;
        }
        for l in languages {
            match def.voices.get(l) {
                Some(voice) => self.check_voice(At::Machine(&format!("voices.{l}")), voice),
                None => self.error(
                    At::Machine(if def.voices.is_empty() { "languages" } else { "voices" }),
                    format!("language `{l}` has no voice"),
                    Some(format!(
                        "add it to `voices`: `voices = {{ {l} = \"...\" }}` (`phonetree voices` lists them)"
                    )),
                ),
            }
        }
        for l in def.voices.keys().filter(|l| !languages.contains(l)) {
            self.error(
                At::Machine(&format!("voices.{l}")),
                format!("`{l}` is not one of the machine's languages ({})", listed(languages)),
                Some("add it to `languages`, or remove its voice".into()),
            );
        }
    }

    fn node_texts(&mut self, name: &str, n: &NodeDef, languages: &[String], extra: &[String]) {
        let texts: [(&str, Option<Held<'_>>); 5] = [
            ("prompt", n.prompt.as_ref().map(shape)),
            ("reprompt", n.reprompt.as_ref().map(shape)),
            ("text", n.text.as_ref().map(shape)),
            ("success_message", n.success_message.as_ref().map(shape)),
            ("failure_message", n.failure_message.as_ref().map(shape)),
        ];
        debug_assert!(texts.iter().map(|(f, _)| *f).eq(SPOKEN_FIELDS));
        for (field, value) in texts {
            if let Some(value) = value {
                self.spoken_shape(At::Node(name, field), field, value, languages, extra, Some(name));
            }
        }
    }

    /// A machine-level spoken field (`fallback`, a `[defaults]` message).
    fn spoken_text<T>(&mut self, at: At<'_>, field: &str, value: &Spoken<T>, languages: &[String]) {
        self.spoken_shape(at, field, shape(value), languages, &[], None);
    }

    /// One spoken field: one text in a machine of one language or none; a table holding every
    /// language (and no other) in a machine that names them.
    fn spoken_shape(
        &mut self,
        at: At<'_>,
        field: &str,
        value: Held<'_>,
        languages: &[String],
        extra: &[String],
        node: Option<&str>,
    ) {
        match value {
            Ok(()) if languages.len() > 1 => {
                let example: Vec<String> = languages.iter().map(|l| format!("{l} = \"...\"")).collect();
                self.error(
                    at,
                    format!("`{field}` is one text, but the machine speaks {}", listed(languages)),
                    Some(format!("write it in every language: `{field} = {{ {} }}`", example.join(", "))),
                );
            }
            Ok(()) => {}
            Err(_) if languages.is_empty() => self.error(
                at,
                format!("`{field}` is a table by language, but the machine names no `languages`"),
                Some("add `languages` and `voices` at the top of the machine, or write one text".into()),
            ),
            Err(keys) => {
                for l in languages.iter().filter(|l| !keys.contains(&l.as_str())) {
                    self.error(
                        at,
                        format!("no `{l}` text: `{field}` must be said in every language"),
                        Some(format!("add `{l} = \"...\"` to `{field}`")),
                    );
                }
                for k in keys
                    .iter()
                    .filter(|k| !languages.iter().any(|l| l == *k) && !extra.iter().any(|l| l == *k))
                {
                    let key = format!("{field}.{k}");
                    let at = match node {
                        Some(n) => At::Node(n, &key),
                        None => At::Machine(&key),
                    };
                    self.error(
                        at,
                        format!("`{k}` is not one of the machine's languages ({})", listed(languages)),
                        Some("add it to `languages`, or remove it".into()),
                    );
                }
            }
        }
    }
}
