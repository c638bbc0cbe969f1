//! `ancm check`: validates the app's web.config and flags and prints the configuration `ancm
//! run` would use, after defaults, flags and expansion, as text or as one JSON object whose
//! keys are the attribute names as web.config spells them. Every error found is reported, not
//! only the first.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::config::{self, AppConfig, ConfigError, Origin, Request};

/// Prints the effective configuration; a configuration error is returned (exit status 2),
/// after printing `{"error": first message, "errors": [...]}` when JSON was asked for.
pub(crate) fn run(
    request: &Request,
    json: bool,
    flags: &[(String, String)],
) -> anyhow::Result<ExitCode> {
    match config::load(request) {
        Ok(config) => {
            let out = if json {
                let mut value = to_json(&config);
                value["flags"] = flags
                    .iter()
                    .map(|(flag, from)| (flag.clone(), Value::from(from.as_str())))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
                format!("{value}\n")
            } else {
                let mut text = to_text(&config);
                // Before the verdict, which stays the last line.
                let verdict = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
                text.insert_str(verdict, &flags_text(flags));
                text
            };
            crate::output::write_stdout(out.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            if json {
                // The configuration error decides the outcome, even when stdout cannot take it;
                // it is on stderr too.
                let _ = crate::output::write_stdout(format!("{}\n", errors_json(&err)).as_bytes());
            }
            Err(err.into())
        }
    }
}

/// Where the values came from: the flags set (on the command line or by their ANCM_*
/// variable); every other value is web.config's, or ANCM's default.
fn flags_text(flags: &[(String, String)]) -> String {
    let set: Vec<String> = flags
        .iter()
        .map(|(flag, from)| format!("{flag} ({from})"))
        .collect();
    let set = if set.is_empty() {
        "none".to_owned()
    } else {
        set.join(", ")
    };
    format!("flags set                {set}; every other value is web.config's or the default\n")
}

/// `{"error": the first message, "errors": [each as an object]}`.
fn errors_json(err: &ConfigError) -> Value {
    let all = err.all();
    json!({
        "error": all.first().map(ToString::to_string).unwrap_or_default(),
        "errors": all.iter().map(|e| error_json(e)).collect::<Vec<_>>(),
    })
}

/// One error as `{file, line, column, attribute, value, allowed, message}`; what an error does
/// not have is null. For a flag, `attribute` is the flag.
fn error_json(err: &ConfigError) -> Value {
    let (origin, attribute, value, allowed): (
        Option<Origin>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = match err {
        ConfigError::Read { path, .. }
        | ConfigError::NoWebConfig { path }
        | ConfigError::NoAspNetCore { path }
        | ConfigError::NotWebConfig { path, .. } => (Some(file(path, 0, 0)), None, None, None),
        ConfigError::Xml {
            path, line, column, ..
        } => (Some(file(path, *line, *column)), None, None, None),
        ConfigError::MissingProcessPath { origin } | ConfigError::Transform { origin } => (
            Some(origin.clone()),
            Some("processPath".to_owned()),
            None,
            None,
        ),
        ConfigError::Launcher {
            origin,
            attribute,
            variable,
            ..
        } => (
            Some(origin.clone()),
            Some(attribute.clone()),
            Some(format!("%{variable}%")),
            None,
        ),
        ConfigError::UndefinedVariable {
            origin,
            attribute,
            variable,
        } => (
            Some(origin.clone()),
            Some(attribute.clone()),
            Some(format!("%{variable}%")),
            None,
        ),
        ConfigError::ProgramNotFound {
            origin,
            attribute,
            value,
            ..
        } => (
            Some(origin.clone()),
            Some((*attribute).to_owned()),
            Some(value.clone()),
            None,
        ),
        ConfigError::Invalid {
            origin,
            what,
            value,
            allowed,
        } => (
            Some(origin.clone()),
            Some(what.strip_prefix("attribute ").unwrap_or(what).to_owned()),
            Some(value.clone()),
            Some(allowed.clone()),
        ),
        _ => (None, None, None, None),
    };
    let (file, line, column, attribute) = match origin {
        Some(Origin::File { path, line, column }) => (
            Some(path.display().to_string()),
            (line > 0).then_some(line),
            (column > 0).then_some(column),
            attribute,
        ),
        // A flag's value: the flag is what to change.
        Some(Origin::Flag(flag)) => (None, None, None, Some(flag.to_owned())),
        None => (None, None, None, attribute),
    };
    json!({
        "file": file,
        "line": line,
        "column": column,
        "attribute": attribute,
        "value": value,
        "allowed": allowed,
        "message": err.to_string(),
    })
}

fn file(path: &std::path::Path, line: u32, column: u32) -> Origin {
    Origin::File {
        path: path.to_owned(),
        line,
        column,
    }
}

/// Seconds as a JSON number: whole when they are whole.
fn seconds(duration: Duration) -> Value {
    if duration.subsec_nanos() == 0 {
        json!(duration.as_secs())
    } else {
        json!(duration.as_secs_f64())
    }
}

fn pairs(pairs: &[(String, String)]) -> Value {
    let map: Map<String, Value> = pairs
        .iter()
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(map)
}

fn to_json(cfg: &AppConfig) -> Value {
    let mut command = vec![cfg.command.program.display().to_string()];
    command.extend(cfg.command.args.iter().cloned());
    json!({
        "processPath": cfg.process_path,
        "arguments": cfg.arguments,
        "startupTimeLimit": cfg.startup_time_limit.as_secs(),
        "shutdownTimeLimit": cfg.shutdown_time_limit.as_secs(),
        "rapidFailsPerMinute": cfg.rapid_fails_per_minute,
        "requestTimeout": seconds(cfg.request_timeout.unwrap_or(Duration::ZERO)),
        "stdoutLogEnabled": cfg.stdout_log_enabled,
        "stdoutLogFile": cfg.stdout_log_file.display().to_string(),
        "hostingModel": cfg.hosting_model,
        "processesPerApplication": cfg.processes_per_application,
        "forwardWindowsAuthToken": cfg.forward_windows_auth_token,
        "disableStartUpErrorPage": cfg.disable_startup_error_page,
        "maxAllowedContentLength": cfg.request_limits.max_body,
        "maxUrl": cfg.request_limits.max_url,
        "maxQueryString": cfg.request_limits.max_query_string,
        "initializationPage": cfg.ready_path,
        "environmentVariables": pairs(&cfg.environment),
        "handlerSettings": pairs(&cfg.handler_settings),
        "command": command,
        "workingDirectory": cfg.app_dir.display().to_string(),
        "webConfig": cfg.web_config.as_ref().map(|p| p.display().to_string()),
        "warnings": cfg.warnings,
    })
}

fn to_text(cfg: &AppConfig) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let yes_no = |b: bool| if b { "true" } else { "false" };
    match &cfg.web_config {
        Some(path) => {
            let _ = writeln!(out, "web.config               {}", path.display());
        }
        None => out
            .push_str("web.config               (none: the command comes from the command line)\n"),
    }
    let mut command = cfg.command.program.display().to_string();
    for arg in &cfg.command.args {
        command.push(' ');
        command.push_str(&format!("{arg:?}"));
    }
    let _ = writeln!(out, "command                  {command}");
    let _ = writeln!(out, "workingDirectory         {}", cfg.app_dir.display());
    let _ = writeln!(out, "processPath              {}", cfg.process_path);
    let _ = writeln!(out, "arguments                {}", cfg.arguments);
    let _ = writeln!(out, "hostingModel             {}", cfg.hosting_model);
    let _ = writeln!(
        out,
        "startupTimeLimit         {} s",
        cfg.startup_time_limit.as_secs()
    );
    let _ = writeln!(
        out,
        "shutdownTimeLimit        {} s",
        cfg.shutdown_time_limit.as_secs()
    );
    let _ = writeln!(
        out,
        "rapidFailsPerMinute      {}",
        cfg.rapid_fails_per_minute
    );
    match cfg.request_timeout {
        Some(t) => {
            let _ = writeln!(out, "requestTimeout           {} s", seconds(t));
        }
        None => out.push_str("requestTimeout           none (0)\n"),
    }
    let _ = writeln!(
        out,
        "stdoutLogEnabled         {}",
        yes_no(cfg.stdout_log_enabled)
    );
    let _ = writeln!(
        out,
        "stdoutLogFile            {}",
        cfg.stdout_log_file.display()
    );
    let _ = writeln!(
        out,
        "processesPerApplication  {}",
        cfg.processes_per_application
    );
    let _ = writeln!(
        out,
        "forwardWindowsAuthToken  {}",
        yes_no(cfg.forward_windows_auth_token)
    );
    let _ = writeln!(
        out,
        "disableStartUpErrorPage  {}",
        yes_no(cfg.disable_startup_error_page)
    );
    match cfg.request_limits.max_body {
        Some(bytes) => {
            let _ = writeln!(out, "maxAllowedContentLength  {bytes} bytes");
        }
        None => out.push_str("maxAllowedContentLength  none (--max-request-body 0)\n"),
    }
    let _ = writeln!(
        out,
        "maxUrl                   {} bytes",
        cfg.request_limits.max_url
    );
    let _ = writeln!(
        out,
        "maxQueryString           {} bytes",
        cfg.request_limits.max_query_string
    );
    if let Some(path) = &cfg.ready_path {
        let _ = writeln!(out, "initializationPage       {path}");
    }
    for (title, list) in [
        ("environmentVariables", &cfg.environment[..]),
        ("handlerSettings", &cfg.handler_settings),
    ] {
        if !list.is_empty() {
            let _ = writeln!(out, "{title}");
            for (name, value) in list {
                let _ = writeln!(out, "  {name}={value}");
            }
        }
    }
    for warning in &cfg.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out.push_str("valid\n");
    out
}
