//! The app's environment as configured: `<environmentVariables>` (expanded), then
//! `--env-file`'s lines, then `--env`, as one [`Environment`] whose names are unique ignoring
//! case; and the warning for the variables ancm always sets itself. The pairing variables
//! (ASPNETCORE_PORT, ASPNETCORE_TOKEN, ...) are added when a process is spawned, not here.
//!
//! Reads through `sources` (and `env_file`); must not import another section.

use std::ops::Deref;

use super::env_file;
use super::error::{ConfigError, Origin};
use super::sources::{Errors, Settings};

/// Variables ancm always sets for the app, whatever web.config says (spec §2).
const OWN_VARIABLES: &[&str] = &[
    "ASPNETCORE_APPL_PATH",
    "ASPNETCORE_IIS_HTTPAUTH",
    "ASPNETCORE_IIS_WEBSOCKETS_SUPPORTED",
    "ASPNETCORE_IIS_PHYSICAL_PATH",
];

/// Variables for the app, in order, with names unique ignoring ASCII case (as Windows and
/// IIS compare them). Reads as a slice of `(name, value)` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment(Vec<(String, String)>);

impl Environment {
    /// The value of `name`, whatever the case of either.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` last, in place of any variable whose name differs from it only in case.
    pub fn set(&mut self, name: String, value: String) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.0.push((name, value));
    }
}

impl Deref for Environment {
    type Target = [(String, String)];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Environment {
    type Item = &'a (String, String);
    type IntoIter = std::slice::Iter<'a, (String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The app's environment, with a warning for each variable ancm replaces with its own value;
/// a bad entry is noted in `errors` and the environment left empty.
pub(super) fn resolve(
    settings: &Settings<'_>,
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) -> Environment {
    let environment = errors.keep(read(settings), Environment::default());
    for (name, _) in &environment {
        if let Some(set_by) = OWN_VARIABLES.iter().find(|v| v.eq_ignore_ascii_case(name)) {
            warnings.push(format!(
                "environment variable {name}: ancm sets {set_by} for the app itself (as ANCM does); this value is replaced"
            ));
        }
    }
    environment
}

/// `<environmentVariables>` (expanded; ancm's own values win where
/// ANCM_PREFER_ENVIRONMENT_VARIABLES asks), then `--env-file`'s, then `--env`.
fn read(settings: &Settings<'_>) -> Result<Environment, ConfigError> {
    let prefer_own = settings
        .var("ANCM_PREFER_ENVIRONMENT_VARIABLES")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1");
    // web.config's names are unique already (see webconfig::parse::last_of_each_name).
    let mut environment = Environment(
        settings
            .element
            .map(|e| {
                e.environment
                    .iter()
                    .map(|(name, value, origin)| {
                        let value = match prefer_own.then(|| settings.var(name)).flatten() {
                            Some(own) => own,
                            None => settings.expand(
                                origin,
                                &format!("<environmentVariable name=\"{name}\"> value"),
                                value,
                                &[],
                            )?,
                        };
                        Ok((name.clone(), value))
                    })
                    .collect::<Result<_, ConfigError>>()
            })
            .transpose()?
            .unwrap_or_default(),
    );
    if let Some(path) = &settings.flags.env_file {
        for (name, value) in env_file::read(path)? {
            environment.set(name, value);
        }
    }
    for pair in &settings.flags.env {
        let (name, value) = pair
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(
                    Origin::Flag("--env"),
                    "value",
                    pair,
                    "NAME=VALUE with a non-empty NAME",
                )
            })?;
        environment.set(name.to_owned(), value.to_owned());
    }
    Ok(environment)
}
