//! The serde mirror of a machine file (TOML or JSON): field for field what the author wrote, nothing else.
//!
//! Shape only: serde checks each field's type, while unknown fields, the `kind` and every semantic
//! rule — which fields a node kind takes, targets, 8x8 limits — are the compiler's (`compile`), which
//! reads each table leniently and reports every problem of a file in one run. A node is one flat
//! table whose `kind` says which of its fields apply; that keeps positions exact for every field.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One machine file. `name` and `start` are required: the compiler reports them missing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Definition {
    /// The machine's name: it appears in every `clientActionId` the machine issues.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The node a call starts at.
    #[serde(default)]
    pub start: String,
    /// Virtual numbers this machine answers (inbound: the called number; outbound: the caller ID).
    #[serde(default)]
    pub numbers: Vec<String>,
    /// What the caller hears when phonetree itself fails (store fault, broken state); then hangup.
    #[serde(default)]
    pub fallback: Option<String>,
    /// The hosts script nodes may call, `HOST` or `HOST:PORT` (see `hosts`): when set, a script URL
    /// to any other host is an error; a loopback or private IP address needs listing here.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Named constants usable in any template as `{name}` (phone numbers, URLs, ...).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The `[keys]` table: machine-wide keys (`"*" = "repeat"`), each leading to `repeat`, `back`,
    /// `start` or a node, at every menu and input that does not turn them off (`global_keys`).
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    /// Machine-wide defaults; every node may override each of them. Read apart, leniently.
    #[serde(skip)]
    pub defaults: Defaults,
    /// The `[nodes.NAME]` tables, sorted by name (names are unique: a file cannot repeat a key),
    /// read one by one, each leniently (see `compile::shape`).
    #[serde(skip)]
    pub nodes: Vec<(String, NodeDef)>,
}

/// The `[defaults]` table: the speech and capture settings every node inherits.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Defaults {
    pub voice_profile: Option<String>,
    pub speed: Option<f64>,
    pub repetition: Option<i64>,
    pub min_digits: Option<i64>,
    pub max_digits: Option<i64>,
    pub digit_timeout_ms: Option<i64>,
    pub overall_timeout_ms: Option<i64>,
    pub complete_on_hash: Option<bool>,
    pub no_of_tries: Option<i64>,
    pub success_message: Option<String>,
    pub failure_message: Option<String>,
    /// phonetree's own attempts at a menu before it takes the invalid / no-input branch.
    pub tries: Option<i64>,
}

/// The node kinds; each takes the fields listed in `compile::fields::FIELDS_BY_KIND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
    /// 8x8 `makeCall` bridging the caller to `destination`, then `after` (or the end of the call).
    Transfer,
    /// 8x8 `hangup`.
    Hangup,
}

/// One `[nodes.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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
    pub prompt: Option<Prompt>,
    /// Played instead of `prompt` when the caller gets another try.
    pub reprompt: Option<Prompt>,
    pub tries: Option<i64>,
    /// Keys the caller may press, each mapped to the node it leads to.
    pub branches: Option<BTreeMap<String, String>>,
    /// Where the call goes when the keys match no branch and no try is left.
    pub invalid: Option<String>,
    /// Where the call goes when nothing was pressed and no try is left (default: `invalid`).
    pub no_input: Option<String>,
    /// `false` turns the machine-wide `[keys]` off at this menu or input (a PIN input).
    pub global_keys: Option<bool>,

    // input
    /// The call variable the keys are stored in, for later templates (`{order}`, `{say:$order}`).
    pub variable: Option<String>,
    /// A regular expression the whole input must match (e.g. `[0-9]{6}`); else it is invalid.
    pub pattern: Option<String>,
    /// An input the node accepts: documents the format, and `check` plays it.
    pub example: Option<String>,

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
    /// Call variables set from the answer: name → dotted path (`{ eta = "data.eta" }`).
    pub store: Option<BTreeMap<String, String>>,
    /// Minutes identical requests are answered from the cache (1 to 999).
    pub cache_minutes: Option<i64>,
    /// Ask the caller for keys before the request (`{keypress}`).
    pub allow_keypress: Option<bool>,
    /// Seconds to wait for each key, in ms (default 4000).
    pub digit_gap_ms: Option<i64>,
    /// Times the prompt is repeated when the caller presses nothing (0 to 8).
    pub repeat: Option<i64>,

    // say / play
    pub text: Option<String>,
    pub file_url: Option<String>,
    pub next: Option<String>,

    // transfer
    /// The number the caller is bridged to.
    pub destination: Option<String>,
    /// The caller ID shown to the destination (default: the call's virtual number).
    pub source: Option<String>,
    pub call_recording: Option<bool>,
    /// Where the call continues when the bridged leg ends (default: the call ends).
    pub after: Option<String>,

    // speech and capture overrides (see `Defaults`)
    pub voice_profile: Option<String>,
    pub speed: Option<f64>,
    pub repetition: Option<i64>,
    pub min_digits: Option<i64>,
    pub max_digits: Option<i64>,
    pub digit_timeout_ms: Option<i64>,
    pub overall_timeout_ms: Option<i64>,
    pub complete_on_hash: Option<bool>,
    pub no_of_tries: Option<i64>,
    pub success_message: Option<String>,
    pub failure_message: Option<String>,
}

/// A prompt: one text, or parts said one after the other, each in its own voice.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, expecting = "a text, or a list of parts: texts or `{ text, voice_profile, speed }` tables")]
pub enum Prompt {
    Text(String),
    Parts(Vec<Part>),
}

/// One part of a prompt: a text in the node's voice, or a text with its own voice or speed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, expecting = "a text, or a `{ text, voice_profile, speed }` table")]
pub enum Part {
    Text(String),
    Voiced(VoicedPart),
}

/// A part with its own voice settings; what it leaves out it takes from the node (or `[defaults]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoicedPart {
    pub text: String,
    pub voice_profile: Option<String>,
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
