//! Split nodes: `weights`, `next`, `sticky_by`, `salt` and `force` compiled and checked — whole
//! weights within bounds that sum above 0, `next` naming a node for exactly the variants `weights`
//! names, `force` keys in E.164 naming known variants — and a `next` table on any other kind.

use super::super::definition::{Kind, Next, NodeDef};
use super::super::diagnostic::closest;
use super::super::split::{
    FORCE_MAX, SALT_CHARS_MAX, Split, StickyBy, VARIANT_CHARS_MAX, VARIANTS_MAX, WEIGHTS_TOTAL_MAX, e164,
};
use super::{At, Compiler};
use crate::callflow;

impl Compiler<'_> {
    /// A `next` table of variants belongs to a split only; a split's `next` is such a table.
    pub(super) fn next_shape(&mut self, name: &str, n: &NodeDef) {
        match (n.kind, &n.next) {
            (Some(Kind::Split), Some(Next::Node(_))) => self.error(
                At::Node(name, "next"),
                "a split's `next` maps each variant to a node".into(),
                Some(
                    "write `next = { a = \"greet_a\", b = \"greet_b\" }`, one entry per key of `weights`"
                        .into(),
                ),
            ),
            (Some(kind), Some(Next::Variants(_))) if kind != Kind::Split => self.error(
                At::Node(name, "next"),
                "a table of variants in `next` is only for a `split` node".into(),
                Some("write the one node the call goes to next: `next = \"main\"`".into()),
            ),
            _ => {}
        }
    }

    pub(super) fn split(&mut self, name: &str, n: &NodeDef) -> Option<Split> {
        let weights = self.required(name, n, "weights", &n.weights);
        let next = self.required(name, n, "next", &n.next);
        let mut ok = true;
        let mut variants: Vec<(String, u64)> = Vec::new();
        let mut total = 0u64;
        for (variant, &weight) in weights.into_iter().flatten() {
            let field = format!("weights.{variant}");
            if let Err(why) = variant_name(variant) {
                self.error(
                    At::Node(name, &field),
                    why,
                    Some("name variants with letters, digits, _ and -".into()),
                );
                ok = false;
            }
            match u64::try_from(weight).ok().filter(|w| *w <= WEIGHTS_TOTAL_MAX) {
                Some(w) => {
                    total = total.saturating_add(w);
                    variants.push((variant.clone(), w));
                }
                None => {
                    self.error(
                        At::Node(name, &field),
                        format!("weight {weight} of variant `{variant}` is not 0 to {WEIGHTS_TOTAL_MAX}"),
                        Some("weights are whole numbers, shares of the callers (`a = 20, b = 80`)".into()),
                    );
                    ok = false;
                }
            }
        }
        if let Some(weights) = weights {
            if weights.len() < 2 || weights.len() > VARIANTS_MAX {
                self.error(
                    At::Node(name, "weights"),
                    format!("{} variant(s); a split has 2 to {VARIANTS_MAX}", weights.len()),
                    Some("e.g. `weights = { a = 20, b = 80 }`".into()),
                );
                ok = false;
            }
            if ok && (total == 0 || total > WEIGHTS_TOTAL_MAX) {
                self.error(
                    At::Node(name, "weights"),
                    format!("the weights sum to {total}; they must sum to 1 to {WEIGHTS_TOTAL_MAX}"),
                    Some("give each variant its share of the callers, e.g. `a = 20, b = 80`".into()),
                );
                ok = false;
            }
        }
        if let (Some(weights), Some(Next::Variants(next))) = (weights, next) {
            for variant in weights.keys().filter(|v| !next.contains_key(*v)) {
                self.error(
                    At::Node(name, &format!("weights.{variant}")),
                    format!("variant `{variant}` has no node in `next`"),
                    Some(format!("add `{variant} = \"NODE\"` to `next`")),
                );
                ok = false;
            }
            for variant in next.keys().filter(|v| !weights.contains_key(*v)) {
                let near = closest(variant, weights.keys().map(String::as_str));
                self.error(
                    At::Node(name, &format!("next.{variant}")),
                    format!("`next` names variant `{variant}`, which `weights` does not"),
                    Some(near.map_or_else(
                        || "give every variant a weight, and `next` only the variants of `weights`".into(),
                        |c| format!("did you mean `{c}`?"),
                    )),
                );
                ok = false;
            }
        }
        let sticky_by = match n.sticky_by.as_deref() {
            None | Some("caller") => StickyBy::Caller,
            Some("session") => StickyBy::Session,
            Some(other) => {
                self.error(
                    At::Node(name, "sticky_by"),
                    format!("`sticky_by = \"{other}\"` is neither `caller` nor `session`"),
                    Some(
                        "`caller` keeps one caller on one variant on every call; `session` only for the call"
                            .into(),
                    ),
                );
                ok = false;
                StickyBy::Caller
            }
        };
        let salt = n.salt.clone().unwrap_or_default();
        if salt.chars().count() > SALT_CHARS_MAX {
            self.error(
                At::Node(name, "salt"),
                format!("the salt has {} characters; at most {SALT_CHARS_MAX}", salt.chars().count()),
                Some("a short name of the experiment is enough (`greeting-2026`)".into()),
            );
            ok = false;
        }
        let mut force: Vec<(String, usize)> = Vec::new();
        let forced = n.force.as_ref().map_or(0, |f| f.len());
        if forced > FORCE_MAX {
            self.error(
                At::Node(name, "force"),
                format!("{forced} forced callers; at most {FORCE_MAX}"),
                Some("force only the numbers of the people testing the variants".into()),
            );
            ok = false;
        }
        for (caller, variant) in n.force.iter().flatten() {
            let field = format!("force.{caller}");
            if let Err(why) = callflow::check_e164(caller) {
                let hint =
                    "write the caller in E.164: `+`, the country code, then the number (`+6591234567`)";
                self.error(At::Node(name, &field), why, Some(hint.into()));
                ok = false;
            }
            match variants.iter().position(|(v, _)| v == variant) {
                Some(i) => force.push((e164(caller), i)),
                None if weights.is_some() => {
                    let near = closest(variant, variants.iter().map(|(v, _)| v.as_str()));
                    let message = format!(
                        "caller `{caller}` is forced to variant `{variant}`, which `weights` does not name"
                    );
                    let hint = near.map_or_else(
                        || "force a variant `weights` names".to_string(),
                        |c| format!("did you mean `{c}`?"),
                    );
                    self.error(At::Node(name, &field), message, Some(hint));
                    ok = false;
                }
                None => {}
            }
        }
        force.sort();
        if force.windows(2).any(|w| w[0].0 == w[1].0) {
            self.error(
                At::Node(name, "force"),
                "a caller is forced twice (once with `+`, once without)".into(),
                Some("list each caller once".into()),
            );
            ok = false;
        }
        (ok && weights.is_some() && matches!(next, Some(Next::Variants(_)))).then_some(Split {
            variants,
            sticky_by,
            salt,
            force,
        })
    }
}

/// A variant's name: it is a metric label, an edge's label and a word in `check`'s output.
fn variant_name(v: &str) -> Result<(), String> {
    let fine = !v.is_empty()
        && v.len() <= VARIANT_CHARS_MAX
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if fine {
        Ok(())
    } else {
        Err(format!("variant `{v}` is not 1 to {VARIANT_CHARS_MAX} letters, digits, _ or -"))
    }
}
