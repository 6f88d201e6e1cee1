//! What script nodes may reach (SSRF, the host rule), for real: `phonetree check` refusing URLs to
//! cloud metadata, private addresses and hosts taken from variables; `check` and a real
//! `phonetree serve` agreeing — a loopback `HOST:PORT` listed exactly is proven and served without
//! flags, what `check` refuses `serve` refuses, and `--script-allow` widens both alike; `serve`
//! refusing a listed name that resolves to loopback (and serving it once `--script-allow` vouches
//! for it), a redirect off the listed hosts, an over-size answer (announced or streamed); and the
//! per-webhook deadline cutting four chained slow scripts short. Loopback HTTP servers stand in
//! for the APIs.

use crate::common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warp::Filter;

/// The number every test machine answers.
const NUMBER: &str = "+6568880099";

/// A stand-in API: `/ok` answers, `/hop` redirects to `/ok` on `redirect_to`, `/hop-same` to its
/// own `/ok`, `/big` answers one byte over the limit, `/slow/N` does not answer for a minute.
struct Api {
    port: u16,
    /// The paths asked, in order.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Api {
    async fn start(redirect_to: Option<String>) -> Api {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let route = warp::path::full().then(move |path: warp::path::FullPath| {
            let (log, redirect_to) = (log.clone(), redirect_to.clone());
            async move {
                let path = path.as_str().to_string();
                log.lock().unwrap().push(path.clone());
                let reply = warp::http::Response::builder();
                match path.as_str() {
                    "/ok" => reply.status(200).body(r#"{"status":"ok"}"#.to_string()),
                    "/hop" => reply
                        .status(302)
                        .header("location", format!("{}/ok", redirect_to.unwrap_or_default()))
                        .body(String::new()),
                    "/hop-same" => reply.status(302).header("location", "/ok").body(String::new()),
                    "/big" => reply.status(200).body("x".repeat(64 * 1024 + 1)),
                    _ if path.starts_with("/slow/") => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        reply.status(200).body("{}".to_string())
                    }
                    _ => reply.status(404).body(String::new()),
                }
                .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Api { port, seen }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A machine whose call starts at the chain of script nodes `urls` (each failing over to the
/// next): "Served." when one answers 2xx, "Failed." when the last fails.
fn machine(name: &str, allow_hosts: &str, urls: &[String]) -> String {
    let mut text = format!(
        "name = \"{name}\"\nstart = \"s0\"\nnumbers = [\"{NUMBER}\"]\nallow_hosts = {allow_hosts}\n\n\
         [defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\n\n\
         [nodes.served]\nkind = \"say\"\ntext = \"Served.\"\nnext = \"bye\"\n\n\
         [nodes.failed]\nkind = \"say\"\ntext = \"Failed.\"\nnext = \"bye\"\n\n\
         [nodes.bye]\nkind = \"hangup\"\n"
    );
    for (i, url) in urls.iter().enumerate() {
        let failure = if i + 1 == urls.len() { "failed".to_string() } else { format!("s{}", i + 1) };
        text.push_str(&format!(
            "\n[nodes.s{i}]\nkind = \"script\"\nurl = \"{url}\"\ntimeout_ms = 5000\nfailure = \"{failure}\"\ndefault = \"served\"\n"
        ));
    }
    text
}

/// A node serving `machine_text` alone, with `env` (e.g. `PHONETREE_SCRIPT_ALLOW`).
fn node(t: &tempfile::TempDir, machine_text: &str, env: &[(&str, &str)]) -> Node {
    let dir = t.path().join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("m.toml"), machine_text).unwrap();
    Node::start_with(&t.path().join("data"), &dir, env)
}

/// What the node answers a new call with: the texts it says.
async fn call(n: &Node, session: &str) -> Vec<String> {
    let v = Vca {
        session,
        event: &format!("{session}-e1"),
        dtmf: None,
        client_action_id: None,
        status: "CALL_RECEIVED",
        direction: "INBOUND",
        source: "+6591178965",
        destination: NUMBER,
        event_data: false,
    };
    // A hang detector only: the deadline test's reply comes after about 5 s.
    let a =
        try_post(&client_within(Duration::from_secs(60)), &n.url("/webhooks/vca"), v.body()).await.unwrap();
    a.json()["callflow"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["params"]["text"].as_str().map(String::from))
        .collect()
}

/// The node's `/readyz`, with its script counters.
async fn ready(n: &Node) -> serde_json::Value {
    client_within(Duration::from_secs(30)).get(n.url("/readyz")).send().await.unwrap().json().await.unwrap()
}

fn check(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_phonetree")).arg("check").arg(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn check_refuses_metadata_private_and_variable_hosts() {
    let cases = [
        ("metadata", "[]", "http://169.254.169.254/latest/meta-data/", "is a cloud metadata address"),
        ("metadata6", "[]", "http://[fd00:ec2::254]/latest", "is a cloud metadata address"),
        ("private", "[]", "http://10.0.0.5/orders", "is a private address"),
        ("loopback", "[]", "http://127.0.0.1:8090/orders", "is a loopback address"),
        ("named_loopback", "[]", "http://localhost:8090/orders", "is a loopback address"),
        ("variable", "[]", "http://{keypress}.example.com/x", "must be written in the machine"),
        ("variable_port", "[]", "http://api.example.com:{keypress}/x", "must be written in the machine"),
        ("unlisted", "[\"api.example.com\"]", "https://other.example.com/x", "is not in the machine's"),
        // Listing does not open the metadata service.
        ("listed_metadata", "[\"169.254.169.254\"]", "http://169.254.169.254/x", "scripts never call it"),
        // Azure's WireServer, and the IPv6 forms that reach it or the metadata service through a
        // translator or tunnel: SIIT, IPv4-compatible, RFC 8215 (/96 and /48), 6to4, Teredo.
        ("wireserver", "[]", "http://168.63.129.16/machine", "is a cloud metadata address"),
        ("siit", "[]", "http://[::ffff:0:a9fe:a9fe]/latest", "is a cloud metadata address"),
        ("compatible", "[]", "http://[::a83f:8110]/machine", "is a cloud metadata address"),
        ("rfc8215", "[]", "http://[64:ff9b:1::a9fe:a9fe]/latest", "is a cloud metadata address"),
        ("rfc8215_48", "[]", "http://[64:ff9b:1:a83f:81:1000::]/machine", "is a cloud metadata address"),
        ("nat64", "[]", "http://[64:ff9b::a83f:8110]/machine", "is a cloud metadata address"),
        ("sixtofour", "[]", "http://[2002:a9fe:a9fe::1]/latest", "is a cloud metadata address"),
        (
            "teredo",
            "[]",
            "http://[2001:0:4136:e378:8000:63bf:5601:5601]/latest",
            "is a cloud metadata address",
        ),
    ];
    for (name, allow, url, message) in cases {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("m.toml"), machine(name, allow, &[url.to_string()])).unwrap();
        let (ok, out) = check(t.path());
        assert!(!ok, "{name}: {out}");
        assert!(out.contains(message) && out.contains("field `url`"), "{name}: {out}");
    }
    // Listed, a loopback address is allowed; a variable may fill the path and query.
    for (allow, url) in [
        ("[\"127.0.0.1:8090\"]", "http://127.0.0.1:8090/orders/{keypress}?caller={caller}"),
        ("[]", "https://api.example.com/orders/{keypress}"),
        ("[\"api.example.com\"]", "https://api.example.com?caller={caller}"),
    ] {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("m.toml"), machine("fine", allow, &[url.to_string()])).unwrap();
        let (ok, out) = check(t.path());
        assert!(ok, "{url}: {out}");
    }
}

/// `phonetree check` on the folder holding `text`, with `env` (e.g. `PHONETREE_SCRIPT_ALLOW`).
fn check_with(text: &str, env: &[(&str, &str)]) -> (bool, String) {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("m.toml"), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .arg("check")
        .arg(t.path())
        .env_remove("PHONETREE_SCRIPT_ALLOW")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `phonetree serve` of `text` alone, expected to refuse to start: its exit status and stderr
/// (killed, and a failure, if it is still running after 60 s).
fn serve_refuses(text: &str, env: &[(&str, &str)]) -> String {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("m.toml"), text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data"])
        .arg(t.path().join("data"))
        .arg("--machines")
        .arg(&dir)
        .env_remove("PHONETREE_SCRIPT_ALLOW")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve started a machine check refuses");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listed_loopback_host_port_is_proven_and_served_without_flags() {
    let api = Api::start(None).await;
    for (i, entry) in
        [format!("127.0.0.1:{}", api.port), format!("localhost:{}", api.port)].iter().enumerate()
    {
        let text = machine("listed", &format!("[\"{entry}\"]"), &[format!("http://{entry}/ok")]);
        let (ok, out) = check_with(&text, &[]);
        assert!(ok, "{entry}: {out}");
        let t = tempfile::tempdir().unwrap();
        let n = node(&t, &text, &[]);
        assert_eq!(call(&n, &format!("s-listed-{i}")).await, ["Served."], "{entry}: {}", n.log());
        assert_eq!(api.seen().len(), i + 1, "{entry}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_check_refuses_serve_refuses_and_the_same_flag_widens_both() {
    let api = Api::start(None).await;
    let entry = format!("127.0.0.1:{}", api.port);
    for (allow, message) in [
        // Not listed: a loopback address is called only at a host:port listed exactly.
        ("[]".to_string(), "is a loopback address"),
        // Listed without its port: a redirect could reach any port of it.
        ("[\"127.0.0.1\"]".to_string(), "is called only at a port listed with it"),
    ] {
        let text = machine("unlisted", &allow, &[format!("http://{entry}/ok")]);
        let (ok, out) = check_with(&text, &[]);
        assert!(!ok && out.contains(message), "{allow}: {out}");
        let err = serve_refuses(&text, &[]);
        assert!(err.contains(message), "{allow}: {err}");
    }
    // The node's --script-allow widens the rule for `check` and `serve` alike.
    let text = machine("flagged", "[]", &[format!("http://{entry}/ok")]);
    let (ok, out) = check_with(&text, &[("PHONETREE_SCRIPT_ALLOW", &entry)]);
    assert!(ok, "{out}");
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &text, &[("PHONETREE_SCRIPT_ALLOW", &entry)]);
    assert_eq!(call(&n, "s-flagged").await, ["Served."], "{}", n.log());
    assert_eq!(api.seen(), ["/ok"]);
}

/// `phonetree simulate --live` of `text` with `args` (`--script-allow ...`): its transcript, or why
/// it failed.
fn simulate_live(text: &str, args: &[&str]) -> (bool, String) {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("m.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(["simulate", "--live"])
        .args(args)
        .arg(&file)
        .arg("-")
        .env_remove("PHONETREE_SCRIPT_ALLOW")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_live_applies_the_same_rule_and_takes_the_same_flag() {
    let api = Api::start(None).await;
    let entry = format!("localhost:{}", api.port);
    // Listed exactly, `localhost` is called as `check` and `serve` call it.
    let listed = machine("listed", &format!("[\"{entry}\"]"), &[format!("http://{entry}/ok")]);
    let (ok, out) = simulate_live(&listed, &[]);
    assert!(ok && out.contains("Served."), "{out}");
    // Not listed: refused as `check` refuses it, and the hint's flag is one `simulate` has.
    let unlisted = machine("unlisted", "[]", &[format!("http://{entry}/ok")]);
    let (ok, out) = simulate_live(&unlisted, &[]);
    assert!(!ok && out.contains("is a loopback address") && out.contains("--script-allow"), "{out}");
    let (ok, out) = simulate_live(&unlisted, &["--script-allow", &entry]);
    assert!(ok && out.contains("Served."), "{out}");
    assert_eq!(api.seen(), ["/ok", "/ok"]);
}

/// This machine's name, when DNS (here `/etc/hosts`) resolves it to 127.0.0.1: a name, not an
/// address, that leads to loopback.
async fn a_name_for_loopback() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?.trim().to_ascii_lowercase();
    let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await.ok()?.collect();
    let loopback = !found.is_empty() && found.iter().all(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST);
    (loopback && !name.is_empty() && name != "localhost").then_some(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listed_name_resolving_to_loopback_is_refused_unless_the_node_vouches_for_it() {
    let Some(name) = a_name_for_loopback().await else {
        use std::io::Write;
        let _ =
            writeln!(std::io::stderr(), "skipped: this machine's name does not resolve to 127.0.0.1 only");
        return;
    };
    let api = Api::start(None).await;
    let entry = format!("{name}:{}", api.port);
    let text = machine("named", &format!("[\"{entry}\"]"), &[format!("http://{entry}/ok")]);
    // `check` cannot see DNS: the machine is valid, and the node checks every address it resolves.
    let (ok, out) = check_with(&text, &[]);
    assert!(ok, "{out}");

    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &text, &[]);
    assert_eq!(call(&n, "s-refused").await, ["Failed."]);
    assert!(api.seen().is_empty(), "no request reached the API: {:?}", api.seen());
    let log = n.log();
    assert!(log.contains("script request refused") && log.contains("a loopback address"), "{log}");
    assert_eq!(ready(&n).await["scripts_refused"], 1);
    drop(n);

    // The operator vouches for the name at that port: its loopback address is called.
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &text, &[("PHONETREE_SCRIPT_ALLOW", &entry)]);
    assert_eq!(call(&n, "s-allowed").await, ["Served."]);
    assert_eq!(api.seen(), ["/ok"]);

    // Vouched for on another port only: `check` and `serve` with that flag refuse it alike.
    let other = format!("{name}:{}", api.port.wrapping_add(1).max(1));
    let text = machine("port", &format!("[\"{name}\"]"), &[format!("http://{other}/ok")]);
    let flag = [("PHONETREE_SCRIPT_ALLOW", entry.as_str())];
    let (ok, out) = check_with(&text, &flag);
    assert!(!ok && out.contains("on other ports only"), "{out}");
    let err = serve_refuses(&text, &flag);
    assert!(err.contains("on other ports only"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_off_the_listed_hosts_is_refused() {
    let target = Api::start(None).await;
    let api = Api::start(Some(target.base())).await;
    let allow = format!("[\"127.0.0.1:{}\"]", api.port);
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &machine("hops", &allow, &[format!("{}/hop", api.base())]), &[]);
    assert_eq!(call(&n, "s-hop").await, ["Failed."]);
    assert_eq!(api.seen(), ["/hop"]);
    assert!(target.seen().is_empty(), "the redirect was not followed: {:?}", target.seen());
    assert!(n.log().contains("redirect to"), "{}", n.log());
    drop(n);

    // A redirect within the listed host is followed.
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &machine("hops", &allow, &[format!("{}/hop-same", api.base())]), &[]);
    assert_eq!(call(&n, "s-same").await, ["Served."]);
    assert_eq!(api.seen(), ["/hop", "/hop-same", "/ok"]);
}

/// A server answering every request with an endless chunked body (bounded: it stops after 64 MiB
/// or when the reader goes away).
async fn streamer() -> (u16, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            *count.lock().unwrap() += 1;
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
                for _ in 0..4096 {
                    if sock.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, requests)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_over_size_answer_is_refused() {
    let api = Api::start(None).await;
    let (stream_port, streamed) = streamer().await;
    let allow = format!("[\"127.0.0.1:{}\", \"127.0.0.1:{stream_port}\"]", api.port);
    let urls = [format!("{}/big", api.base()), format!("http://127.0.0.1:{stream_port}/stream")];
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &machine("big", &allow, &urls), &[]);
    assert_eq!(call(&n, "s-big").await, ["Failed."]);
    assert_eq!(api.seen(), ["/big"]);
    assert_eq!(*streamed.lock().unwrap(), 1);
    let log = n.log();
    // Both failed on their size, not on a timeout.
    assert_eq!(log.matches("reason=answer over 65536 bytes").count(), 2, "{log}");
    assert!(!log.contains("no answer within"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chained_slow_scripts_are_cut_short_by_the_webhook_deadline() {
    let api = Api::start(None).await;
    let urls: Vec<String> = (1..=4).map(|i| format!("{}/slow/{i}", api.base())).collect();
    let t = tempfile::tempdir().unwrap();
    let n = node(&t, &machine("slow", &format!("[\"127.0.0.1:{}\"]", api.port), &urls), &[]);
    // Each script may wait 5 s, four of them 20 s: the webhook's deadline answers first, with
    // every failure branch taken and only the first script's request sent.
    assert_eq!(call(&n, "s-slow").await, ["Failed."]);
    assert_eq!(api.seen(), ["/slow/1"]);
    let log = n.log();
    assert_eq!(log.matches("the webhook's script deadline is spent").count(), 3, "{log}");
    let ready = ready(&n).await;
    assert_eq!(
        (ready["scripts_out_of_time"].as_u64(), ready["scripts_refused"].as_u64()),
        (Some(3), Some(0))
    );
}

#[test]
fn the_node_refuses_to_allow_the_metadata_service_a_url_or_a_loopback_address_without_port() {
    for entry in
        ["169.254.169.254", "[fd00:ec2::254]:80", "http://api.example.com", "127.0.0.1", "169.254.1.1:80"]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["serve", "--listen", "127.0.0.1:0", "--script-allow", entry])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("--script-allow"), "{entry}: {err}");
    }
}

/// A 307 from a listed API to the node's own admin listener is never followed, even when the
/// machine lists that exact `HOST:PORT`: the script takes its failure branch and the admin route
/// (`POST /admin/reload`) never runs. A request straight to the listener is refused alike.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_the_nodes_own_listener_is_refused_even_when_listed() {
    let t = tempfile::tempdir().unwrap();
    // Started on a plain machine first, to learn the admin port the machine then lists.
    let mut n = node(&t, &machine("own", "[]", &["https://api.example.com/x".to_string()]), &[]);
    let admin = n.admin.clone();
    let to = Arc::new(Mutex::new(String::new()));
    let (target, hits) = (to.clone(), Arc::new(Mutex::new(0usize)));
    let seen = hits.clone();
    let route = warp::any().map(move || {
        *seen.lock().unwrap() += 1;
        warp::http::Response::builder()
            .status(307)
            .header("location", target.lock().unwrap().clone())
            .body(String::new())
            .unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    *to.lock().unwrap() = format!("http://{admin}/admin/reload");
    let post_script = |url: &str| {
        format!(
            "name = \"own\"\nstart = \"s0\"\nnumbers = [\"{NUMBER}\"]\nallow_hosts = [\"{api}\", \"{admin}\"]\n\n\
             [defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\n\n\
             [nodes.s0]\nkind = \"script\"\nurl = \"{url}\"\nbody = \"a=1\"\ntimeout_ms = 5000\n\
             failure = \"failed\"\ndefault = \"served\"\n\n\
             [nodes.served]\nkind = \"say\"\ntext = \"Served.\"\nnext = \"bye\"\n\n\
             [nodes.failed]\nkind = \"say\"\ntext = \"Failed.\"\nnext = \"bye\"\n\n\
             [nodes.bye]\nkind = \"hangup\"\n"
        )
    };
    let reloads = |v: &serde_json::Value| v["reloads"].clone();
    for (i, url) in [format!("http://{api}/hop"), format!("http://{admin}/admin/reload")].iter().enumerate() {
        std::fs::write(n.machines.join("m.toml"), post_script(url)).unwrap();
        let reloaded = client_within(Duration::from_secs(30))
            .post(n.admin_url("/admin/reload"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(reloaded.status().is_success(), "{:?}", reloaded.text().await);
        let get_machines = || async {
            client_within(Duration::from_secs(30))
                .get(n.admin_url("/admin/machines"))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        };
        let before = reloads(&get_machines().await);
        assert_eq!(call(&n, &format!("s-own-{i}")).await, ["Failed."], "{url}");
        assert_eq!(reloads(&get_machines().await), before, "{url}: the admin listener ran a reload");
    }
    assert_eq!(*hits.lock().unwrap(), 1, "the API was asked once, by the first call");
    assert!(n.log().contains("own listener"), "{}", n.log());
    n.kill();
}
