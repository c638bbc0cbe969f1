//! How the proxy presents requests to the app: the app path (ASPNETCORE_APPL_PATH, and
//! whether requests keep it) and X-Forwarded-For's form, chosen by the kind of run.
//!
//! Reads the flags only; must not import another section.

use super::error::{ConfigError, Origin};
use super::input::Overrides;
use super::sources::Errors;

/// How X-Forwarded-For gives the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedFor {
    /// `1.2.3.4`, `::1`: what Express's `trust proxy`, Django and gunicorn or uvicorn parse.
    Ip,
    /// `1.2.3.4:5678`, `[::1]:5678`: ANCM's form (spec §4.3), which ASP.NET Core parses.
    IpPort,
}

/// The forwarding settings, read.
pub(super) struct Forwarding {
    /// `/` or `/base` without a trailing slash.
    pub appl_path: String,
    pub strip_app_path: bool,
    pub forwarded_for: ForwardedFor,
}

/// From the flags, with ANCM's X-Forwarded-For form for a web.config run (`has_web_config`)
/// and a bare IP for a `--` command; bad values are noted in `errors`.
pub(super) fn resolve(flags: &Overrides, has_web_config: bool, errors: &mut Errors) -> Forwarding {
    let appl_path = errors.keep(app_path(flags.app_path.as_deref()), "/".to_owned());
    let forwarded_for = match flags.forwarded_for.as_deref() {
        None if has_web_config => ForwardedFor::IpPort,
        None => ForwardedFor::Ip,
        Some("ip") => ForwardedFor::Ip,
        Some("ip:port") => ForwardedFor::IpPort,
        Some(other) => {
            errors.push(ConfigError::invalid(
                Origin::Flag("--forwarded-for"),
                "value",
                other,
                "ip or ip:port",
            ));
            ForwardedFor::Ip
        }
    };
    Forwarding {
        appl_path,
        strip_app_path: flags.strip_app_path,
        forwarded_for,
    }
}

fn app_path(flag: Option<&str>) -> Result<String, ConfigError> {
    let Some(path) = flag else {
        return Ok("/".to_owned());
    };
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(ConfigError::invalid(
            Origin::Flag("--app-path"),
            "value",
            path,
            "a URL path that starts with / (such as /shop), without ? or #",
        ));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

#[cfg(test)]
mod tests {
    use super::ForwardedFor;
    use crate::config::tests::{command_run, config_for};
    use crate::config::Overrides;

    #[test]
    fn command_runs_get_a_bare_ip_and_no_shutdown_message_unless_asked() {
        const WEB_CONFIG: &str = r#"<configuration><system.webServer><aspNetCore processPath="x"/></system.webServer></configuration>"#;
        let cfg = config_for(WEB_CONFIG, Overrides::default()).expect("valid");
        assert_eq!(cfg.forwarded_for, ForwardedFor::IpPort);
        assert!(cfg.shutdown_message);
        let cfg = config_for(
            WEB_CONFIG,
            Overrides {
                forwarded_for: Some("ip".into()),
                ..Overrides::default()
            },
        )
        .expect("valid");
        assert_eq!(cfg.forwarded_for, ForwardedFor::Ip);

        let cfg = command_run(Overrides::default()).expect("valid");
        assert_eq!(cfg.forwarded_for, ForwardedFor::Ip);
        assert!(!cfg.shutdown_message);
        assert!(!cfg.strip_app_path);
        let cfg = command_run(Overrides {
            forwarded_for: Some("ip:port".into()),
            shutdown_message: true,
            app_path: Some("/shop".into()),
            strip_app_path: true,
            ..Overrides::default()
        })
        .expect("valid");
        assert_eq!(cfg.forwarded_for, ForwardedFor::IpPort);
        assert!(cfg.shutdown_message);
        assert!(cfg.strip_app_path);

        let err = command_run(Overrides {
            forwarded_for: Some("port".into()),
            ..Overrides::default()
        })
        .expect_err("bad form");
        assert_eq!(
            err.to_string(),
            "--forwarded-for: value \"port\" is not valid: ip or ip:port"
        );
    }
}
