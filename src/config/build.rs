//! [`build`]: one [`AppConfig`] from web.config's `<aspNetCore>`, the flags and ancm's
//! environment, as one call per section, each returning its typed part. Each bad value is
//! noted and the rest still read, so that one run reports them all, in the order found.
//!
//! With `load` (mod.rs), the one module that calls the sections; none of them imports it.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::error::ConfigError;
use super::input::Overrides;
use super::request_limits::{self, RequestLimits};
use super::sources::{Env, Errors, Settings};
use super::webconfig::AspNetCoreElement;
use super::AppConfig;
use super::{attributes, environment, forwarding, handler, launch, run_only, stdout_log};

/// Everything a configuration is built from.
pub(super) struct Sources<'a> {
    pub app_dir: PathBuf,
    pub web_config: Option<PathBuf>,
    pub element: Option<AspNetCoreElement>,
    pub flags: &'a Overrides,
    pub command_after_dashes: &'a [String],
    pub listen: &'a [SocketAddr],
    /// Look for the program (in the app folder, on PATH) and make its absence an error.
    pub find_program: bool,
}

pub(super) fn build(sources: Sources<'_>, env: Env<'_>) -> Result<AppConfig, ConfigError> {
    let Sources {
        app_dir,
        web_config,
        mut element,
        flags,
        command_after_dashes,
        listen,
        find_program,
    } = sources;
    let mut errors = Errors::new(
        element
            .as_mut()
            .map(|e| std::mem::take(&mut e.errors))
            .unwrap_or_default(),
    );
    let mut warnings = element
        .as_ref()
        .map(|e| e.warnings.clone())
        .unwrap_or_default();
    let settings = Settings::new(element.as_ref(), flags, env);

    // In the order their errors and warnings are reported.
    let hosting_model = handler::hosting_model(&settings, &mut errors, &mut warnings);
    let launch = launch::resolve(
        &settings,
        &app_dir,
        command_after_dashes,
        &mut errors,
        &mut warnings,
    );
    let attributes = attributes::resolve(&settings, &mut errors, &mut warnings);
    let handler = handler::resolve(&settings, &app_dir, &mut errors, &mut warnings)?;
    let stdout_log = stdout_log::resolve(
        &settings,
        &app_dir,
        handler.capture_output,
        &mut errors,
        &mut warnings,
    );
    let environment = environment::resolve(&settings, &mut errors, &mut warnings);
    let forwarding = forwarding::resolve(flags, element.is_some(), &mut errors);
    let port_env = launch::port_variables(&settings, &environment, &mut errors);
    let request_limits = errors.keep(
        request_limits::resolve(
            element
                .as_ref()
                .map_or(&[], |e| e.request_limits.as_slice()),
            flags.max_request_body.as_deref(),
        ),
        RequestLimits::default(),
    );
    let ready_path = ready_path(element.as_ref(), &mut errors);
    // Last, and only when the command itself is sound: a missing program is worth knowing
    // about, but a bad attribute is the first thing to fix.
    if find_program && errors.is_empty() {
        launch::find_program(
            &settings,
            &app_dir,
            &launch,
            command_after_dashes,
            &environment,
            &mut errors,
        );
    }
    errors.finish()?;

    Ok(AppConfig {
        app_dir,
        web_config,
        command: launch.command,
        process_path: launch.process_path,
        arguments: launch.arguments,
        environment,
        stdout_log_enabled: stdout_log.enabled,
        stdout_log_file: stdout_log.file,
        stdout_log: stdout_log.log,
        stdout_log_rotation: stdout_log.rotation,
        capture_output: handler.capture_output,
        startup_time_limit: attributes.startup_time_limit,
        shutdown_time_limit: attributes.shutdown_time_limit,
        rapid_fails_per_minute: attributes.rapid_fails_per_minute,
        request_timeout: attributes.request_timeout,
        hosting_model,
        processes_per_application: attributes.processes_per_application,
        lazy: flags.lazy,
        forward_windows_auth_token: attributes.forward_windows_auth_token,
        disable_startup_error_page: attributes.disable_startup_error_page,
        forward_response_connection_header: handler.forward_response_connection_header,
        disallow_rotation_on_config_change: handler.disallow_rotation_on_config_change,
        request_limits,
        handler_settings: handler.settings,
        debug_log: handler.debug_log,
        appl_path: forwarding.appl_path,
        strip_app_path: forwarding.strip_app_path,
        forwarded_for: forwarding.forwarded_for,
        shutdown_message: flags.shutdown_message || element.is_some(),
        port_env,
        listen: listen.to_vec(),
        tls: None,
        watch: Vec::new(),
        header_read_timeout: run_only::DEFAULT_HEADER_READ_TIMEOUT,
        idle_timeout: run_only::DEFAULT_IDLE_TIMEOUT,
        send_timeout: Some(run_only::DEFAULT_SEND_TIMEOUT),
        max_request_head: run_only::DEFAULT_MAX_REQUEST_HEAD,
        shutdown_delay: handler.shutdown_delay,
        ready_path,
        health: None,
        max_memory: None,
        logs_keep: run_only::DEFAULT_LOGS_KEEP,
        recycle_every: None,
        run_as: None,
        warnings,
    })
}

/// The warm-up page: `initializationPage` of web.config's `<applicationInitialization>`, which
/// `--ready-path` may replace later; a bad one is noted in `errors`.
fn ready_path(element: Option<&AspNetCoreElement>, errors: &mut Errors) -> Option<String> {
    element
        .and_then(|e| e.initialization_page.as_ref())
        .and_then(|page| {
            errors.keep(
                run_only::probe_path(
                    page.origin.clone(),
                    "<applicationInitialization> attribute initializationPage",
                    &page.value,
                )
                .map(Some),
                None,
            )
        })
}
