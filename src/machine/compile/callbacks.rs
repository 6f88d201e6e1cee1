//! A transfer's `on_unanswered`: its bounds, its calling window (which needs the machine's
//! `timezone`) and the machine it names (that the machine is loaded is checked where machines are
//! loaded together: `node::catalog`).

use std::collections::HashMap;

use super::super::NodeId;
use super::super::callback::{AFTER_MINUTES_MAX, ATTEMPTS_MAX, OnUnanswered, Window};
use super::super::definition::Kind;
use super::{At, Compiler};

/// The wait before a callback when `after_minutes` is not given.
const AFTER_MINUTES_DEFAULT: u32 = 10;

impl Compiler<'_> {
    /// Every transfer's compiled `on_unanswered`, by node; the wrong ones reported and left out.
    pub(super) fn callbacks(&mut self, by_name: &HashMap<String, NodeId>) -> HashMap<NodeId, OnUnanswered> {
        let mut callbacks = HashMap::new();
        let def = self.def;
        for (name, n) in &def.nodes {
            let Some(cb) = &n.on_unanswered else { continue };
            if n.kind != Some(Kind::Transfer) {
                continue;
            }
            let at = At::Node(name, "on_unanswered");
            let after = cb.after_minutes.map_or(Some(AFTER_MINUTES_DEFAULT), |m| u32::try_from(m).ok());
            let after = after.filter(|m| *m <= AFTER_MINUTES_MAX);
            if after.is_none() {
                self.error(
                    at,
                    format!("`after_minutes` must be 0 to {AFTER_MINUTES_MAX} (a week)"),
                    Some("write the minutes to wait before calling back, e.g. `after_minutes = 10`".into()),
                );
            }
            let attempts = cb
                .attempts
                .map_or(Some(1), |a| u8::try_from(a).ok())
                .filter(|a| (1..=ATTEMPTS_MAX).contains(a));
            if attempts.is_none() {
                self.error(
                    at,
                    format!("`attempts` must be 1 to {ATTEMPTS_MAX}"),
                    Some("the callbacks placed at most, the first included, e.g. `attempts = 3`".into()),
                );
            }
            let machine = cb.machine.clone();
            if machine.is_none() {
                self.error(
                    at,
                    "`on_unanswered` needs `machine`: the machine the callback runs".into(),
                    Some("add `machine = \"NAME\"` naming a machine loaded with this one".into()),
                );
            }
            let mut window = None;
            if let Some(text) = &cb.window {
                window = Window::parse(text);
                if window.is_none() {
                    self.error(
                        at,
                        format!("`window` `{text}` is not days and hours"),
                        Some("write days and local hours, e.g. `window = \"mon-fri 09:00-18:00\"`".into()),
                    );
                } else if def.timezone.is_none() {
                    self.error(
                        at,
                        "a callback `window` reads the clock but the machine has no `timezone`".into(),
                        Some(
                            "add `timezone = \"Asia/Singapore\"` (an IANA name) at the top of the file"
                                .into(),
                        ),
                    );
                    window = None;
                }
            }
            let bad_window = cb.window.is_some() && window.is_none();
            if let (Some(after_minutes), Some(attempts), Some(machine), Some(id), false) =
                (after, attempts, machine, by_name.get(name), bad_window)
            {
                callbacks.insert(*id, OnUnanswered { after_minutes, attempts, machine, window });
            }
        }
        callbacks
    }
}
