//! The `<aspNetCore>` attributes that are one value each, with ANCM's schema defaults
//! (spec §1.2): the time limits, rapidFailsPerMinute, processesPerApplication, requestTimeout,
//! and IIS's two switches forwardWindowsAuthToken and disableStartUpErrorPage.
//!
//! Reads through `sources` only; must not import another section.

use std::time::Duration;

use super::error::{ConfigError, Origin};
use super::sources::{Errors, Settings};
use super::values;

/// ANCM's schema defaults (spec §1.2).
const DEFAULT_STARTUP_TIME_LIMIT: u64 = 120;
const DEFAULT_SHUTDOWN_TIME_LIMIT: u64 = 10;
const DEFAULT_RAPID_FAILS_PER_MINUTE: u64 = 10;
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_PROCESSES_PER_APPLICATION: u64 = 1;

/// The attributes' values, typed.
pub(super) struct Attributes {
    pub startup_time_limit: Duration,
    pub shutdown_time_limit: Duration,
    pub rapid_fails_per_minute: u32,
    pub processes_per_application: u32,
    /// `None` waits for ever (a requestTimeout of 0).
    pub request_timeout: Option<Duration>,
    pub forward_windows_auth_token: bool,
    pub disable_startup_error_page: bool,
}

/// Each attribute from its flag, else web.config, else the default; a bad one is noted in
/// `errors` and its default taken, so that reading goes on.
pub(super) fn resolve(
    settings: &Settings<'_>,
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) -> Attributes {
    let flags = settings.flags;
    let startup = errors.keep(
        settings.uint(
            "startupTimeLimit",
            ("--startup-time-limit", &flags.startup_time_limit),
            (0, 3600),
            DEFAULT_STARTUP_TIME_LIMIT,
        ),
        DEFAULT_STARTUP_TIME_LIMIT,
    );
    let shutdown = errors.keep(
        settings.uint(
            "shutdownTimeLimit",
            ("--shutdown-time-limit", &flags.shutdown_time_limit),
            (0, 600),
            DEFAULT_SHUTDOWN_TIME_LIMIT,
        ),
        DEFAULT_SHUTDOWN_TIME_LIMIT,
    );
    let rapid_fails = errors.keep(
        settings.uint(
            "rapidFailsPerMinute",
            ("--rapid-fails-per-minute", &flags.rapid_fails_per_minute),
            (0, 100),
            DEFAULT_RAPID_FAILS_PER_MINUTE,
        ),
        DEFAULT_RAPID_FAILS_PER_MINUTE,
    );
    let processes = errors.keep(
        settings.uint(
            "processesPerApplication",
            ("--processes", &flags.processes),
            (1, 100),
            DEFAULT_PROCESSES_PER_APPLICATION,
        ),
        DEFAULT_PROCESSES_PER_APPLICATION,
    );
    let request_timeout = errors.keep(request_timeout(settings), Some(DEFAULT_REQUEST_TIMEOUT));
    let forward_windows_auth_token =
        errors.keep(settings.boolean("forwardWindowsAuthToken", true), true);
    if forward_windows_auth_token && settings.element.is_some() {
        warnings.push(windows_auth_warning(
            settings.attribute("forwardWindowsAuthToken"),
        ));
    }
    let disable_startup_error_page =
        errors.keep(settings.boolean("disableStartUpErrorPage", false), false);
    Attributes {
        startup_time_limit: Duration::from_secs(startup),
        shutdown_time_limit: Duration::from_secs(shutdown),
        rapid_fails_per_minute: u32::try_from(rapid_fails).unwrap_or(u32::MAX),
        processes_per_application: u32::try_from(processes).unwrap_or(1),
        request_timeout,
        forward_windows_auth_token,
        disable_startup_error_page,
    }
}

fn request_timeout(settings: &Settings<'_>) -> Result<Option<Duration>, ConfigError> {
    let timeout = match (
        &settings.flags.request_timeout,
        settings.attribute("requestTimeout"),
    ) {
        (Some(flag), _) => values::human_duration(flag).map_err(|allowed| {
            ConfigError::invalid(Origin::Flag("--request-timeout"), "value", flag, allowed)
        })?,
        (None, Some((origin, value))) => values::timespan(&value).map_err(|allowed| {
            ConfigError::invalid(origin, "attribute requestTimeout", &value, allowed)
        })?,
        (None, None) => DEFAULT_REQUEST_TIMEOUT,
    };
    // As with WinHTTP, 0 means no limit.
    Ok((!timeout.is_zero()).then_some(timeout))
}

/// Windows authentication is IIS's: ancm has no Windows identity to pass on, so an app that
/// relies on it would silently see anonymous users.
fn windows_auth_warning(attribute: Option<(Origin, String)>) -> String {
    let (origin, default) = match &attribute {
        Some((origin, _)) => (format!("{origin}: "), ""),
        None => (String::new(), " (the default)"),
    };
    format!(
        "{origin}forwardWindowsAuthToken is true{default}, but ancm cannot forward a Windows \
         identity: the app sees every request as anonymous (ASPNETCORE_IIS_HTTPAUTH=anonymous;). \
         Set forwardWindowsAuthToken=\"false\" on <aspNetCore> to silence this warning"
    )
}

#[cfg(test)]
mod tests {
    use crate::config::tests::config_for;
    use crate::config::Overrides;

    #[test]
    fn bad_values_name_file_line_attribute_value_and_range() {
        let err = config_for(
            "<configuration>\n<system.webServer>\n  <aspNetCore processPath=\"x\" startupTimeLimit=\"5000\"/>\n</system.webServer></configuration>",
            Overrides::default(),
        )
        .expect_err("out of range");
        let text = err.to_string();
        assert!(text.contains("web.config:3:"), "{text}");
        assert!(
            text.contains("startupTimeLimit")
                && text.contains("5000")
                && text.contains("0 to 3600"),
            "{text}"
        );

        let err = config_for(
            r#"<configuration><system.webServer><aspNetCore processPath="x"/></system.webServer></configuration>"#,
            Overrides {
                rapid_fails_per_minute: Some("lots".into()),
                ..Overrides::default()
            },
        )
        .expect_err("bad flag");
        assert_eq!(
            err.to_string(),
            "--rapid-fails-per-minute: value \"lots\" is not valid: a whole number from 0 to 100"
        );
    }
}
