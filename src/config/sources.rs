//! Where each setting is looked up, highest first: a flag (or the helper's override), ancm's
//! own environment (ANCM_* and the variables ANCM reads), the `<aspNetCore>` element, and
//! ANCM's schema default. Also the [`Errors`] collector, so that one run reports every bad
//! value. Must not import the sections that use it (build, launch, environment, ...).

use super::command;
use super::error::{ConfigError, Origin};
use super::input::Overrides;
use super::values;
use super::webconfig::AspNetCoreElement;

/// ancm's own environment, injectable so that tests need not change the process's.
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The errors found so far while building a configuration.
pub(super) struct Errors(Vec<ConfigError>);

impl Errors {
    /// Starts from the errors reading web.config already found.
    pub(super) fn new(found: Vec<ConfigError>) -> Errors {
        Errors(found)
    }

    /// The value, or `fallback` with the error noted, so that reading can go on.
    pub(super) fn keep<T>(&mut self, result: Result<T, ConfigError>, fallback: T) -> T {
        result.unwrap_or_else(|err| {
            self.0.push(err);
            fallback
        })
    }

    pub(super) fn push(&mut self, err: ConfigError) {
        self.0.push(err);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every error found, as one (in the order found), or `Ok` when there was none.
    pub(super) fn finish(self) -> Result<(), ConfigError> {
        match ConfigError::from_all(self.0) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// Looks a setting up in the flags first, then in `<aspNetCore>`.
pub(super) struct Settings<'a> {
    pub element: Option<&'a AspNetCoreElement>,
    pub flags: &'a Overrides,
    env: Env<'a>,
    /// What `%VAR%` expansion may still produce for this configuration.
    budget: command::Budget,
}

impl<'a> Settings<'a> {
    pub(super) fn new(
        element: Option<&'a AspNetCoreElement>,
        flags: &'a Overrides,
        env: Env<'a>,
    ) -> Self {
        Settings {
            element,
            flags,
            env,
            budget: command::Budget::new(),
        }
    }
}

impl Settings<'_> {
    /// A variable of ancm's own environment.
    pub(super) fn var(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// `%VAR%` expansion of `attribute`'s `value` (see [`command::Budget::expand`]), refused
    /// with an error naming it and the limit before it grows past one.
    pub(super) fn expand(
        &self,
        origin: &Origin,
        attribute: &str,
        value: &str,
        extra: &[(&str, Option<&str>)],
    ) -> Result<String, ConfigError> {
        self.budget.expand(value, extra).map_err(|exceeded| {
            let (limit, scope) = match exceeded {
                command::Exceeded::Value => {
                    (command::VALUE_LIMIT, "the most they may add to one value")
                }
                command::Exceeded::Total => (
                    command::TOTAL_LIMIT,
                    "the most they may add to a configuration in all",
                ),
            };
            ConfigError::ExpansionTooLong {
                origin: origin.clone(),
                attribute: attribute.to_owned(),
                limit,
                scope,
            }
        })
    }

    pub(super) fn attribute(&self, name: &str) -> Option<(Origin, String)> {
        let attribute = self.element?.attribute(name)?;
        Some((attribute.origin.clone(), attribute.value.clone()))
    }

    /// The flag's value when given, else the attribute's.
    fn value(
        &self,
        name: &str,
        (flag, flag_value): (&'static str, &Option<String>),
    ) -> Option<(Origin, String)> {
        match flag_value {
            Some(value) => Some((Origin::Flag(flag), value.clone())),
            None => self.attribute(name),
        }
    }

    pub(super) fn uint(
        &self,
        name: &str,
        flag: (&'static str, &Option<String>),
        (min, max): (u64, u64),
        default: u64,
    ) -> Result<u64, ConfigError> {
        let Some((origin, value)) = self.value(name, flag) else {
            return Ok(default);
        };
        let unit = if name.ends_with("TimeLimit") {
            " of seconds"
        } else {
            ""
        };
        values::uint(&value, min, max, unit).map_err(|allowed| {
            ConfigError::invalid(origin.clone(), what(&origin, name), &value, allowed)
        })
    }

    pub(super) fn boolean(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        let Some((origin, value)) = self.attribute(name) else {
            return Ok(default);
        };
        values::boolean(&value).map_err(|allowed| {
            ConfigError::invalid(origin.clone(), what(&origin, name), &value, allowed)
        })
    }
}

/// "attribute startupTimeLimit" for web.config, "value" for a flag (whose name the origin
/// already gives).
fn what(origin: &Origin, name: &str) -> String {
    match origin {
        Origin::Flag(_) => "value".to_owned(),
        Origin::File { .. } => format!("attribute {name}"),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::command;
    use crate::config::tests::config_for;
    use crate::config::Overrides;

    #[test]
    fn expansion_is_bounded_per_value_and_in_all() {
        let path = std::env::var("PATH").expect("PATH");
        let within = "%PATH%".repeat(command::VALUE_LIMIT / path.len());
        let web_config = |values: &[String]| {
            let vars: String = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("<environmentVariable name=\"E{i}\" value=\"{v}\"/>\n"))
                .collect();
            format!(
                "<configuration><system.webServer><aspNetCore processPath=\"app\">\n<environmentVariables>\n{vars}</environmentVariables></aspNetCore></system.webServer></configuration>"
            )
        };
        let one_too_long = [format!("{within}%PATH%")];
        let err =
            config_for(&web_config(&one_too_long), Overrides::default()).expect_err("too long");
        assert!(
            err.to_string().contains(
                r#"web.config:3:39: <environmentVariable name="E0"> value: its %VARIABLES% would add more than 128 KiB"#
            ),
            "{err}"
        );

        let many = vec![within; command::TOTAL_LIMIT / command::VALUE_LIMIT + 8];
        let err = config_for(&web_config(&many), Overrides::default()).expect_err("too much");
        let message = err.to_string();
        assert!(
            message.contains("would add more than 4096 KiB")
                && message.contains("to a configuration in all"),
            "{message}"
        );
    }
}
