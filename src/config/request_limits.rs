//! IIS request limits (`<security><requestFiltering><requestLimits>`): the largest body, URL
//! path and query string that may reach the app, with IIS's defaults and `--max-request-body`.

use super::error::{ConfigError, Origin};
use super::values;
use super::webconfig::Attribute;

/// IIS requestFiltering/requestLimits, enforced by the proxy before the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// maxAllowedContentLength (or --max-request-body); None = no limit.
    pub max_body: Option<u64>,
    /// maxUrl: the longest path (without the query), in bytes.
    pub max_url: usize,
    /// maxQueryString: the longest query string (without the `?`), in bytes.
    pub max_query_string: usize,
}

/// IIS's schema defaults.
const DEFAULT_MAX_ALLOWED_CONTENT_LENGTH: u64 = 30_000_000;
const DEFAULT_MAX_URL: u64 = 4096;
const DEFAULT_MAX_QUERY_STRING: u64 = 2048;

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_body: Some(DEFAULT_MAX_ALLOWED_CONTENT_LENGTH),
            max_url: to_usize(DEFAULT_MAX_URL),
            max_query_string: to_usize(DEFAULT_MAX_QUERY_STRING),
        }
    }
}

/// The limits from `<requestLimits>`'s attributes (as written; empty when there is none) and
/// the `--max-request-body` flag, which replaces maxAllowedContentLength.
pub(super) fn resolve(
    attributes: &[Attribute],
    max_request_body: Option<&str>,
) -> Result<RequestLimits, ConfigError> {
    // IIS types all three as uint: a 32-bit unsigned number.
    let attribute = |name: &str, default: u64| -> Result<u64, ConfigError> {
        let Some(attribute) = attributes.iter().find(|a| a.name == name) else {
            return Ok(default);
        };
        values::uint(&attribute.value, 0, u64::from(u32::MAX), " of bytes").map_err(|allowed| {
            ConfigError::invalid(
                attribute.origin.clone(),
                format!("attribute {name}"),
                &attribute.value,
                allowed,
            )
        })
    };
    let max_body = match max_request_body {
        // The flag is ancm's own: not bound to IIS's 4 GB, and 0 lifts the limit.
        Some(flag) => {
            let bytes = values::uint(flag, 0, u64::MAX, "").map_err(|_| {
                ConfigError::invalid(
                    Origin::Flag("--max-request-body"),
                    "value",
                    flag,
                    "a whole number of bytes, such as 104857600 for 100 MiB, or 0 for no limit",
                )
            })?;
            (bytes != 0).then_some(bytes)
        }
        // In web.config 0 is a limit like any other, as IIS reads it.
        None => Some(attribute(
            "maxAllowedContentLength",
            DEFAULT_MAX_ALLOWED_CONTENT_LENGTH,
        )?),
    };
    Ok(RequestLimits {
        max_body,
        max_url: to_usize(attribute("maxUrl", DEFAULT_MAX_URL)?),
        max_query_string: to_usize(attribute("maxQueryString", DEFAULT_MAX_QUERY_STRING)?),
    })
}

/// Values are at most `u32::MAX`, which fits every `usize` ancm is built for.
fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn attribute(name: &str, value: &str) -> Attribute {
        Attribute {
            name: name.to_owned(),
            value: value.to_owned(),
            origin: Origin::File {
                path: PathBuf::from("web.config"),
                line: 7,
                column: 40,
            },
        }
    }

    #[test]
    fn iis_defaults_without_the_element() {
        let limits = resolve(&[], None).expect("valid");
        assert_eq!(
            limits,
            RequestLimits {
                max_body: Some(30_000_000),
                max_url: 4096,
                max_query_string: 2048,
            }
        );
        assert_eq!(limits, RequestLimits::default());
    }

    #[test]
    fn attributes_and_the_flag() {
        let attributes = [
            attribute("maxAllowedContentLength", "4294967295"),
            attribute("maxUrl", "260"),
            attribute("maxQueryString", "0"),
        ];
        let limits = resolve(&attributes, None).expect("valid");
        assert_eq!(limits.max_body, Some(4_294_967_295));
        assert_eq!((limits.max_url, limits.max_query_string), (260, 0));
        assert_eq!(
            resolve(&attributes, Some("0")).expect("valid").max_body,
            None
        );
        assert_eq!(
            resolve(&attributes, Some("10000000000"))
                .expect("valid")
                .max_body,
            Some(10_000_000_000)
        );
    }

    #[test]
    fn bad_values_name_where_what_and_the_range() {
        let err = resolve(&[attribute("maxUrl", "4294967296")], None).expect_err("too big");
        assert_eq!(
            err.to_string(),
            "web.config:7:40: attribute maxUrl \"4294967296\" is not valid: a whole number of bytes from 0 to 4294967295"
        );
        let err = resolve(&[], Some("10MB")).expect_err("not a number");
        assert_eq!(
            err.to_string(),
            "--max-request-body: value \"10MB\" is not valid: a whole number of bytes, such as 104857600 for 100 MiB, or 0 for no limit"
        );
    }
}
