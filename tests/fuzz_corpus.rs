//! Replays the committed fuzz seed corpus (`fuzz/corpus/<target>/`) through the fuzz targets'
//! oracles (`leasekv::fuzzing`) on the stable toolchain, so CI runs them without cargo-fuzz.
//! Crash reproducers found by fuzzing are committed there too (`regress-*`), which makes each
//! one a regression test.

use std::path::{Path, PathBuf};

use leasekv::fuzzing::{self, TrackingAlloc};

// Lets the resp oracle check its allocation bound here as it does under the fuzzer.
#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

/// The seed files of `target`, sorted; fails if there are none (a wrong path would otherwise
/// make the test pass without running anything).
fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "only {} seeds in {}",
        files.len(),
        dir.display()
    );
    files
}

/// Runs `oracle` on every seed, naming the seed that fails.
fn replay(target: &str, oracle: fn(&[u8])) {
    for path in seeds(target) {
        let data = std::fs::read(&path).expect("read seed");
        if let Err(panic) = std::panic::catch_unwind(|| oracle(&data)) {
            eprintln!("seed {} failed", path.display());
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn resp_parser_seeds() {
    replay("resp_parser", fuzzing::resp_parser);
}

#[test]
fn config_parser_seeds() {
    replay("config_parser", fuzzing::config_parser);
}

#[test]
fn allocation_tracking_is_live() {
    // Without this the resp oracle's allocation bound would pass vacuously.
    fuzzing::reset_largest_allocation();
    let big = std::hint::black_box(vec![0u8; 3 << 20]);
    assert!(fuzzing::largest_allocation() >= 3 << 20);
    drop(big);
    fuzzing::reset_largest_allocation();
    assert_eq!(fuzzing::largest_allocation(), 0);
}
