//! How `processPath` and `arguments` become a program and its argv on this OS: `%VAR%`
//! expansion, Windows command-line splitting, Windows paths on Unix, and resolution against the
//! app folder (spec §1.4).

use std::path::{Path, PathBuf};

/// Variables that stand for the app's port; they expand when the port is known, at each start.
const PORT_VARIABLES: [&str; 2] = ["ASPNETCORE_PORT", "HTTP_PLATFORM_PORT"];

/// The app's command line, resolved except for the port placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl CommandLine {
    /// The program and argv for one start, with `%ASPNETCORE_PORT%` and `%HTTP_PLATFORM_PORT%`
    /// replaced by `port`.
    pub fn with_port(&self, port: u16) -> (PathBuf, Vec<String>) {
        let port = port.to_string();
        let program = expand_port(&self.program.to_string_lossy(), &port);
        let args = self.args.iter().map(|a| expand_port(a, &port)).collect();
        (PathBuf::from(program), args)
    }
}

fn expand_port(s: &str, port: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    // A port is shorter than the names it replaces: this never grows the string.
    expand_with(s, usize::MAX, |name| {
        PORT_VARIABLES
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
            .then(|| port.to_owned())
    })
    .map_or_else(|| s.to_owned(), |(expanded, _)| expanded)
}

/// The most the `%VAR%` references of one value may add to it: 128 KiB, Linux's longest
/// argument or environment string (MAX_ARG_STRLEN), so no value a program could be given is
/// refused; four times the 32 K characters of Windows' ExpandEnvironmentStrings, which IIS
/// expands with. What is written out is not counted: the file's own size bounds it.
pub(super) const VALUE_LIMIT: usize = 128 * 1024;

/// The most the `%VAR%` references of one configuration may add in all: 4 MiB, twice what
/// Linux passes to a new program in all with the usual 8 MiB stack.
pub(super) const TOTAL_LIMIT: usize = 4 * 1024 * 1024;

/// What `%VAR%` expansion may still add while one configuration is read, so that a small
/// file cannot ask for gigabytes (`%PATH%` thousands of times).
#[derive(Debug)]
pub(super) struct Budget {
    left: std::cell::Cell<usize>,
}

/// The limit an expansion would have crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exceeded {
    /// [`VALUE_LIMIT`], for one value.
    Value,
    /// [`TOTAL_LIMIT`], for all of them.
    Total,
}

impl Budget {
    pub(super) fn new() -> Budget {
        Budget {
            left: std::cell::Cell::new(TOTAL_LIMIT),
        }
    }

    /// [`expand_env_with`], refused before its variables add more than either limit allows.
    pub(super) fn expand(
        &self,
        s: &str,
        extra: &[(&str, Option<&str>)],
    ) -> Result<String, Exceeded> {
        let left = self.left.get();
        let (limit, exceeded) = if left < VALUE_LIMIT {
            (left, Exceeded::Total)
        } else {
            (VALUE_LIMIT, Exceeded::Value)
        };
        let (expanded, added) = expand_env_with(s, extra, limit).ok_or(exceeded)?;
        self.left.set(left - added);
        Ok(expanded)
    }
}

fn lookup_env(name: &str) -> Option<String> {
    if PORT_VARIABLES.iter().any(|p| p.eq_ignore_ascii_case(name)) {
        return None;
    }
    std::env::var(name).ok().or_else(|| {
        std::env::vars()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// `%NAME%` expansion from ancm's environment the way IIS expands "expanded" attributes:
/// names are matched ignoring case (Windows habits, such as `%home%`, carry over) and
/// undefined ones stay as written; `extra` variables are looked up first (`None`: not given
/// here). The port variables are left for [`CommandLine::with_port`]. With what the
/// variables added; `None` when that would be more than `limit` bytes.
fn expand_env_with(
    s: &str,
    extra: &[(&str, Option<&str>)],
    limit: usize,
) -> Option<(String, usize)> {
    let given = |name: &str| {
        extra
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.map(str::to_owned))
    };
    expand_with(s, limit, |name| given(name).or_else(|| lookup_env(name)))
}

/// `%NAME%` expansion through `lookup`, with how many bytes the variables added; `None` as
/// soon as that would be more than `limit`, before it is allocated.
fn expand_with(
    s: &str,
    limit: usize,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<(String, usize)> {
    let mut out = String::with_capacity(s.len());
    let mut added = 0;
    let mut rest = s;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) if end > 0 => match lookup(&after[..end]) {
                Some(value) => {
                    added += value.len();
                    if added > limit {
                        return None;
                    }
                    out.push_str(&value);
                    rest = &after[end + 1..];
                }
                // Undefined: keep the first `%` and look for a variable from the second one on.
                None => {
                    out.push('%');
                    out.push_str(&after[..end]);
                    rest = &after[end..];
                }
            },
            _ => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some((out, added))
}

/// The `%NAME%` references left in an expanded string: variables that are not set. The port
/// variables are not among them; they are filled in at each start.
pub(super) fn undefined_variables(expanded: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = expanded;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else { break };
        let name = &after[..end];
        let plausible = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '(' | ')' | '.' | '-'));
        if plausible && !PORT_VARIABLES.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            found.push(name.to_owned());
            rest = &after[end + 1..];
        } else {
            rest = &after[end..];
        }
    }
    found
}

/// On Unix, the file name of a Windows absolute path (`C:\dir\app.exe`, `\\server\share\app`),
/// which cannot be used as a path here. `None` for anything else, and always on Windows.
pub(super) fn windows_absolute_file_name(path: &str) -> Option<&str> {
    if cfg!(windows) {
        return None;
    }
    let path = path.strip_prefix(r"\\?\").unwrap_or(path);
    let bytes = path.as_bytes();
    let drive = bytes.len() >= 3
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && matches!(bytes[2], b'\\' | b'/');
    let unc = path.starts_with(r"\\");
    if !(drive || unc) {
        return None;
    }
    path.rsplit(['\\', '/'])
        .next()
        .filter(|name| !name.is_empty())
}

/// Splits a command line into argv by the rules of the Windows C runtime, so that one
/// web.config gives the same argv on Windows and Unix: whitespace separates arguments outside
/// double quotes; 2n backslashes before a quote give n backslashes and a quote that opens or
/// closes; 2n+1 give n backslashes and a literal quote; `""` inside quotes is a literal quote.
pub fn split_command_line(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_arg = false;
    let mut in_quotes = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if !in_quotes && (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if in_arg {
                args.push(std::mem::take(&mut current));
                in_arg = false;
            }
            i += 1;
            continue;
        }
        in_arg = true;
        match c {
            '\\' => {
                let run = chars[i..].iter().take_while(|&&c| c == '\\').count();
                let next = i + run;
                if chars.get(next) == Some(&'"') {
                    current.extend(std::iter::repeat_n('\\', run / 2));
                    if run % 2 == 1 {
                        current.push('"');
                        i = next + 1;
                    } else {
                        i = next;
                    }
                } else {
                    current.extend(std::iter::repeat_n('\\', run));
                    i = next;
                }
            }
            '"' => {
                if in_quotes && chars.get(i + 1) == Some(&'"') {
                    current.push('"');
                    i += 2;
                } else {
                    in_quotes = !in_quotes;
                    i += 1;
                }
            }
            _ => {
                current.push(c);
                i += 1;
            }
        }
    }
    if in_arg {
        args.push(current);
    }
    args
}

/// A Windows path as this OS spells it: on Unix, `\` becomes `/` and the `\\?\` long-path
/// prefix goes. On Windows, unchanged.
pub(super) fn native_path(path: &str) -> String {
    if cfg!(windows) {
        return path.to_owned();
    }
    let path = path.strip_prefix(r"\\?\").unwrap_or(path);
    path.replace('\\', "/")
}

/// Resolves `processPath` as ANCM does (spec §1.4): unless it holds `:` or `%`, it names a file
/// in the app folder when that file exists; otherwise it is left for the OS to find on PATH.
/// On Unix, `.\MyApp.exe` falls back to `./MyApp`, the name a Linux publish gives the apphost.
pub(super) fn resolve_program(app_dir: &Path, process_path: &str) -> PathBuf {
    if process_path.contains(':') || process_path.contains('%') {
        return PathBuf::from(process_path);
    }
    let native = native_path(process_path);
    let candidate = app_dir.join(&native);
    if candidate.is_file() {
        return normalize(&candidate);
    }
    let without_exe = strip_exe(&native);
    if !cfg!(windows) {
        if let Some(stem) = without_exe {
            let candidate = app_dir.join(stem);
            if candidate.is_file() {
                return normalize(&candidate);
            }
        }
    }
    let is_bare_name = !native.contains('/') && !native.contains('\\');
    match (is_bare_name, without_exe) {
        // `dotnet.exe` on a Unix PATH is `dotnet`.
        (true, Some(stem)) if !cfg!(windows) => PathBuf::from(stem),
        (true, _) => PathBuf::from(native),
        (false, _) => candidate,
    }
}

/// Where `program` (as [`resolve_program`] left it) was looked for, when it cannot be found
/// there; `None` when it is there, or when it can only be known at start (a `%` placeholder).
/// A bare name is looked for as the OS will: in each folder of `search_path` (PATH).
pub(super) fn missing_program(
    app_dir: &Path,
    program: &Path,
    search_path: Option<&str>,
) -> Option<String> {
    let text = program.to_string_lossy();
    if text.contains('%') {
        return None;
    }
    let is_bare_name = program.components().count() == 1 && !program.is_absolute();
    if !is_bare_name {
        if program.is_file() {
            return None;
        }
        let text = normalize(program).to_string_lossy().into_owned();
        let without_exe = strip_exe(&text).filter(|_| !cfg!(windows));
        return Some(match without_exe {
            Some(stem) => format!("there is no file {text} (nor {stem})"),
            None => format!("there is no file {text}"),
        });
    }
    let folders: Vec<PathBuf> = search_path
        .map(|p| {
            std::env::split_paths(p)
                .filter(|f| !f.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<PathBuf> = if cfg!(windows) && strip_exe(&text).is_none() {
        vec![program.to_owned(), PathBuf::from(format!("{text}.exe"))]
    } else {
        vec![program.to_owned()]
    };
    let found = folders
        .iter()
        .any(|folder| names.iter().any(|name| is_executable(&folder.join(name))));
    if found {
        return None;
    }
    let app = app_dir.display();
    Some(match folders.len() {
        0 => format!("it is not in the app folder ({app}), and PATH is empty"),
        1..=6 => {
            let list: Vec<String> = folders.iter().map(|f| f.display().to_string()).collect();
            format!(
                "it is not in the app folder ({app}) nor in any folder on PATH ({})",
                list.join(", ")
            )
        }
        n => format!("it is not in the app folder ({app}) nor in any folder on PATH ({n} folders)"),
    })
}

/// A file the OS would run: on Unix, one with an execute bit.
fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Turns Windows-style relative paths in arguments (`.\MyApp.dll`) into native ones, when the
/// argument plainly is a path: it starts with `.\` or `..\`, or names a file in the app folder.
pub(super) fn native_argument(app_dir: &Path, arg: &str) -> String {
    if cfg!(windows) || !arg.contains('\\') || arg.contains("://") {
        return arg.to_owned();
    }
    let converted = native_path(arg);
    if arg.starts_with(r".\") || arg.starts_with(r"..\") || app_dir.join(&converted).exists() {
        converted
    } else {
        arg.to_owned()
    }
}

fn strip_exe(path: &str) -> Option<&str> {
    let split = path.len().checked_sub(4)?;
    let (stem, ext) = (path.get(..split)?, path.get(split..)?);
    (ext.eq_ignore_ascii_case(".exe") && !stem.is_empty()).then_some(stem)
}

/// Removes `.` and `..` components without touching the file system (no symlink resolution),
/// so that error messages show the path the user wrote, made absolute.
pub(super) fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        split_command_line(s)
    }

    #[test]
    fn splits_like_the_windows_c_runtime() {
        assert_eq!(argv(r".\MyApp.dll"), [r".\MyApp.dll"]);
        assert_eq!(argv(r#"a "b c" d"#), ["a", "b c", "d"]);
        assert_eq!(argv(r#""a\"b""#), [r#"a"b"#]);
        assert_eq!(argv(r#"a\\\"b"#), [r#"a\"b"#]);
        assert_eq!(argv(r#""a\\" b"#), [r"a\", "b"]);
        assert_eq!(argv(r"a\\b c"), [r"a\\b", "c"]);
        assert_eq!(argv(r#""say ""hi"" now""#), [r#"say "hi" now"#]);
        assert_eq!(argv(r#""" x"#), ["", "x"]);
        assert_eq!(argv("  \t "), Vec::<String>::new());
        assert_eq!(
            argv(r#"--urls "http://*:5000""#),
            ["--urls", "http://*:5000"]
        );
    }

    #[test]
    fn expands_defined_variables_and_keeps_the_rest() {
        let lookup = |name: &str| (name == "HOME").then(|| "/home/app".to_owned());
        let expand = |s| expand_with(s, VALUE_LIMIT, lookup).expect("short").0;
        assert_eq!(expand(r"%HOME%\LogFiles"), r"/home/app\LogFiles");
        assert_eq!(expand("%NOPE%/x"), "%NOPE%/x");
        assert_eq!(expand("100%"), "100%");
        assert_eq!(expand("%NOPE%HOME%"), "%NOPE/home/app");
        assert_eq!(expand("%%"), "%%");
    }

    #[test]
    fn expansion_stops_at_its_limits() {
        let lookup = |name: &str| (name == "X").then(|| "x".repeat(1000));
        assert_eq!(
            expand_with("%X%%X%", 2000, lookup).map(|(s, added)| (s.len(), added)),
            Some((2000, 2000))
        );
        assert_eq!(expand_with("%X%%X%%X%", 2000, lookup), None);
        // What is written out does not count.
        let written = "w%NOPE%".repeat(1000);
        assert_eq!(expand_with(&written, 5, lookup).map(|(_, a)| a), Some(0));

        let budget = Budget::new();
        let big = "b".repeat(VALUE_LIMIT);
        let extra = [("BIG", Some(big.as_str()))];
        assert_eq!(
            budget.expand("%BIG%!", &extra).map(|s| s.len()),
            Ok(VALUE_LIMIT + 1)
        );
        assert_eq!(budget.expand("%BIG%%BIG%", &extra), Err(Exceeded::Value));
        for _ in 1..TOTAL_LIMIT / VALUE_LIMIT {
            assert!(budget.expand("%BIG%", &extra).is_ok());
        }
        assert_eq!(budget.expand("%big%", &extra), Err(Exceeded::Total));
        assert_eq!(budget.expand(&big, &extra), Ok(big.clone()));
    }

    #[test]
    fn finds_undefined_variables() {
        assert_eq!(
            undefined_variables("%DNX_PATH% x %DNX_ARGS%"),
            ["DNX_PATH", "DNX_ARGS"]
        );
        assert_eq!(
            undefined_variables("100% sure %ASPNETCORE_PORT%"),
            Vec::<String>::new()
        );
        assert_eq!(undefined_variables("50% and 60% off"), Vec::<String>::new());
    }

    #[cfg(unix)]
    #[test]
    fn windows_absolute_paths() {
        assert_eq!(
            windows_absolute_file_name(r"C:\Program Files\dotnet\dotnet.exe"),
            Some("dotnet.exe")
        );
        assert_eq!(
            windows_absolute_file_name(r"\\server\share\App.exe"),
            Some("App.exe")
        );
        assert_eq!(windows_absolute_file_name(r".\App.exe"), None);
        assert_eq!(windows_absolute_file_name("dotnet"), None);
    }

    #[test]
    fn port_variables_wait_for_the_port() {
        std::env::var("ASPNETCORE_PORT").ok(); // whatever ancm's own environment says
        let expanded = Budget::new()
            .expand("--port %ASPNETCORE_PORT% --p2 %http_platform_port%", &[])
            .expect("short");
        assert_eq!(
            expanded,
            "--port %ASPNETCORE_PORT% --p2 %http_platform_port%"
        );
        let line = CommandLine {
            program: PathBuf::from("app"),
            args: split_command_line(&expanded),
        };
        let (_, args) = line.with_port(5123);
        assert_eq!(args, ["--port", "5123", "--p2", "5123"]);
    }

    #[cfg(unix)]
    #[test]
    fn windows_paths_resolve_on_unix() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("MyApp"), b"").expect("write");
        std::fs::create_dir(dir.path().join("bin")).expect("mkdir");
        std::fs::write(dir.path().join("bin/Tool.exe"), b"").expect("write");

        assert_eq!(
            resolve_program(dir.path(), r".\MyApp.exe"),
            dir.path().join("MyApp")
        );
        assert_eq!(
            resolve_program(dir.path(), r"bin\Tool.exe"),
            dir.path().join("bin/Tool.exe")
        );
        assert_eq!(
            resolve_program(dir.path(), "dotnet"),
            PathBuf::from("dotnet")
        );
        assert_eq!(
            resolve_program(dir.path(), "dotnet.exe"),
            PathBuf::from("dotnet")
        );
        assert_eq!(
            resolve_program(dir.path(), r".\Missing.exe"),
            dir.path().join("Missing.exe")
        );
        assert_eq!(native_argument(dir.path(), r".\MyApp.dll"), "./MyApp.dll");
        assert_eq!(native_argument(dir.path(), r"bin\Tool.exe"), "bin/Tool.exe");
        assert_eq!(native_argument(dir.path(), r"a\b"), r"a\b");
        assert_eq!(
            native_path(r"\\?\%home%\LogFiles\stdout"),
            "%home%/LogFiles/stdout"
        );
    }
}
