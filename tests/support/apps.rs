//! The test apps in tests/apps, as app folders, and what they are known to write. Shared by
//! the test modules that run them; imports nothing from a test module.

use super::AppDir;

/// What tests/apps/noisy.py writes, as plain text, in the order it writes it to its stdout and
/// stderr.
pub fn noisy_lines() -> Vec<String> {
    let mut lines: Vec<String> = (1..=5)
        .flat_map(|i| [format!("out {i}"), format!("err {i}")])
        .collect();
    lines.push("info: Microsoft.Hosting.Lifetime[0]".into());
    lines.push("not utf-8: \u{fffd}\u{fffd} end".into());
    lines.push("fatal: the last line".into());
    lines
}

/// An app folder running tests/apps/noisy.py with `attributes` and `env`.
pub fn noisy_app(attributes: &str, env: &[(&str, &str)]) -> AppDir {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/noisy.py");
    AppDir::new(
        &format!(r#"processPath="python3" arguments="{script}" {attributes}"#),
        env,
    )
}
