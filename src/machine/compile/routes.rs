//! Route and set nodes: a route's rules (time windows, dates, tests on call variables) compiled
//! and checked — impossible and shadowed rules, unknown variables, time without a `timezone` —
//! the machine's `timezone`, and a set node's values and counters.

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::super::definition::{AddDef, Kind, NodeDef, RuleDef};
use super::super::diagnostic::closest;
use super::super::route::{
    self, Addend, COUNTER_MAX, Days, Hours, RULE_VALUES_MAX, RULES_MAX, Route, Rule, SetVars, VarTest,
};
use super::super::template;
use super::nodes::{Settings, anchored_regex};
use super::{At, Compiler};

/// What a rule says, as written: the label of its edge (`rule 2 (mon-fri 09:00-18:00)`).
pub(super) fn rule_label(r: &RuleDef) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(dates) = &r.dates {
        parts.push(match dates.as_slice() {
            [one] => one.clone(),
            [a, b] => format!("{a},{b}"),
            many => format!("{} dates", many.len()),
        });
    }
    parts.extend(r.days.iter().cloned());
    parts.extend(r.hours.iter().cloned());
    if let Some(var) = &r.var {
        let mut tests: Vec<String> = Vec::new();
        tests.extend(r.equals.iter().map(|v| format!("= {v}")));
        tests.extend(r.one_of.iter().map(|v| format!("one of {}", v.join(","))));
        tests.extend(r.matches.iter().map(|v| format!("matches {v}")));
        tests.extend(r.prefix.iter().map(|v| format!("prefix {v}")));
        tests.extend(r.at_least.iter().map(|v| format!(">= {v}")));
        tests.extend(r.at_most.iter().map(|v| format!("<= {v}")));
        parts.push(format!("{var} {}", tests.join(" ")));
    }
    parts.join(" ")
}

impl Compiler<'_> {
    /// The machine's `timezone`, from the bundled tz database: an unknown name is an error.
    pub(super) fn timezone(&mut self) -> Option<TimeZone> {
        let name = self.def.timezone.as_deref()?;
        let zone = route::time_zone(name);
        if zone.is_none() {
            let names = route::time_zone_names();
            let hint = closest(name, names.iter().map(String::as_str)).map_or_else(
                || "an IANA time zone name, e.g. `Asia/Singapore` or `America/New_York`".to_string(),
                |c| format!("did you mean `{c}`?"),
            );
            self.error(At::Machine("timezone"), format!("unknown time zone `{name}`"), Some(hint));
        }
        zone
    }

    pub(super) fn route(&mut self, name: &str, n: &NodeDef) -> Option<Route> {
        self.required(name, n, "else", &n.otherwise);
        let defs = n.rules.as_deref().unwrap_or_default();
        if defs.is_empty() {
            self.error(
                At::NodeKey(name),
                "a `route` node needs at least one rule in `rules`".into(),
                Some(
                    "e.g. `rules = [{ days = \"mon-fri\", hours = \"09:00-18:00\", next = \"open\" }]`"
                        .into(),
                ),
            );
            return None;
        }
        if defs.len() > RULES_MAX {
            self.error(
                At::Node(name, "rules"),
                format!("{} rules; the limit is {RULES_MAX}", defs.len()),
                None,
            );
            return None;
        }
        let rules: Vec<Option<Rule>> = defs.iter().enumerate().map(|(i, r)| self.rule(name, i, r)).collect();
        for (j, b) in rules.iter().enumerate() {
            let Some(b) = b else { continue };
            let by = rules[..j].iter().position(|a| a.as_ref().is_some_and(|a| shadows(a, b)));
            if let Some(i) = by {
                self.error(
                    At::Node(name, &format!("rules.{j}")),
                    format!("rule {} never fires: rule {} takes every call it would", j + 1, i + 1),
                    Some("put the narrower rule first, or remove it".into()),
                );
            }
        }
        let rules: Option<Vec<Rule>> = rules.into_iter().collect();
        Some(Route { rules: rules? })
    }

    /// Rule `i` of route `name`; `None` (reported) when a condition is broken or impossible.
    fn rule(&mut self, name: &str, i: usize, r: &RuleDef) -> Option<Rule> {
        let at = format!("rules.{i}");
        let field = |f: &str| format!("rules.{i}.{f}");
        let number = i + 1;
        let mut ok = true;
        if r.next.is_none() {
            self.error(At::Node(name, &at), format!("rule {number} needs `next`"), None);
            ok = false;
        }
        let tests = [
            r.equals.is_some(),
            r.one_of.is_some(),
            r.matches.is_some(),
            r.prefix.is_some(),
            r.at_least.is_some(),
            r.at_most.is_some(),
        ];
        let has_test = tests.iter().any(|t| *t);
        if r.days.is_none() && r.hours.is_none() && r.dates.is_none() && r.var.is_none() && !has_test {
            self.error(
                At::Node(name, &at),
                format!("rule {number} has no condition: it always fires"),
                Some(
                    "give it `days`, `hours`, `dates` or a `var` test, or make its `next` the route's `else`"
                        .into(),
                ),
            );
            return None;
        }
        let days = match &r.days {
            None => None,
            Some(text) => {
                match Days::parse(text) {
                    Some(d) => Some(d),
                    None => {
                        self.error(
                        At::Node(name, &field("days")),
                        format!("`{text}` is not a list of days"),
                        Some("write `mon-fri`, `sat`, `sat,sun` or `fri-mon` (mon tue wed thu fri sat sun)".into()),
                    );
                        ok = false;
                        None
                    }
                }
            }
        };
        let hours = match &r.hours {
            None => None,
            Some(text) => match Hours::parse(text) {
                Some(h) if h.from == h.to => {
                    self.error(
                        At::Node(name, &field("hours")),
                        format!("rule {number} can never fire: the window `{text}` is empty"),
                        Some("a window ends after it starts; `22:00-06:00` crosses midnight".into()),
                    );
                    ok = false;
                    None
                }
                Some(h) => Some(h),
                None => {
                    self.error(
                        At::Node(name, &field("hours")),
                        format!("`{text}` is not a time window"),
                        Some("write `HH:MM-HH:MM` in 24-hour time, e.g. `09:00-18:00`".into()),
                    );
                    ok = false;
                    None
                }
            },
        };
        let dates = r.dates.as_ref().map(|dates| self.dates(name, i, dates, &mut ok));
        if (r.days.is_some() || r.hours.is_some() || r.dates.is_some()) && self.def.timezone.is_none() {
            self.error(
                At::Node(name, &at),
                format!("rule {number} reads the clock but the machine has no `timezone`"),
                Some("add `timezone = \"Asia/Singapore\"` (an IANA name) at the top of the file".into()),
            );
            ok = false;
        }
        let var = self.var_tests(name, i, r, &mut ok);
        (ok).then(|| Rule { days, hours, dates: dates.flatten(), var, label: rule_label(r) })
    }

    fn dates(&mut self, name: &str, i: usize, dates: &[String], ok: &mut bool) -> Option<Vec<Date>> {
        let number = i + 1;
        if dates.is_empty() || dates.len() > RULE_VALUES_MAX {
            let why = if dates.is_empty() {
                format!("rule {number} can never fire: `dates` is empty")
            } else {
                format!("{} dates; the limit is {RULE_VALUES_MAX}", dates.len())
            };
            self.error(At::Node(name, &format!("rules.{i}.dates")), why, None);
            *ok = false;
            return None;
        }
        let mut out = Vec::with_capacity(dates.len());
        for (j, text) in dates.iter().enumerate() {
            let date = (text.len() == 10).then(|| text.parse::<Date>().ok()).flatten();
            match date {
                Some(d) => out.push(d),
                None => {
                    self.error(
                        At::Node(name, &format!("rules.{i}.dates.{j}")),
                        format!("`{text}` is not a date"),
                        Some("write an ISO date that exists, `YYYY-MM-DD`, e.g. `2026-12-25`".into()),
                    );
                    *ok = false;
                }
            }
        }
        Some(out)
    }

    /// A rule's `var` and its tests: a variable some node sets (or a built-in), tests that can hold.
    fn var_tests(
        &mut self,
        name: &str,
        i: usize,
        r: &RuleDef,
        ok: &mut bool,
    ) -> Option<(String, Vec<VarTest>)> {
        let number = i + 1;
        let field = |f: &str| format!("rules.{i}.{f}");
        let mut tests = Vec::new();
        tests.extend(r.equals.iter().map(|v| VarTest::Equals(v.clone())));
        if let Some(set) = &r.one_of {
            if set.is_empty() || set.len() > RULE_VALUES_MAX {
                let why = if set.is_empty() {
                    format!("rule {number} can never fire: `one_of` is empty")
                } else {
                    format!("{} values; the limit is {RULE_VALUES_MAX}", set.len())
                };
                self.error(At::Node(name, &field("one_of")), why, None);
                *ok = false;
            }
            tests.push(VarTest::OneOf(set.clone()));
        }
        if let Some(p) = &r.matches {
            match anchored_regex(p) {
                Ok(re) => tests.push(VarTest::Matches(re)),
                Err(why) => {
                    self.error(
                        At::Node(name, &field("matches")),
                        format!("not a regular expression: {why}"),
                        None,
                    );
                    *ok = false;
                }
            }
        }
        tests.extend(r.prefix.iter().map(|v| VarTest::Prefix(v.clone())));
        tests.extend(r.at_least.map(VarTest::AtLeast));
        tests.extend(r.at_most.map(VarTest::AtMost));
        if let (Some(lo), Some(hi)) = (r.at_least, r.at_most)
            && lo > hi
        {
            self.error(
                At::Node(name, &field("at_least")),
                format!("rule {number} can never fire: `at_least` {lo} is above `at_most` {hi}"),
                None,
            );
            *ok = false;
        }
        let Some(var) = &r.var else {
            if !tests.is_empty() || r.matches.is_some() {
                self.error(
                    At::Node(name, &format!("rules.{i}")),
                    format!("rule {number} tests a value but names no `var`"),
                    Some("add `var = \"NAME\"`, the call variable to test".into()),
                );
                *ok = false;
            }
            return None;
        };
        if tests.is_empty() && r.matches.is_none() {
            self.error(
                At::Node(name, &field("var")),
                format!("rule {number} names `var` but no test of it"),
                Some("add one of `equals`, `one_of`, `matches`, `prefix`, `at_least`, `at_most`".into()),
            );
            *ok = false;
        }
        let builtin = template::BUILTINS.iter().any(|(b, _)| *b == var && *b != "node");
        if !builtin && !self.declared.contains(var) {
            self.unknown_variable(name, &field("var"), var, &Settings::new());
            *ok = false;
        }
        Some((var.clone(), tests))
    }

    pub(super) fn set(&mut self, name: &str, n: &NodeDef, settings: &Settings) -> Option<SetVars> {
        self.required(name, n, "next", &n.next);
        let (values, add) = (n.values.clone().unwrap_or_default(), n.add.clone().unwrap_or_default());
        if values.is_empty() && add.is_empty() {
            self.error(
                At::NodeKey(name),
                "a `set` node needs `values` or `add`".into(),
                Some("e.g. `values = { lang = \"es\" }` or `add = { attempts = 1 }`".into()),
            );
            return None;
        }
        let mut ok = true;
        let mut set = SetVars { values: Vec::new(), add: Vec::new() };
        for (var, text) in &values {
            let field = format!("values.{var}");
            ok &= self.own_var(name, &field, var, settings);
            match self.template(name, &field, text, settings) {
                Some(t) => set.values.push((var.clone(), t)),
                None => ok = false,
            }
        }
        for (var, addend) in &add {
            let field = format!("add.{var}");
            ok &= self.own_var(name, &field, var, settings);
            let addend = match addend {
                AddDef::Constant(n) if (-COUNTER_MAX..=COUNTER_MAX).contains(n) && *n != 0 => {
                    Some(Addend::Constant(*n))
                }
                AddDef::Constant(n) => {
                    self.error(
                        At::Node(name, &field),
                        format!(
                            "`add` of {n} to `{var}`: a counter adds 1 to {COUNTER_MAX} or -1 to -{COUNTER_MAX}"
                        ),
                        None,
                    );
                    None
                }
                AddDef::Variable(text) => self.addend(name, &field, var, text, settings),
            };
            if let Some(writer) = self.text_writer(var) {
                self.error(
                    At::Node(name, &field),
                    format!("`{var}` is a counter here but {writer} writes it too: a counter holds an integer only `add` writes"),
                    Some("count in a variable of its own".into()),
                );
                ok = false;
            }
            match addend {
                Some(addend) => set.add.push((var.clone(), addend)),
                None => ok = false,
            }
        }
        ok.then_some(set)
    }

    /// `add = { total = "{amount}" }`: one call variable some node sets, in braces. Whether its
    /// value is always a number is `check_counted`'s (it needs the compiled inputs).
    fn addend(
        &mut self,
        name: &str,
        field: &str,
        var: &str,
        text: &str,
        settings: &Settings,
    ) -> Option<Addend> {
        let Some(read) =
            text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).filter(|t| template::is_var_name(t))
        else {
            self.error(
                At::Node(name, field),
                format!(
                    "`add` of `{text}` to `{var}`: a counter adds a whole number or one call variable's value"
                ),
                Some(format!(
                    "write a number (`{var} = 1`) or one variable in braces (`{var} = \"{{amount}}\"`)"
                )),
            );
            return None;
        };
        if !self.declared.contains(read) {
            self.unknown_variable(name, field, read, settings);
            return None;
        }
        Some(Addend::Var { name: read.to_string(), numeric: false, digits: false })
    }

    fn own_var(&mut self, name: &str, field: &str, var: &str, settings: &Settings) -> bool {
        let own = self.is_own_var_name(var, settings);
        if !own {
            self.error(
                At::Node(name, field),
                format!(
                    "`{var}` cannot name a call variable: it is not a name, or a setting or built-in has it"
                ),
                Some("use letters, digits and `_`, starting with a letter, and a name of its own".into()),
            );
        }
        own
    }

    /// The node that writes `var` with text rather than a count: an input, a script's `store`,
    /// a set's `values`.
    fn text_writer(&self, var: &str) -> Option<String> {
        self.def.nodes.iter().find_map(|(node, n)| {
            let writes = match n.kind {
                Some(Kind::Input) => n.variable.as_deref() == Some(var),
                Some(Kind::Script) => n.store.as_ref().is_some_and(|s| s.contains_key(var)),
                Some(Kind::Set) => n.values.as_ref().is_some_and(|v| v.contains_key(var)),
                _ => false,
            };
            writes.then(|| format!("node `{node}`"))
        })
    }
}

/// Whether rule `a`, earlier, takes every call rule `b` would: each condition of `a` follows from
/// one of `b`'s. Conservative: only what is certain is reported.
fn shadows(a: &Rule, b: &Rule) -> bool {
    // Whether b's window lies within a's, and whether for those times both read the same day.
    let (hours_ok, same_day) = match (a.hours, b.hours) {
        (None, None) => (true, true),
        (None, Some(hb)) => (true, !hb.crosses_midnight()),
        (Some(_), None) => (false, false),
        (Some(ha), Some(hb)) => match (ha.crosses_midnight(), hb.crosses_midnight()) {
            (x, y) if x == y => (ha.from <= hb.from && hb.to <= ha.to, true),
            (true, false) if ha.from <= hb.from => (true, true),
            (true, false) => (hb.to <= ha.to, false),
            _ => (false, false),
        },
    };
    let days_ok =
        a.days.is_none_or(|ad| ad == Days(0x7f) || (same_day && b.days.is_some_and(|bd| bd.within(ad))));
    let dates_ok = a
        .dates
        .as_ref()
        .is_none_or(|ad| same_day && b.dates.as_ref().is_some_and(|bd| bd.iter().all(|d| ad.contains(d))));
    let var_ok = a.var.as_ref().is_none_or(|(an, at)| {
        b.var.as_ref().is_some_and(|(bn, bt)| an == bn && at.iter().all(|t| bt.iter().any(|u| implies(u, t))))
    });
    hours_ok && days_ok && dates_ok && var_ok
}

/// Whether every value test `u` accepts, test `t` accepts too.
fn implies(u: &VarTest, t: &VarTest) -> bool {
    let value_holds = |v: &str| t.holds(Some(v));
    match (u, t) {
        (VarTest::Equals(x), _) => value_holds(x),
        (VarTest::OneOf(set), _) => !set.is_empty() && set.iter().all(|x| value_holds(x)),
        (VarTest::Prefix(p), VarTest::Prefix(q)) => p.starts_with(q.as_str()),
        (VarTest::Matches(r1), VarTest::Matches(r2)) => r1.as_str() == r2.as_str(),
        (VarTest::AtLeast(x), VarTest::AtLeast(y)) => x >= y,
        (VarTest::AtMost(x), VarTest::AtMost(y)) => x <= y,
        _ => false,
    }
}
