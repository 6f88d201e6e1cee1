//! Node kinds: a menu, input, say, play, transfer or hangup node's definition → its `NodeKind`,
//! with the capturing prompt (`Menu`) and speech settings they share, and their templates.

use std::collections::BTreeMap;

use super::super::definition::{Kind, NodeDef, Part, Prompt, VoicedPart};
use super::super::template::{self, Template};
use super::super::{Input, Menu, NodeKind};
use super::chains::{ActionOf, SPEED_HINT};
use super::fields::kind_name;
use super::{At, Compiler};
use crate::callflow::{MakeCall, PlayFile, Say, SayAndCapture, Speed};
use crate::machine::diagnostic::{Severity, closest};

/// Most parts of one prompt: each is an action of the reply, which holds `CHAIN_ACTIONS_MAX`; a
/// prompt in more voices than this is several menus.
pub(super) const PROMPT_PARTS_MAX: usize = 8;

/// A prompt's parts: those before the last, and the last (`None` when the prompt is broken).
fn split_last(parts: Option<Vec<Say<Template>>>) -> (Vec<Say<Template>>, Option<Say<Template>>) {
    match parts {
        Some(mut parts) => {
            let last = parts.pop();
            (parts, last)
        }
        None => (Vec::new(), None),
    }
}

/// Most phonetree tries at one menu: three is usual, nine is already unkind.
pub(super) const TRIES_MAX: u8 = 9;

/// The settings every template may use, by name.
pub(super) type Settings = BTreeMap<String, String>;

/// A regular expression the whole text must match, or why it is not one.
pub(super) fn anchored_regex(p: &str) -> Result<regex::Regex, String> {
    let anchored = format!("^(?:{p})$");
    Err(match regex_syntax::Parser::new().parse(&anchored) {
        Err(regex_syntax::Error::Parse(e)) => e.kind().to_string(),
        Err(regex_syntax::Error::Translate(e)) => e.kind().to_string(),
        Err(e) => e.to_string(),
        Ok(_) => match regex::Regex::new(&anchored) {
            Ok(re) => return Ok(re),
            Err(regex::Error::CompiledTooBig(limit)) => format!("it compiles to more than {limit} bytes"),
            Err(e) => e.to_string(),
        },
    })
}

impl Compiler<'_> {
    pub(super) fn node_kind(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<NodeKind> {
        self.next_shape(name, n);
        match n.kind? {
            Kind::Menu => self.menu(name, n, settings).map(NodeKind::Menu),
            Kind::Input => self.input(name, n, settings).map(NodeKind::Input),
            Kind::Script => self.script(name, n, settings).map(NodeKind::Script),
            Kind::Say => self.say(name, n, settings).map(NodeKind::Say),
            Kind::Play => self.play(name, n, settings).map(NodeKind::Play),
            Kind::Transfer => self.transfer(name, n, settings).map(NodeKind::Transfer),
            Kind::Hangup => Some(NodeKind::Hangup),
            Kind::Route => self.route(name, n).map(NodeKind::Route),
            Kind::Set => self.set(name, n, settings).map(NodeKind::Set),
            Kind::Split => self.split(name, n).map(NodeKind::Split),
            // Not inlined: why is reported already (`modules`).
            Kind::Module => None,
            Kind::Exit => {
                self.error(
                    At::NodeKey(name),
                    "an `exit` node belongs in a module".into(),
                    Some("end the machine's call with a `hangup` or `transfer` node".into()),
                );
                None
            }
        }
    }

    fn menu(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<Menu> {
        self.required(name, n, "invalid", &n.invalid);
        if n.branches.as_ref().is_none_or(|b| b.is_empty()) {
            self.error(
                At::NodeKey(name),
                "a `menu` node needs at least one entry in `branches`".into(),
                Some("e.g. `branches = { 1 = \"sales\", 2 = \"support\" }`".into()),
            );
        }
        self.prompt(name, n, settings)
    }

    fn input(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<Input> {
        self.required(name, n, "invalid", &n.invalid);
        self.required(name, n, "next", &n.next);
        let variable = self.variable(name, n, settings);
        let pattern = self.pattern(name, n);
        let prompt = self.prompt(name, n, settings);
        let (prompt, variable, pattern) = (prompt?, variable?, pattern?);
        let min = usize::from(prompt.capture.min_digits.unwrap_or(1).max(1));
        let example = match (&n.example, &pattern) {
            (Some(e), _) => e.clone(),
            (None, None) => "1".repeat(min),
            (None, Some(_)) => {
                self.error(
                    At::Node(name, "pattern"),
                    "a node with a `pattern` needs an `example` the pattern accepts".into(),
                    Some("`check` plays the example to prove the node's way on".into()),
                );
                return None;
            }
        };
        let input = Input { prompt, variable, pattern, example };
        if input.accept(&input.example).is_none() {
            self.error(
                At::Node(name, if n.example.is_some() { "example" } else { "min_digits" }),
                format!("the example `{}` is not accepted: keypad keys only, within min/max digits, matching the pattern", input.example),
                None,
            );
            return None;
        }
        Some(input)
    }

    /// The call variable an input node sets: a name of its own.
    fn variable(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<String> {
        let variable = self.required(name, n, "variable", &n.variable)?;
        if !self.is_own_var_name(variable, settings) {
            self.error(
                At::Node(name, "variable"),
                format!("`{variable}` cannot name a call variable: it is not a name, or a setting or built-in has it"),
                Some("use letters, digits and `_`, starting with a letter, and a name of its own".into()),
            );
        }
        Some(variable.to_string())
    }

    /// Whether `var` can name a call variable: a name no setting or built-in has.
    pub(super) fn is_own_var_name(&self, var: &str, settings: &Settings) -> bool {
        template::is_var_name(var)
            && !template::BUILTINS.iter().any(|(b, _)| *b == var)
            && !settings.contains_key(var)
    }

    /// An input node's pattern, anchored: `Some(None)` when it has none, `None` when it is broken.
    fn pattern(&mut self, name: &str, n: &NodeDef) -> Option<Option<regex::Regex>> {
        let Some(p) = &n.pattern else { return Some(None) };
        match anchored_regex(p) {
            Ok(re) => Some(Some(re)),
            Err(why) => {
                self.error(At::Node(name, "pattern"), format!("not a regular expression: {why}"), None);
                None
            }
        }
    }

    fn say(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<Say<Template>> {
        self.required(name, n, "next", &n.next);
        let text = self.required(name, n, "text", &n.text).and_then(|t| t.pick(self.language.as_deref()));
        let text = self.template(name, "text", text?, settings);
        let speech = self.speech(name, n);
        let say = Say { text: text?, voice_profile: speech.0?, repetition: speech.1, speed: speech.2 };
        self.check_action(name, ActionOf::Say(&say));
        Some(say)
    }

    fn play(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<PlayFile<Template>> {
        self.required(name, n, "next", &n.next);
        let url = self.required(name, n, "file_url", &n.file_url);
        let play = PlayFile {
            file_url: self.template(name, "file_url", url?, settings)?,
            repetition: self.int(name, "repetition", n.repetition),
        };
        self.check_action(name, ActionOf::Play(&play));
        if let Some(url) = play.file_url.as_literal() {
            let path = url.split(['?', '#']).next().unwrap_or("").to_ascii_lowercase();
            if !(path.ends_with(".wav") || path.ends_with(".mp3")) {
                self.report(
                    Severity::Warning,
                    At::Node(name, "file_url"),
                    format!("`{url}` does not end in .wav or .mp3, the formats 8x8 plays"),
                    None,
                );
            }
        }
        Some(play)
    }

    fn transfer(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<MakeCall<Template>> {
        let destination = self.required(name, n, "destination", &n.destination);
        let destination = self.template(name, "destination", destination?, settings);
        let source = n.source.as_deref().unwrap_or("{virtual_number}");
        let source = self.template(name, "source", source, settings);
        let call = MakeCall { source: source?, destination: destination?, call_recording: n.call_recording };
        self.check_action(name, ActionOf::Call(&call));
        // A number written in the machine is held to E.164 in full (8x8's rule on every reply, which
        // the engine checks, is only its length and digits).
        for (field, t) in [("destination", &call.destination), ("source", &call.source)] {
            if let Some(number) = t.as_literal()
                && crate::callflow::check_number(number).is_ok()
                && let Err(why) = crate::callflow::check_e164(number)
            {
                let hint =
                    "write phone numbers in E.164: `+`, the country code, then the number (`+6568888888`)";
                self.error(At::Node(name, field), why, Some(hint.into()));
            }
        }
        self.check_dialled(name, n, &call.destination);
        Some(call)
    }

    /// A destination a template fills is checked by the outbound guard when the call reaches the
    /// transfer (a literal one when the machine loads): the transfer needs the `failure` the call
    /// takes when the guard refuses the number, and a literal one has none to take. A destination
    /// the caller keys (an `input`'s variable, `keypress`) is warned about: the caller picks the
    /// number phonetree dials, within `--call-allow-prefix`.
    fn check_dialled(&mut self, name: &str, n: &NodeDef, destination: &Template) {
        match (destination.as_literal().is_some(), n.failure.is_some()) {
            (false, false) => self.error(
                At::Node(name, "destination"),
                "a transfer whose `destination` is a template needs `failure`: the outbound guard checks the number when the call gets here, and a number it refuses (not E.164, outside --call-allow-prefix, barred, over its rate) is not dialled".into(),
                Some("add `failure = \"NODE\"` naming the node the caller goes to instead (say why, offer another way)".into()),
            ),
            (true, true) => self.error(
                At::Node(name, "failure"),
                "`failure` is never taken: a literal `destination` is checked once, when the machine loads".into(),
                Some("remove `failure`, or fill the destination from a template".into()),
            ),
            _ => {}
        }
        let keyed: Vec<String> = destination
            .vars()
            .filter(|v| {
                *v == "keypress"
                    || self
                        .def
                        .nodes
                        .iter()
                        .any(|(_, d)| d.kind == Some(Kind::Input) && d.variable.as_deref() == Some(*v))
            })
            .map(str::to_string)
            .collect();
        for var in keyed {
            self.report(
                Severity::Warning,
                At::Node(name, "destination"),
                format!("the caller keys `{{{var}}}`, the number this transfer dials: any number --call-allow-prefix allows, on your 8x8 account"),
                Some("prefer a `route` or `menu` choosing among literal numbers; else keep --call-allow-prefix narrow and the call rates low".into()),
            );
        }
    }

    /// A field the node's kind requires: reported when absent.
    pub(super) fn required<'d, T>(
        &mut self,
        name: &str,
        n: &NodeDef,
        field: &str,
        value: &'d Option<T>,
    ) -> Option<&'d T> {
        if value.is_none() {
            let kind = n.kind.map_or("", kind_name);
            self.error(At::NodeKey(name), format!("a `{kind}` node needs `{field}`"), None);
        }
        value.as_ref()
    }

    /// Parses a template field and inlines settings; unknown variables are errors.
    pub(super) fn template(
        &mut self,
        name: &str,
        field: &str,
        text: &str,
        settings: &Settings,
    ) -> Option<Template> {
        let parsed = match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                self.error(At::Node(name, field), e.to_string(), None);
                return None;
            }
        };
        let inlined =
            if parsed.vars().next().is_none() { parsed } else { parsed.inline(|v| settings.get(v).cloned()) };
        let mut ok = true;
        for var in inlined.vars() {
            if !template::BUILTINS.iter().any(|(b, _)| *b == var) && !self.declared.contains(var) {
                self.unknown_variable(name, field, var, settings);
                ok = false;
            }
        }
        ok.then_some(inlined)
    }

    pub(super) fn unknown_variable(&mut self, name: &str, field: &str, var: &str, settings: &Settings) {
        let known = settings
            .keys()
            .map(String::as_str)
            .chain(template::BUILTINS.iter().map(|b| b.0))
            .chain(self.declared.iter().map(String::as_str));
        let hint = closest(var, known).map_or_else(
            || {
                "define it under `[settings]`, set it with an `input` node, or use a call variable (caller, keypress, ...)"
                    .to_string()
            },
            |c| format!("did you mean `{c}`?"),
        );
        self.error(At::Node(name, field), format!("unknown variable `{{{var}}}`"), Some(hint));
    }

    /// A capturing prompt (menu or input): the prompt, re-prompt, capture settings and tries. The
    /// last part of a prompt is the capture's `promptMessage`, in that part's voice; the parts
    /// before it are `say` actions sent before the capture.
    pub(super) fn prompt(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<Menu> {
        let language = self.language.clone();
        let prompt = self.required(name, n, "prompt", &n.prompt).and_then(|p| p.pick(language.as_deref()));
        let prompt = self.parts(name, n, "prompt", prompt?, settings);
        let reprompt = match n.reprompt.as_ref().and_then(|r| r.pick(language.as_deref())) {
            Some(r) => self.parts(name, n, "reprompt", r, settings),
            None => prompt.clone(),
        };
        let (mut lead, last) = split_last(prompt);
        let (relead, relast) = split_last(reprompt);
        let mut capture = self.capture(name, n, last.as_ref().map(|l| l.text.clone()), settings)?;
        if let Some(last) = &last {
            (capture.voice_profile, capture.speed) = (last.voice_profile.clone(), last.speed);
        }
        let d = &self.def.defaults;
        let tries = self.bounded(name, "tries", n.tries.or(d.tries), 1);
        let tries = tries.and_then(|t| u8::try_from(t).ok()).unwrap_or(1);
        self.check_action(name, ActionOf::Capture(&capture));
        let relast = relast?;
        let revoice = (relast.voice_profile.clone(), relast.speed);
        let revoice = (revoice != (capture.voice_profile.clone(), capture.speed)).then_some(revoice);
        lead.shrink_to_fit();
        Some(Menu { capture, reprompt: relast.text, tries, lead, relead, revoice })
    }

    /// A prompt's parts as `say`s: each part's text, its voice and speed or the node's (or
    /// `[defaults]`'), said once. `None` when a part is broken (reported).
    fn parts(
        &mut self,
        name: &str,
        n: &NodeDef,
        field: &str,
        prompt: &Prompt,
        settings: &Settings,
    ) -> Option<Vec<Say<Template>>> {
        let (voice, repetition, speed) = self.speech(name, n);
        let parts: Vec<(String, &str, Option<&VoicedPart>)> = match prompt {
            Prompt::Text(text) => {
                return Some(vec![Say {
                    text: self.template(name, field, text, settings)?,
                    voice_profile: voice?,
                    repetition,
                    speed,
                }]);
            }
            Prompt::Parts(parts) => parts
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Part::Text(t) => (format!("{field}.{i}"), t.as_str(), None),
                    Part::Voiced(v) => (format!("{field}.{i}"), v.text.as_str(), Some(v)),
                })
                .collect(),
        };
        if parts.is_empty() || parts.len() > PROMPT_PARTS_MAX {
            self.error(
                At::Node(name, field),
                format!("a prompt of {} parts; a prompt has 1 to {PROMPT_PARTS_MAX}", parts.len()),
                Some("each part is a `say` in the same reply: join parts of one voice into one text".into()),
            );
            return None;
        }
        let mut says = Vec::with_capacity(parts.len());
        let mut ok = true;
        let count = parts.len();
        for (i, (at, text, voiced)) in parts.into_iter().enumerate() {
            let text = self.template(name, &at, text, settings);
            let part_voice = voiced.and_then(|v| v.voice_profile.clone());
            if let Some(v) = &part_voice {
                self.check_voice(At::Node(name, &format!("{at}.voice_profile")), v);
            }
            let part_speed = match voiced.and_then(|v| v.speed) {
                Some(s) => self.speed_at(name, &format!("{at}.speed"), s).map(Some),
                None => Some(speed),
            };
            match (text, part_voice.or(voice.clone()), part_speed) {
                (Some(text), Some(voice_profile), Some(speed)) => {
                    // Only the capture repeats (8x8's `repetition`); the parts before it are said once.
                    let last = i + 1 == count;
                    let say = Say { text, voice_profile, repetition: repetition.filter(|_| last), speed };
                    // The prompt's last part is checked as the capture's prompt.
                    if !(last && field == "prompt") {
                        self.check_part(name, &at, &say);
                    }
                    says.push(say);
                }
                _ => ok = false,
            }
        }
        ok.then_some(says)
    }

    /// The `sayAndCapture` of a prompt: the node's capture settings, else `[defaults]`.
    fn capture(
        &mut self,
        name: &str,
        n: &NodeDef,
        prompt: Option<Template>,
        settings: &Settings,
    ) -> Option<SayAndCapture<Template>> {
        let d = &self.def.defaults;
        let language = self.language.as_deref();
        let success =
            n.success_message.as_ref().or(d.success_message.as_ref()).and_then(|t| t.pick(language));
        let failure =
            n.failure_message.as_ref().or(d.failure_message.as_ref()).and_then(|t| t.pick(language));
        let success = self.opt_template(name, "success_message", success, settings);
        let failure = self.opt_template(name, "failure_message", failure, settings);
        let speech = self.speech(name, n);
        let d = &self.def.defaults;
        Some(SayAndCapture {
            prompt_message: prompt?,
            voice_profile: speech.0?,
            repetition: speech.1,
            speed: speech.2,
            min_digits: self.int(name, "min_digits", n.min_digits.or(d.min_digits)),
            max_digits: self.int(name, "max_digits", n.max_digits.or(d.max_digits)),
            digit_timeout_ms: self.int(name, "digit_timeout_ms", n.digit_timeout_ms.or(d.digit_timeout_ms)),
            overall_timeout_ms: self.int(
                name,
                "overall_timeout_ms",
                n.overall_timeout_ms.or(d.overall_timeout_ms),
            ),
            complete_on_hash: n.complete_on_hash.or(d.complete_on_hash),
            no_of_tries: self.int(name, "no_of_tries", n.no_of_tries.or(d.no_of_tries)),
            success_message: success?,
            failure_message: failure?,
        })
    }

    fn opt_template(
        &mut self,
        name: &str,
        field: &str,
        text: Option<&String>,
        settings: &Settings,
    ) -> Option<Option<Template>> {
        match text {
            None => Some(None),
            Some(t) => self.template(name, field, t, settings).map(Some),
        }
    }

    /// The voice profile (required, from the node or `[defaults]`), repetition and speed.
    pub(super) fn speech(&mut self, name: &str, n: &NodeDef) -> (Option<String>, Option<u8>, Option<Speed>) {
        let d = &self.def.defaults;
        // The node's own voice, else its language's (`voices`), else `[defaults]`'.
        let voice =
            n.voice_profile.as_ref().or(self.language_voice.as_ref()).or(d.voice_profile.as_ref()).cloned();
        if voice.is_none() {
            self.error(
                At::NodeKey(name),
                "no voice profile: 8x8 needs `voiceProfile` to speak".into(),
                Some(
                    "set `voice_profile` under `[defaults]` or on the node, e.g. \"en-US-BenjaminRUS\""
                        .into(),
                ),
            );
        }
        // A language's voice is checked once, at `voices`.
        let from_language = n.voice_profile.is_none() && self.language_voice.is_some();
        if let Some(v) = voice.as_ref().filter(|_| !from_language) {
            self.check_voice(At::Node(name, "voice_profile"), v);
        }
        let d = &self.def.defaults;
        let repetition = self.int(name, "repetition", n.repetition.or(d.repetition));
        let speed = n.speed.or(d.speed).and_then(|s| self.speed(name, s));
        (voice, repetition, speed)
    }

    /// A voice profile 8x8 may not have: a warning naming the nearest known one (8x8 answers a
    /// callflow in an unknown voice with an error, which the caller hears as silence).
    pub(super) fn check_voice(&mut self, at: At<'_>, voice: &str) {
        if self.voices.contains(voice) {
            return;
        }
        let hint = match self.voices.closest(voice) {
            Some(near) => format!("did you mean `{near}`? (known voices: {})", self.voices.origin()),
            None => format!(
                "no voice in {} is near it; `phonetree voices` fetches 8x8's list for your account",
                self.voices.origin()
            ),
        };
        self.report(Severity::Warning, at, format!("unknown voice profile `{voice}`"), Some(hint));
    }

    /// The speed in hundredths, as 8x8 takes it (any f64 from the file, NaN and infinities too).
    fn speed(&mut self, name: &str, s: f64) -> Option<Speed> {
        self.speed_at(name, "speed", s)
    }

    /// `speed`, for the speed in `field` (a prompt part's).
    fn speed_at(&mut self, name: &str, field: &str, s: f64) -> Option<Speed> {
        let hundredths = (s * 100.0).round();
        if (hundredths - s * 100.0).abs() > 1e-6 {
            let hint = Some(SPEED_HINT.into());
            self.error(At::Node(name, field), format!("speed {s} has more than two decimals"), hint);
            None
        } else if !(0.0..=f64::from(u16::MAX)).contains(&hundredths) {
            let hint = Some(SPEED_HINT.into());
            self.error(At::Node(name, field), format!("speed {s} is outside 0.5..2.0"), hint);
            None
        } else {
            Some(Speed(hundredths as u16))
        }
    }
}
