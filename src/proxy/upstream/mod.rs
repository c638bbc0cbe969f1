//! The proxy's side towards the app's processes: connections (`connection.rs`), kept between
//! requests per proxy worker (`pool.rs`), one HTTP/1.1 exchange on hyper's path
//! (`exchange.rs`) and the request body it sends (`request_body.rs`). The lean path borrows the
//! connections and the pool; both paths frame with `h1.rs`.
//!
//! Must not import the front, the lean path or hyper's path's service: they call in, never the
//! other way.

pub(super) mod connection;
pub(super) mod exchange;
pub(super) mod pool;
pub(super) mod request_body;
