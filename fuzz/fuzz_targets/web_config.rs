//! Fuzzes the whole web.config path: byte decoding (UTF-8, BOMs, UTF-16), XML parsing,
//! attribute validation and building the effective configuration.

#![no_main]

use std::path::Path;

use ancm::config::{parse_web_config, ConfigError};
use libfuzzer_sys::fuzz_target;

/// A web.config in a folder that does not exist, so that resolving `processPath` and
/// arguments against the app folder finds nothing and touches no real files.
const WEB_CONFIG: &str = "/nonexistent-fuzz-app/web.config";

fuzz_target!(|data: &[u8]| {
    let path = Path::new(WEB_CONFIG);
    let Err(err) = parse_web_config(path, data) else {
        return;
    };
    let text = err.to_string();
    assert!(!text.is_empty(), "empty message for {err:?}");
    // A person fixing the file must be told which file it is.
    if matches!(err, ConfigError::Xml { .. } | ConfigError::Invalid { .. }) {
        assert!(
            text.contains(WEB_CONFIG),
            "message does not name the file: {text:?}"
        );
    }
});
