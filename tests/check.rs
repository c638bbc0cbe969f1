use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{ancm_bin, fake_programs, path_with, Ancm, AppDir, DEADLINE};

/// `ancm check ARGS...` with a clean launcher environment, on a machine where the programs
/// these tests name are installed.
fn check(args: &[&str], env: &[(&str, &str)]) -> Output {
    let programs = fake_programs(&["dotnet", "node", "app", "x", "child-app"]);
    let mut command = Command::new(ancm_bin());
    command
        .arg("check")
        .args(args)
        .env("PATH", path_with(programs.path()));
    for name in [
        "ANCM_LAUNCHER_PATH",
        "ANCM_LAUNCHER_ARGS",
        "LAUNCHER_PATH",
        "LAUNCHER_ARGS",
        "ANCM_PREFER_ENVIRONMENT_VARIABLES",
        "ASPNETCORE_MODULE_DEBUG",
        "ASPNETCORE_MODULE_DEBUG_FILE",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("run ancm check")
}

fn check_json(
    dir: &AppDir,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, serde_json::Value) {
    let mut all = vec![dir.path().to_str().expect("utf-8"), "--json"];
    all.extend_from_slice(args);
    let output = check(&all, env);
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not JSON ({err}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code(), json)
}

#[test]
fn json_reports_every_attribute_after_defaults_and_expansion() {
    let dir = AppDir::with_web_config(
        r#"<?xml version="1.0" encoding="utf-8"?>
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <location path="" inheritInChildApplications="false">
    <system.webServer>
      <!-- a comment -->
      <aspNetCore processPath="dotnet" arguments="exec &quot;%ANCM_TEST_DIR%\My App.dll&quot; --name &quot;a \&quot;b\&quot;&quot; &amp; &#x41;"
                  startupTimeLimit="30" shutdownTimeLimit="5" rapidFailsPerMinute="3"
                  requestTimeout="1.00:00:00" stdoutLogEnabled="TRUE" stdoutLogFile="%ANCM_TEST_DIR%\logs\out"
                  hostingModel="InProcess" processesPerApplication="1" forwardWindowsAuthToken="false"
                  disableStartUpErrorPage="true" xdt:Transform="SetAttributes" futureAttribute="x">
        <environmentVariables>
          <environmentVariable name="DROPPED" value="1" />
          <clear />
          <environmentVariable name="Sample_Var" value="first" />
          <environmentVariable name="SAMPLE_VAR" value="from %ANCM_TEST_DIR%" />
        </environmentVariables>
        <handlerSettings>
          <handlerSetting name="stackSize" value="2097152" />
          <handlerSetting name="ForwardResponseConnectionHeader" value="true" />
        </handlerSettings>
        <![CDATA[ ignored text ]]>
      </aspNetCore>
    </system.webServer>
  </location>
</configuration>"#,
    );
    let (code, json) = check_json(&dir, &[], &[("ANCM_TEST_DIR", "/opt/app")]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["processPath"], "dotnet");
    assert_eq!(
        json["command"],
        serde_json::json!([
            "dotnet",
            "exec",
            r"/opt/app\My App.dll",
            "--name",
            r#"a "b""#,
            "&",
            "A"
        ])
    );
    assert_eq!(json["startupTimeLimit"], 30);
    assert_eq!(json["shutdownTimeLimit"], 5);
    assert_eq!(json["rapidFailsPerMinute"], 3);
    assert_eq!(json["requestTimeout"], 86_400);
    assert_eq!(json["stdoutLogEnabled"], true);
    assert!(json["stdoutLogFile"]
        .as_str()
        .expect("path")
        .ends_with("/opt/app/logs/out"));
    assert_eq!(json["hostingModel"], "inprocess");
    assert_eq!(json["processesPerApplication"], 1);
    assert_eq!(json["forwardWindowsAuthToken"], false);
    assert_eq!(json["disableStartUpErrorPage"], true);
    assert_eq!(
        json["environmentVariables"],
        serde_json::json!({"SAMPLE_VAR": "from /opt/app"})
    );
    assert_eq!(
        json["handlerSettings"],
        serde_json::json!({"stackSize": "2097152", "ForwardResponseConnectionHeader": "true"})
    );
    let workdir = std::fs::canonicalize(dir.path()).expect("dir");
    assert_eq!(json["workingDirectory"], workdir.to_str().expect("utf-8"));
    let warnings: Vec<&str> = json["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    let warned = |needle: &str| warnings.iter().any(|w| w.contains(needle));
    assert!(
        warned("out-of-process"),
        "inprocess is run out-of-process: {warnings:?}"
    );
    assert!(
        warned("futureAttribute"),
        "unknown attributes warn: {warnings:?}"
    );
    assert!(
        warned("stackSize applies only to in-process"),
        "{warnings:?}"
    );
    assert!(
        !warned("Transform"),
        "xdt: attributes are not web.config's: {warnings:?}"
    );
}

#[test]
fn defaults_text_output_and_help() {
    let dir = AppDir::with_web_config(
        "<configuration><system.webServer><aspNetCore processPath=\"dotnet\" arguments=\".\\App.dll\"/></system.webServer></configuration>",
    );
    let (code, json) = check_json(&dir, &[], &[]);
    assert_eq!(code, Some(0));
    assert_eq!(json["command"], serde_json::json!(["dotnet", "./App.dll"]));
    for (key, value) in [
        ("startupTimeLimit", serde_json::json!(120)),
        ("shutdownTimeLimit", serde_json::json!(10)),
        ("rapidFailsPerMinute", serde_json::json!(10)),
        ("requestTimeout", serde_json::json!(120)),
        ("stdoutLogEnabled", serde_json::json!(false)),
        ("hostingModel", serde_json::json!("outofprocess")),
        ("processesPerApplication", serde_json::json!(1)),
        ("forwardWindowsAuthToken", serde_json::json!(true)),
        ("disableStartUpErrorPage", serde_json::json!(false)),
    ] {
        assert_eq!(json[key], value, "{key}");
    }
    let warnings = json["warnings"].as_array().expect("warnings");
    assert!(
        warnings.len() == 1
            && warnings[0]
                .as_str()
                .is_some_and(|w| w.starts_with("forwardWindowsAuthToken is true (the default)")),
        "only the Windows authentication warning: {warnings:?}"
    );
    assert!(json["stdoutLogFile"]
        .as_str()
        .expect("path")
        .ends_with("/aspnetcore-stdout"));

    let text = check(&[dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(text.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("command                  dotnet \"./App.dll\""),
        "{stdout}"
    );
    assert!(stdout.ends_with("valid\n"), "{stdout}");

    let help = Command::new(ancm_bin())
        .args(["check", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Examples:") && help.contains("ancm check --json"),
        "{help}"
    );
}

#[test]
fn flags_override_web_config_as_in_run() {
    let dir = AppDir::new(
        r#"startupTimeLimit="60" requestTimeout="00:05:00""#,
        &[("SAMPLE_VAR", "file")],
    );
    let (code, json) = check_json(
        &dir,
        &[
            "--startup-time-limit",
            "5",
            "--request-timeout",
            "90s",
            "--env",
            "sample_var=flag",
            "--process-path",
            "node",
            "--arguments",
            "server.js --port %ASPNETCORE_PORT%",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["startupTimeLimit"], 5);
    assert_eq!(json["requestTimeout"], 90);
    assert_eq!(
        json["environmentVariables"],
        serde_json::json!({"sample_var": "flag"})
    );
    assert_eq!(
        json["command"],
        serde_json::json!(["node", "server.js", "--port", "%ASPNETCORE_PORT%"])
    );
}

#[test]
fn request_limits_iis_defaults_web_config_and_the_flag() {
    let defaults = AppDir::new("", &[]);
    let (code, json) = check_json(&defaults, &[], &[]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["maxAllowedContentLength"], 30_000_000);
    assert_eq!(json["maxUrl"], 4096);
    assert_eq!(json["maxQueryString"], 2048);
    let text = check(&[defaults.path().to_str().expect("utf-8")], &[]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    for line in [
        "maxAllowedContentLength  30000000 bytes",
        "maxUrl                   4096 bytes",
        "maxQueryString           2048 bytes",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }

    let limited = AppDir::with_web_config(
        r#"<configuration>
  <location path="." inheritInChildApplications="false">
    <system.webServer>
      <aspNetCore processPath="dotnet" arguments=".\App.dll" forwardWindowsAuthToken="false" />
      <security>
        <requestFiltering>
          <requestLimits maxAllowedContentLength="2147483648" maxUrl="260" maxQueryString="65536" />
        </requestFiltering>
      </security>
    </system.webServer>
  </location>
</configuration>"#,
    );
    let (code, json) = check_json(&limited, &[], &[]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["maxAllowedContentLength"], 2_147_483_648_u64);
    assert_eq!(json["maxUrl"], 260);
    assert_eq!(json["maxQueryString"], 65536);
    assert_eq!(json["warnings"], serde_json::json!([]));

    let (code, json) = check_json(&limited, &["--max-request-body", "1048576"], &[]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["maxAllowedContentLength"], 1_048_576);
    assert_eq!(json["maxUrl"], 260, "the flag changes only the body limit");

    let (code, json) = check_json(&limited, &["--max-request-body", "0"], &[]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["maxAllowedContentLength"], serde_json::Value::Null);
    let text = check(
        &[
            limited.path().to_str().expect("utf-8"),
            "--max-request-body",
            "0",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("maxAllowedContentLength  none (--max-request-body 0)"),
        "{stdout}"
    );
}

#[test]
fn forward_windows_auth_token_warns_until_it_is_false() {
    let warnings_for = |attributes: &str| -> Vec<String> {
        let dir = AppDir::new(attributes, &[]);
        let (code, json) = check_json(&dir, &[], &[]);
        assert_eq!(code, Some(0), "{json}");
        json["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .filter_map(|w| w.as_str().map(str::to_owned))
            .filter(|w| w.contains("forwardWindowsAuthToken"))
            .collect()
    };
    let default = warnings_for("");
    assert_eq!(default.len(), 1, "{default:?}");
    for part in [
        "forwardWindowsAuthToken is true (the default)",
        "cannot forward a Windows identity",
        "ASPNETCORE_IIS_HTTPAUTH=anonymous;",
        "forwardWindowsAuthToken=\"false\"",
    ] {
        assert!(default[0].contains(part), "{part}: {default:?}");
    }
    let explicit = warnings_for(r#"forwardWindowsAuthToken="true""#);
    assert_eq!(explicit.len(), 1, "{explicit:?}");
    assert!(
        explicit[0].contains("web.config:5:") && !explicit[0].contains("(the default)"),
        "an explicit true points at the attribute: {explicit:?}"
    );
    assert_eq!(
        warnings_for(r#"forwardWindowsAuthToken="False""#),
        Vec::<String>::new()
    );

    // Without a web.config there is no IIS setting to lose.
    let bare = tempfile::tempdir().expect("dir");
    let output = check(
        &[
            "--json",
            bare.path().to_str().expect("utf-8"),
            "--",
            "node",
            "app.js",
        ],
        &[],
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json["warnings"], serde_json::json!([]), "{json}");
}

#[test]
fn invalid_values_exit_2_with_file_line_attribute_value_and_range() {
    for (attribute, allowed) in [
        (r#"requestTimeout="00:60:00""#, "minutes and seconds 0-59"),
        (r#"shutdownTimeLimit="601""#, "from 0 to 600"),
        (r#"processesPerApplication="0""#, "from 1 to 100"),
        (r#"stdoutLogEnabled="yes""#, "true or false"),
        (r#"hostingModel="sideways""#, "inprocess or outofprocess"),
    ] {
        let dir = AppDir::with_web_config(&format!(
            "<configuration>\n <system.webServer>\n  <aspNetCore processPath=\"x\" {attribute} />\n </system.webServer>\n</configuration>\n"
        ));
        let (code, json) = check_json(&dir, &[], &[]);
        assert_eq!(code, Some(2), "{attribute}: {json}");
        let message = json["error"].as_str().expect("error");
        let (name, value) = attribute.split_once('=').expect("attribute");
        assert!(message.contains("web.config:3:"), "{message}");
        assert!(
            message.contains(name) && message.contains(value),
            "{message}"
        );
        assert!(message.contains(allowed), "{message}");
    }
}

#[test]
fn launcher_variables() {
    let dir = AppDir::with_web_config(
        r#"<configuration><system.webServer><aspNetCore processPath="%LAUNCHER_PATH%" arguments="%LAUNCHER_ARGS%" /></system.webServer></configuration>"#,
    );
    let (code, json) = check_json(&dir, &[], &[]);
    assert_eq!(code, Some(2));
    let message = json["error"].as_str().expect("error");
    assert!(
        message.contains("%LAUNCHER_PATH%") && message.contains("--launcher-path"),
        "{message}"
    );

    std::fs::create_dir(dir.path().join("bin")).expect("mkdir");
    std::fs::write(dir.path().join("bin/App"), b"").expect("the app");
    let (code, json) = check_json(
        &dir,
        &[
            "--launcher-path",
            "bin/App",
            "--launcher-args",
            "--urls \"a b\"",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["command"][1], "--urls");
    assert_eq!(json["command"][2], "a b");

    let (code, json) = check_json(
        &dir,
        &[],
        &[("LAUNCHER_PATH", "dotnet"), ("LAUNCHER_ARGS", "App.dll")],
    );
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["command"], serde_json::json!(["dotnet", "App.dll"]));

    // ANCM_LAUNCHER_PATH/ARGS replace whatever web.config says (spec §1.4).
    let (code, json) = check_json(
        &dir,
        &[],
        &[
            ("ANCM_LAUNCHER_PATH", "node"),
            ("ANCM_LAUNCHER_ARGS", "server.js"),
        ],
    );
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["command"], serde_json::json!(["node", "server.js"]));
}

#[test]
fn prefer_environment_variables() {
    let dir = AppDir::new("", &[("SAMPLE_VAR", "from web.config"), ("OTHER", "kept")]);
    let (_, json) = check_json(&dir, &[], &[("SAMPLE_VAR", "from ancm")]);
    assert_eq!(
        json["environmentVariables"]["SAMPLE_VAR"],
        "from web.config"
    );
    for on in ["true", "1"] {
        let (_, json) = check_json(
            &dir,
            &[],
            &[
                ("SAMPLE_VAR", "from ancm"),
                ("ANCM_PREFER_ENVIRONMENT_VARIABLES", on),
            ],
        );
        assert_eq!(json["environmentVariables"]["SAMPLE_VAR"], "from ancm");
        assert_eq!(json["environmentVariables"]["OTHER"], "kept");
    }
}

#[test]
fn encodings_and_locations() {
    let text = r#"<?xml version="1.0" encoding="utf-16"?>
<configuration>
  <location path="child"><system.webServer><aspNetCore processPath="child-app" /></system.webServer></location>
  <location path="."><system.webServer><aspNetCore processPath="app" /></system.webServer></location>
</configuration>"#;
    let dir = tempfile::tempdir().expect("dir");
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(dir.path().join("web.config"), utf16).expect("write");
    let output = check(&["--json", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json["command"], serde_json::json!(["app"]));

    let only_child = AppDir::with_web_config(
        r#"<configuration><location path="child"><system.webServer><aspNetCore processPath="x" /></system.webServer></location></configuration>"#,
    );
    let (code, json) = check_json(&only_child, &[], &[]);
    assert_eq!(code, Some(2));
    assert!(json["error"]
        .as_str()
        .expect("error")
        .contains("no <aspNetCore> element"));

    let transform = AppDir::with_web_config(
        r#"<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"><location><system.webServer><aspNetCore><environmentVariables><environmentVariable name="A" value="1" xdt:Transform="Replace" xdt:Locator="Match(name)" /></environmentVariables></aspNetCore></system.webServer></location></configuration>"#,
    );
    let (code, json) = check_json(&transform, &[], &[]);
    assert_eq!(code, Some(2));
    assert!(
        json["error"]
            .as_str()
            .expect("error")
            .contains("XDT transform"),
        "{json}"
    );
}

#[test]
fn handler_settings_change_what_run_does() {
    // enableOutOfProcessConsoleRedirection=false: nothing captured, no stdout log.
    let dir = AppDir::new(
        r#"stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[("SAMPLEAPP_PRINT_AT_START", "3")],
    );
    let config = std::fs::read_to_string(dir.path().join("web.config")).expect("read");
    let config = config.replace(
        "</environmentVariables>",
        "</environmentVariables>\n        <handlerSettings>\n          <handlerSetting name=\"enableOutOfProcessConsoleRedirection\" value=\"False\" />\n          <handlerSetting name=\"forwardResponseConnectionHeader\" value=\"true\" />\n          <handlerSetting name=\"debugFile\" value=\".\\diag\\ancm.log\" />\n          <handlerSetting name=\"debugLevel\" value=\"FILE,TRACE\" />\n        </handlerSettings>",
    );
    std::fs::write(dir.path().join("web.config"), config).expect("write");
    let mut ancm = Ancm::run_app(&dir, &[]);
    ancm.wait_ready();
    let response = ancm.get("/headers");
    assert_eq!(
        response.headers()["connection"],
        "x-custom-hop",
        "forwardResponseConnectionHeader"
    );
    ancm.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(ancm.wait_exit().code(), Some(0));
    assert!(
        !ancm.stdout().iter().any(|l| l.starts_with("[app ")),
        "no app output without redirection: {:?}",
        ancm.stdout()
    );
    assert!(
        !dir.path().join("logs").exists(),
        "no stdout log without redirection"
    );
    assert!(ancm
        .stderr()
        .iter()
        .any(|l| l.contains("no stdout log is written")));
    let diag =
        std::fs::read_to_string(dir.path().join("diag/ancm.log")).expect("debugFile written");
    assert!(diag.contains("started the app"), "{diag}");
    assert!(
        diag.contains("the app listens"),
        "TRACE level reaches the file: {diag}"
    );
}

#[test]
fn debug_level_console_and_disabled_error_page() {
    let dir = AppDir::new(
        r#"disableStartUpErrorPage="true" rapidFailsPerMinute="100""#,
        &[("SAMPLEAPP_EXIT_AT_START", "3")],
    );
    let config = std::fs::read_to_string(dir.path().join("web.config")).expect("read");
    let config = config.replace(
        "</environmentVariables>",
        "</environmentVariables>\n        <handlerSettings><handlerSetting name=\"debugLevel\" value=\"CONSOLE,TRACE\" /></handlerSettings>",
    );
    std::fs::write(dir.path().join("web.config"), config).expect("write");
    let mut command = Command::new(ancm_bin());
    command.env_remove("ANCM_LOG");
    let ancm = Ancm::run_app_with(command, &dir, &[]);
    let response = ancm.get("/");
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.text().expect("body"),
        "",
        "disableStartUpErrorPage: status only"
    );
    drop(ancm);

    // CONSOLE,TRACE shows ancm's debug lines on the console.
    let ok = AppDir::new("", &[]);
    let config = std::fs::read_to_string(ok.path().join("web.config")).expect("read").replace(
        "</environmentVariables>",
        "</environmentVariables>\n        <handlerSettings><handlerSetting name=\"debugLevel\" value=\"CONSOLE,TRACE\" /></handlerSettings>",
    );
    std::fs::write(ok.path().join("web.config"), config).expect("write");
    let mut command = Command::new(ancm_bin());
    command.env_remove("ANCM_LOG");
    let ancm = Ancm::run_app_with(command, &ok, &[]);
    ancm.wait_stderr("a debug line", |l| l.contains("the app listens"));
}

/// processPath not found: exit 2, saying where ancm looked (the app folder, each PATH folder).
#[test]
fn a_missing_program_says_where_it_was_looked_for() {
    let dir = AppDir::with_web_config(
        "<configuration>\n <system.webServer>\n  <aspNetCore processPath=\"dotnet\" arguments=\"App.dll\" />\n </system.webServer>\n</configuration>\n",
    );
    let empty = tempfile::tempdir().expect("dir");
    let path = empty.path().to_str().expect("utf-8");
    let (code, json) = check_json(&dir, &[], &[("PATH", path)]);
    assert_eq!(code, Some(2), "{json}");
    let message = json["error"].as_str().expect("error");
    let app = std::fs::canonicalize(dir.path()).expect("dir");
    assert!(
        message.starts_with(&format!("{}:3:", app.join("web.config").display()))
            && message.contains(r#"processPath "dotnet" cannot be found"#)
            && message.contains(&format!("not in the app folder ({})", app.display()))
            && message.contains(&format!("nor in any folder on PATH ({path})")),
        "{message}"
    );
    let error = &json["errors"][0];
    assert_eq!(error["attribute"], "processPath", "{json}");
    assert_eq!(error["value"], "dotnet", "{json}");

    // The same for the command after `--`.
    let output = check(
        &[
            dir.path().to_str().expect("utf-8"),
            "--",
            "no-such-program-here",
            "x",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(r#"program "no-such-program-here" cannot be found"#),
        "{stderr}"
    );
}

/// Every bad value is reported, each with where it is, in text and in JSON.
#[test]
fn every_error_is_reported() {
    let dir = AppDir::with_web_config(
        "<configuration>\n <system.webServer>\n  <aspNetCore processPath=\"dotnet\" startupTimeLimit=\"5000\"\n    shutdownTimeLimit=\"soon\">\n   <environmentVariables><environmentVariable name=\"\" value=\"1\" /></environmentVariables>\n  </aspNetCore>\n </system.webServer>\n</configuration>\n",
    );
    let (code, json) = check_json(&dir, &["--processes", "0"], &[]);
    assert_eq!(code, Some(2), "{json}");
    let errors = json["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 4, "{json}");
    assert_eq!(json["error"], errors[0]["message"], "the first, as before");
    let find = |attribute: &str| {
        errors
            .iter()
            .find(|e| e["attribute"] == attribute)
            .unwrap_or_else(|| panic!("no error for {attribute}: {json}"))
    };
    let startup = find("startupTimeLimit");
    assert_eq!(startup["line"], 3);
    assert!(startup["column"].as_u64().is_some(), "{startup}");
    assert_eq!(startup["value"], "5000");
    assert!(startup["allowed"]
        .as_str()
        .expect("allowed")
        .contains("0 to 3600"));
    assert!(startup["file"]
        .as_str()
        .expect("file")
        .ends_with("web.config"));
    assert_eq!(find("shutdownTimeLimit")["line"], 4);
    assert_eq!(find("<environmentVariable> attribute name")["line"], 5);
    let flag = find("--processes");
    assert_eq!(
        (flag["value"].as_str(), flag["file"].as_str()),
        (Some("0"), None)
    );

    let text = check(
        &[dir.path().to_str().expect("utf-8"), "--processes", "0"],
        &[],
    );
    assert_eq!(text.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&text.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "one line per error: {stderr}");
    assert!(
        lines.iter().all(|l| l.starts_with("ancm: error: ")),
        "{stderr}"
    );
}

/// An unknown attribute a typo away from a known one gets a suggestion.
#[test]
fn a_misspelt_attribute_gets_a_suggestion() {
    let dir = AppDir::with_web_config(
        r#"<configuration><system.webServer><aspNetCore processPath="dotnet" startupTimelimit="5" stdoutLogEnable="true" shutdownLimit="1" colour="blue" /></system.webServer></configuration>"#,
    );
    let (code, json) = check_json(&dir, &[], &[]);
    assert_eq!(code, Some(0), "{json}");
    let warnings: Vec<&str> = json["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    let warning = |name: &str| {
        warnings
            .iter()
            .find(|w| w.contains(&format!("unknown attribute {name}=")))
            .copied()
            .unwrap_or_else(|| panic!("{name}: {warnings:?}"))
    };
    assert!(
        warning("startupTimelimit").ends_with(r#"did you mean "startupTimeLimit"?"#),
        "{warnings:?}"
    );
    assert!(
        warning("stdoutLogEnable").ends_with(r#"did you mean "stdoutLogEnabled"?"#),
        "{warnings:?}"
    );
    assert!(!warning("colour").contains("did you mean"), "{warnings:?}");
    assert!(
        !warning("shutdownLimit").contains("did you mean"),
        "{warnings:?}"
    );

    let typo = AppDir::with_web_config(
        r#"<configuration><system.webServer><aspNetCore proccessPath="dotnet" /></system.webServer></configuration>"#,
    );
    let (code, json) = check_json(&typo, &[], &[]);
    assert_eq!(code, Some(2), "{json}");
    let text = check(&[typo.path().to_str().expect("utf-8")], &[]);
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.contains("has no processPath"), "{stderr}");
}

/// `ancm check --json DIR`, failing the test if it does not finish within [`DEADLINE`]: the
/// caps and the linear parse keep even a hostile web.config quick to check.
fn check_json_within_deadline(dir: &AppDir) -> (Option<i32>, serde_json::Value) {
    let programs = fake_programs(&["x"]);
    let mut child = Command::new(ancm_bin())
        .args(["check", "--json"])
        .arg(dir.path())
        .env("PATH", path_with(programs.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ancm check");
    let mut stdout = child.stdout.take().expect("stdout");
    // Read while it runs: a JSON report larger than a pipe would otherwise stall it.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).map(|_| out)
    });
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for ancm check") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("ancm check did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = reader.join().expect("reader").expect("read stdout");
    let json = serde_json::from_slice(&out).expect("stdout is JSON");
    (status.code(), json)
}

/// Writes web.config with `<aspNetCore processPath="x">`, `inner` repeated (numbered through
/// `{i}`) until the file is about 1 MB, and the closing tags.
fn megabyte_web_config(inner_open: &str, entry: &str, inner_close: &str) -> (AppDir, usize) {
    let mut text =
        format!("<configuration><system.webServer><aspNetCore processPath=\"x\">{inner_open}\n");
    let mut count = 0;
    while text.len() < 1 << 20 {
        text.push_str(&entry.replace("{i}", &count.to_string()));
        text.push('\n');
        count += 1;
    }
    text.push_str(&format!(
        "{inner_close}</aspNetCore></system.webServer></configuration>\n"
    ));
    (AppDir::with_web_config(&text), count)
}

/// A 1 MB web.config of environment variables or handler settings is read in full, and one
/// that goes over a cap is refused at once with where and what.
#[test]
fn a_megabyte_web_config_is_checked_quickly() {
    let (dir, count) = megabyte_web_config(
        "<environmentVariables>",
        r#"<environmentVariable name="VAR_{i}" value="v{i}" /><environmentVariable name="var_{i}" value="w{i}" />"#,
        "</environmentVariables>",
    );
    let (code, json) = check_json_within_deadline(&dir);
    assert_eq!(code, Some(0), "{}", json["error"]);
    let environment = json["environmentVariables"]
        .as_object()
        .expect("environmentVariables");
    assert_eq!(environment.len(), count);
    assert_eq!(environment["var_7"], "w7");
    assert!(!environment.contains_key("VAR_7"));

    let (dir, count) = megabyte_web_config(
        "<handlerSettings>",
        r#"<handlerSetting name="setting{i}" value="{i}" />"#,
        "</handlerSettings>",
    );
    let (code, json) = check_json_within_deadline(&dir);
    assert_eq!(code, Some(0), "{}", json["error"]);
    let unknown = json["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter(|w| {
            w.as_str()
                .is_some_and(|w| w.starts_with("unknown handlerSetting"))
        })
        .count();
    assert_eq!(unknown, count);

    let (dir, _) = megabyte_web_config("", r#"<x a="{i}"/>"#, "");
    let (code, json) = check_json_within_deadline(&dir);
    assert_eq!(code, Some(2), "{json}");
    let error = json["error"].as_str().expect("error");
    assert!(
        error.contains("web.config:") && error.contains("more than 50000 elements"),
        "{error}"
    );

    let mut text = String::from("<configuration><system.webServer><aspNetCore processPath=\"x\"");
    while text.len() < 1 << 20 {
        text.push_str(&format!(" a{}=\"\"", text.len()));
    }
    text.push_str(" /></system.webServer></configuration>");
    let (code, json) = check_json_within_deadline(&AppDir::with_web_config(&text));
    assert_eq!(code, Some(2), "{json}");
    let error = json["error"].as_str().expect("error");
    assert!(
        error.contains("web.config:1:34: <aspNetCore> has more than 100 attributes"),
        "{error}"
    );
}

/// `ancm check` says which flags were set and where from: the command line or the ANCM_*
/// variable standing for the flag.
#[test]
fn check_shows_where_each_flag_came_from() {
    let app = crate::support::AppDir::new("", &[]);
    let output = std::process::Command::new(crate::support::ancm_bin())
        .args(["check", "--json", "--startup-time-limit", "30"])
        .arg(app.path())
        .env("ANCM_PROCESSES", "2")
        .output()
        .expect("check");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json["processesPerApplication"], 2);
    assert_eq!(json["flags"]["--processes"], "ANCM_PROCESSES");
    assert_eq!(json["flags"]["--startup-time-limit"], "command line");
    assert!(json["flags"].get("--listen").is_none(), "{}", json["flags"]);
}
