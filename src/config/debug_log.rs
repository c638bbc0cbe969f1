//! ANCM's diagnostic log settings (spec §1.3): the `debugLevel` and `debugFile` handler
//! settings, or the ASPNETCORE_MODULE_DEBUG and ASPNETCORE_MODULE_DEBUG_FILE variables. Here
//! they turn up ancm's own log, on the console and/or in a file.

use std::path::{Path, PathBuf};

/// How verbose the diagnostic log is, ANCM's four levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DebugLevel {
    Error,
    Warning,
    Info,
    Trace,
}

impl DebugLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            DebugLevel::Error => "ERROR",
            DebugLevel::Warning => "WARNING",
            DebugLevel::Info => "INFO",
            DebugLevel::Trace => "TRACE",
        }
    }
}

/// Where the diagnostic log goes; off when neither sink is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DebugLog {
    pub level: Option<DebugLevel>,
    pub console: bool,
    /// The log file (absolute), when the FILE sink is on.
    pub file: Option<PathBuf>,
}

/// ANCM's file when FILE is asked for without a debugFile.
const DEFAULT_DEBUG_FILE: &str = r".\aspnetcore-debug.log";

impl DebugLog {
    /// Reads `debugLevel` (comma-separated levels and sinks, any case, prefixes allowed) and
    /// `debugFile` (its `%VAR%` references already expanded). A level alone writes to the
    /// file; a sink alone logs at INFO; debugFile alone turns the file sink on. Unknown words
    /// become warnings.
    pub(super) fn parse(
        level: Option<&str>,
        file: Option<&str>,
        app_dir: &Path,
        warnings: &mut Vec<String>,
    ) -> DebugLog {
        let mut log = DebugLog::default();
        let mut file_sink = file.is_some_and(|f| !f.trim().is_empty());
        let mut eventlog = false;
        for word in level.unwrap_or_default().split(',').map(str::trim) {
            if word.is_empty() {
                continue;
            }
            let matches = |keyword: &str| {
                word.len() >= 3
                    && keyword.len() >= word.len()
                    && keyword[..word.len()].eq_ignore_ascii_case(word)
            };
            let level = if matches("ERROR") {
                Some(DebugLevel::Error)
            } else if matches("WARNING") {
                Some(DebugLevel::Warning)
            } else if matches("INFO") || matches("INFORMATION") {
                Some(DebugLevel::Info)
            } else if matches("TRACE") {
                Some(DebugLevel::Trace)
            } else {
                None
            };
            match level {
                Some(l) => log.level = Some(log.level.map_or(l, |old| old.max(l))),
                None if matches("CONSOLE") => log.console = true,
                None if matches("FILE") => file_sink = true,
                None if matches("EVENTLOG") => eventlog = true,
                None => warnings.push(format!(
                    "debugLevel: {word:?} is not a level (ERROR, WARNING, INFO, TRACE) or a sink (CONSOLE, FILE, EVENTLOG); ignored"
                )),
            }
        }
        if eventlog {
            warnings.push(
                "debugLevel: there is no Windows event log here; EVENTLOG is ignored".to_owned(),
            );
        }
        if log.level.is_some() && !log.console && !file_sink {
            file_sink = true;
        }
        if (log.console || file_sink) && log.level.is_none() {
            log.level = Some(DebugLevel::Info);
        }
        if file_sink {
            let file = file
                .filter(|f| !f.trim().is_empty())
                .unwrap_or(DEFAULT_DEBUG_FILE);
            let native = super::command::native_path(file);
            log.file = Some(super::command::normalize(&app_dir.join(native)));
        }
        log
    }

    pub fn is_on(&self) -> bool {
        self.console || self.file.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(level: Option<&str>, file: Option<&str>) -> (DebugLog, Vec<String>) {
        let mut warnings = Vec::new();
        let log = DebugLog::parse(level, file, Path::new("/app"), &mut warnings);
        (log, warnings)
    }

    #[test]
    fn levels_and_sinks() {
        let (log, warnings) = parse(Some("ERROR, WARNING, TRACE, CONSOLE"), None);
        assert_eq!(log.level, Some(DebugLevel::Trace));
        assert!(log.console && log.file.is_none());
        assert!(warnings.is_empty());

        let (log, _) = parse(Some("file,warn"), Some(r".\logs\debug.log"));
        assert_eq!(log.level, Some(DebugLevel::Warning));
        assert_eq!(log.file.as_deref(), Some(Path::new("/app/logs/debug.log")));
    }

    #[test]
    fn defaults_fill_in() {
        let (log, _) = parse(Some("CONSOLE"), None);
        assert_eq!(log.level, Some(DebugLevel::Info));
        let (log, _) = parse(Some("TRACE"), None);
        assert_eq!(
            log.file.as_deref(),
            Some(Path::new("/app/aspnetcore-debug.log"))
        );
        let (log, _) = parse(None, Some("d.log"));
        assert_eq!(
            (log.level, log.file.as_deref()),
            (Some(DebugLevel::Info), Some(Path::new("/app/d.log")))
        );
        let (log, _) = parse(None, None);
        assert!(!log.is_on());
    }

    #[test]
    fn unknown_words_and_eventlog_warn() {
        let (log, warnings) = parse(Some("LOUD, EVENTLOG"), None);
        assert!(!log.is_on());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
