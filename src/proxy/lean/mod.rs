//! The lean HTTP/1.1 path: plain-text client connections are served by one loop that reads a
//! request head with httparse, writes it for the app byte by byte into the app connection's
//! buffer (`parse.rs`), and passes the app's response back the same way (`response.rs`), with
//! no HeaderMap, no hyper dispatch and one timer per connection.
//!
//! It takes only requests it can read without doubt (see `parse.rs`). At the first request it
//! does not take (an upgrade, a chunked or large body, HTTP/1.0, HTTP/2's preface, anything
//! malformed) the connection goes to hyper with every byte read so far, at a request boundary,
//! so hyper's reading and ancm's other path apply to it unchanged from there on.

mod conn;
mod deadline;
mod parse;
mod relay;
mod request;
mod response;

pub(super) use conn::{serve, Ended, Prefixed};
pub use parse::{framing, head_for_app};
pub use response::response_for_client;
