// The reference native-module client (examples/native-module/client.c), built with the system
// C compiler and run against `ancm helper` and the sample app, as a web-server module would run
// it: the protocol as documented works for a thin client in C, without a JSON library.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::native_client::{check_exchange, run_client};
use crate::support::{alive, ancm_bin, sampleapp, wait_all_gone, AppDir};

/// Compiles client.c into `dir` with `$CC` (default `cc`), as strictly as the README says.
fn compile_client(dir: &Path) -> PathBuf {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    // CC may carry a wrapper or flags ("ccache gcc").
    let mut words = cc.split_whitespace();
    let program = words.next().unwrap_or("cc");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/native-module/client.c");
    let exe = dir.join("client");
    let output = Command::new(program)
        .args(words)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror"])
        .arg("-D_POSIX_C_SOURCE=200809L")
        .arg("-o")
        .arg(&exe)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler `{cc}`: {e}. This test needs one: install cc \
                 (CI does) or point CC at one"
            )
        });
    assert!(
        output.status.success(),
        "`{cc}` could not compile {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

#[test]
fn the_c_client_starts_recycles_and_stops_the_app_through_the_helper_leaving_nothing_behind() {
    let build = tempfile::tempdir().expect("dir for the client");
    let client = compile_client(build.path());
    let app = AppDir::new("", &[]);

    let mut command = Command::new(&client);
    command
        .arg(ancm_bin())
        .arg(app.path())
        .arg(sampleapp())
        .env("ANCM_LOG", "info");
    let (status, out, err) = run_client(command);

    let pids = check_exchange(status, &out, &err);
    wait_all_gone(&pids);
    assert!(
        pids.iter().all(|&pid| !alive(pid)),
        "the app was stopped with the helper"
    );
}
