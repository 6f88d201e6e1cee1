//! criterion benches of the pure core and the store's encoding: compile (a bundled machine and
//! generated 1,000- and 10,000-node machines), one `step`, a whole seed call, state encode/decode
//! (rmp-serde, as stored) and reply serialisation (8x8 JSON); and for `bank_balance` (routes on the
//! clock in a time zone, counters, machine keys): its compile, its first step (a route on the clock)
//! and its whole proof.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use phonetree::engine::{self, CallInfo, CallState, Direction, Event};
use phonetree::machine::{self, Machine, Source};
use phonetree::webhook::wire;

fn bundled_source() -> Source {
    bundled("abc_restaurant")
}

fn bundled(name: &str) -> Source {
    let path = format!("{}/machines/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    Source::new(path, text)
}

/// A menu tree of `n` nodes: menus of three branches, leaves that hang up.
fn generated(n: usize) -> Source {
    let mut text = String::from(
        "name = \"big\"\nstart = \"n0\"\n[defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\nmin_digits = 1\nmax_digits = 1\ndigit_timeout_ms = 5000\noverall_timeout_ms = 10000\n[nodes.bye]\nkind = \"hangup\"\n",
    );
    for i in 0..n - 1 {
        let kids: Vec<usize> = (1..=3).map(|k| 3 * i + k).filter(|&c| c < n - 1).collect();
        if kids.is_empty() {
            text.push_str(&format!("[nodes.n{i}]\nkind = \"say\"\ntext = \"Leaf {i}.\"\nnext = \"bye\"\n"));
        } else {
            let branches: Vec<String> =
                kids.iter().enumerate().map(|(k, c)| format!("{} = \"n{c}\"", k + 1)).collect();
            text.push_str(&format!(
                "[nodes.n{i}]\nkind = \"menu\"\nprompt = \"Menu {i}.\"\nbranches = {{ {} }}\ninvalid = \"bye\"\n",
                branches.join(", ")
            ));
        }
    }
    Source::new("big.toml", text)
}

/// With the bundled modules (`machines/modules/`, read once), as `phonetree serve machines` compiles.
fn compiled(source: &Source) -> Machine {
    static MODULES: std::sync::OnceLock<machine::Modules> = std::sync::OnceLock::new();
    let modules = MODULES.get_or_init(|| {
        let dir = std::path::PathBuf::from(format!("{}/machines/modules", env!("CARGO_MANIFEST_DIR")));
        phonetree::node::catalog::read_modules(&[dir]).0
    });
    let c = machine::compile_with(source, machine::Options { modules, ..Default::default() });
    c.machine.unwrap_or_else(|| panic!("{:?}", c.diagnostics.first()))
}

fn call(m: &Machine) -> CallState {
    let info = CallInfo {
        session_id: "6f1c2a7e-5d0b-4c1e-9a43-0e2b8f6d1c55".into(),
        direction: Direction::Inbound,
        source: "+6591178965".into(),
        destination: "+6568888888".into(),
        call_id: None,
    };
    CallState::new(m, info, 0)
}

fn benches(c: &mut Criterion) {
    let small = bundled_source();
    c.bench_function("compile abc_restaurant", |b| b.iter(|| compiled(black_box(&small))));
    for n in [1_000, 10_000] {
        let big = generated(n);
        assert_eq!(compiled(&big).node_count(), n);
        c.bench_function(&format!("compile {n} nodes"), |b| b.iter(|| compiled(black_box(&big))));
    }

    let m = compiled(&small);
    let started = engine::step(&m, &call(&m), &Event::CallStarted, 0).unwrap().state;
    let one = Event::Digits("1".into());
    c.bench_function("step (main menu, key 1)", |b| {
        b.iter(|| engine::step(&m, black_box(&started), black_box(&one), 1).unwrap())
    });

    // The Advanced IVR seed: start, 1 (reservations), 1 (book a table), 2 (tomorrow), summary.
    let path = [
        Event::CallStarted,
        Event::Digits("1".into()),
        Event::Digits("1".into()),
        Event::Digits("2".into()),
        Event::SessionEnded { status: "COMPLETED".into() },
    ];
    c.bench_function("whole seed call (5 steps)", |b| {
        b.iter(|| {
            let mut s = call(&m);
            for e in &path {
                s = engine::step(&m, &s, e, 1).unwrap().state;
            }
            s
        })
    });

    let bytes = phonetree::store::encode_session(&started).unwrap();
    println!("stored session: {} bytes", bytes.len());
    c.bench_function("state encode (rmp-serde)", |b| {
        b.iter(|| phonetree::store::encode_session(black_box(&started)).unwrap())
    });
    c.bench_function("state decode (rmp-serde)", |b| {
        b.iter(|| phonetree::store::decode_session("s", black_box(&bytes)).unwrap())
    });

    let reply = engine::current_reply(&m, &started).unwrap();
    c.bench_function("reply serialisation (8x8 JSON)", |b| {
        b.iter(|| wire::encode(black_box(&reply)).unwrap())
    });

    let bank = bundled("bank_balance");
    c.bench_function("compile bank_balance", |b| b.iter(|| compiled(black_box(&bank))));
    let bank = compiled(&bank);
    // Monday 2026-11-23 10:00 in Singapore: the hours route, then the bilingual language menu.
    let monday_10 = 1_795_399_200_000;
    let fresh = call(&bank);
    let open = engine::step(&bank, &fresh, &Event::CallStarted, monday_10).unwrap();
    assert_eq!(bank.node(open.state.node).unwrap().name, "language");
    c.bench_function("step (bank_balance start: a route on the clock)", |b| {
        b.iter(|| engine::step(&bank, black_box(&fresh), &Event::CallStarted, black_box(monday_10)).unwrap())
    });
    let proof = phonetree::proof::explore::explore(&bank);
    assert!(proof.proven(), "{:?}", proof.violations);
    c.bench_function("prove bank_balance (every state, clock class and path)", |b| {
        b.iter(|| phonetree::proof::explore::explore(black_box(&bank)))
    });
}

criterion_group!(core, benches);
criterion_main!(core);
