//! Replays the checked-in fuzz corpus (`fuzz/corpus/TARGET/*`) through the fuzz targets' own bodies
//! (`fuzz/targets.rs`), so every `cargo test` exercises every target on every input the fuzzer kept.

#[allow(dead_code)]
mod targets {
    include!("../fuzz/targets.rs");
}

fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 3, "{}: the corpus is missing", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("fuzz target `{target}` panics on {}", file.display());
        }
    }
}

#[test]
fn compile_corpus() {
    replay("compile", targets::compile_machine);
}

#[test]
fn webhook_corpus() {
    replay("webhook", targets::webhook);
}

#[test]
fn stored_state_corpus() {
    replay("stored_state", targets::stored_state);
}
