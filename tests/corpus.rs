//! Conformance over real-world web.configs: `ancm check --json` on every file in
//! tests/fixtures/webconfig/ (see SOURCES.md there for where each comes from), against a verdict
//! written by reading the file and the ANCM specification, not by recording ancm's output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::ancm_bin;

/// What Visual Studio-style tooling would put in %LAUNCHER_PATH% / %LAUNCHER_ARGS%. The path is
/// relative (so it resolves against the app folder) and the arguments need C-runtime splitting
/// (quotes, a quoted space).
const LAUNCHER_FLAGS: &[&str] = &[
    "--launcher-path",
    "bin/App.exe",
    "--launcher-args",
    r#"--urls "http://127.0.0.1:5000" --name "My App""#,
];

/// The command [`LAUNCHER_FLAGS`] must give.
const LAUNCHED: &[&str] = &[
    "{dir}/bin/App.exe",
    "--urls",
    "http://127.0.0.1:5000",
    "--name",
    "My App",
];

/// A fixed HOME, because 007, 058 and 059 expand `%home%` (Azure App Service's log folder).
const HOME: &str = "/srv/home";

/// A fixed PATH, so nothing depends on what the runner has installed.
const PATH: &str = "/usr/bin:/bin";

/// The message part every %LAUNCHER_PATH% error must have: the placeholder and the flag to set.
const NEEDS_LAUNCHER: &[&str] = &["%LAUNCHER_PATH%", "--launcher-path"];

/// The warning every hostingModel="inprocess" file must get.
const INPROCESS_WARNING: &str = "out-of-process";

/// One run of `ancm check --json FILE ARGS...` and the verdict it must give.
struct Check {
    /// The fixture's number, e.g. "001".
    file: &'static str,
    /// What this run varies, shown when it fails.
    label: &'static str,
    args: &'static [&'static str],
    /// Added to the run's environment (which otherwise holds only PATH and HOME).
    env: &'static [(&'static str, &'static str)],
    /// Leave HOME out of the environment.
    no_home: bool,
    expect: Expect,
}

enum Expect {
    Valid(Valid),
    /// Exit status 2 and `{"error": ...}` containing every substring; when `lines` is not
    /// empty the message must start with `<file>:<line>:<col>:` naming one of those lines.
    Error {
        contains: &'static [&'static str],
        lines: &'static [u64],
    },
}

/// Exit status 0 and these values. Paths may use `{dir}` for the fixture folder.
struct Valid {
    command: &'static [&'static str],
    hosting_model: &'static str,
    startup_time_limit: u64,
    shutdown_time_limit: u64,
    request_timeout: u64,
    stdout_log_enabled: bool,
    /// The absolute log prefix; `{any}` where the run does not decide it.
    stdout_log_file: &'static str,
    forward_windows_auth_token: bool,
    /// Exactly the `<environmentVariables>` of the file.
    environment: &'static [(&'static str, &'static str)],
    handler_settings: usize,
    /// Substrings that must each appear in some warning.
    warnings: Vec<&'static str>,
}

/// A valid verdict with ANCM's defaults (spec §1.2): startupTimeLimit 120, shutdownTimeLimit
/// 10, requestTimeout 00:02:00, stdoutLogFile `.\aspnetcore-stdout`, forwardWindowsAuthToken
/// true, out-of-process.
fn valid(command: &'static [&'static str]) -> Valid {
    Valid {
        command,
        hosting_model: "outofprocess",
        startup_time_limit: 120,
        shutdown_time_limit: 10,
        request_timeout: 120,
        stdout_log_enabled: false,
        stdout_log_file: "{dir}/aspnetcore-stdout",
        forward_windows_auth_token: true,
        environment: &[],
        handler_settings: 0,
        warnings: Vec::new(),
    }
}

impl Valid {
    /// hostingModel="inprocess" in any case: ancm runs it out-of-process and must say so.
    fn inprocess(mut self) -> Self {
        self.hosting_model = "inprocess";
        self.warnings.push(INPROCESS_WARNING);
        self
    }

    fn log_file(mut self, prefix: &'static str) -> Self {
        self.stdout_log_file = prefix;
        self
    }

    fn log_enabled(mut self) -> Self {
        self.stdout_log_enabled = true;
        self
    }

    fn no_auth_token(mut self) -> Self {
        self.forward_windows_auth_token = false;
        self
    }

    fn startup(mut self, seconds: u64) -> Self {
        self.startup_time_limit = seconds;
        self
    }

    fn shutdown(mut self, seconds: u64) -> Self {
        self.shutdown_time_limit = seconds;
        self
    }

    fn request_timeout(mut self, seconds: u64) -> Self {
        self.request_timeout = seconds;
        self
    }

    fn env(mut self, vars: &'static [(&'static str, &'static str)]) -> Self {
        self.environment = vars;
        self
    }

    fn handler_settings(mut self, count: usize) -> Self {
        self.handler_settings = count;
        self
    }

    fn warning(mut self, substring: &'static str) -> Self {
        self.warnings.push(substring);
        self
    }
}

fn check(file: &'static str, expect: Expect) -> Check {
    Check {
        file,
        label: "as is",
        args: &[],
        env: &[],
        no_home: false,
        expect,
    }
}

fn ok(file: &'static str, expect: Valid) -> Check {
    check(file, Expect::Valid(expect))
}

fn error(file: &'static str, contains: &'static [&'static str], lines: &'static [u64]) -> Check {
    check(file, Expect::Error { contains, lines })
}

/// A file with `processPath="%LAUNCHER_PATH%"`: without a launcher it is an error at the
/// `<aspNetCore>` element (`lines`); with [`LAUNCHER_FLAGS`] it is `expect`, whose command is
/// [`LAUNCHED`].
fn launcher(file: &'static str, lines: &'static [u64], expect: Valid) -> [Check; 2] {
    [
        error(file, NEEDS_LAUNCHER, lines),
        Check {
            label: "with --launcher-path/--launcher-args",
            args: LAUNCHER_FLAGS,
            ..ok(
                file,
                Valid {
                    command: LAUNCHED,
                    ..expect
                },
            )
        },
    ]
}

const ENV_PRODUCTION: &[(&str, &str)] = &[("ASPNETCORE_ENVIRONMENT", "Production")];
const ENV_DEVELOPMENT: &[(&str, &str)] = &[("ASPNETCORE_ENVIRONMENT", "Development")];
const NO_ASPNETCORE: &[&str] = &["no <aspNetCore> element"];
const NO_PROCESS_PATH: &[&str] = &["<aspNetCore> has no processPath"];
const MALFORMED: &[&str] = &["not well-formed XML"];

/// The verdict for every fixture, from reading it. Comments say what decides the verdict.
fn table() -> Vec<Check> {
    let mut t = Vec::new();
    // Framework-dependent publish output: `dotnet .\App.dll`; the argument becomes ./App.dll.
    t.push(ok(
        "001",
        valid(&["dotnet", "./DSCC_CW1_5591.dll"])
            .inprocess()
            .log_file("{dir}/logs/stdout"),
    ));
    t.extend(launcher(
        "002",
        &[12],
        valid(LAUNCHED)
            .no_auth_token()
            .log_file("{dir}/logs/stdout"),
    ));
    // The second <system.webServer> outside <location> has no aspNetCore: one element applies.
    t.push(ok(
        "003",
        valid(&["dotnet", "./WebApplication1.dll"]).log_file("{dir}/logs/stdout"),
    ));
    t.push(ok(
        "004",
        valid(&["dotnet", "./PROJ_1.dll"])
            .inprocess()
            .log_file("{dir}/logs/stdout"),
    ));
    // A Linux-style apphost name: no .exe to strip; ".Api" is part of the name.
    t.push(ok(
        "005",
        valid(&["{dir}/FriendsOfTime.Api"])
            .inprocess()
            .log_file("{dir}/logs/stdout"),
    ));
    // .\Api.exe: no ./Api in the fixture folder, so the .exe path is kept.
    t.push(ok(
        "006",
        valid(&["{dir}/Api.exe"])
            .inprocess()
            .log_enabled()
            .log_file("{dir}/logs/stdout")
            .env(ENV_PRODUCTION),
    ));
    // %home% is HOME (Windows names are case-insensitive); the \\?\ long-path prefix means
    // nothing on Unix.
    t.push(ok(
        "007",
        valid(&["dotnet", "./Server/PSTNServerApp.dll"])
            .inprocess()
            .log_file("/srv/home/LogFiles/stdout"),
    ));
    // The stdout log is off, so an unexpandable %home% in its path cannot make the file invalid.
    t.push(Check {
        label: "without HOME",
        no_home: true,
        ..ok(
            "007",
            valid(&["dotnet", "./Server/PSTNServerApp.dll"])
                .inprocess()
                .log_file("{any}"),
        )
    });
    t.push(ok(
        "008",
        valid(&["dotnet", "./Server/PSTNServerApp.dll"]).log_file("{dir}/logs/stdout"),
    ));
    // The only aspNetCore is inside a comment.
    t.push(error("009", NO_ASPNETCORE, &[]));
    t.push(ok(
        "010",
        valid(&["{dir}/ARandomString.exe"])
            .inprocess()
            .log_file("{dir}/logs/stdout"),
    ));
    t.push(ok(
        "011",
        valid(&["dotnet", "./StageursApp.dll"])
            .inprocess()
            .log_file("{dir}/logs/stdout")
            .env(ENV_PRODUCTION),
    ));
    // stdoutLogEnabled without stdoutLogFile: the default prefix .\aspnetcore-stdout.
    t.extend(launcher(
        "012",
        &[8],
        valid(LAUNCHED)
            .inprocess()
            .no_auth_token()
            .log_enabled()
            .request_timeout(300)
            .env(&[
                ("ASPNETCORE_HTTPS_PORT", "7005"),
                ("COMPLUS_ForceENC", "1"),
                ("ASPNETCORE_ENVIRONMENT", "Development"),
            ])
            .handler_settings(2),
    ));
    // An XDT transform: its <aspNetCore> (in a <location> without path, which applies) only
    // patches environment variables and has no processPath.
    t.push(error("013", NO_PROCESS_PATH, &[5]));
    // Only %LAUNCHER_ARGS% is used; processPath is the bare name Saber.exe, which (not being in
    // the app folder) ANCM leaves to the OS search, as it does dotnet.exe.
    t.push(error("014", &["%LAUNCHER_ARGS%", "--launcher-args"], &[8]));
    t.push(Check {
        label: "with --launcher-path/--launcher-args",
        args: LAUNCHER_FLAGS,
        ..ok(
            "014",
            valid(&[
                "Saber",
                "--urls",
                "http://127.0.0.1:5000",
                "--name",
                "My App",
            ])
            .inprocess()
            .no_auth_token()
            .log_enabled()
            .request_timeout(300)
            .env(&[("ASPNETCORE_ENVIRONMENT", "Development"), ("RESTART", "0")])
            .handler_settings(2),
        )
    });
    t.extend(launcher(
        "015",
        &[8],
        valid(LAUNCHED)
            .no_auth_token()
            .log_enabled()
            .request_timeout(300)
            .env(&[
                ("ASPNETCORE_HTTPS_PORT", "7070"),
                ("COMPLUS_ForceENC", "1"),
                ("ASPNETCORE_ENVIRONMENT", "Development"),
            ])
            .handler_settings(2),
    ));
    t.extend(launcher("016", &[7], valid(LAUNCHED).no_auth_token()));
    // An XDT transform that only inserts environment variables.
    t.push(error("017", NO_PROCESS_PATH, &[5]));
    t.extend(launcher(
        "018",
        &[7],
        valid(LAUNCHED)
            .inprocess()
            .no_auth_token()
            .log_file("{dir}/logs/stdout"),
    ));
    t.push(ok(
        "019",
        valid(&["dotnet", "./LectorXML.API.dll"])
            .inprocess()
            .log_file("{dir}/logs/stdout"),
    ));
    t.extend(launcher(
        "020",
        &[7],
        valid(LAUNCHED)
            .inprocess()
            .log_enabled()
            .log_file("{dir}/logs/stdout")
            .env(ENV_PRODUCTION),
    ));
    t.push(ok(
        "021",
        valid(&["dotnet", "./ApostasApp.Core.Web.dll"])
            .log_enabled()
            .log_file("{dir}/logs/stdout"),
    ));
    t.push(ok(
        "022",
        valid(&["dotnet", "./lkWeb.dll"]).log_file("{dir}/logs/stdout"),
    ));
    // A stray "b" before <?xml: text before the root element.
    t.push(error("023", MALFORMED, &[1]));
    t.push(ok(
        "024",
        valid(&["dotnet", "./Server.dll"])
            .inprocess()
            .log_enabled()
            .log_file("{dir}/logs/stdout"),
    ));
    // An argument without .\ is left as written.
    t.push(ok(
        "025",
        valid(&["dotnet", "Giraffe_HTMX.dll"]).log_file("{dir}/logs/stdout"),
    ));
    t.push(ok(
        "026",
        valid(&["dotnet", "./SinDarElaVerwaltung.Server.dll"])
            .no_auth_token()
            .log_enabled()
            .log_file("{dir}/radzen"),
    ));
    // Commented-out aspNetCore; the active <system.webServer> has none.
    t.push(error("027", NO_ASPNETCORE, &[]));
    t.push(ok(
        "028",
        valid(&["{dir}/VBApi.exe"]).log_file("{dir}/logs/stdout"),
    ));
    // Every backslash of a nested relative argument becomes a slash.
    t.push(ok(
        "029",
        valid(&["dotnet", "./bin/Debug/net7.0/Squidex.dll"])
            .inprocess()
            .log_enabled()
            .log_file("{dir}/logs/stdout"),
    ));
    // A relative path with folders (no .\) is relative to the app folder; arguments="" adds
    // nothing.
    t.push(ok(
        "030",
        valid(&["{dir}/bin/Debug/net5.0/Squidex.exe"]).inprocess(),
    ));
    // stdoutLogFile is a Windows drive path (C:\\Logs\...) with the log on: it cannot be
    // honoured on Unix, and ANCM treats an unusable log file as a warning, never a failure
    // (spec §3.8), so: valid, with a warning about stdoutLogFile.
    let [unset, launched] = launcher(
        "031",
        &[7],
        valid(LAUNCHED)
            .no_auth_token()
            .log_enabled()
            .log_file("{any}")
            .warning("stdoutLogFile"),
    );
    t.push(unset);
    // A drive-letter stdoutLogFile cannot be honoured on Unix; the log must not silently land
    // in a folder named C: inside the app.
    t.push(launched);
    t.push(ok(
        "032",
        valid(&["dotnet", "./ExchangeApiService.dll"]).log_file("{dir}/logs/stdout"),
    ));
    // The extra iisnode handler is no concern of ANCM's.
    t.push(ok(
        "033",
        valid(&["dotnet", "Server.dll"])
            .no_auth_token()
            .log_file("{dir}/logs/stdout"),
    ));
    t.push(ok(
        "034",
        valid(&["dotnet", "./TeleportServer.dll"])
            .inprocess()
            .log_file("{dir}/logs/stdout")
            .env(ENV_PRODUCTION),
    ));
    t.extend(launcher(
        "035",
        &[10],
        valid(LAUNCHED)
            .inprocess()
            .log_file("{dir}/logs/stdout")
            .env(&[
                ("ASPNETCORE_HTTPS_PORT", "44388"),
                ("ASPNETCORE_ENVIRONMENT", "Development"),
                ("COMPLUS_ForceENC", "1"),
            ]),
    ));
    t.push(ok(
        "036",
        valid(&["dotnet", "./starterpack.dll"]).log_file("{dir}/logs/stdout"),
    ));
    t.extend(launcher(
        "037",
        &[7],
        valid(LAUNCHED)
            .no_auth_token()
            .log_file("{dir}/logs/stdout")
            .env(ENV_DEVELOPMENT),
    ));
    t.extend(launcher(
        "038",
        &[7],
        valid(LAUNCHED).inprocess().no_auth_token(),
    ));
    // A server-level (HostableWebCore) config, not a web.config: its one <aspNetCore> sits
    // directly under system.webServer, so it applies; the <section name="aspNetCore">
    // declaration and the commented <location> are not elements that count.
    t.extend(launcher(
        "039",
        &[194],
        valid(LAUNCHED).inprocess().log_file("{dir}/logs/stdout"),
    ));
    // Whitespace-only element body.
    t.extend(launcher(
        "040",
        &[7],
        valid(LAUNCHED).inprocess().log_file("{dir}/logs/stdout"),
    ));
    t.push(ok(
        "041",
        valid(&["dotnet", "WebApplication2.dll"])
            .inprocess()
            .env(ENV_DEVELOPMENT),
    ));
    // Two more aspNetCore elements, both inside comments: only the active one counts.
    t.extend(launcher(
        "042",
        &[11],
        valid(LAUNCHED)
            .no_auth_token()
            .log_file("{dir}/logs/stdout"),
    ));
    t.extend(launcher(
        "043",
        &[7],
        valid(LAUNCHED).log_file("{dir}/logs/stdout"),
    ));
    // The same, with the launcher given as the LAUNCHER_PATH/LAUNCHER_ARGS variables the tools
    // set, as `dotnet exec` with a quoted path.
    t.push(Check {
        label: "with LAUNCHER_PATH/LAUNCHER_ARGS in the environment",
        env: &[
            ("LAUNCHER_PATH", "dotnet"),
            ("LAUNCHER_ARGS", r#"exec "bin/Debug/net8.0/My App.dll""#),
        ],
        ..ok(
            "043",
            valid(&["dotnet", "exec", "bin/Debug/net8.0/My App.dll"]).log_file("{dir}/logs/stdout"),
        )
    });
    // 23:00:00 = 82800 s; an empty <environmentVariables />.
    t.extend(launcher(
        "044",
        &[10],
        valid(LAUNCHED)
            .no_auth_token()
            .log_file("{dir}/logs/stdout")
            .startup(3600)
            .request_timeout(82800),
    ));
    // The configured map as written. (ancm run then overwrites ASPNETCORE_IIS_HTTPAUTH, as
    // ANCM does; check's output cannot show that.)
    t.extend(launcher(
        "045",
        &[7],
        valid(LAUNCHED)
            .inprocess()
            .no_auth_token()
            .log_enabled()
            .log_file("{dir}/logs/stdout")
            .env(&[
                ("ASPNETCORE_INPROCESS_TESTING_VALUE", "foobar"),
                ("ASPNETCORE_INPROCESS_TESTING_LONG_VALUE", LONG_VALUE),
                ("ProgramFiles", "foobarbaz"),
                ("ASPNETCORE_IIS_HTTPAUTH", "shouldberemoved"),
            ]),
    ));
    t.push(ok(
        "046",
        valid(&["{dir}/RazorWebSite.exe"])
            .no_auth_token()
            .log_file("{dir}/logs/stdout"),
    ));
    // Paths into the parent folder (the RC2 wwwroot layout); aspNetCore before handlers.
    t.push(ok(
        "047",
        valid(&["{dir}/../ServerComparison.TestSites.exe"])
            .log_file("{dir}/../logs/stdout.log")
            .startup(3600),
    ));
    // %DNX_PATH%/%DNX_ARGS% are set by nothing today. IIS would leave them unexpanded and ANCM
    // would then fail to start the process (502.5); ancm's check must say so up front, naming
    // the variable, as it does for %LAUNCHER_PATH%.
    t.push(error("048", &["%DNX_PATH%"], &[7]));
    t.push(Check {
        label: "with DNX_PATH/DNX_ARGS set",
        env: &[
            ("DNX_PATH", "/opt/dnx/bin/dnx"),
            ("DNX_ARGS", "--appbase . Microsoft.AspNet.Server.Kestrel"),
        ],
        ..ok(
            "048",
            valid(&[
                "/opt/dnx/bin/dnx",
                "--appbase",
                ".",
                "Microsoft.AspNet.Server.Kestrel",
            ])
            .startup(3600),
        )
    });
    t.push(ok(
        "049",
        valid(&["{dir}/../MusicStore.exe"])
            .log_enabled()
            .log_file("{dir}/../logs/stdout.log"),
    ));
    // The handler's name ("hello") does not matter to ANCM.
    t.push(ok(
        "050",
        valid(&[
            "{dir}/bin/IISSupport/VSIISExeLauncher.exe",
            "-argFile",
            "IISExeLauncherArgs.txt",
        ])
        .no_auth_token(),
    ));
    t.extend(launcher(
        "051",
        &[7],
        valid(LAUNCHED).shutdown(5).log_file("{dir}/logs/stdout"),
    ));
    // A custom variable in processPath: unset, the same kind of error as 048; set, it expands
    // and the rest of the Windows path becomes a Unix one.
    t.push(error("052", &["%AspNetCoreModuleTest%"], &[10]));
    t.push(Check {
        label: "with AspNetCoreModuleTest set",
        env: &[("AspNetCoreModuleTest", "/opt/ancm-test")],
        ..ok(
            "052",
            valid(&[
                "/opt/ancm-test/dotnet/websocketecho.exe",
                "AutobahnTestApp.dll",
            ])
            .no_auth_token()
            .log_file("{dir}/logs/stdout"),
        )
    });
    // Empty values are values.
    t.extend(launcher(
        "053",
        &[7],
        valid(LAUNCHED)
            .inprocess()
            .no_auth_token()
            .log_file("{dir}/logs/stdout")
            .startup(3600)
            .request_timeout(82800)
            .env(&[
                ("ASPNETCORE_INPROCESS_STARTUP_VALUE", ""),
                ("ASPNETCORE_INPROCESS_RANDOM_VALUE", ""),
            ]),
    ));
    t.extend(launcher(
        "054",
        &[7],
        valid(LAUNCHED)
            .inprocess()
            .no_auth_token()
            .log_file("{dir}/logs/stdout")
            .startup(3600)
            .request_timeout(82800)
            .env(&[
                ("COMPLUS_ForceENC", "1"),
                ("ASPNETCORE_ENVIRONMENT", "Development"),
            ]),
    ));
    t.extend(launcher(
        "055",
        &[7],
        valid(LAUNCHED)
            .inprocess()
            .no_auth_token()
            .log_file("{dir}/logs/stdout")
            .env(&[
                ("COMPLUS_ForceENC", "1"),
                ("ASPNETCORE_ENVIRONMENT", "Development"),
            ]),
    ));
    // The commented-out line said inprocess; the active one has no hostingModel.
    t.push(ok(
        "056",
        valid(&["{dir}/TransferrableSkillsToolAPI.exe"]).log_file("{dir}/logs/stdout"),
    ));
    // The first merge-conflict marker is where the XML breaks.
    t.push(error("057", MALFORMED, &[135]));
    t.extend(launcher(
        "058",
        &[12],
        valid(LAUNCHED)
            .inprocess()
            .no_auth_token()
            .log_file("/srv/home/LogFiles/stdout"),
    ));
    t.extend(launcher(
        "059",
        &[12],
        valid(LAUNCHED)
            .no_auth_token()
            .log_file("/srv/home/LogFiles/stdout")
            .startup(3600)
            .request_timeout(82800),
    ));
    // configSections and a custom <aws> section outside system.webServer are not ANCM's.
    t.extend(launcher("060", &[10], valid(LAUNCHED).no_auth_token()));
    t.extend(launcher(
        "061",
        &[13],
        valid(LAUNCHED)
            .inprocess()
            .log_file("{dir}/logs/stdout")
            .env(&[
                ("ASPNETCORE_ENVIRONMENT", "Development"),
                ("COMPLUS_ForceENC", "1"),
            ]),
    ));
    t.extend(launcher(
        "062",
        &[7],
        valid(LAUNCHED)
            .inprocess()
            .log_file("{dir}/logs/stdout")
            .env(&[
                ("ASPNETCORE_ENVIRONMENT", "Production"),
                ("COMPLUS_ForceENC", "1"),
            ]),
    ));
    t.push(ok(
        "063",
        valid(&["{dir}/bin/Debug/net8.0/Server.exe"])
            .inprocess()
            .env(ENV_DEVELOPMENT),
    ));
    t.extend(launcher(
        "064",
        &[15],
        valid(LAUNCHED)
            .no_auth_token()
            .log_file("{dir}/logs/stdout"),
    ));
    t.push(ok(
        "065",
        valid(&["dotnet", "./AngusidoDotNetCore.dll"])
            .no_auth_token()
            .log_file("{dir}/logs/stdout"),
    ));
    t.push(error("066", NO_ASPNETCORE, &[]));
    t.push(error("067", NO_ASPNETCORE, &[]));
    t.push(ok(
        "068",
        valid(&["dotnet", "API.dll"]).log_file("{dir}/logs/stdout"),
    ));
    t.extend(launcher(
        "069",
        &[11],
        valid(LAUNCHED).inprocess().log_file("{dir}/logs/stdout"),
    ));
    // Attributes one per line: the element is on line 12, processPath on line 13; either
    // names the place.
    t.extend(launcher(
        "070",
        &[12, 13],
        valid(LAUNCHED)
            .no_auth_token()
            .log_file("{dir}/logs/stdout")
            .env(ENV_DEVELOPMENT),
    ));
    t.push(ok(
        "071",
        valid(&["dotnet", "./Server.dll"])
            .inprocess()
            .log_file("{dir}/logs/stdout"),
    ));
    t.extend(launcher(
        "072",
        &[17],
        valid(LAUNCHED)
            .inprocess()
            .no_auth_token()
            .log_file("{dir}/logs/stdout")
            .startup(3600)
            .request_timeout(82800),
    ));
    // A transform file that is also a complete config: the xdt: attributes are unknown
    // attributes (warnings), and everything ANCM needs is there.
    t.push(ok(
        "073",
        valid(&["dotnet", "./Walrus.Apart.Presentation.dll"])
            .inprocess()
            .log_file("{dir}/logs/stdout")
            .env(ENV_DEVELOPMENT),
    ));
    t.push(ok(
        "074",
        valid(&["dotnet", "./Walrus.Apart.Presentation.dll"])
            .inprocess()
            .log_file("{dir}/logs/stdout")
            .env(ENV_DEVELOPMENT),
    ));
    // A log prefix ending in a backslash is a folder: ANCM writes `W3SVC1\_<time>_<pid>.log`
    // in it, so the trailing separator must survive.
    t.push(ok(
        "075",
        valid(&["{dir}/rhino.compute.exe", "--port", "80"])
            .inprocess()
            .log_enabled()
            .log_file("{dir}/../../../../../logs/LogFiles/W3SVC1/"),
    ));
    t.push(ok(
        "076",
        valid(&["dotnet", "./Hyaena.Web.dll"])
            .inprocess()
            .log_file("{dir}/logs/stdout"),
    ));
    // A transform file with a complete aspNetCore element.
    t.push(ok(
        "077",
        valid(&["{dir}/api.exe"])
            .inprocess()
            .log_file("{dir}/logs/stdout"),
    ));
    t.extend(launcher(
        "078",
        &[10],
        valid(LAUNCHED)
            .inprocess()
            .no_auth_token()
            .log_enabled()
            .log_file("{dir}/logs/stdout")
            .startup(3600)
            .request_timeout(82800)
            .env(&[
                ("ASPNETCORE_HTTPS_PORT", "44388"),
                ("ASPNETCORE_ENVIRONMENT", "Development"),
            ]),
    ));
    t
}

/// 045's long value, as the file spells it (six repetitions).
const LONG_VALUE: &str = "AReallyLongValueThatIsGreaterThan300CharactersToForceResizeInNative\
AReallyLongValueThatIsGreaterThan300CharactersToForceResizeInNative\
AReallyLongValueThatIsGreaterThan300CharactersToForceResizeInNative\
AReallyLongValueThatIsGreaterThan300CharactersToForceResizeInNative\
AReallyLongValueThatIsGreaterThan300CharactersToForceResizeInNative\
AReallyLongValueThatIsGreaterThan300CharactersToForceResizeInNative";

fn fixtures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webconfig");
    dir.canonicalize().expect("the fixture folder exists")
}

/// Fixture names `NNN.config`, sorted.
fn fixture_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the fixture folder")
        .map(|e| {
            e.expect("read a fixture folder entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| {
            n.len() == "NNN.config".len()
                && n.ends_with(".config")
                && n[..3].bytes().all(|b| b.is_ascii_digit())
        })
        .collect();
    names.sort();
    names
}

/// Removes `.` and `..` lexically and doubled slashes, keeping a trailing slash: `{dir}/../x`
/// and `{parent}/x` name the same file, and which spelling ancm prints is not a behaviour.
fn normalize(path: &str) -> String {
    if !path.starts_with('/') {
        return path.to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if path.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

fn fill(template: &str, dir: &Path) -> String {
    normalize(&template.replace("{dir}", &dir.display().to_string()))
}

/// Runs the check with `path` as PATH; returns its mismatches, each one line.
fn run(check: &Check, dir: &Path, path: &str) -> Vec<String> {
    let web_config = dir.join(format!("{}.config", check.file));
    let mut command = Command::new(ancm_bin());
    // A clean environment: ANCM_LAUNCHER_*, LAUNCHER_* and ASPNETCORE_* of the runner would
    // change the verdicts.
    command
        .arg("check")
        .arg(&web_config)
        .arg("--json")
        .args(check.args)
        .env_clear()
        .env("PATH", path)
        .envs(check.env.iter().copied());
    if !check.no_home {
        command.env("HOME", HOME);
    }
    let output = command.output().expect("run ancm check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let code = output.status.code();
    let json: Value = match serde_json::from_str(stdout.trim()) {
        Ok(v) => v,
        Err(e) => {
            return vec![format!(
                "exit {code:?}, stdout is not one JSON object ({e}): {stdout:?}; stderr: {:?}",
                String::from_utf8_lossy(&output.stderr)
            )]
        }
    };
    let mut bad = Vec::new();
    match &check.expect {
        Expect::Valid(want) => {
            if code != Some(0) || json.get("error").is_some() {
                return vec![format!(
                    "expected valid (exit 0), got exit {code:?}: {}",
                    json.get("error").unwrap_or(&json)
                )];
            }
            compare_valid(want, &json, dir, &web_config, &mut bad);
        }
        Expect::Error { contains, lines } => {
            let Some(message) = json.get("error").and_then(Value::as_str) else {
                return vec![format!(
                    "expected an error containing {contains:?}, got exit {code:?} and {json}"
                )];
            };
            if code != Some(2) {
                bad.push(format!("exit {code:?}, expected 2"));
            }
            for part in *contains {
                if !message.contains(part) {
                    bad.push(format!("error lacks {part:?}: {message:?}"));
                }
            }
            if !lines.is_empty() {
                match location(message, &web_config) {
                    Some(line) if lines.contains(&line) => {}
                    Some(line) => bad.push(format!(
                        "error names line {line}, expected line {lines:?}: {message:?}"
                    )),
                    None => bad.push(format!(
                        "error does not start with <file>:<line>:<col>: (line {lines:?}): \
                         {message:?}"
                    )),
                }
            }
        }
    }
    bad
}

/// The line of a message that starts with `<web_config>:<line>:<col>:`.
fn location(message: &str, web_config: &Path) -> Option<u64> {
    let name = web_config.file_name()?.to_str()?;
    let (before, rest) = message.split_once(&format!("{name}:"))?;
    // Only the file itself may come before the line: a path ending in a slash, or nothing.
    if !before.is_empty()
        && normalize(before) != normalize(&format!("{}/", web_config.parent()?.display()))
    {
        return None;
    }
    let mut fields = rest.splitn(3, ':');
    let line = fields.next()?.parse().ok()?;
    let _column: u64 = fields.next()?.parse().ok()?;
    fields.next()?;
    Some(line)
}

fn compare_valid(want: &Valid, got: &Value, dir: &Path, web_config: &Path, bad: &mut Vec<String>) {
    let mut field = |key: &str, expected: Value| {
        let actual = got.get(key).cloned().unwrap_or(Value::Null);
        if actual != expected {
            bad.push(format!("{key}: expected {expected}, got {actual}"));
        }
    };
    field("hostingModel", want.hosting_model.into());
    field("startupTimeLimit", want.startup_time_limit.into());
    field("shutdownTimeLimit", want.shutdown_time_limit.into());
    field("requestTimeout", want.request_timeout.into());
    field("stdoutLogEnabled", want.stdout_log_enabled.into());
    field(
        "forwardWindowsAuthToken",
        want.forward_windows_auth_token.into(),
    );
    // No file in the corpus sets these, so they must be ANCM's defaults (spec §1.2).
    field("rapidFailsPerMinute", 10.into());
    field("processesPerApplication", 1.into());
    field("disableStartUpErrorPage", false.into());

    let command: Vec<String> = want
        .command
        .iter()
        .enumerate()
        // Only the program is a path to normalise; arguments are passed as written.
        .map(|(i, a)| {
            if i == 0 {
                fill(a, dir)
            } else {
                (*a).to_owned()
            }
        })
        .collect();
    let actual: Option<Vec<String>> = got.get("command").and_then(Value::as_array).map(|a| {
        a.iter()
            .enumerate()
            .map(|(i, v)| {
                let s = v.as_str().unwrap_or("<not a string>");
                if i == 0 {
                    normalize(s)
                } else {
                    s.to_owned()
                }
            })
            .collect()
    });
    if actual.as_ref() != Some(&command) {
        bad.push(format!(
            "command: expected {command:?}, got {}",
            got.get("command").unwrap_or(&Value::Null)
        ));
    }

    for (key, expected) in [
        ("workingDirectory", dir.display().to_string()),
        ("webConfig", web_config.display().to_string()),
        ("stdoutLogFile", want.stdout_log_file.to_owned()),
    ] {
        if expected == "{any}" {
            continue;
        }
        let actual = got.get(key).and_then(Value::as_str).map(normalize);
        if actual.as_deref() != Some(fill(&expected, dir).as_str()) {
            bad.push(format!(
                "{key}: expected {:?}, got {}",
                fill(&expected, dir),
                got.get(key).unwrap_or(&Value::Null)
            ));
        }
    }

    let expected_env: BTreeMap<String, String> = want
        .environment
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let actual_env: Option<BTreeMap<String, String>> = got
        .get("environmentVariables")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(n, v)| (n.clone(), v.as_str().unwrap_or("<not a string>").to_owned()))
                .collect()
        });
    if actual_env.as_ref() != Some(&expected_env) {
        bad.push(format!(
            "environmentVariables: expected {expected_env:?}, got {}",
            got.get("environmentVariables").unwrap_or(&Value::Null)
        ));
    }

    let settings = got
        .get("handlerSettings")
        .and_then(Value::as_object)
        .map(serde_json::Map::len);
    if settings != Some(want.handler_settings) {
        bad.push(format!(
            "handlerSettings: expected {} entries, got {}",
            want.handler_settings,
            got.get("handlerSettings").unwrap_or(&Value::Null)
        ));
    }

    let warnings: Vec<&str> = got
        .get("warnings")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for part in &want.warnings {
        if !warnings.iter().any(|w| w.contains(part)) {
            bad.push(format!(
                "no warning contains {part:?}; warnings: {warnings:?}"
            ));
        }
    }
}

/// A copy of the fixtures as deployed: each valid verdict's program exists, in the app folder
/// (or beside it) or, for a bare name such as `dotnet`, in a folder put first on PATH; `ancm
/// check` reports a program it cannot find as an error. Returns the copy's folder and PATH.
fn deployed(table: &[Check], root: &Path) -> (PathBuf, String) {
    let dir = root.join("site/webconfig");
    std::fs::create_dir_all(&dir).expect("create the copy");
    for entry in std::fs::read_dir(fixtures()).expect("read the fixture folder") {
        let entry = entry.expect("a fixture folder entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy a fixture");
    }
    let dir = dir.canonicalize().expect("the copy exists");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("create the PATH folder");
    for check in table {
        let Expect::Valid(valid) = &check.expect else {
            continue;
        };
        let program = fill(valid.command[0], &dir);
        let program = if Path::new(&program).is_absolute() {
            PathBuf::from(program)
        } else {
            bin.join(program)
        };
        if let Some(parent) = program.parent() {
            std::fs::create_dir_all(parent).expect("create the program's folder");
        }
        std::fs::write(&program, b"").expect("create the program");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
            .expect("make the program executable");
    }
    (dir, format!("{}:{PATH}", bin.display()))
}

#[test]
fn every_corpus_file_gets_its_verdict() {
    let root = tempfile::tempdir().expect("temp dir");
    let table = table();
    let (dir, path) = deployed(&table, root.path());
    let before = std::fs::read_dir(&dir)
        .expect("read the fixture folder")
        .count();
    let mut failures = Vec::new();
    for check in &table {
        let bad = run(check, &dir, &path);
        if !bad.is_empty() {
            failures.push(format!(
                "{}.config ({}):\n    {}",
                check.file,
                check.label,
                bad.join("\n    ")
            ));
        }
    }
    // `check` only reads: nothing may appear beside the fixtures (logs, debug files).
    let after = std::fs::read_dir(&dir)
        .expect("read the fixture folder")
        .count();
    if after != before {
        failures.push(format!(
            "ancm check wrote into {}: {before} entries before, {after} after",
            dir.display()
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus checks failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[test]
fn every_fixture_has_a_verdict() {
    let dir = fixtures();
    let files = fixture_files(&dir);
    assert!(!files.is_empty(), "no NNN.config in {}", dir.display());
    let table = table();
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !table.iter().any(|c| format!("{}.config", c.file) == **f))
        .collect();
    let stale: Vec<&str> = table
        .iter()
        .map(|c| c.file)
        .filter(|n| !files.contains(&format!("{n}.config")))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "fixtures without a verdict: {missing:?}; verdicts without a fixture: {stale:?}"
    );
    // SOURCES.md attributes every file: each must have its row.
    let sources =
        std::fs::read_to_string(dir.join("SOURCES.md")).expect("read the fixtures' SOURCES.md");
    let unattributed: Vec<&String> = files
        .iter()
        .filter(|f| !sources.contains(&format!("| {} |", &f[..3])))
        .collect();
    assert!(
        unattributed.is_empty(),
        "fixtures without a row in SOURCES.md: {unattributed:?}"
    );
}
