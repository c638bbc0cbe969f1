//! Which of ANCM's handlers the app asks for (`hostingModel`), and `<handlerSettings>`: output
//! capture, the Connection response header, the shutdown delay, the debug log, and warnings
//! for the settings only the in-process handler reads.
//!
//! Reads through `sources` (and `debug_log` for the log's settings); must not import another
//! section.

use std::path::Path;
use std::time::Duration;

use super::debug_log::DebugLog;
use super::error::{ConfigError, Origin};
use super::sources::{Errors, Settings};

/// The longest shutdown delay taken: ten minutes, as shutdownTimeLimit's bound.
pub(super) const MAX_SHUTDOWN_DELAY_MS: u64 = 600_000;

/// Handler settings that only the in-process handler reads (spec §1.3).
const IN_PROCESS_SETTINGS: &[&str] = &[
    "stackSize",
    "setCurrentDirectory",
    "callStartupHook",
    "experimentalEnableShadowCopy",
    "enableShadowCopy",
    "shadowCopyDirectory",
    "cleanShadowCopyDirectory",
    "suppressRecycleOnStartupTimeout",
];

/// `<handlerSettings>`, read.
pub(super) struct Handler {
    /// As written (names unique ignoring case).
    pub settings: Vec<(String, String)>,
    /// enableOutOfProcessConsoleRedirection: read the app's stdout and stderr at all.
    pub capture_output: bool,
    pub forward_response_connection_header: bool,
    pub disallow_rotation_on_config_change: bool,
    pub shutdown_delay: Duration,
    pub debug_log: DebugLog,
}

/// `outofprocess` or `inprocess` (which runs out-of-process here, with a warning); a bad
/// value is noted in `errors`.
pub(super) fn hosting_model(
    settings: &Settings<'_>,
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) -> String {
    errors.keep(model(settings, warnings), "outofprocess".to_owned())
}

fn model(settings: &Settings<'_>, warnings: &mut Vec<String>) -> Result<String, ConfigError> {
    let Some((origin, value)) = settings.attribute("hostingModel") else {
        return Ok("outofprocess".to_owned());
    };
    let model = value.trim();
    if model.eq_ignore_ascii_case("inprocess") {
        warnings.push(format!(
            "{origin}: hostingModel=\"{model}\" asks IIS to load the app into its own \
             process; ancm runs it out-of-process instead, as its own process behind the proxy"
        ));
        Ok("inprocess".to_owned())
    } else if model.is_empty() || model.eq_ignore_ascii_case("outofprocess") {
        Ok("outofprocess".to_owned())
    } else {
        Err(ConfigError::invalid(
            origin,
            "attribute hostingModel",
            model,
            "inprocess or outofprocess (any case), or empty",
        ))
    }
}

/// `<handlerSettings>`, with ANCM_shutdownDelay and ASPNETCORE_MODULE_DEBUG(_FILE) from
/// ancm's environment where the file has no such setting. A bad shutdown delay is returned at
/// once; other bad values are noted in `errors`.
pub(super) fn resolve(
    settings: &Settings<'_>,
    app_dir: &Path,
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) -> Result<Handler, ConfigError> {
    let element = settings.element;
    let handler_settings: Vec<(String, String)> = element
        .map(|e| {
            e.handler_settings
                .iter()
                .map(|(n, v, _)| (n.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let handler = |name: &str| {
        handler_settings
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    for (name, _) in &handler_settings {
        if IN_PROCESS_SETTINGS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
        {
            warnings.push(format!(
                "handlerSetting {name} applies only to in-process hosting; ignored"
            ));
        } else if name.eq_ignore_ascii_case("handlerVersion") {
            warnings
                .push("handlerSetting handlerVersion picks an IIS handler DLL; ignored".to_owned());
        } else if ![
            "debugFile",
            "debugLevel",
            "disallowRotationOnConfigChange",
            "enableOutOfProcessConsoleRedirection",
            "forwardResponseConnectionHeader",
            "shutdownDelay",
        ]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
        {
            warnings.push(format!("unknown handlerSetting {name}; ignored"));
        }
    }
    // Exactly "false" turns capture off, as in ANCM.
    let capture_output = !handler("enableOutOfProcessConsoleRedirection")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    let forward_response_connection_header = handler("forwardResponseConnectionHeader")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let disallow_rotation_on_config_change = handler("disallowRotationOnConfigChange")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    // Milliseconds, from handlerSettings or else ANCM_shutdownDelay.
    let shutdown_delay = match handler("shutdownDelay") {
        Some(value) => Some(("handlerSetting shutdownDelay", value.to_owned())),
        None => settings
            .var("ANCM_shutdownDelay")
            .map(|value| ("ANCM_shutdownDelay", value)),
    };
    let shutdown_delay = match shutdown_delay {
        None => Duration::ZERO,
        Some((origin, value)) => match value.trim().parse::<u64>() {
            Ok(ms) if ms <= MAX_SHUTDOWN_DELAY_MS => Duration::from_millis(ms),
            _ => {
                return Err(ConfigError::invalid(
                    Origin::Flag(origin),
                    "value",
                    &value,
                    "a whole number of milliseconds from 0 to 600000",
                ))
            }
        },
    };
    let debug_level = handler("debugLevel").map(str::to_owned).or_else(|| {
        settings
            .var("ASPNETCORE_MODULE_DEBUG")
            .map(|v| module_debug_level(&v))
    });
    let debug_file = element
        .and_then(|e| {
            e.handler_settings
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case("debugFile"))
                .map(|(_, v, origin)| (origin.clone(), v.clone()))
        })
        .or_else(|| {
            settings
                .var("ASPNETCORE_MODULE_DEBUG_FILE")
                .map(|v| (Origin::Flag("ASPNETCORE_MODULE_DEBUG_FILE"), v))
        })
        .map(|(origin, file)| {
            errors.keep(
                settings.expand(&origin, "handlerSetting debugFile", &file, &[]),
                String::new(),
            )
        });
    let debug_log = DebugLog::parse(
        debug_level.as_deref(),
        debug_file.as_deref(),
        app_dir,
        warnings,
    );
    Ok(Handler {
        settings: handler_settings,
        capture_output,
        forward_response_connection_header,
        disallow_rotation_on_config_change,
        shutdown_delay,
        debug_log,
    })
}

/// ASPNETCORE_MODULE_DEBUG holds a level name, or ANCM's old numbers 1 (errors) to 4 (trace).
fn module_debug_level(value: &str) -> String {
    match value.trim() {
        "1" => "ERROR".to_owned(),
        "2" => "WARNING".to_owned(),
        "3" => "INFO".to_owned(),
        "4" => "TRACE".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::config_for;
    use crate::config::Overrides;

    #[test]
    fn unknown_hosting_model_is_an_error_and_inprocess_a_warning() {
        let err = config_for(
            r#"<configuration><system.webServer><aspNetCore processPath="x" hostingModel="sideways"/></system.webServer></configuration>"#,
            Overrides::default(),
        )
        .expect_err("bad model");
        assert!(err.to_string().contains("hostingModel"), "{err}");
        let cfg = config_for(
            r#"<configuration><system.webServer><aspNetCore processPath="x" hostingModel="InProcess"/></system.webServer></configuration>"#,
            Overrides::default(),
        )
        .expect("valid");
        assert!(
            cfg.warnings.iter().any(|w| w.contains("out-of-process")),
            "{:?}",
            cfg.warnings
        );
    }
}
