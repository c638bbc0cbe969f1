//! Configuration errors: each names where the bad value came from (file, line and column, or
//! flag), the value, and what is allowed, so a person can fix it without reading our source.

use std::fmt;
use std::path::PathBuf;

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An attribute in web.config.
    File {
        path: PathBuf,
        line: u32,
        column: u32,
    },
    /// A command-line flag, e.g. `--startup-time-limit`.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Origin::Flag(flag) => write!(f, "{flag}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: no web.config there; give a folder holding one, or the command after `--`", path.display())]
    NoWebConfig { path: PathBuf },

    #[error("{}:{line}:{column}: not well-formed XML: {message}", path.display())]
    Xml {
        path: PathBuf,
        line: u32,
        column: u32,
        message: String,
    },

    #[error("{}: not a web.config; to run this file, give the command that runs it after `--`, as in: ancm run -- {hint}", path.display())]
    NotWebConfig {
        path: PathBuf,
        /// The command, by the file's extension: `node app.js`, `python3 app.py`, ...
        hint: String,
    },

    #[error("{}: no <aspNetCore> element under <system.webServer> (outside <location> or in <location path=\".\">); give the command after `--` instead", path.display())]
    NoAspNetCore { path: PathBuf },

    #[error("{origin}: <aspNetCore> has no processPath; set it to the app's executable (e.g. processPath=\"dotnet\" arguments=\".\\MyApp.dll\")")]
    MissingProcessPath { origin: Origin },

    #[error("{origin}: <aspNetCore> has no processPath: this file is an XDT transform (such as web.Release.config), which publishing applies to a web.config; point ancm at the web.config it produces")]
    Transform { origin: Origin },

    #[error("{origin}: {attribute} uses %{variable}%, which Visual Studio fills in when it launches the app; give it with {flag} (or the {variable} environment variable), or use the web.config that publishing writes")]
    Launcher {
        origin: Origin,
        attribute: String,
        variable: &'static str,
        flag: &'static str,
    },

    #[error("{origin}: {attribute} uses %{variable}%, which is not set in ancm's environment; set it, or write the value out")]
    UndefinedVariable {
        origin: Origin,
        attribute: String,
        variable: String,
    },

    /// The TLS certificate or key cannot be used; the message names the flag and the file.
    #[error("{0}")]
    Tls(String),

    /// The program to start is neither where processPath points nor on PATH.
    #[error("{origin}: {attribute} \"{value}\" cannot be found: {looked}")]
    ProgramNotFound {
        origin: Origin,
        /// `processPath`, or `program` for the command after `--`.
        attribute: &'static str,
        value: String,
        /// Where it was looked for, e.g. "no file /srv/app/bin/MyApp.exe".
        looked: String,
    },

    /// More than one error, each on its own line, in the order found.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<ConfigError>),

    /// The file goes over one of the caps that keep reading it quick.
    #[error("{origin}: {what}, the most ancm reads {scope}; the file is not read")]
    TooMany {
        origin: Origin,
        /// `<aspNetCore> has more than 100 attributes`, ...
        what: String,
        /// `on one element`, `in a web.config`.
        scope: &'static str,
    },

    /// `%VAR%` expansion would add more to a value, or to all of them, than ancm allows.
    #[error("{origin}: {attribute}: its %VARIABLES% would add more than {} KiB once expanded, {scope}; use fewer or shorter variables", limit / 1024)]
    ExpansionTooLong {
        origin: Origin,
        /// `attribute arguments`, `<environmentVariable name="X"> value`, ...
        attribute: String,
        /// In bytes.
        limit: usize,
        /// `the most one value may hold`, ...
        scope: &'static str,
    },

    #[error("{origin}: {what} {value:?} is not valid: {allowed}")]
    Invalid {
        origin: Origin,
        /// `attribute startupTimeLimit`, `flag --env`, ...
        what: String,
        value: String,
        allowed: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        origin: Origin,
        what: impl Into<String>,
        value: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            origin,
            what: what.into(),
            value: value.into(),
            allowed: allowed.into(),
        }
    }
}

impl ConfigError {
    /// One error for `errors`: `None` when there are none, the error itself when one.
    pub(crate) fn from_all(mut errors: Vec<ConfigError>) -> Option<ConfigError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(ConfigError::Several(errors)),
        }
    }

    /// Every error this holds, in order: itself, or each of [`ConfigError::Several`].
    pub fn all(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(errors) => errors.iter().flat_map(ConfigError::all).collect(),
            other => vec![other],
        }
    }
}
