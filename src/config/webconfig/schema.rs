//! What ANCM's and IIS's schemas name: the attributes of `<aspNetCore>` and of
//! `<requestLimits>`, the XML-Document-Transform namespace, and the known name an unknown one
//! is most likely a typo of. Data and one lookup; imports nothing of the crate.

/// Declared by XDT transforms such as web.Release.config, which are not web.configs.
pub(super) const XDT_NAMESPACE: &str = "http://schemas.microsoft.com/XML-Document-Transform";

/// An unknown name this close to a known one (in edits, ignoring case) is taken for a typo.
const TYPO_DISTANCE: usize = 2;

/// The attributes of `<aspNetCore>` in ANCM's schema (spec §1.2).
pub(super) const KNOWN_ATTRIBUTES: &[&str] = &[
    "processPath",
    "arguments",
    "startupTimeLimit",
    "shutdownTimeLimit",
    "rapidFailsPerMinute",
    "requestTimeout",
    "stdoutLogEnabled",
    "stdoutLogFile",
    "processesPerApplication",
    "forwardWindowsAuthToken",
    "disableStartUpErrorPage",
    "hostingModel",
];

/// The attributes of `<requestLimits>` in IIS's schema; `<headerLimits>` inside it is not read.
pub(super) const REQUEST_LIMITS_ATTRIBUTES: &[&str] =
    &["maxAllowedContentLength", "maxUrl", "maxQueryString"];

/// The known name `name` is most likely a typo of, if any.
pub(super) fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let name = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&name, &k.to_ascii_lowercase()), *k))
        .filter(|(distance, _)| *distance <= TYPO_DISTANCE)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}
