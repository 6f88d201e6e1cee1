//! The `[resume]` table: the window in which an interrupted call is offered to go on, and the
//! offer, compiled into the one-key capture a resumed caller hears first.

use super::{At, Compiler};
use crate::callflow::{self, Action, Callflow, SayAndCapture, Use};
use crate::machine::Resume;
use crate::machine::diagnostic::Severity;

/// Longest resume window: a day. Past it a caller no longer remembers where they were, and the
/// store keeps an interrupted call's record no longer than its retention anyway.
pub const RESUME_WITHIN_MINUTES_MAX: i64 = 24 * 60;
/// How long the offer waits for its one key, in ms: long enough to hear the prompt's end and
/// decide; without a key the call starts at `start`.
const OFFER_TIMEOUT_MS: u32 = 10_000;

impl Compiler<'_> {
    /// The compiled `[resume]` table, in the language being compiled; `None` when the machine has
    /// none or it has errors (reported).
    pub(super) fn resume(&mut self, fallback: &Callflow) -> Option<Resume> {
        let def = self.def.resume.as_ref()?;
        let mut ok = true;
        if !(1..=RESUME_WITHIN_MINUTES_MAX).contains(&def.within_minutes) {
            let hint = Some(format!("give 1 to {RESUME_WITHIN_MINUTES_MAX} minutes (a day)"));
            self.error(
                At::Machine("resume.within_minutes"),
                format!(
                    "`within_minutes` is {}; the window is 1 to {RESUME_WITHIN_MINUTES_MAX} minutes",
                    def.within_minutes
                ),
                hint,
            );
            ok = false;
        }
        let text = match (self.language.as_deref(), def.prompt.get(self.language.as_deref())) {
            (_, Some(text)) => text.clone(),
            (Some(language), None) => {
                self.error(
                    At::Machine("resume.prompt"),
                    format!("`resume.prompt` has no `{language}` text"),
                    Some(format!("add `{language} = \"...\"` to the prompt's table")),
                );
                return None;
            }
            (None, None) => {
                let hint =
                    Some("write the offer as one text: `prompt = \"Welcome back. Press 1 ...\"`".into());
                self.error(
                    At::Machine("resume.prompt"),
                    "`resume.prompt` is a table by language, but the machine has no `languages`".into(),
                    hint,
                );
                return None;
            }
        };
        // The offer speaks in the voice the fallback does: the machine's (or language's) voice.
        let (voice_profile, speed) = match fallback.actions.first() {
            Some(Action::Say(say)) => (say.voice_profile.clone(), say.speed),
            _ => return None,
        };
        let prompt = SayAndCapture {
            prompt_message: text,
            voice_profile,
            repetition: None,
            speed,
            min_digits: Some(1),
            max_digits: Some(1),
            digit_timeout_ms: None,
            overall_timeout_ms: Some(OFFER_TIMEOUT_MS),
            complete_on_hash: None,
            no_of_tries: None,
            success_message: None,
            failure_message: None,
        };
        let flow = Callflow { client_action_id: None, actions: vec![Action::SayAndCapture(prompt.clone())] };
        for v in callflow::validate(&flow, Use::WebhookReply) {
            self.error(At::Machine("resume.prompt"), v.message, None);
            ok = false;
        }
        let within_ms = u64::try_from(def.within_minutes).ok()?.checked_mul(60_000)?;
        ok.then_some(Resume { within_ms, prompt })
    }

    /// A machine that offers to resume and sets a sensitive variable (a PIN, an API's token): going
    /// on at a node after its check skips it, for the caller or anyone who spoofs their number. A warning: the
    /// author decides whether the nodes after it rely on it.
    pub(super) fn check_resume_skips(&mut self, m: &crate::machine::Machine) {
        if self.def.resume.is_none() || m.sensitive.is_empty() {
            return;
        }
        let names: Vec<&str> = m.sensitive.iter().map(String::as_str).collect();
        self.report(
            Severity::Warning,
            At::Machine("resume"),
            format!(
                "`[resume]` lets a resumed call skip the nodes that set sensitive `{}` (a PIN and its check)",
                names.join("`, `")
            ),
            Some("offer resume only where the nodes after a check do not rely on it having just happened, or remove `[resume]`".into()),
        );
    }
}
