//! The pages ancm answers with itself: 502.5 when the app cannot be started (what happened and
//! what to do; details from the machine only when the app asks for detailed errors), 502.3 when
//! forwarding fails, 503 while stopping. Built only on the error path.

use std::fmt::Write;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::config::AppConfig;
use crate::supervisor::{FailureKind, Unavailable};

/// Whether the 502.5 page may show what only the server should know (the app folder, the
/// command line, whose arguments can hold passwords, the app's output), as ANCM decides it:
/// the app runs as Development, or asks for detailed errors. Read each time a page is built, so
/// a reloaded configuration applies at once.
pub(super) fn detailed(cfg: &AppConfig) -> bool {
    let is = |name: &str, wanted: &[&str]| {
        variable(cfg, name)
            .is_some_and(|value| wanted.iter().any(|w| value.eq_ignore_ascii_case(w)))
    };
    is("ASPNETCORE_ENVIRONMENT", &["Development"])
        || is("DOTNET_ENVIRONMENT", &["Development"])
        || is("ASPNETCORE_DETAILEDERRORS", &["1", "true"])
}

/// A variable as ANCM reads it for its pages: the app's configured environment first, then
/// ancm's own.
fn variable(cfg: &AppConfig, name: &str) -> Option<String> {
    cfg.environment
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(name).ok())
}

/// What kind of failure it was, in words that name nothing on the machine (the failure's own
/// text can hold the program's path).
fn kind_only(kind: &FailureKind) -> String {
    match kind {
        FailureKind::Spawn { .. } => "the app's executable could not be started".to_owned(),
        FailureKind::Exited {
            before_ready: true, ..
        } => "the app exited before it listened on its port".to_owned(),
        FailureKind::Exited { .. } => "the app exited".to_owned(),
        FailureKind::StartTimeout {
            limit,
            listening_elsewhere,
        } => format!(
            "the app did not listen on its port within startupTimeLimit ({} s) and was killed{}",
            limit.as_secs(),
            if listening_elsewhere.is_some() {
                ": the app listens on another port"
            } else {
                ""
            }
        ),
        FailureKind::NotWarm { limit, .. } => format!(
            "the app did not answer its warm-up path within startupTimeLimit ({} s) and was killed",
            limit.as_secs()
        ),
        FailureKind::PortTaken { .. } => "another process holds the app's port".to_owned(),
    }
}

/// The 502.5 page: the app could not be started.
pub(super) fn startup_failure(unavailable: &Unavailable, cfg: &AppConfig) -> Response<Full<Bytes>> {
    match unavailable {
        Unavailable::Stopping => return stopping(),
        Unavailable::Offline(content) => return offline(content.clone()),
        _ => {}
    }
    if cfg.disable_startup_error_page {
        // disableStartUpErrorPage: the status only, as ANCM leaves the body to IIS.
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        return response;
    }
    let detailed = detailed(cfg);
    let failure_text = |kind: &FailureKind| {
        if detailed {
            escape(&kind.to_string())
        } else {
            kind_only(kind)
        }
    };
    let mut what = String::new();
    let mut todo: Vec<String> = Vec::new();
    let mut output = None;
    let run_it_yourself = detailed.then(|| {
        format!(
            "Run the app by hand to see what it says: <code>cd {} &amp;&amp; {}</code>",
            escape(&cfg.app_dir.display().to_string()),
            escape(&command_text(cfg)),
        )
    });
    match unavailable {
        Unavailable::Failed(failure) => {
            let _ = write!(what, "{}.", failure_text(&failure.kind));
            output = Some(failure.output.as_str());
            match &failure.kind {
                FailureKind::Spawn { .. } => {
                    todo.push("Check processPath in web.config (or <code>--process-path</code>): a relative path is looked up in the app folder, a bare name on PATH.".into());
                }
                FailureKind::Exited { .. } => {
                    todo.push("Read the app's output (in ancm's console, or below in Development) for the exception or message that made it exit.".into());
                    todo.extend(run_it_yourself.clone());
                }
                FailureKind::StartTimeout { .. } => {
                    todo.push("Make sure the app listens on 127.0.0.1 at the port in ASPNETCORE_PORT (ASP.NET Core does so through UseIISIntegration); for other apps, pass <code>--port-env PORT</code> or use %ASPNETCORE_PORT% in arguments.".into());
                    todo.push("If it is only slow to start, raise startupTimeLimit (or <code>--startup-time-limit</code>).".into());
                }
                FailureKind::NotWarm { .. } => {
                    todo.push("Check what the warm-up path (initializationPage in &lt;applicationInitialization&gt;, or <code>--ready-path</code>) answers, in the app's output; if warming up is only slow, raise startupTimeLimit.".into());
                }
                FailureKind::PortTaken { .. } => {
                    todo.push("Stop the process that holds the port, or set another ASPNETCORE_PORT in web.config (or none: then ancm picks a free port for each start).".into());
                }
            }
        }
        Unavailable::Paused {
            until,
            limit,
            failure,
        } => {
            let secs = until
                .saturating_duration_since(tokio::time::Instant::now())
                .as_secs()
                + 1;
            let _ = write!(
                what,
                "The app failed more than rapidFailsPerMinute ({limit}) times within a minute, so ancm stopped starting it for now; it tries again in {secs} s."
            );
            if let Some(failure) = failure {
                let _ = write!(what, " The last failure: {}.", failure_text(&failure.kind));
                output = Some(failure.output.as_str());
            }
            todo.extend(run_it_yourself.clone());
            todo.push("Fix the cause, then restart ancm, or wait for the minute to pass.".into());
        }
        Unavailable::TimedOut(limit) => {
            let _ = write!(
                what,
                "The app was still starting after startupTimeLimit ({} s).",
                limit.as_secs()
            );
            todo.push("If it is only slow to start, raise startupTimeLimit (or <code>--startup-time-limit</code>).".into());
        }
        Unavailable::Stopping | Unavailable::Offline(_) => {}
    }
    match (&cfg.stdout_log, detailed) {
        (Some(prefix), true) => todo.push(format!(
            "The stdout log is on: see {}_*.log.",
            escape(&prefix.display().to_string())
        )),
        (Some(_), false) => {
            todo.push("The stdout log is on: see the files that stdoutLogFile names.".into());
        }
        (None, _) => {}
    }

    let mut body = String::with_capacity(4096);
    body.push_str(HEAD);
    body.push_str("<title>HTTP Error 502.5 - the app failed to start</title></head><body>\n");
    body.push_str("<h1>HTTP Error 502.5 - the app failed to start</h1>\n");
    let _ = writeln!(body, "<p>{what}</p>\n<h2>What to do</h2>\n<ul>");
    for item in todo {
        let _ = writeln!(body, "<li>{item}</li>");
    }
    body.push_str("</ul>\n");
    if detailed {
        if let Some(text) = output.filter(|text| !text.is_empty()) {
            let _ = writeln!(
                body,
                "<h2>The app's last output</h2>\n<pre>{}</pre>",
                escape(text)
            );
        }
    } else {
        body.push_str(
            "<p>This page shows nothing from the server: the details (the program, its \
             arguments, the app's output) are in ancm's console and its log. To show them here \
             too, set ASPNETCORE_ENVIRONMENT=Development or ASPNETCORE_DETAILEDERRORS=true in \
             the app's environment.</p>\n",
        );
    }
    if let Some(link) = variable(cfg, "ANCM_ADDITIONAL_ERROR_PAGE_LINK")
        .map(|link| link.trim().to_owned())
        .filter(|link| !link.is_empty())
    {
        let link = escape(&link);
        let _ = writeln!(
            body,
            "<p>More information: <a href=\"{link}\">{link}</a></p>"
        );
    }
    body.push_str("</body></html>\n");
    html(StatusCode::BAD_GATEWAY, body)
}

/// The 502.3 page: the app was ready but forwarding to it failed.
pub(super) fn bad_gateway(reason: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "{HEAD}<title>HTTP Error 502.3 - Bad Gateway</title></head><body>\n\
         <h1>HTTP Error 502.3 - Bad Gateway</h1>\n<p>{}</p>\n</body></html>\n",
        escape(reason)
    );
    html(StatusCode::BAD_GATEWAY, body)
}

/// 503 with app_offline.htm's bytes as the page, as ANCM answers every request while the file
/// is there (spec §3.7).
pub(super) fn offline(content: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(content));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A request ancm refuses itself, before it reaches the app.
pub(super) fn client_error(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    let title = format!(
        "HTTP Error {} - {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Bad Request")
    );
    let body = format!(
        "{HEAD}<title>{title}</title></head><body>\n<h1>{title}</h1>\n<p>{}</p>\n</body></html>\n",
        escape(reason)
    );
    html(status, body)
}

/// 503 while ancm stops the app.
pub(super) fn stopping() -> Response<Full<Bytes>> {
    let body = format!(
        "{HEAD}<title>HTTP Error 503 - Service Unavailable</title></head><body>\n\
         <h1>HTTP Error 503 - Service Unavailable</h1>\n<p>The app is shutting down.</p>\n</body></html>\n"
    );
    html(StatusCode::SERVICE_UNAVAILABLE, body)
}

const HEAD: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}\
pre{background:#f4f4f4;padding:1em;overflow:auto}code{background:#f4f4f4}</style>";

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn command_text(cfg: &AppConfig) -> String {
    let mut text = cfg.command.program.display().to_string();
    for arg in &cfg.command.args {
        text.push(' ');
        if arg.is_empty() || arg.contains([' ', '\t', '"']) {
            let _ = write!(text, "{arg:?}");
        } else {
            text.push_str(arg);
        }
    }
    text
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
