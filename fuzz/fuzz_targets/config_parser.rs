//! Arbitrary bytes as a config file into the TOML loader and validation. The checks live in
//! `leasekv::fuzzing::config_parser` (shared with the stable corpus replay).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leasekv::fuzzing::config_parser(data));
