//! `ancm check`: validates the app's web.config and flags and prints the configuration `ancm
//! run` would use, after defaults, flags and expansion, as text or as one JSON object whose
//! keys are the attribute names as web.config spells them.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::config::{self, AppConfig, ConfigError, Request};

/// Prints the effective configuration; a configuration error is returned (exit status 2),
/// after printing `{"error": ...}` when JSON was asked for.
pub(crate) fn run(request: &Request, json: bool) -> Result<ExitCode, ConfigError> {
    match config::load(request) {
        Ok(config) => {
            if json {
                println!("{}", to_json(&config));
            } else {
                print!("{}", to_text(&config));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            if json {
                println!("{}", json!({ "error": err.to_string() }));
            }
            Err(err)
        }
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
    for (title, list) in [
        ("environmentVariables", &cfg.environment),
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
