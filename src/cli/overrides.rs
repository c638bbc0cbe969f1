//! The flags every command that loads a configuration shares, one per `<aspNetCore>`
//! attribute (plus a few of ancm's own), and the one place they become [`config::Overrides`].
//! Clap types only; imports nothing of the crate but `config`'s input types.

use std::path::PathBuf;

use clap::Args;

use crate::config;

/// One flag per `<aspNetCore>` attribute; each overrides web.config.
#[derive(Debug, Args, Default, Clone)]
pub struct OverrideArgs {
    /// Overrides processPath: the executable to start.
    #[arg(long, value_name = "PATH", env = "ANCM_PROCESS_PATH")]
    pub process_path: Option<String>,

    /// Overrides arguments (split the way Windows splits a command line).
    #[arg(
        long,
        value_name = "ARGS",
        allow_hyphen_values = true,
        env = "ANCM_ARGUMENTS"
    )]
    pub arguments: Option<String>,

    /// Adds or overrides an environment variable for the app (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", env = "ANCM_ENV")]
    pub env: Vec<String>,

    /// Adds the variables of FILE (KEY=VALUE lines, systemd's EnvironmentFile syntax) to the
    /// app's environment, over web.config's; --env wins over both.
    #[arg(long, value_name = "FILE", env = "ANCM_ENV_FILE")]
    pub env_file: Option<PathBuf>,

    /// Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log.
    #[arg(long, value_name = "PREFIX", env = "ANCM_STDOUT_LOG")]
    pub stdout_log: Option<String>,

    /// With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M,
    /// 1G). Off by default, as in ANCM.
    #[arg(long, value_name = "SIZE", env = "ANCM_STDOUT_LOG_MAX_SIZE")]
    pub stdout_log_max_size: Option<String>,

    /// With the stdout log on, delete the oldest of its files beyond N. Off by default.
    #[arg(long, value_name = "N", env = "ANCM_STDOUT_LOG_KEEP")]
    pub stdout_log_keep: Option<String>,

    /// Overrides startupTimeLimit: seconds the app has to start listening (0-3600).
    #[arg(long, value_name = "SECS", env = "ANCM_STARTUP_TIME_LIMIT")]
    pub startup_time_limit: Option<String>,

    /// Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600).
    #[arg(long, value_name = "SECS", env = "ANCM_SHUTDOWN_TIME_LIMIT")]
    pub shutdown_time_limit: Option<String>,

    /// Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100).
    #[arg(long, value_name = "N", env = "ANCM_RAPID_FAILS_PER_MINUTE")]
    pub rapid_fails_per_minute: Option<String>,

    /// Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever.
    #[arg(long, value_name = "DURATION", env = "ANCM_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,

    /// Overrides requestLimits maxAllowedContentLength: the largest request body in bytes
    /// (IIS's default 30000000); 0 = no limit.
    #[arg(long, value_name = "BYTES", env = "ANCM_MAX_REQUEST_BODY")]
    pub max_request_body: Option<String>,

    /// The app's virtual path, given to it as ASPNETCORE_APPL_PATH (default /).
    #[arg(long, value_name = "/BASE", env = "ANCM_APP_PATH")]
    pub app_path: Option<String>,

    /// Also export the app's port under NAME, for apps that are not .NET (repeatable).
    #[arg(long, value_name = "NAME", env = "ANCM_PORT_ENV")]
    pub port_env: Vec<String>,

    /// Forward requests under --app-path without that base, which goes to the app in
    /// X-Forwarded-Prefix instead (for apps that do not know their base).
    #[arg(long, requires = "app_path", env = "ANCM_STRIP_APP_PATH")]
    pub strip_app_path: bool,

    /// X-Forwarded-For's form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or
    /// `ip:port` (ANCM's; the default with web.config).
    #[arg(long, value_name = "FORM", value_parser = ["ip", "ip:port"], env = "ANCM_FORWARDED_FOR")]
    pub forwarded_for: Option<String>,

    /// Send ANCM's shutdown message (POST /iisintegration) before the stop signal, as
    /// web.config runs always do; -- COMMAND runs get the signal only.
    #[arg(long, env = "ANCM_SHUTDOWN_MESSAGE")]
    pub shutdown_message: bool,

    /// Overrides processesPerApplication: how many processes serve the app (1-100).
    #[arg(long, value_name = "N", env = "ANCM_PROCESSES")]
    pub processes: Option<String>,

    /// Start the app on the first request, as ANCM does, instead of at once.
    #[arg(long, env = "ANCM_LAZY")]
    pub lazy: bool,

    /// What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs);
    /// default: the LAUNCHER_PATH environment variable.
    #[arg(long, value_name = "PATH")]
    pub launcher_path: Option<String>,

    /// What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub launcher_args: Option<String>,
}

/// The one place where a flag becomes a configuration override.
impl From<&OverrideArgs> for config::Overrides {
    fn from(args: &OverrideArgs) -> Self {
        config::Overrides {
            process_path: args.process_path.clone(),
            arguments: args.arguments.clone(),
            env: args.env.clone(),
            env_file: args.env_file.clone(),
            stdout_log: args.stdout_log.clone(),
            stdout_log_max_size: args.stdout_log_max_size.clone(),
            stdout_log_keep: args.stdout_log_keep.clone(),
            startup_time_limit: args.startup_time_limit.clone(),
            shutdown_time_limit: args.shutdown_time_limit.clone(),
            rapid_fails_per_minute: args.rapid_fails_per_minute.clone(),
            request_timeout: args.request_timeout.clone(),
            max_request_body: args.max_request_body.clone(),
            app_path: args.app_path.clone(),
            port_env: args.port_env.clone(),
            processes: args.processes.clone(),
            lazy: args.lazy,
            launcher_path: args.launcher_path.clone(),
            launcher_args: args.launcher_args.clone(),
            strip_app_path: args.strip_app_path,
            forwarded_for: args.forwarded_for.clone(),
            shutdown_message: args.shutdown_message,
        }
    }
}
