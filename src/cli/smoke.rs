//! `ancm smoke`'s arguments: the paths to request and what they must answer, beside what
//! `ancm check` takes. Clap types only; they become a [`config::Request`]. Imports nothing of
//! the crate but `config`'s input types.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::overrides::OverrideArgs;
use crate::config;

pub(super) const SMOKE_EXAMPLES: &str = "\
Examples:
  ancm smoke ./publish                            GET / must answer 200
  ancm smoke . --path /health --path /api/ping    several checks
  ancm smoke . --path /admin --expect 401 --timeout 30

Exit status: 0 when every check passes, 1 when one fails or the app does not start,
2 for a usage or configuration error. Nothing is left running either way.";

#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// A folder holding web.config, or a web.config file.
    #[arg(value_name = "APP", default_value = ".")]
    pub app: PathBuf,

    /// A path to GET through the proxy (repeatable; default /).
    #[arg(long = "path", value_name = "P", env = "ANCM_SMOKE_PATH")]
    pub paths: Vec<String>,

    /// The status every path must answer with.
    #[arg(long, value_name = "STATUS", default_value_t = 200, env = "ANCM_SMOKE_EXPECT",
          value_parser = clap::value_parser!(u16).range(100..=599))]
    pub expect: u16,

    /// Fail if the app is not up and every check done within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, env = "ANCM_SMOKE_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,

    #[command(flatten)]
    pub overrides: OverrideArgs,

    /// The command to run instead of web.config's processPath and arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl SmokeArgs {
    /// As `ancm run` would load it, listening on a free loopback port.
    pub fn request(&self) -> config::Request {
        config::Request {
            app: self.app.clone(),
            overrides: (&self.overrides).into(),
            command: self.command.clone(),
            listen: vec![SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0))],
            run: None,
        }
    }
}
