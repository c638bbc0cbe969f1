use std::process::Command;

use crate::support::{ancm_bin, run_expecting_failure, sampleapp, Ancm, AppDir};

#[test]
fn configuration_errors_exit_2_naming_file_line_and_value() {
    let app = AppDir::with_web_config(
        "<configuration>\n  <system.webServer>\n    <aspNetCore arguments=\"x\" />\n  </system.webServer>\n</configuration>\n",
    );
    let (code, stderr) = run_expecting_failure(&[app.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("web.config:3:5: <aspNetCore> has no processPath"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let app = AppDir::new(r#"startupTimeLimit="9999""#, &[]);
    let (code, stderr) = run_expecting_failure(&[app.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("attribute startupTimeLimit \"9999\" is not valid: a whole number of seconds from 0 to 3600"),
        "{stderr}"
    );

    let app = AppDir::new("", &[]);
    let (code, stderr) = run_expecting_failure(&[
        app.path().to_str().expect("utf-8"),
        "--request-timeout",
        "soon",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--request-timeout: value \"soon\" is not valid"),
        "{stderr}"
    );

    let (code, stderr) = run_expecting_failure(&[
        app.path().to_str().expect("utf-8"),
        "--max-request-head",
        "4GiB",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr
            .contains("--max-request-head: value \"4GiB\" is not valid: a size from 1KiB to 1MiB"),
        "{stderr}"
    );

    let app = AppDir::new("", &[]);
    app.add_handler_setting("shutdownDelay", "soon");
    let (code, stderr) = run_expecting_failure(&[app.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("handlerSetting shutdownDelay: value \"soon\" is not valid: a whole number of milliseconds"),
        "{stderr}"
    );

    let app = AppDir::with_web_config("<configuration>\n<system.webServer>\n</configuration>");
    let (code, stderr) = run_expecting_failure(&[app.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("web.config:3:") && stderr.contains("not well-formed XML"),
        "{stderr}"
    );

    let empty = tempfile::tempdir().expect("dir");
    let (code, stderr) = run_expecting_failure(&[empty.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no web.config there"), "{stderr}");
}

#[test]
fn bad_request_limits_exit_2_naming_file_line_attribute_value_and_range() {
    let app = AppDir::with_web_config(&format!(
        r#"<configuration>
  <system.webServer>
    <aspNetCore processPath="{}" />
    <security>
      <requestFiltering>
        <requestLimits maxAllowedContentLength="-1" />
      </requestFiltering>
    </security>
  </system.webServer>
</configuration>
"#,
        sampleapp().display()
    ));
    let (code, stderr) = run_expecting_failure(&[app.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("web.config:6:49: attribute maxAllowedContentLength \"-1\" is not valid: a whole number of bytes from 0 to 4294967295"),
        "{stderr}"
    );

    let app = AppDir::new("", &[]);
    let (code, stderr) = run_expecting_failure(&[
        app.path().to_str().expect("utf-8"),
        "--max-request-body",
        "30MB",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--max-request-body: value \"30MB\" is not valid: a whole number of bytes"),
        "{stderr}"
    );
}

#[test]
fn a_taken_listen_port_is_reported_before_the_app_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let app = AppDir::new("", &[]);
    let output = Command::new(ancm_bin())
        .args([
            "run",
            "--listen",
            &addr,
            app.path().to_str().expect("utf-8"),
        ])
        .output()
        .expect("run ancm");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--listen {addr}: cannot listen there")),
        "{stderr}"
    );
    assert!(!stderr.contains("started the app"), "{stderr}");
}

/// A published app as Windows writes its web.config: `.\App.exe` runs `./App` on Unix.
#[cfg(unix)]
#[test]
fn windows_style_process_path_runs_the_unix_apphost() {
    let app = AppDir::with_web_config(
        r#"<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <location path="." inheritInChildApplications="false">
    <system.webServer>
      <handlers>
        <add name="aspNetCore" path="*" verb="*" modules="AspNetCoreModuleV2" resourceType="Unspecified" />
      </handlers>
      <aspNetCore processPath=".\bin\SampleApp.exe" stdoutLogEnabled="false" stdoutLogFile=".\logs\stdout" hostingModel="OutOfProcess" />
    </system.webServer>
  </location>
</configuration>"#,
    );
    std::fs::create_dir(app.path().join("bin")).expect("mkdir");
    std::os::unix::fs::symlink(sampleapp(), app.path().join("bin/SampleApp")).expect("symlink");
    let ancm = Ancm::run_app(&app, &[]);
    ancm.wait_ready();
    assert_eq!(ancm.get("/").status(), 200);
}

/// `%ASPNETCORE_PORT%` in arguments becomes the app's port; `--port-env` exports it too.
#[cfg(unix)]
#[test]
fn port_placeholders_and_port_env() {
    let app = AppDir::new(
        &format!(
            r#"processPath="sh" arguments="-c &quot;echo port-arg=%ASPNETCORE_PORT%; exec '{}'&quot;""#,
            sampleapp().display()
        ),
        &[],
    );
    let ancm = Ancm::run_app(&app, &["--port-env", "PORT"]);
    let (_, port) = ancm.wait_ready();
    ancm.wait_stdout("the port argument", |l| {
        l.ends_with(&format!("port-arg={port}"))
    });
    let echo: serde_json::Value = ancm.get("/echo").json().expect("json");
    assert_eq!(echo["env"]["PORT"], port.to_string());
}

/// `-- COMMAND ARGS` needs no web.config; `--app-path` sets ASPNETCORE_APPL_PATH, and with
/// `--shutdown-message` the shutdown message goes to {APPL_PATH}/iisintegration.
#[test]
fn command_after_dashes_and_app_path() {
    let dir = tempfile::tempdir().expect("dir");
    let app = sampleapp();
    let mut ancm = Ancm::run_app(
        &dir,
        &[
            "--app-path",
            "/shop",
            "--shutdown-message",
            "--",
            app.to_str().expect("utf-8"),
        ],
    );
    let ready = ancm.wait_stderr("ready", crate::support::is_ready_line);
    assert!(ready.contains(&format!("{}/shop/", ancm.url)), "{ready}");
    let echo: serde_json::Value = ancm.get("/shop/echo").json().expect("json");
    assert_eq!(echo["env"]["ASPNETCORE_APPL_PATH"], "/shop");
    assert_eq!(echo["path"], "/shop/echo");
    assert_eq!(ancm.get("/elsewhere").status(), 404);

    ancm.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0));
    assert!(ancm
        .stdout()
        .iter()
        .any(|l| l.contains("shutdown message received")));
}

/// A processPath that is not there stops `ancm run` and `ancm smoke` at once (exit 2) with
/// the message `ancm check` gives, instead of a start retried for ever.
#[test]
fn a_missing_program_stops_run_and_smoke_at_start() {
    let app = AppDir::new(r#"processPath=".\bin\MyApp.exe""#, &[]);
    let dir = app.path().to_str().expect("utf-8");
    let check = Command::new(ancm_bin())
        .args(["check", dir])
        .output()
        .expect("run ancm check");
    let message = String::from_utf8_lossy(&check.stderr).into_owned();
    assert_eq!(check.status.code(), Some(2), "{message}");
    assert!(
        message.contains(r#"processPath ".\bin\MyApp.exe" cannot be found: there is no file"#)
            && message.contains("/bin/MyApp.exe"),
        "{message}"
    );
    let (code, stderr) = run_expecting_failure(&[dir]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr, message, "the same message as ancm check");
    let smoke = Command::new(ancm_bin())
        .args(["smoke", dir, "--timeout", "5"])
        .output()
        .expect("run ancm smoke");
    assert_eq!(smoke.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&smoke.stderr), message);
}

/// web.config changed to a program that is not there: the old process keeps serving, and
/// ancm says why, in the words `ancm check` uses.
#[test]
fn a_change_to_a_missing_program_keeps_the_old_process() {
    let app = AppDir::new("", &[]);
    let ancm = Ancm::run_app(&app, &[]);
    let (pid, _) = ancm.wait_ready();
    let config = std::fs::read_to_string(app.path().join("web.config")).expect("read");
    let config = config.replacen(
        &format!("processPath=\"{}\"", sampleapp().display()),
        r#"processPath=".\NoSuchApp.exe""#,
        1,
    );
    std::fs::write(app.path().join("web.config"), config).expect("write");
    let line = ancm.wait_stderr("the refused change", |l| {
        l.contains("keeps running as it was")
    });
    assert!(
        line.contains(r#"processPath ".\NoSuchApp.exe" cannot be found: there is no file"#),
        "{line}"
    );
    assert_eq!(
        ancm.get("/pid").text().expect("still served"),
        pid.to_string()
    );
}

/// A service configures ancm without a long command line: every flag has an ANCM_* variable
/// (here --env-file and --processes), and --env-file's KEY=VALUE lines, in systemd's
/// EnvironmentFile syntax, reach the app over web.config's; --env wins over both.
#[test]
fn ancm_variables_and_an_env_file_configure_ancm_and_the_app() {
    let app = AppDir::new(
        "",
        &[
            ("SAMPLE_VAR", "from web.config"),
            ("ASPNETCORE_ENVIRONMENT", "Staging"),
        ],
    );
    let file = app.path().join("app.env");
    std::fs::write(
        &file,
        "# service settings\nSAMPLE_VAR=\"from the file\"\nSAMPLE_VAR2='kept $AS_IS'\nASPNETCORE_ENVIRONMENT=Production\n",
    )
    .expect("write the env file");
    let mut command = Command::new(ancm_bin());
    command
        .env("ANCM_LOG", "info")
        .env("ANCM_ENV_FILE", &file)
        .env("ANCM_PROCESSES", "2");
    let ancm = Ancm::run_with(
        command,
        &[
            app.path().to_str().expect("utf-8"),
            "--env",
            "ASPNETCORE_ENVIRONMENT=Development",
        ],
    );
    ancm.wait_ready();
    let echo: serde_json::Value = ancm.get("/echo").json().expect("echo");
    assert_eq!(echo["env"]["SAMPLE_VAR"], "from the file");
    assert_eq!(echo["env"]["SAMPLE_VAR2"], "kept $AS_IS");
    assert_eq!(echo["env"]["ASPNETCORE_ENVIRONMENT"], "Development");
    // ANCM_PROCESSES=2: two app processes become ready.
    ancm.wait_stderr_count("two ready processes", 2, crate::support::is_ready_line);

    // A bad line is named by file and line.
    std::fs::write(&file, "GOOD=1\nno equals sign\n").expect("write");
    let output = Command::new(ancm_bin())
        .args(["check", "--env-file"])
        .arg(&file)
        .arg(app.path())
        .output()
        .expect("check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "--env-file: line \"{}:2\" is not valid",
            file.display()
        )),
        "{stderr}"
    );
}

/// A web.config of 180 KB whose environment variable repeats a long `%VARIABLE%`: it would
/// expand to hundreds of megabytes. It is refused before that, naming the line, the variable
/// and the limit, by `ancm check` and by a running ancm, whose app keeps serving.
#[test]
fn an_expansion_past_its_limit_is_refused_and_the_old_process_keeps_serving() {
    let long = "x".repeat(8192);
    let app = AppDir::new("", &[]);
    let web_config = app.path().join("web.config");
    let good = std::fs::read_to_string(&web_config).expect("read");
    let hostile = good.replacen(
        "<environmentVariables>\n",
        &format!(
            "<environmentVariables>\n          <environmentVariable name=\"HOSTILE\" value=\"{}\" />\n",
            "%ANCM_TEST_LONG%".repeat(180 * 1024 / 16)
        ),
        1,
    );
    let line = good
        .lines()
        .position(|l| l.contains("<environmentVariables>"))
        .expect("the collection")
        + 2;
    let named = |text: &str| {
        text.contains(&format!("web.config:{line}:"))
            && text.contains(r#"<environmentVariable name="HOSTILE"> value"#)
            && text.contains("128 KiB")
    };

    let mut command = Command::new(ancm_bin());
    command.env("ANCM_LOG", "info").env("ANCM_TEST_LONG", &long);
    let ancm = Ancm::run_app_with(command, &app, &[]);
    let (pid, _) = ancm.wait_ready();
    std::fs::write(&web_config, &hostile).expect("write");
    let refused = ancm.wait_stderr("the refused change", |l| {
        l.contains("keeps running as it was")
    });
    assert!(named(&refused), "{refused}");
    assert_eq!(
        ancm.get("/pid").text().expect("still served"),
        pid.to_string()
    );

    let check = Command::new(ancm_bin())
        .arg("check")
        .arg(app.path())
        .env("ANCM_TEST_LONG", &long)
        .output()
        .expect("run ancm check");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{stderr}");
    assert!(named(&stderr), "{stderr}");
}
