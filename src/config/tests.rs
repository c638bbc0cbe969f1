//! Tests of [`build`] as a whole (defaults, precedence, the warm-up page, warnings), and
//! what the unit tests of config's sections share: a configuration built from web.config text
//! or from a `--` command, with flags and no ancm environment. Tests only: no section may
//! import it outside its own tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::build::{build, Sources};
use super::input::Overrides;
use super::sources::Env;
use super::webconfig;
use super::{AppConfig, ConfigError};

/// The configuration of a web.config holding `web_config`, with `flags`.
pub(super) fn config_for(web_config: &str, flags: Overrides) -> Result<AppConfig, ConfigError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("web.config");
    std::fs::write(&path, web_config).expect("write");
    config_with_env(&path, flags, &|_| None)
}

fn config_with_env(path: &Path, flags: Overrides, env: Env<'_>) -> Result<AppConfig, ConfigError> {
    let element = webconfig::read(path)?;
    build(
        Sources {
            app_dir: path.parent().expect("folder").to_owned(),
            web_config: Some(path.to_owned()),
            element: Some(element),
            flags: &flags,
            command_after_dashes: &[],
            listen: &[],
            find_program: false,
        },
        env,
    )
}

/// A command run without web.config, with `flags`.
pub(super) fn command_run(flags: Overrides) -> Result<AppConfig, ConfigError> {
    let dir = tempfile::tempdir().expect("temp dir");
    build(
        Sources {
            app_dir: dir.path().to_owned(),
            web_config: None,
            element: None,
            flags: &flags,
            command_after_dashes: &["node".to_owned(), "app.js".to_owned()],
            listen: &[],
            find_program: false,
        },
        &|_| None,
    )
}

#[test]
fn defaults_follow_the_ancm_schema() {
    let cfg = config_for(
        r#"<configuration><system.webServer><aspNetCore processPath="dotnet" arguments=".\App.dll"/></system.webServer></configuration>"#,
        Overrides::default(),
    )
    .expect("valid");
    assert_eq!(cfg.startup_time_limit, Duration::from_secs(120));
    assert_eq!(cfg.shutdown_time_limit, Duration::from_secs(10));
    assert_eq!(cfg.rapid_fails_per_minute, 10);
    assert_eq!(cfg.request_timeout, Some(Duration::from_secs(120)));
    assert_eq!(cfg.stdout_log, None);
    assert_eq!(cfg.appl_path, "/");
    assert_eq!(cfg.command.program, PathBuf::from("dotnet"));
    if cfg!(unix) {
        assert_eq!(cfg.command.args, ["./App.dll"]);
    }
}

#[test]
fn flags_override_attributes() {
    let flags = Overrides {
        startup_time_limit: Some("5".into()),
        request_timeout: Some("0".into()),
        env: vec!["SAMPLE_VAR=flag".into()],
        app_path: Some("/shop/".into()),
        stdout_log: Some(r"logs\out".into()),
        ..Overrides::default()
    };
    let cfg = config_for(
        r#"<configuration><system.webServer><aspNetCore processPath="app" startupTimeLimit="60">
<environmentVariables><environmentVariable name="sample_var" value="file"/></environmentVariables>
</aspNetCore></system.webServer></configuration>"#,
        flags,
    )
    .expect("valid");
    assert_eq!(cfg.startup_time_limit, Duration::from_secs(5));
    assert_eq!(cfg.request_timeout, None);
    assert_eq!(
        cfg.environment[..],
        [("SAMPLE_VAR".to_owned(), "flag".to_owned())]
    );
    assert_eq!(cfg.appl_path, "/shop");
    let log = cfg.stdout_log.expect("log on");
    assert!(
        log.ends_with("logs/out") || log.ends_with(r"logs\out"),
        "{}",
        log.display()
    );
}

#[test]
fn the_warm_up_page_comes_from_application_initialization() {
    let config = config_for(
        r#"<configuration><system.webServer><aspNetCore processPath="x"/>
<applicationInitialization><add initializationPage="/warmup?full=1"/><add initializationPage="/second"/></applicationInitialization>
</system.webServer></configuration>"#,
        Overrides::default(),
    )
    .expect("valid");
    assert_eq!(config.ready_path.as_deref(), Some("/warmup?full=1"));

    let err = config_for(
        "<configuration><system.webServer><aspNetCore processPath=\"x\"/>\n<applicationInitialization><add initializationPage=\"warmup\"/></applicationInitialization>\n</system.webServer></configuration>",
        Overrides::default(),
    )
    .expect_err("not a path");
    let text = err.to_string();
    assert!(
        text.contains("web.config:2:")
            && text.contains("initializationPage \"warmup\"")
            && text.contains("a path starting with /"),
        "{text}"
    );
}

#[test]
fn warnings_for_what_cannot_apply_here() {
    let cfg = config_for(
        r#"<configuration>
<system.applicationHost />
<system.webServer><aspNetCore processPath="C:\Program Files\dotnet\dotnet.exe" stdoutLogEnabled="true" stdoutLogFile="logs\">
<environmentVariables><environmentVariable name="ASPNETCORE_IIS_HTTPAUTH" value="windows;" /></environmentVariables>
</aspNetCore></system.webServer></configuration>"#,
        Overrides::default(),
    )
    .expect("valid");
    let warned = |needle: &str| cfg.warnings.iter().any(|w| w.contains(needle));
    assert!(
        warned("server-level IIS configuration"),
        "{:?}",
        cfg.warnings
    );
    assert!(
        warned("ancm sets ASPNETCORE_IIS_HTTPAUTH"),
        "{:?}",
        cfg.warnings
    );
    if cfg!(unix) {
        assert_eq!(cfg.command.program, PathBuf::from("dotnet"));
        assert!(warned("is a Windows path"), "{:?}", cfg.warnings);
        assert!(
            cfg.stdout_log_file.to_string_lossy().ends_with("/logs/"),
            "{:?}",
            cfg.stdout_log_file
        );
    }
}
