//! "This test needs X": one place that decides whether a service-dependent test runs here.
//!
//! Where X is absent the test writes ONE `skipped: <test>: needs <X> (<how to install>)` line
//! straight to the terminal (`std::io::stderr()` with `writeln!`, which passes the test harness's
//! capture of `println!`/`eprintln!`, so plain `cargo test` shows it) and returns; with
//! `PHONETREE_REQUIRE_<X>=1` (set by `.ci/run`) the absence is a failure instead.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// A service or tool some tests need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Chromium and chromedriver (the console's browser tests).
    Browser,
    /// Graphviz's `dot`.
    Graphviz,
    /// libxml2's `xmllint`.
    Xmllint,
    /// Node.js (the VoiceXML export's ECMAScript).
    Node,
    /// Node.js with `mermaid` and `jsdom` in `PHONETREE_MERMAID_DIR/node_modules`.
    Mermaid,
    /// Prometheus's `promtool`.
    Promtool,
    /// The PostgreSQL database at `PHONETREE_TEST_POSTGRES`.
    Postgres,
    /// A tmpfs mount (root).
    Tmpfs,
    /// nginx.
    Nginx,
    /// Python with `junitparser` (a real reader of JUnit reports).
    Junitparser,
}

impl Need {
    /// What the skip line names.
    pub fn what(self) -> &'static str {
        match self {
            Need::Browser => "chromium and chromedriver",
            Need::Graphviz => "graphviz dot",
            Need::Xmllint => "xmllint",
            Need::Node => "node.js",
            Need::Mermaid => "node.js with mermaid",
            Need::Promtool => "promtool",
            Need::Postgres => "postgresql",
            Need::Tmpfs => "a tmpfs mount",
            Need::Nginx => "nginx",
            Need::Junitparser => "python3 with junitparser",
        }
    }

    /// How to get it.
    pub fn install(self) -> &'static str {
        match self {
            Need::Browser => "apt-get install chromium chromium-driver",
            Need::Graphviz => "apt-get install graphviz",
            Need::Xmllint => "apt-get install libxml2-utils",
            Need::Node => "apt-get install nodejs",
            Need::Mermaid => {
                "apt-get install nodejs npm; npm install mermaid jsdom in a folder named by PHONETREE_MERMAID_DIR"
            }
            Need::Promtool => "apt-get install prometheus, or promtool from prometheus.io on the PATH",
            Need::Postgres => {
                "a database at PHONETREE_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/test"
            }
            Need::Tmpfs => "run the tests as root, or in a container allowed to mount",
            Need::Nginx => "apt-get install nginx",
            Need::Junitparser => "apt-get install python3-junitparser, or pip install junitparser",
        }
    }

    /// The variable that turns its absence into a failure.
    pub fn require_var(self) -> &'static str {
        match self {
            Need::Browser => "PHONETREE_REQUIRE_BROWSER",
            Need::Graphviz => "PHONETREE_REQUIRE_GRAPHVIZ",
            Need::Xmllint => "PHONETREE_REQUIRE_XMLLINT",
            Need::Node => "PHONETREE_REQUIRE_NODE",
            Need::Mermaid => "PHONETREE_REQUIRE_MERMAID",
            Need::Promtool => "PHONETREE_REQUIRE_PROMTOOL",
            Need::Postgres => "PHONETREE_REQUIRE_POSTGRES",
            Need::Tmpfs => "PHONETREE_REQUIRE_TMPFS",
            Need::Nginx => "PHONETREE_REQUIRE_NGINX",
            Need::Junitparser => "PHONETREE_REQUIRE_JUNITPARSER",
        }
    }
}

/// The running test's name (the harness names each test's thread after it).
fn test_name() -> String {
    let thread = std::thread::current();
    match thread.name() {
        Some(name) if name != "main" => name.to_string(),
        _ => std::env::args().next().unwrap_or_default(),
    }
}

/// `need` is absent (`why` says what was found): one `skipped:` line past the harness's capture,
/// or a failure when `PHONETREE_REQUIRE_<X>=1`.
pub fn absent(need: Need, why: &str) {
    let var = need.require_var();
    let line = format!("{}: needs {}: {why} ({})", test_name(), need.what(), need.install());
    if std::env::var(var).is_ok_and(|v| v == "1") {
        panic!("{var}=1 but {line}");
    }
    let _ = writeln!(std::io::stderr(), "skipped: {line}");
}

/// The first of `names` found as a file on the PATH.
pub fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()))
}

/// Whether `program version_flag` runs and succeeds; when it does not, [`absent`].
pub fn needs_tool(need: Need, program: &str, version_flag: &str) -> bool {
    let found = Command::new(program).arg(version_flag).output().is_ok_and(|o| o.status.success());
    if !found {
        absent(need, &format!("`{program} {version_flag}` does not run"));
    }
    found
}

/// Chromium and chromedriver, or [`absent`].
pub fn needs_browser() -> Option<(PathBuf, PathBuf)> {
    match (which(&["chromium", "chromium-browser", "google-chrome"]), which(&["chromedriver"])) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        (chromium, _) => {
            let missing = if chromium.is_none() { "chromium" } else { "chromedriver" };
            absent(Need::Browser, &format!("{missing} is not on the PATH"));
            None
        }
    }
}

/// nginx on the PATH or Debian's `/usr/sbin/nginx`, or [`absent`].
pub fn needs_nginx() -> Option<PathBuf> {
    let found = which(&["nginx"]).or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()));
    if found.is_none() {
        absent(Need::Nginx, "nginx is neither on the PATH nor /usr/sbin/nginx");
    }
    found
}

/// A Python that imports `junitparser` (the one on the PATH, else Debian's), or [`absent`].
pub fn needs_junitparser() -> Option<PathBuf> {
    let imports = |python: &PathBuf| {
        Command::new(python).args(["-c", "import junitparser"]).output().is_ok_and(|o| o.status.success())
    };
    let found =
        [which(&["python3"]), Some(PathBuf::from("/usr/bin/python3"))].into_iter().flatten().find(imports);
    if found.is_none() {
        absent(Need::Junitparser, "no python3 on the PATH or /usr/bin/python3 imports junitparser");
    }
    found
}
