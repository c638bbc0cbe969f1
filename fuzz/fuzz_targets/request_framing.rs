//! Differential fuzzing of the lean HTTP/1.1 request reader: whatever bytes a client sends,
//! every request the lean path takes is one hyper's HTTP/1.1 server reads the same way (method,
//! target, version, headers, body, where it ends), its head is as long as strict httparse
//! says, and hyper reads what follows as it would with the lean path never having read.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/framing_check/mod.rs"]
mod framing_check;

fuzz_target!(|data: &[u8]| framing_check::check(data));
