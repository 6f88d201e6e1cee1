//! Helpers shared by the integration tests: loading the bundled machines, playing calls, comparing JSON.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod backends;
pub mod browser;
pub mod callflows;
pub mod held;
pub mod metrics;
pub mod needs;
pub mod proxy;
pub mod vxml;

use phonetree::callflow::Callflow;
use phonetree::engine::{self, CallInfo, CallState, Direction, Event};
use phonetree::machine::{self, Machine, Source};
use phonetree::webhook::wire;
use serde_json::Value;

/// The `--action-key` of test nodes that are given one (`PHONETREE_ACTION_KEY`).
pub const ACTION_KEY: &str = "test-action-key-0123456789abcdef";

/// The key a node with `--action-key ACTION_KEY` signs with.
pub fn action_key() -> phonetree::callflow::ActionKey {
    phonetree::callflow::ActionKey::from_secret(&phonetree::secret::Secret::new(ACTION_KEY)).unwrap()
}

/// Makes the action key of the sled store at `data` (as the first node on it would) and returns
/// it: the key every node on that store signs with.
pub async fn store_action_key(data: &std::path::Path) -> phonetree::callflow::ActionKey {
    let store = phonetree::store::SledStore::open(data).unwrap();
    let key = phonetree::store::Store::action_key(&store, Some([0x5a; 32])).await.unwrap().unwrap();
    phonetree::callflow::ActionKey::new(key)
}

/// When the ids the tests sign expire: an hour from now, as a node with the default TTL would
/// sign them (within its six hours).
pub fn id_expiry() -> u64 {
    phonetree::node::now_ms() / 1000 + 3600
}

/// A reply of the engine as a node signing with `key` sends it on `session` (an inbound call),
/// its id's expiry and MAC as `unexpired` writes them: compare it with `unexpired` replies.
pub fn signed(key: &phonetree::callflow::ActionKey, session: &str, mut flow: Callflow) -> Callflow {
    phonetree::callflow::sign(&mut flow, key, session, phonetree::callflow::Issued::Answered, id_expiry());
    flow.client_action_id = flow.client_action_id.map(|id| unexpired_id(&id));
    flow
}

/// The id a node signing with `key` puts on the reply `state` waits on (an inbound call), valid
/// for an hour.
pub fn signed_id(key: &phonetree::callflow::ActionKey, m: &Machine, state: &CallState) -> String {
    let session = &state.call.session_id;
    engine::client_action_id(m, state).signed(
        key,
        session,
        phonetree::callflow::Issued::Answered,
        id_expiry(),
    )
}

/// A signed id with its expiry and MAC (which depend on when it was signed) replaced by fixed
/// text; any other text as it is.
pub fn unexpired_id(id: &str) -> String {
    let parts: Vec<&str> = id.split('.').collect();
    match parts.len() {
        7 => format!("{}.EXPIRES.MAC", parts[..5].join(".")),
        _ => id.to_string(),
    }
}

/// A reply's bytes with its `clientActionId` as `unexpired_id` writes it: what two answers of the
/// same prompt signed at different times have in common (the bytes otherwise as they are).
pub fn unexpired(body: &[u8]) -> Vec<u8> {
    const KEY: &str = "\"clientActionId\":\"";
    let text = String::from_utf8_lossy(body);
    let Some(start) = text.find(KEY).map(|i| i + KEY.len()) else { return body.to_vec() };
    let Some(len) = text[start..].find('"') else { return body.to_vec() };
    let id = unexpired_id(&text[start..start + len]);
    format!("{}{id}{}", &text[..start], &text[start + len..]).into_bytes()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies the bundled modules (`machines/modules/`) into `machines/modules/`, for the bundled
/// machines copied into `machines` that use them.
pub fn copy_bundled_modules(machines: &std::path::Path) {
    std::fs::create_dir_all(machines.join("modules")).unwrap();
    for f in machine_files("machines/modules") {
        std::fs::copy(&f, machines.join("modules").join(f.file_name().unwrap())).unwrap();
    }
}

/// `phonetree serve` on `machines` with its store in `data`, which must refuse to start: its
/// stderr, once its exit status (1) and the refusal line are checked.
pub fn serve_refused(machines: &std::path::Path, data: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["serve", "--listen", "127.0.0.1:0", "--machines"])
        .arg(machines)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("the server does not start with an invalid machine"), "{err}");
    err
}

/// The machine files (`.toml`, `.json`) in `dir` under the repository, sorted.
pub fn machine_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("toml" | "json")))
        .collect();
    files.sort();
    files
}

/// Every machine in `machines/`, compiled: adding a machine adds it to the tests that use this.
pub fn bundled_machines() -> Vec<Machine> {
    machine_files("machines")
        .iter()
        .map(|f| compile_text(&f.display().to_string(), &std::fs::read_to_string(f).unwrap()))
        .collect()
}

/// A bundled machine, compiled (panics with the diagnostics if it does not compile).
pub fn bundled(name: &str) -> Machine {
    let path = repo().join("machines").join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    compile_text(&path.display().to_string(), &text)
}

/// The bundled modules (`machines/modules/`), which every machine compiled here may use.
pub fn bundled_modules() -> &'static machine::Modules {
    static MODULES: std::sync::OnceLock<machine::Modules> = std::sync::OnceLock::new();
    MODULES.get_or_init(|| {
        let (modules, problems) = phonetree::node::catalog::read_modules(&[repo().join("machines/modules")]);
        assert!(problems.is_empty(), "{problems:?}");
        modules
    })
}

pub fn compile_text(file: &str, text: &str) -> Machine {
    let options = machine::Options { modules: bundled_modules(), ..Default::default() };
    let compiled = machine::compile_with(&Source::new(file, text), options);
    let errors: Vec<String> = compiled.errors().map(|d| d.to_string()).collect();
    compiled.machine.unwrap_or_else(|| panic!("{file} does not compile:\n{}", errors.join("\n")))
}

pub fn inbound(source: &str, destination: &str) -> CallInfo {
    CallInfo { direction: Direction::Inbound, ..outbound(source, destination) }
}

pub fn outbound(source: &str, destination: &str) -> CallInfo {
    CallInfo {
        session_id: "s-1".into(),
        direction: Direction::Outbound,
        source: source.into(),
        destination: destination.into(),
        call_id: None,
    }
}

/// `1`, `12#` → digits; `-` → no input.
pub fn event(input: &str) -> Event {
    if input == "-" { Event::NoInput } else { Event::Digits(input.into()) }
}

/// Plays an outbound call: the opening callflow, then one reply per input. Returns every callflow
/// and the final state.
pub fn play_outbound(m: &Machine, call: CallInfo, inputs: &[&str]) -> (Vec<Callflow>, CallState) {
    let first = engine::start_outbound(m, call, &Default::default(), 0, &[]).unwrap().done().unwrap();
    let mut flows = vec![first.reply.unwrap()];
    let mut state = first.state;
    for (i, input) in inputs.iter().enumerate() {
        let step = engine::step(m, &state, &event(input), (i as u64 + 1) * 1000).unwrap();
        flows.push(step.reply.expect("a webhook is always answered"));
        state = step.state;
    }
    (flows, state)
}

/// A callflow's JSON with what the seeds compare left out: `clientActionId`, and null fields.
pub fn comparable(mut v: Value) -> Value {
    fn drop_nulls(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|_, x| !x.is_null());
                map.values_mut().for_each(drop_nulls);
            }
            Value::Array(items) => items.iter_mut().for_each(drop_nulls),
            _ => {}
        }
    }
    if let Value::Object(map) = &mut v {
        map.remove("clientActionId");
    }
    drop_nulls(&mut v);
    v
}

pub fn golden(path: &str) -> Value {
    let file = repo().join("tests/data").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

pub fn json(flow: &Callflow) -> Value {
    wire::to_value(flow).unwrap()
}

/// A real `phonetree serve` child process on a loopback port, with its own data dir.
pub struct Node {
    pub child: std::process::Child,
    pub addr: String,
    /// The admin listener (`POST /calls`, operator routes).
    pub admin: String,
    pub data: PathBuf,
    pub machines: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl Node {
    /// Starts a node on `machines` (a folder) with its store in `data`.
    pub fn start(data: &std::path::Path, machines: &std::path::Path) -> Node {
        Node::start_with(data, machines, &[])
    }

    pub fn start_with(data: &std::path::Path, machines: &std::path::Path, env: &[(&str, &str)]) -> Node {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let log = data.with_extension("log");
        Node::spawn(data.to_path_buf(), machines.to_path_buf(), log, env)
    }

    /// Starts a node whose calls are kept at the store URL `store` (`--store`, e.g. a postgres
    /// database several nodes share); `dir` names its log (`dir.log`) and holds nothing else.
    pub fn start_on(dir: &std::path::Path, machines: &std::path::Path, store: &str) -> Node {
        Node::start_with(dir, machines, &[("PHONETREE_STORE", store)])
    }

    fn spawn(data: PathBuf, machines: PathBuf, log: PathBuf, env: Vec<(String, String)>) -> Node {
        use std::io::BufRead;
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(&data)
            .arg("--machines")
            .arg(&machines)
            // Debug unless a test asks for another level.
            .env("PHONETREE_LOG", "debug")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // No admin token unless the test gives one or says otherwise (PHONETREE_ADMIN_NO_TOKEN=0
            // for the one made and kept in the data dir, see `admin_token_file`).
            .envs(
                ["PHONETREE_ADMIN_TOKEN", "PHONETREE_ADMIN_TOKEN_FILE", "PHONETREE_ADMIN_NO_TOKEN"]
                    .iter()
                    .all(|k| env.iter().all(|(e, _)| e != k))
                    .then_some(("PHONETREE_ADMIN_NO_TOKEN", "1")),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| {
            panic!("server did not start: {line:?}\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        let mut admin = String::new();
        stdout.read_line(&mut admin).unwrap();
        let admin = admin.trim().strip_prefix("admin listening on ").unwrap_or_else(|| panic!("{admin:?}"));
        Node { addr: addr.to_string(), admin: admin.to_string(), child, data, machines, log, env }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Where a node on a sled store keeps the admin token it made (started with
    /// `PHONETREE_ADMIN_NO_TOKEN=0` and no token of the test's).
    pub fn admin_token_file(&self) -> PathBuf {
        self.data.join("phonetree-admin-token")
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// `/readyz` as of a store probe that ran after this call: its cached `sessions` (and the rest)
    /// count everything stored before. Waits at most a few probe intervals.
    pub async fn ready_now(&self) -> Value {
        let asked = phonetree::node::now_ms();
        for _ in 0..200 {
            let r: Value = reqwest::get(self.url("/readyz")).await.unwrap().json().await.unwrap();
            if r["checkedAt"].as_u64().is_some_and(|at| at > asked) {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("/readyz was not refreshed within 10 s")
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// The same node again (same data dir, machines and settings) after it stopped.
    pub fn restart(&mut self) {
        // The old child has exited and was waited for: dropping it signals nothing.
        *self = Node::spawn(self.data.clone(), self.machines.clone(), self.log.clone(), self.env.clone());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer: status, the `x-phonetree-answer` header, body.
pub struct Answer {
    pub status: u16,
    pub how: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The reply as a callflow, checked against every 8x8 rule.
    pub fn callflow(&self) -> Callflow {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        let flow = wire::decode(&self.body).unwrap();
        let violations = phonetree::callflow::validate(&flow, phonetree::callflow::Use::WebhookReply);
        assert!(
            violations.is_empty(),
            "8x8 would reject {}: {violations:?}",
            String::from_utf8_lossy(&self.body)
        );
        flow
    }

    pub fn client_action_id(&self) -> Option<String> {
        self.callflow().client_action_id
    }

    /// The reply as JSON with its `clientActionId` cut to what it names (`pt.MACHINE.NODE.SEQ.
    /// VERSION`): the expiry and MAC after it change with the second the reply is signed in, so
    /// a prompt given again (stale, lost race) is compared with this, a duplicate by its bytes.
    pub fn unsigned(&self) -> Value {
        let mut v = self.json();
        if let Some(id) = v.get_mut("clientActionId")
            && let Some(s) = id.as_str()
        {
            *id = Value::String(unsigned_id(s));
        }
        v
    }
}

/// A signed `clientActionId` cut to what it names (`pt.MACHINE.NODE.SEQ.VERSION`), without the
/// expiry and MAC that change with the second it is signed in.
pub fn unsigned_id(id: &str) -> String {
    let parts: Vec<&str> = id.split('.').collect();
    assert_eq!(parts.len(), 7, "a signed clientActionId has 7 parts: {id}");
    parts[..5].join(".")
}

/// Ports `free_port` picks from: below Linux's ephemeral range (32768-60999), so that no client
/// connection of a concurrent test is given the port between the pick and the child's listen.
const FREE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port free now, for a child process to listen on later (a fixed `--listen`, a
/// script host written into a machine). Picked at random outside the ephemeral range: a port the
/// kernel hands out for `:0` may be given to another test's outgoing connection before the child
/// binds it.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let span = u64::from(FREE_PORTS.end - FREE_PORTS.start);
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = FREE_PORTS.start + u16::try_from(h.finish() % span).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `GET url` as JSON, with the admin `token` as a Bearer when there is one (a 200 is required).
pub async fn get_json(url: &str, token: Option<&str>) -> Value {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// POSTs `body` as JSON (what 8x8 sends, and what the admin listener requires).
pub async fn post(url: &str, body: impl Into<Vec<u8>>) -> Answer {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.into())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let how =
        r.headers().get("x-phonetree-answer").map(|h| h.to_str().unwrap().to_string()).unwrap_or_default();
    Answer { status, how, body: r.bytes().await.unwrap().to_vec() }
}

/// An HTTP client whose every request gives up after `timeout`: a node that hangs fails the test
/// instead of stalling it.
pub fn client_within(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// `post` on a shared client, returning the transport's error (refused, reset, timed out) instead
/// of panicking on it.
pub async fn try_post(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<Vec<u8>>,
) -> Result<Answer, String> {
    let r = client.post(url).body(body.into()).send().await.map_err(|e| format!("POST {url}: {e:?}"))?;
    let status = r.status().as_u16();
    let how =
        r.headers().get("x-phonetree-answer").map(|h| h.to_str().unwrap().to_string()).unwrap_or_default();
    let body = r.bytes().await.map_err(|e| format!("POST {url}: reading the body: {e:?}"))?;
    Ok(Answer { status, how, body: body.to_vec() })
}

/// A CALL_ACTION webhook as 8x8 documents it.
pub struct Vca<'a> {
    pub session: &'a str,
    pub event: &'a str,
    pub dtmf: Option<&'a str>,
    pub client_action_id: Option<&'a str>,
    pub status: &'a str,
    pub direction: &'a str,
    pub source: &'a str,
    pub destination: &'a str,
    /// `payload.eventData.dtmf` (the VCA guide) instead of `payload.dtmf` (the IVR guides).
    pub event_data: bool,
}

impl<'a> Vca<'a> {
    /// The answer of an outbound abc_restaurant call to its current prompt.
    pub fn abc(
        session: &'a str,
        event: &'a str,
        dtmf: Option<&'a str>,
        client_action_id: Option<&'a str>,
    ) -> Vca<'a> {
        Vca {
            session,
            event,
            dtmf,
            client_action_id,
            status: "DTMF_RECEIVED",
            direction: "OUTBOUND",
            source: "+6568888888",
            destination: "+6598888888",
            event_data: false,
        }
    }

    pub fn body(&self) -> String {
        let mut payload = serde_json::json!({
            "eventId": self.event, "callId": "627e25f1-133a-11ef-b08c-e33c09483244", "sessionId": self.session,
            "subAccountId": "account_x", "callStatus": self.status, "callDirection": self.direction,
            "callType": "PSTN", "source": self.source, "destination": self.destination,
            "sourceFormat": "MSISDN", "destinationFormat": "MSISDN", "sourceCountryCode": "SG",
            "destinationCountryCode": "SG", "callDuration": 0, "sipCode": 200,
            "timestamp": "2024-05-16T04:12:11.217Z"
        });
        if self.event_data {
            payload["eventData"] = serde_json::json!({"dtmf": self.dtmf});
        } else {
            payload["dtmf"] = serde_json::json!(self.dtmf);
        }
        if let Some(id) = self.client_action_id {
            payload["clientActionId"] = serde_json::json!(id);
        }
        serde_json::json!({"namespace": "VOICE", "eventType": "CALL_ACTION", "description": "Action request of a call", "payload": payload}).to_string()
    }
}

/// A SESSION_SUMMARY webhook.
pub fn vss(session: &str, status: &str) -> String {
    serde_json::json!({
        "namespace": "VOICE", "eventType": "SESSION_SUMMARY", "description": "Summary of a completed call session", "version": 5,
        "payload": {
            "sessionId": session, "subAccountId": "8x8_test", "sessionStatus": status,
            "startTime": "2026-01-13T08:31:51Z", "endTime": "2026-01-13T08:32:08Z", "lastAction": "HANGUP", "callCount": 1,
            "details": {"callA": {"callId": "4eec57d4", "callDirection": "INBOUND", "callType": "PSTN",
                "source": "+6591178965", "destination": "+6568332048", "callStatus": "COMPLETED", "callDuration": 16}}
        }
    })
    .to_string()
}

/// A temporary folder holding copies of the bundled machines.
pub fn machines_dir(tmp: &std::path::Path) -> PathBuf {
    let dir = tmp.join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["abc_restaurant.toml", "tech_support.toml", "callback_request.toml", "order_status.toml"] {
        std::fs::copy(repo().join("machines").join(name), dir.join(name)).unwrap();
    }
    dir
}
