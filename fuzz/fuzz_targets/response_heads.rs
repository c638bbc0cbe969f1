//! Differential fuzzing of the app's response head as each proxy path rewrites it: whatever
//! head an app sends, the client gets the same status line and the same header fields (each
//! name's values in order) from the lean path's byte rewrite as from hyper's path written by
//! hyper's server, for a GET and a HEAD, the client's connection kept or closed, with and
//! without forwardResponseConnectionHeader; or neither path answers it.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/framing_check/mod.rs"]
mod framing_check;

fuzz_target!(|data: &[u8]| framing_check::check_response(data));
