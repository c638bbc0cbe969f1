//! `ancm check`'s arguments. Clap types only; they become a [`config::Request`]. Imports
//! nothing of the crate but `config`'s input types.

use std::path::PathBuf;

use clap::Args;

use super::overrides::OverrideArgs;
use crate::config;

pub(super) const CHECK_EXAMPLES: &str = "\
Examples:
  ancm check ./publish                     is this web.config valid, and what will run?
  ancm check --json . | jq .command        the resolved argv, for scripts
  ancm check --launcher-path bin/Debug/net8.0/App.exe .   a dev-time web.config

Exit status: 0 when valid (warnings allowed), 2 when not.";

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A folder holding web.config, or a web.config file.
    #[arg(value_name = "APP", default_value = ".")]
    pub app: PathBuf,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub overrides: OverrideArgs,

    /// The command to run instead of web.config's processPath and arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl CheckArgs {
    /// The configuration `ancm run` would use, without a proxy.
    pub fn request(&self) -> config::Request {
        config::Request {
            app: self.app.clone(),
            overrides: (&self.overrides).into(),
            command: self.command.clone(),
            listen: Vec::new(),
            run: None,
        }
    }
}
