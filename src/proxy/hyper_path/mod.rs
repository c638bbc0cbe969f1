//! hyper's path: every request the lean path does not take, served by hyper's server
//! (`front.rs` chooses) and forwarded with hyper's client (`service.rs`).
//!
//! Must not import the lean path (`lean/`).

mod service;
