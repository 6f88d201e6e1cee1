//! The serde mirror of a machine file (TOML or JSON): field for field what the author wrote, nothing else.
//!
//! Shape only: serde checks each field's type, while unknown fields, the `kind` and every semantic
//! rule — which fields a node kind takes, targets, 8x8 limits — are the compiler's (`compile`), which
//! reads each table leniently and reports every problem of a file in one run. A node is one flat
//! table whose `kind` says which of its fields apply; that keeps positions exact for every field.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// One machine file. `name` and `start` are required: the compiler reports them missing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
pub struct Definition {
    /// The machine's name: it appears in every `clientActionId` the machine issues.
    #[serde(default)]
    pub name: String,
    /// What the machine is for (shown by `check`, the console and the admin API).
    #[serde(default)]
    pub description: Option<String>,
    /// The node a call starts at.
    #[serde(default)]
    pub start: String,
    /// Virtual numbers this machine answers (inbound: the called number; outbound: the caller ID).
    #[serde(default)]
    pub numbers: Vec<String>,
    /// What the caller hears when phonetree itself fails (store fault, broken state); then hangup.
    /// In a machine with `languages`, a table by language.
    #[serde(default)]
    pub fallback: Option<Spoken<String>>,
    /// The languages the machine speaks (`["en", "es"]`), the first the one a call starts in:
    /// every spoken text is then a table by language (`prompt = { en = "...", es = "..." }`),
    /// which `check` proves complete. In a module: the languages its tables hold.
    #[serde(default)]
    pub languages: Vec<String>,
    /// The call variable holding the call's language (one of `languages`; unset or any other
    /// value: the first). Required with two languages or more.
    #[serde(default)]
    pub language_variable: Option<String>,
    /// Each language's voice profile, used by every node that names none (`{ en = "...", ... }`).
    #[serde(default)]
    pub voices: BTreeMap<String, String>,
    /// The hosts script nodes may call, `HOST` or `HOST:PORT` (see `hosts`): when set, a script URL
    /// to any other host is an error; a loopback or private IP address needs listing here.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// The IANA time zone (`Asia/Singapore`) route rules on `days`, `hours` and `dates` read the
    /// clock in; required when a rule uses time.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Named constants usable in any template as `{name}` (phone numbers, URLs, ...).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Call variables every call starts with, name → default value: a call phonetree places
    /// (`POST /calls`, `phonetree call --var`) may give each its own value.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// The `[keys]` table: machine-wide keys (`"*" = "repeat"`), each leading to `repeat`, `back`,
    /// `start` or a node, at every menu and input that does not turn them off (`global_keys`).
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    /// A module's call variables it reads, each given by the using node's `with` (modules only).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// A module's call variables it sets: a list, set on every path to every exit; or a table
    /// of exit → list, each set on every path to that exit (`{ ok = ["balance"] }`) (modules only).
    #[serde(default)]
    pub outputs: Outputs,
    /// A module's exits, each mapped to a node by the using node's `exits` (modules only).
    #[serde(default)]
    pub exits: Vec<String>,
    /// The `[[policies]]` array: rules `check` proves over every path of the machine (see
    /// `machine::policy`); `policies.toml` beside the machine adds the folder's own.
    #[serde(default)]
    pub policies: Vec<PolicyDef>,
    /// The `[resume]` table: a caller whose last call on this machine ended at a waiting node is
    /// offered to go on from there when calling again within `within_minutes`.
    #[serde(default)]
    pub resume: Option<ResumeDef>,
    /// Machine-wide defaults; every node may override each of them. Read apart, leniently.
    #[serde(skip)]
    pub defaults: Defaults,
    /// The `[nodes.NAME]` tables, sorted by name (names are unique: a file cannot repeat a key),
    /// read one by one, each leniently (see `compile::shape`).
    #[serde(skip)]
    pub nodes: Vec<(String, NodeDef)>,
}

/// The `[resume]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
pub struct ResumeDef {
    /// How long after an interrupted call the offer is made, in minutes (1 to
    /// `compile::RESUME_WITHIN_MINUTES_MAX`).
    pub within_minutes: i64,
    /// The offer, said with a one-key capture: `1` goes on where the call stopped, any other key
    /// (or none) starts at `start`. In a machine with `languages`, a table by language.
    pub prompt: Spoken<String>,
}

/// The `[defaults]` table: the speech and capture settings every node inherits.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
pub struct Defaults {
    /// 8x8 `voiceProfile`: the text-to-speech voice (`en-US-BenjaminRUS`).
    pub voice_profile: Option<String>,
    /// 8x8 `speed`: speech rate (0.5 to 2.0).
    pub speed: Option<f64>,
    /// 8x8 `repetition`: times a message is played.
    pub repetition: Option<i64>,
    /// 8x8 `minDigits`: fewest keys a capture accepts.
    pub min_digits: Option<i64>,
    /// 8x8 `maxDigits`: most keys a capture accepts.
    pub max_digits: Option<i64>,
    /// 8x8 `digitTimeout`: ms to wait for each further key.
    pub digit_timeout_ms: Option<i64>,
    /// 8x8 `overallTimeout`: ms to wait for the whole capture.
    pub overall_timeout_ms: Option<i64>,
    /// 8x8 `completeOnHash`: `#` ends the capture.
    pub complete_on_hash: Option<bool>,
    /// 8x8 `noOfTries`: 8x8's own attempts at a capture.
    pub no_of_tries: Option<i64>,
    /// 8x8 `successMessage`: said after a capture 8x8 accepts.
    pub success_message: Option<Spoken<String>>,
    /// 8x8 `failureMessage`: said when a capture 8x8 rejects is retried.
    pub failure_message: Option<Spoken<String>>,
    /// phonetree's own attempts at a menu before it takes the invalid / no-input branch.
    pub tries: Option<i64>,
}

/// The node kinds; each takes the fields listed in `compile::fields::FIELDS_BY_KIND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 8x8 `sayAndCapture`: a prompt, then branches on the keys pressed.
    Menu,
    /// 8x8 `sayAndCapture` of several keys into a call variable (an order number, a PIN), then `next`.
    Input,
    /// An HTTP request to the business's API, routed on its answer (the "Script widget").
    Script,
    /// 8x8 `say`, then `next`.
    Say,
    /// 8x8 `playFile`, then `next`.
    Play,
    /// 8x8 `makeCall` bridging the caller to `destination`; the call ends with the bridge.
    Transfer,
    /// 8x8 `hangup`.
    Hangup,
    /// No action: the first of its `rules` whose conditions all hold picks the next node, else `else`.
    Route,
    /// No action: sets call variables (`values`) and counters (`add`), then `next`.
    Set,
    /// No action: a sticky A/B split, the variant a fixed hash of `salt` and the caller (or the
    /// session) picks by `weights`, then that variant's node in `next`.
    Split,
    /// A module (`machines/modules/NAME.toml`) inlined here, its exits mapped to this file's nodes.
    Module,
    /// In a module: leaves it by its exit `exit`, to the node the using node maps it to.
    Exit,
}

/// `global_keys`: every machine-wide key (`true`, the default), none (`false`), or those listed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "`true`, `false` or a list of the machine's keys (`[\"*\"]`)")]
pub enum GlobalKeys {
    All(bool),
    Only(Vec<String>),
}

impl GlobalKeys {
    /// Whether the machine-wide `key` applies at a node with this setting.
    pub fn keeps(&self, key: &str) -> bool {
        match self {
            GlobalKeys::All(all) => *all,
            GlobalKeys::Only(keys) => keys.iter().any(|k| k == key),
        }
    }
}

/// One `[nodes.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
pub struct NodeDef {
    /// Read before the other fields; `None` when it is missing or no kind (already reported).
    #[serde(skip)]
    pub kind: Option<Kind>,
    /// The fields the table sets, as its keys say.
    #[serde(skip)]
    pub fields: FieldSet,
    /// Some field or the kind did not parse (already reported): the node is only a name and its
    /// targets.
    #[serde(skip)]
    pub broken: bool,

    // menu
    /// What the caller hears before pressing keys: a template (`{caller}`, `{say:$order}`, ...), or a
    /// list of parts said one after the other, each in its own voice.
    pub prompt: Option<Spoken<Prompt>>,
    /// Played instead of `prompt` when the caller gets another try.
    pub reprompt: Option<Spoken<Prompt>>,
    /// phonetree's attempts at the node before it takes `invalid` / `no_input`.
    pub tries: Option<i64>,
    /// Keys the caller may press, each mapped to the node it leads to.
    pub branches: Option<BTreeMap<String, String>>,
    /// Where the call goes when the keys match no branch and no try is left.
    pub invalid: Option<String>,
    /// Where the call goes when nothing was pressed and no try is left (default: `invalid`).
    pub no_input: Option<String>,
    /// `false` turns the machine-wide `[keys]` off at this menu or input (a PIN input); a list
    /// keeps only those keys (`["*"]`: `*` still repeats, `9` is the caller's key).
    pub global_keys: Option<GlobalKeys>,

    // input
    /// The call variable the keys are stored in, for later templates (`{order}`, `{say:$order}`).
    pub variable: Option<String>,
    /// A regular expression the whole input must match (e.g. `[0-9]{6}`); else it is invalid.
    pub pattern: Option<String>,
    /// An input the node accepts: documents the format, and `check` plays it.
    pub example: Option<String>,
    /// The keys are a secret (a PIN, a card number): sent only in a script's POST body, never
    /// spoken or recorded, forgotten at the end of the webhook that took them.
    pub sensitive: Option<bool>,

    // script
    /// The API to call (a template: `{caller}`, `{keypress}`, call variables).
    pub url: Option<String>,
    /// POST body as query-string pairs (`caller={caller}&order={order}`); absent: a GET.
    pub body: Option<String>,
    /// Send the body as a JSON object instead of a form (the widget's "raw HTTP POST").
    pub raw_json: Option<bool>,
    /// Request headers as query-string pairs (`Authorization=Basic%20...&X-Source=ivr`).
    pub headers: Option<String>,
    pub timeout_ms: Option<i64>,
    /// Dotted path in the JSON answer whose value selects a branch (`data.code`).
    pub response_key: Option<String>,
    /// Where the call goes when the value matches no branch.
    pub default: Option<String>,
    /// Where the call goes when the API gives no usable answer.
    pub failure: Option<String>,
    /// Call variables set from the answer: name → dotted path (`{ eta = "data.eta" }`), or name →
    /// `{ path, default, max_chars }`.
    pub store: Option<BTreeMap<String, StoreDef>>,
    /// Minutes identical requests are answered from the cache (1 to 999).
    pub cache_minutes: Option<i64>,
    /// Ask the caller for keys before the request (`{keypress}`).
    pub allow_keypress: Option<bool>,
    /// Seconds to wait for each key, in ms (default 4000).
    pub digit_gap_ms: Option<i64>,
    /// Times the prompt is repeated when the caller presses nothing (0 to 8).
    pub repeat: Option<i64>,

    // say / play
    /// What a say node says (a template).
    pub text: Option<Spoken<String>>,
    /// The audio a play node plays: an http(s) URL (a template).
    pub file_url: Option<String>,
    /// The node the call goes to next; a split's: variant → node (`{ a = "greet_a" }`).
    pub next: Option<Next>,

    // transfer
    /// The number the caller is bridged to.
    pub destination: Option<String>,
    /// The caller ID shown to the destination (default: the call's virtual number).
    pub source: Option<String>,
    /// 8x8 `callRecording`: record the bridged call.
    pub call_recording: Option<bool>,
    /// Refused (a diagnostic): 8x8 sends no webhook after a bridge, so the call ends with it.
    pub after: Option<String>,
    /// A callback to the caller when the bridged leg is busy, unanswered or failed.
    pub on_unanswered: Option<OnUnansweredDef>,

    // route
    /// Ordered rules: the first whose conditions all hold gives the next node.
    pub rules: Option<Vec<RuleDef>>,
    /// Where a route goes when no rule holds.
    #[serde(rename = "else")]
    pub otherwise: Option<String>,

    // set
    /// Call variables set to templates (`{ lang = "es" }`).
    pub values: Option<BTreeMap<String, String>>,
    /// Integer counters, each added to: a whole number (`{ pin_attempts = 1 }`; an unset counter
    /// counts as 0), or a call variable's value (`{ total = "{amount}" }`), checked to be a number.
    pub add: Option<BTreeMap<String, AddDef>>,
    /// Where the call goes when a variable `add` reads is not a number (needed unless the
    /// compiler proves it always is one; the node then sets nothing).
    pub not_number: Option<String>,

    // split
    /// A split's variants and their whole-number weights (`{ a = 20, b = 80 }`).
    pub weights: Option<BTreeMap<String, i64>>,
    /// What keeps a split's variant: `caller` (the default: one caller, one variant) or `session`.
    pub sticky_by: Option<String>,
    /// Hashed before the caller: another salt deals the callers out afresh.
    pub salt: Option<String>,
    /// Callers (E.164) given a variant whatever the hash says (`{ "+6591234567" = "b" }`).
    pub force: Option<BTreeMap<String, String>>,

    // module
    /// The module a `module` node uses (its `name`).
    pub module: Option<String>,
    /// The module's `inputs`, each given a template (`{ account = "{acct}" }`).
    pub with: Option<BTreeMap<String, String>>,
    /// Each of the module's exits → the node the call goes to when the module leaves by it.
    pub exits: Option<BTreeMap<String, String>>,

    // exit
    /// Which of its module's `exits` an `exit` node leaves by.
    pub exit: Option<String>,

    // speech and capture overrides (see `Defaults`)
    /// 8x8 `voiceProfile`: the text-to-speech voice (`en-US-BenjaminRUS`).
    pub voice_profile: Option<String>,
    /// 8x8 `speed`: speech rate (0.5 to 2.0).
    pub speed: Option<f64>,
    /// 8x8 `repetition`: times a message is played.
    pub repetition: Option<i64>,
    /// 8x8 `minDigits`: fewest keys a capture accepts.
    pub min_digits: Option<i64>,
    /// 8x8 `maxDigits`: most keys a capture accepts.
    pub max_digits: Option<i64>,
    /// 8x8 `digitTimeout`: ms to wait for each further key.
    pub digit_timeout_ms: Option<i64>,
    /// 8x8 `overallTimeout`: ms to wait for the whole capture.
    pub overall_timeout_ms: Option<i64>,
    /// 8x8 `completeOnHash`: `#` ends the capture.
    pub complete_on_hash: Option<bool>,
    /// 8x8 `noOfTries`: 8x8's own attempts at a capture.
    pub no_of_tries: Option<i64>,
    /// 8x8 `successMessage`: said after a capture 8x8 accepts.
    pub success_message: Option<Spoken<String>>,
    /// 8x8 `failureMessage`: said when a capture 8x8 rejects is retried.
    pub failure_message: Option<Spoken<String>>,
}

/// A transfer's `on_unanswered`: `{ after_minutes = 10, attempts = 3, machine = "callback",
/// window = "mon-fri 09:00-18:00" }`. Closed: a misspelt field would otherwise be ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnUnansweredDef {
    /// Minutes after the summary before the callback (0 to a week; default 10).
    pub after_minutes: Option<i64>,
    /// Callbacks placed at most, the first included (1 to 5; default 1).
    pub attempts: Option<i64>,
    /// The machine the callback runs.
    pub machine: Option<String>,
    /// When callbacks may ring, in the machine's `timezone`: `mon-fri 09:00-18:00`.
    pub window: Option<String>,
}

/// One rule of a `route` node: its conditions (all must hold) and the node it leads to. A rule's
/// fields are closed: a misspelt condition would otherwise silently hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// Weekdays, `mon-fri`, `sat,sun`, `fri-mon` (wrapping).
    pub days: Option<String>,
    /// A local time window, `09:00-18:00`; `22:00-06:00` crosses midnight.
    pub hours: Option<String>,
    /// ISO dates, `2026-12-25`.
    pub dates: Option<Vec<String>>,
    /// The call variable the value tests read.
    pub var: Option<String>,
    /// The variable's value is exactly this.
    pub equals: Option<String>,
    /// The variable's value is one of these.
    pub one_of: Option<Vec<String>>,
    /// A regular expression the whole value must match.
    pub matches: Option<String>,
    /// The variable's value starts with this (`+65`).
    pub prefix: Option<String>,
    /// The variable is an integer at least this (an unset variable counts as 0).
    pub at_least: Option<i64>,
    /// The variable is an integer at most this (an unset variable counts as 0).
    pub at_most: Option<i64>,
    /// The node the call goes to when every condition of the rule holds.
    pub next: Option<String>,
}

/// A module's `outputs`: for every exit, or per exit.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a list of call variables, or a table of exit = list of call variables")]
pub enum Outputs {
    /// Set on every path to every exit.
    All(Vec<String>),
    /// Each exit's: set on every path to that exit.
    ByExit(BTreeMap<String, Vec<String>>),
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs::All(Vec::new())
    }
}

impl Outputs {
    pub fn is_empty(&self) -> bool {
        match self {
            Outputs::All(all) => all.is_empty(),
            Outputs::ByExit(by) => by.values().all(Vec::is_empty),
        }
    }

    /// Every variable named, each once.
    pub fn names(&self) -> Vec<&String> {
        let mut names: Vec<&String> = match self {
            Outputs::All(all) => all.iter().collect(),
            Outputs::ByExit(by) => by.values().flatten().collect(),
        };
        names.sort();
        names.dedup();
        names
    }

    /// Whether `output` must be set on every path to `exit`.
    pub fn required(&self, exit: &str, output: &str) -> bool {
        match self {
            Outputs::All(all) => all.iter().any(|o| o == output),
            Outputs::ByExit(by) => by.get(exit).is_some_and(|o| o.iter().any(|o| o == output)),
        }
    }
}

/// What a `set` node's `add` adds to a counter.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a whole number, or `\"{name}\"`: the value of a call variable")]
pub enum AddDef {
    /// A whole number.
    Constant(i64),
    /// `"{name}"`: an input's keys, a script's stored value or another counter.
    Variable(String),
}

/// A node's `next`: one node, or for a `split`, one node per variant.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a node name, or for a split a table of variant = node name")]
pub enum Next {
    Node(String),
    Variants(BTreeMap<String, String>),
}

impl Next {
    /// The one node it names; `None` for a table of variants.
    pub fn node(&self) -> Option<&String> {
        match self {
            Next::Node(n) => Some(n),
            Next::Variants(_) => None,
        }
    }
}

/// One stored call variable of a script: a dotted path, or a table with the path and its settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreDef {
    pub path: Option<String>,
    /// The value when the answer has no such key (absent: the variable is left unset).
    pub default: Option<String>,
    /// Most characters kept of the value (default 64, at most 512: `compile/scripts.rs`).
    pub max_chars: Option<i64>,
    /// The value is a secret: handled as a sensitive input's keys (`compile/sensitive.rs`).
    pub sensitive: Option<bool>,
}

/// A stored variable is a dotted path, or a table of the path and its settings.
impl JsonSchema for StoreDef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StoreDef".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A call variable set from the answer: a dotted path in it (`data.eta`), or a table with the path and its settings.",
            "anyOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": {
                        "path": { "type": "string", "description": "The dotted path in the JSON answer." },
                        "default": { "type": "string", "description": "The value when the answer has no such key (absent: the variable is left unset)." },
                        "max_chars": { "type": "integer", "minimum": 1, "description": "Most characters kept of the value (default 64); a longer one is cut after the last whole word." },
                        "sensitive": { "type": "boolean", "description": "The value is a secret: sent only in a script's POST body, never spoken or recorded, forgotten at the end of the webhook that stored it." }
                    },
                    "required": ["path"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for StoreDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StoreDef, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = StoreDef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key path (\"data.eta\") or a table { path, default, max_chars, sensitive }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StoreDef, E> {
                Ok(StoreDef { path: Some(v.to_string()), ..StoreDef::default() })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StoreDef, A::Error> {
                let mut out = StoreDef::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "path" => out.path = Some(map.next_value()?),
                        "default" => out.default = Some(map.next_value()?),
                        "max_chars" => out.max_chars = Some(map.next_value()?),
                        "sensitive" => out.sensitive = Some(map.next_value()?),
                        other => {
                            return Err(serde::de::Error::unknown_field(
                                other,
                                &["path", "default", "max_chars", "sensitive"],
                            ));
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A spoken field: one text, or in a machine with `languages` a table of the text in each
/// (`{ en = "...", es = "..." }`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a text (for a prompt, or a list of parts: texts or `{ text, voice_profile, speed }` tables), or a table of those by language (`{ en = ..., es = ... }`)"
)]
pub enum Spoken<T> {
    One(T),
    Languages(BTreeMap<String, T>),
}

/// The fields that may be tables by language (`Spoken`), in nodes and in `[defaults]`.
pub const SPOKEN_FIELDS: [&str; 5] = ["prompt", "reprompt", "text", "success_message", "failure_message"];

impl<T> Spoken<T> {
    /// The text in `language`: the one text, or the table's entry (`None` when it has none).
    pub fn get(&self, language: Option<&str>) -> Option<&T> {
        match (self, language) {
            (Spoken::One(t), _) => Some(t),
            (Spoken::Languages(by), Some(l)) => by.get(l),
            (Spoken::Languages(_), None) => None,
        }
    }

    /// The text in `language`, else (a missing translation, reported by the compiler) the first
    /// the table has: what the compiler compiles, so that one missing text is one diagnostic.
    /// `None` only for an empty table.
    pub fn pick(&self, language: Option<&str>) -> Option<&T> {
        match self {
            Spoken::One(t) => Some(t),
            Spoken::Languages(by) => self.get(language).or_else(|| by.values().next()),
        }
    }
}

/// A prompt: one text, or parts said one after the other, each in its own voice.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a text, or a list of parts: texts or `{ text, voice_profile, speed }` tables")]
pub enum Prompt {
    Text(String),
    Parts(Vec<Part>),
}

/// One part of a prompt: a text in the node's voice, or a text with its own voice or speed.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a text, or a `{ text, voice_profile, speed }` table")]
pub enum Part {
    Text(String),
    Voiced(VoicedPart),
}

/// A part with its own voice settings; what it leaves out it takes from the node (or `[defaults]`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VoicedPart {
    /// What this part says (a template).
    pub text: String,
    /// 8x8 `voiceProfile` of this part (default: the node's).
    pub voice_profile: Option<String>,
    /// 8x8 `speed` of this part (default: the node's).
    pub speed: Option<f64>,
}

impl Part {
    pub fn text(&self) -> &str {
        match self {
            Part::Text(t) => t,
            Part::Voiced(v) => &v.text,
        }
    }
}

/// A set of `NodeDef` fields, by their index in serde's field list (`FieldSet::NAMES`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldSet(u64);

impl FieldSet {
    pub fn insert(&mut self, index: usize) {
        self.0 |= 1 << index;
    }

    pub fn has(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    pub fn union(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 | other.0)
    }

    /// The indexes in the set, in order.
    pub fn indexes(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |&i| self.has(i))
    }
}

/// One `[[policies]]` entry (in a machine, or in `policies.toml`): exactly one of its pairs,
/// `before` with `on_every_path_to`, `reach` with `within_answers`, `never` with `after`, or
/// `max_answers` alone.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDef {
    /// A node every path to `on_every_path_to` passes first (a consent notice).
    pub before: Option<String>,
    /// `recorded_transfer` (every transfer with `call_recording = true`), `transfer`, or a node.
    pub on_every_path_to: Option<String>,
    /// A node the caller can reach from every waiting node within `within_answers` answers.
    pub reach: Option<String>,
    /// Most answers (machine keys count) from any waiting node to `reach`.
    pub within_answers: Option<i64>,
    /// `transfer`, `recorded_transfer` or a node the call never enters once `after` was passed.
    pub never: Option<String>,
    /// A node (`closed`), or a node's edge (`hours:else`, `menu:2`, `check:failure`).
    pub after: Option<String>,
    /// Most answers a caller gives in one call, on every path, loops included.
    pub max_answers: Option<i64>,
}
