//! The one integration-test binary: every file of `tests/` is a module of it, so the library and
//! its dependencies are linked into one test executable instead of one per file. A new test file
//! joins with one `mod` line below (and `use crate::common;` in place of `mod common;`);
//! `every_test_file_is_a_module` fails while one is missing. `cargo test --test tests flood::`
//! runs one file's tests (see `tests/README.md`).

mod common;

mod admin_browser;
mod barred;
mod callbacks;
mod cli;
mod console;
mod counters;
mod crash_loop;
mod diagnostics;
mod diff;
mod doctor;
mod engine;
mod explore;
mod export;
mod flood;
mod full_disk;
mod fuzz_corpus;
mod generated;
mod history;
mod keys;
mod languages;
mod layers;
mod limits;
mod loadtest;
mod metrics;
mod modules;
mod multinode;
mod openapi;
mod outbound;
mod policies;
mod postgres;
mod prompts;
mod properties;
mod proxy_nginx;
mod reload;
mod resume;
mod routes;
mod scenarios;
mod schema;
mod scripts;
mod security;
mod seeds;
mod sensitive;
mod server;
mod splits;
mod ssrf;
mod store;
mod transfers;
mod voices;
mod webhooks;

/// rustls's crypto provider (ring), installed before any test runs: reqwest is built without a
/// provider of its own and panics building a client before one is installed, and the tests build
/// their own clients (`reqwest::Client::new()`) besides the library's. An `.init_array` entry runs
/// when the binary loads, before the test harness starts its threads; the library installs the
/// same provider before each client it builds (`phonetree::node::install_tls_provider`).
#[used]
#[unsafe(link_section = ".init_array")]
static INSTALL_TLS_PROVIDER: extern "C" fn() = {
    extern "C" fn install() {
        phonetree::node::install_tls_provider();
    }
    install
};

/// With `autotests = false` (Cargo.toml) a file of `tests/` that no `mod` line above names is
/// never compiled, let alone run: every one must be named.
#[test]
fn every_test_file_is_a_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let all = std::fs::read_to_string(dir.join("all.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".rs")) else {
            continue;
        };
        if name != "all" && !all.lines().any(|l| l == format!("mod {name};")) {
            missing.push(name.to_string());
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "tests/{{{}}}.rs: add `mod NAME;` to tests/all.rs", missing.join(","));
}
