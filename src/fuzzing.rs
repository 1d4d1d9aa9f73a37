//! Entry points of the cargo-fuzz targets in `fuzz/` (how to run them: docs/fuzzing.md).
//!
//! Each `fn(&[u8])` accepts any input and panics only when the code under test breaks one of
//! its stated invariants, so a panic is a finding. The fuzz targets are one-line wrappers; the
//! same functions run on the stable toolchain over the committed seed corpus
//! (`tests/fuzz_corpus.rs`, `fuzz/corpus/<target>/`) and inside the property tests, so CI
//! exercises the oracles without cargo-fuzz.

mod alloc;
mod config;
mod resp;

pub use alloc::{largest_allocation, reset_largest_allocation, TrackingAlloc};
pub use config::{config_parser, FUZZ_CPUS};
pub use resp::{resp_parser, resp_parser_limits};
