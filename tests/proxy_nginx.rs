//! `--allow-from` behind a real nginx (issue 21, finding 3): Debian's nginx, started by the test on
//! loopback with its own config and prefix (not the system service), in front of real nodes with
//! `--trusted-proxy 127.0.0.1`. Clients connect from other loopback addresses (127.0.0.2 an
//! attacker, 127.0.0.3 the allowed source standing in for 8x8) and spoof both forwarding headers:
//! the node reads only the one `--forwarded-header` names, the one nginx writes, so a spoofed
//! `Forwarded: for=<allowed address>` (or `X-Forwarded-For`) does not get through. The config is
//! the README's ("Running it for real").
//!
//! Without nginx the test writes one "skipped" line to stderr; with `PHONETREE_REQUIRE_NGINX=1`
//! (set by `.ci/run`) it fails instead.

use crate::common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// The attacker's address, and the allowed source's (8x8's, in production).
const ATTACKER: &str = "127.0.0.2";
const ALLOWED: &str = "127.0.0.3";

/// An nginx in the foreground on `port`, its prefix (config, pid, logs, temp files) in `dir`.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// The README's `location` (the webhooks and health checks) proxies to `upstream` with
    /// `headers` (`proxy_set_header` lines).
    async fn start(bin: &Path, dir: &Path, port: u16, upstream: &str, headers: &str) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let d = dir.display();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location ~ ^/(webhooks/(vca|vss)|healthz|readyz)$ {{
            proxy_pass http://{upstream};
            proxy_set_header Host $host;
{headers}
        }}
    }}
}}
"#
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let n = Nginx { child, dir: dir.to_path_buf() };
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "nginx did not listen on {port}: {}",
            std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default()
        );
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs a webhook to `url` from the loopback address `from` with `headers`: the status.
async fn webhook(url: &str, from: &str, headers: &[(&str, &str)], session: &str) -> u16 {
    let client = reqwest::Client::builder().local_address(from.parse::<IpAddr>().unwrap()).build().unwrap();
    let mut r = client
        .post(url)
        .header("content-type", "application/json")
        .body(Vca::abc(session, "e1", Some("1"), None).body());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_nginx_spoofed_forwarding_headers_do_not_pass_the_allow_list() {
    let Some(bin) = common::needs::needs_nginx() else { return };
    let t = tempfile::tempdir().unwrap();
    let machines = machines_dir(t.path());
    let allow = [("PHONETREE_ALLOW_FROM", ALLOWED), ("PHONETREE_TRUSTED_PROXY", "127.0.0.1")];

    // The README's layout: nginx appends the peer to X-Forwarded-For; the node reads only that.
    let xff_node = Node::start_with(&t.path().join("xff"), &machines, &allow);
    let xff_port = common::free_port();
    let _xff = Nginx::start(
        &bin,
        &t.path().join("nginx-xff"),
        xff_port,
        &xff_node.addr,
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    )
    .await;
    let url = format!("http://127.0.0.1:{xff_port}/webhooks/vca");
    let spoof = format!("for={ALLOWED}");
    for (what, from, headers, want) in [
        ("the allowed source", ALLOWED, vec![], 200),
        ("the attacker", ATTACKER, vec![], 403),
        ("the attacker with Forwarded: for=<allowed>", ATTACKER, vec![("forwarded", spoof.as_str())], 403),
        ("the attacker with X-Forwarded-For: <allowed>", ATTACKER, vec![("x-forwarded-for", ALLOWED)], 403),
        (
            "the attacker with both",
            ATTACKER,
            vec![("forwarded", spoof.as_str()), ("x-forwarded-for", ALLOWED)],
            403,
        ),
    ] {
        let status = webhook(&url, from, &headers, &format!("s-xff-{}", what.len())).await;
        assert_eq!(status, want, "{what}\n{}", xff_node.log());
    }

    // With --forwarded-header forwarded, nginx writing Forwarded itself: a spoofed
    // X-Forwarded-For (passed on by nginx as sent) is ignored.
    let mut fwd_env = allow.to_vec();
    fwd_env.push(("PHONETREE_FORWARDED_HEADER", "forwarded"));
    let fwd_node = Node::start_with(&t.path().join("fwd"), &machines, &fwd_env);
    let fwd_port = common::free_port();
    let _fwd = Nginx::start(
        &bin,
        &t.path().join("nginx-fwd"),
        fwd_port,
        &fwd_node.addr,
        "            proxy_set_header Forwarded \"for=$remote_addr\";",
    )
    .await;
    let url = format!("http://127.0.0.1:{fwd_port}/webhooks/vca");
    for (what, from, headers, want) in [
        ("the allowed source", ALLOWED, vec![], 200),
        ("the attacker", ATTACKER, vec![], 403),
        ("the attacker with X-Forwarded-For: <allowed>", ATTACKER, vec![("x-forwarded-for", ALLOWED)], 403),
        (
            "the attacker with both",
            ATTACKER,
            vec![("forwarded", spoof.as_str()), ("x-forwarded-for", ALLOWED)],
            403,
        ),
    ] {
        let status = webhook(&url, from, &headers, &format!("s-fwd-{}", what.len())).await;
        assert_eq!(status, want, "{what}\n{}", fwd_node.log());
    }
}
