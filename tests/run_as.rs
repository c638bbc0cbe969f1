use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{ancm_bin, eventually_ok, sampleapp, Ancm};

/// The unprivileged user the app runs as, or `None` (the test is skipped) when ancm cannot
/// change user because the tests do not run as root.
fn nobody() -> Option<nix::unistd::User> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: --user needs ancm to run as root");
        return None;
    }
    Some(
        nix::unistd::User::from_name("nobody")
            .expect("the user database")
            .expect("a user named nobody"),
    )
}

/// An app folder with a copy of the sample app and a web.config whose `<aspNetCore>` has
/// `attributes` and `<handlerSettings>` has `settings`; `owner` owns the folder (root's and
/// 0755 otherwise).
fn app_dir(
    owner: Option<&nix::unistd::User>,
    attributes: &str,
    settings: &[(&str, &str)],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.path(), open.clone()).expect("chmod");
    let program = dir.path().join("sampleapp");
    std::fs::copy(sampleapp(), &program).expect("copy the sample app");
    std::fs::set_permissions(&program, open).expect("chmod");
    let settings: String = settings
        .iter()
        .map(|(n, v)| format!(r#"<handlerSetting name="{n}" value="{v}"/>"#))
        .collect();
    std::fs::write(
        dir.path().join("web.config"),
        format!(
            r#"<configuration><system.webServer><aspNetCore processPath="{}" {attributes}><handlerSettings>{settings}</handlerSettings></aspNetCore></system.webServer></configuration>"#,
            program.display()
        ),
    )
    .expect("write web.config");
    if let Some(user) = owner {
        give(dir.path(), user);
    }
    dir
}

fn give(path: &Path, user: &nix::unistd::User) {
    nix::unistd::chown(path, Some(user.uid), Some(user.gid)).expect("chown");
}

/// A folder only root may enter, holding `secret`, a file only root may read: what the app's
/// user must not reach through ancm.
fn root_only() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "root's own\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    (dir, secret)
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8")
}

/// The UTC stamp ANCM's stdout log names carry: yyyyMMddHHmmss.
fn stamp(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .expect("a time")
        .format(time::macros::format_description!(
            "[year][month][day][hour][minute][second]"
        ))
        .expect("format")
}

/// The attack: the app's user plants symlinks where the next stdout log files will be named
/// (its folder is the app's), pointing at a file only root may write, and has the app restart.
/// The new log is opened as the app's user and never through a symlink: the root file stays as
/// it was, and ancm says it could not create the log.
#[test]
fn user_stdout_log_never_follows_a_planted_symlink() {
    let Some(nobody) = nobody() else { return };
    let (_root, secret) = root_only();
    let app = app_dir(
        Some(&nobody),
        r#"stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[],
    );
    let logs = app.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    give(&logs, &nobody);
    let ancm = Ancm::run(&[arg(app.path()), "--user", "nobody"]);
    let (pid, _) = ancm.wait_ready();

    // stdout_<yyyyMMddHHmmss>_<ancm's pid>.log, for each second from the next on.
    let first = time::OffsetDateTime::now_utc().unix_timestamp() + 1;
    for second in first..first + 120 {
        let name = format!("stdout_{}_{}.log", stamp(second), ancm.pid());
        std::os::unix::fs::symlink(&secret, logs.join(name)).expect("plant a symlink");
    }
    // A clock wait, not a wait on ancm: the restart must fall in a second with a symlink.
    while time::OffsetDateTime::now_utc().unix_timestamp() < first {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = ancm.get("/crash");
    ancm.wait_ready_after(pid);
    assert_eq!(ancm.get("/print?n=3").status(), 200);
    ancm.wait_stdout("the app's output", |l| l.contains("print 3 of 3"));

    kept_and_warned(&ancm, &secret, "could not create the stdout log", &logs);
}

/// web.config names a stdout log in a folder only root may write: ancm does not create it
/// there (nor the folder), says so naming the path, and the app runs.
#[test]
fn user_stdout_log_is_not_created_where_the_app_user_cannot_write() {
    let Some(_) = nobody() else { return };
    let (root, _) = root_only();
    let prefix = root.path().join("made").join("stdout");
    let app = app_dir(
        None,
        &format!(
            r#"stdoutLogEnabled="true" stdoutLogFile="{}""#,
            prefix.display()
        ),
        &[],
    );
    let ancm = Ancm::run(&[arg(app.path()), "--user", "nobody"]);
    let (pid, _) = ancm.wait_ready();
    let warning = ancm.wait_stderr("the stdout log's warning", |l| {
        l.contains("could not create the stdout log")
    });
    assert!(warning.contains(arg(&prefix)), "{warning}");
    assert!(
        !root.path().join("made").exists(),
        "root made a folder the app's web.config named"
    );
    assert_eq!(ancm.get("/pid").text().expect("pid"), pid.to_string());
    // The folder and web.config are root's: nothing to warn about.
    assert_eq!(
        ancm.count_stderr(|l| l.contains("can change the app's web.config")),
        0,
        "{:?}",
        ancm.stderr()
    );
}

/// The diagnostic log (debugFile) is the app's to name too: a symlink there to a root-only
/// file is not followed, and ancm goes on without the file, naming it.
#[test]
fn user_debug_file_is_opened_as_the_app_user() {
    let Some(nobody) = nobody() else { return };
    let (_root, secret) = root_only();
    let app = app_dir(
        Some(&nobody),
        "",
        &[("debugFile", r".\debug.log"), ("debugLevel", "FILE,TRACE")],
    );
    let debug = app.path().join("debug.log");
    std::os::unix::fs::symlink(&secret, &debug).expect("plant a symlink");
    let ancm = Ancm::run(&[arg(app.path()), "--user", "nobody"]);
    ancm.wait_ready();
    kept_and_warned(&ancm, &secret, "cannot write the diagnostic log", &debug);
}

/// The app's user owns the app folder, so it can rewrite web.config: ancm says so at start.
#[test]
fn user_warns_when_the_app_user_can_change_web_config() {
    let Some(nobody) = nobody() else { return };
    let app = app_dir(Some(&nobody), "", &[]);
    let ancm = Ancm::run(&[arg(app.path()), "--user", "nobody"]);
    let warning = ancm.wait_stderr("the web.config warning", |l| {
        l.contains("can change the app's web.config")
    });
    assert!(
        warning.contains(arg(&app.path().join("web.config"))),
        "{warning}"
    );
    ancm.wait_ready();
}

/// The root-only file behind the app's symlink still holds only root's text, and ancm warned
/// with `warning`, naming `path`.
fn kept_and_warned(ancm: &Ancm, secret: &Path, warning: &str, path: &Path) {
    assert_eq!(
        std::fs::read_to_string(secret).expect("read"),
        "root's own\n",
        "root wrote through a symlink the app planted"
    );
    let line = ancm.wait_stderr(warning, |l| l.contains(warning));
    assert!(line.contains(arg(path)), "{line}");
}

/// An app folder (readable by all) whose app reports what it inherited (tests/apps/inherited.py).
fn inherited_app() -> tempfile::TempDir {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/inherited.py");
    let app = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(app.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        app.path().join("web.config"),
        format!(
            r#"<configuration><system.webServer><aspNetCore processPath="python3" arguments="-u {script}"/></system.webServer></configuration>"#
        ),
    )
    .expect("write web.config");
    app
}

/// What the inherited app under `ancm` reports, once it is ready.
fn inherited(ancm: &Ancm) -> serde_json::Value {
    ancm.wait_ready();
    eventually_ok("the report", || {
        let body = ancm.get("/").text().expect("the report");
        serde_json::from_str(&body).map_err(|_| format!("no report: {body}"))
    })
}

/// Under --user the app gets no descriptor ancm inherited (here one open on a root-only file)
/// and none of ancm's own ANCM_* settings.
#[test]
fn user_app_inherits_no_descriptor_or_ancm_setting() {
    let Some(_) = nobody() else { return };
    let (_root, secret) = root_only();
    let app = inherited_app();
    // ancm started with descriptor 7 open (not close-on-exec) on the root-only file.
    let mut command = Command::new("sh");
    command
        .args(["-c", r#"exec "$0" "$@" 7<"$SECRET""#])
        .arg(ancm_bin())
        .env("SECRET", &secret)
        .env("ANCM_LOG", "info")
        .env("ANCM_NO_SUCH_SETTING", "ancm's alone");
    let ancm = Ancm::run_with(command, &[arg(app.path()), "--user", "nobody"]);
    let report = inherited(&ancm);
    assert_eq!(report["ancm"], serde_json::json!([]), "{report}");
    assert_eq!(report["fds"], serde_json::json!({}), "{report}");
}

/// The app's user swaps its log folder for a symlink to a root-only folder holding files named
/// like old stdout logs, then has the log rotate: the deletion of old logs (and the new file)
/// happen as the app's user, so nothing of root's is deleted or created.
#[test]
fn user_stdout_log_rotation_deletes_nothing_of_roots() {
    let Some(nobody) = nobody() else { return };
    let (root, _) = root_only();
    let old: Vec<PathBuf> = (1..=3)
        .map(|pid| root.path().join(format!("stdout_20000101000000_{pid}.log")))
        .collect();
    for file in &old {
        std::fs::write(file, "root's\n").expect("write");
    }
    let app = app_dir(
        Some(&nobody),
        r#"stdoutLogEnabled="true" stdoutLogFile=".\logs\stdout""#,
        &[],
    );
    let logs = app.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    give(&logs, &nobody);
    let ancm = Ancm::run(&[
        arg(app.path()),
        "--user",
        "nobody",
        "--stdout-log-max-size",
        "1K",
        "--stdout-log-keep",
        "2",
    ]);
    ancm.wait_ready();
    std::fs::rename(&logs, app.path().join("logs.before")).expect("rename");
    std::os::unix::fs::symlink(root.path(), &logs).expect("plant a symlink");

    let cannot = |l: &str| l.contains("cannot start a new stdout log file");
    eventually_ok("the stdout log's refusal", || {
        if ancm.count_stderr(cannot) > 0 {
            return Ok(());
        }
        let left: Vec<&PathBuf> = old.iter().filter(|f| f.exists()).collect();
        assert_eq!(left.len(), old.len(), "root's files were deleted: {left:?}");
        assert_eq!(ancm.get("/print?n=40").status(), 200);
        Err(format!("{:?}", ancm.stderr()))
    });
    let left: Vec<&PathBuf> = old.iter().filter(|f| f.exists()).collect();
    assert_eq!(left.len(), old.len(), "root's files were deleted: {left:?}");
    let in_root: Vec<_> = std::fs::read_dir(root.path())
        .expect("read")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(in_root.len(), old.len() + 1, "{in_root:?}");
}

/// The admin listener's bearer token guards the operator's view of the app from the app: it
/// never reaches the app's environment, with `--user` or without.
#[test]
fn the_admin_token_never_reaches_the_app() {
    let app = inherited_app();
    let mut command = Command::new(ancm_bin());
    command
        .env("ANCM_LOG", "info")
        .env("ANCM_ADMIN_TOKEN", "s3cret-token");
    let ancm = Ancm::run_with(command, &[arg(app.path()), "--admin", "127.0.0.1:0"]);
    let report = inherited(&ancm);
    let names = report["ancm"].as_array().expect("names");
    assert!(!names.contains(&"ANCM_ADMIN_TOKEN".into()), "{report}");
    // ancm's other settings still reach an app of the same user, as before.
    assert!(names.contains(&"ANCM_LOG".into()), "{report}");
}
