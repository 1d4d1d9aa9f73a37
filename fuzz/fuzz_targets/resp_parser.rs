//! Arbitrary bytes, in arbitrary reads, into the server's RESP request parser. The checks
//! live in `leasekv::fuzzing::resp_parser` (shared with the stable corpus replay).
#![no_main]

use leasekv::fuzzing::TrackingAlloc;
use libfuzzer_sys::fuzz_target;

// Records the largest allocation so the oracle can bound it.
#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

fuzz_target!(|data: &[u8]| leasekv::fuzzing::resp_parser(data));
