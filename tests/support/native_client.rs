//! Running the reference native-module client (examples/native-module/client.c) and checking
//! what it printed: shared by the native_module tests and the Wine tests. Imports nothing from
//! a test module.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::DEADLINE;

/// The client gives up after 30 seconds by itself; this only catches a client that did not.
const CLIENT_DEADLINE: Duration = Duration::from_secs(45);

/// Everything a stream has produced so far, read on a thread, and whether it has closed.
pub fn collect(mut reader: impl Read + Send + 'static) -> Arc<Mutex<(Vec<u8>, bool)>> {
    let buffer = Arc::new(Mutex::new((Vec::new(), false)));
    let sink = buffer.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            let n = reader.read(&mut chunk).unwrap_or(0);
            let mut buffer = sink
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if n == 0 {
                buffer.1 = true;
                return;
            }
            buffer.0.extend_from_slice(&chunk[..n]);
        }
    });
    buffer
}

pub fn text(buffer: &Mutex<(Vec<u8>, bool)>) -> (String, bool) {
    let buffer = buffer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    (String::from_utf8_lossy(&buffer.0).into_owned(), buffer.1)
}

/// The number right after `key` in `text`.
pub fn number_after(text: &str, key: &str) -> Option<u32> {
    let at = text.find(key)? + key.len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// Runs the client to its end and returns its exit status, stdout and stderr, once every
/// process that shared its output (the helper, the app) is gone too.
pub fn run_client(mut command: Command) -> (ExitStatus, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));

    let deadline = Instant::now() + CLIENT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the client did not finish; its stderr so far:\n{}",
                text(&stderr).0
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    // The helper and the app had the client's stderr: it closes once they are all gone.
    let deadline = Instant::now() + DEADLINE;
    let ((out, out_closed), (err, err_closed)) = loop {
        let (out, err) = (text(&stdout), text(&stderr));
        if (out.1 && err.1) || Instant::now() >= deadline {
            break (out, err);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        out_closed && err_closed,
        "a process outlived the client and still holds its output; stderr:\n{err}"
    );

    (status, out, err)
}

/// Checks what the client printed for start, status, a request, recycle, a request and stop;
/// returns the pids of the two app processes (the first and the recycled one).
pub fn check_exchange(status: ExitStatus, out: &str, err: &str) -> [u32; 2] {
    assert!(
        status.success(),
        "client exited with {status}; stdout:\n{out}\nstderr:\n{err}"
    );
    let answers: Vec<&str> = out.split("HTTP/1.1 ").skip(1).collect();
    assert!(
        answers.len() == 2
            && answers
                .iter()
                .all(|a| a.starts_with("200") && a.contains("hello from sampleapp")),
        "the app's answers to GET / with the token, before and after the recycle; stdout:\n{out}\nstderr:\n{err}"
    );
    let answered: Vec<u32> = answers
        .iter()
        .map(|a| number_after(a, "hello from sampleapp pid=").expect("the app's pid in /"))
        .collect();
    let ready = number_after(err, "client: ready: pid=").expect("the client's ready line");
    let status_pid =
        number_after(err, "client: status: state=ready pid=").expect("the client's status line");
    let recycled = number_after(err, "client: recycled: pid=").expect("the client's recycled line");
    assert_eq!(
        [ready, recycled],
        [answered[0], answered[1]],
        "each `ready` names the process that answered; stderr:\n{err}"
    );
    assert_eq!(status_pid, ready, "`status` names the ready process");
    assert_ne!(ready, recycled, "the recycle started a new process");
    [ready, recycled]
}
