//! What every slot shares: the configuration in force (a reload replaces it), the console, the
//! HTTP client for the shutdown message, the process guard and the front's HTTPS port.
//!
//! Must not import the slot or the process code: they read it.

use std::sync::Arc;

use tokio::sync::watch;

#[cfg(unix)]
use super::platform::guard::Guard;
use crate::config::AppConfig;
use crate::logs::Console;

/// What every slot shares: the configuration and the means to report and stop.
pub struct Context {
    /// The configuration new processes start with; a reload replaces it.
    config: watch::Sender<Arc<AppConfig>>,
    pub console: Console,
    /// For the shutdown message; reqwest because this is not the hot path.
    pub http: reqwest::Client,
    /// Kills the app's process groups if ancm dies without doing so.
    #[cfg(unix)]
    pub guard: Option<Arc<Guard>>,
    /// The one port the front serves HTTPS on, given to the app as ASPNETCORE_ANCM_HTTPS_PORT.
    /// Here rather than in the configuration: it is known only once the listeners are bound,
    /// and a reload of web.config must not lose it.
    pub https_port: Option<u16>,
}

impl Context {
    pub fn new(
        config: AppConfig,
        console: Console,
        http: reqwest::Client,
        #[cfg(unix)] guard: Option<Arc<Guard>>,
    ) -> Context {
        Context {
            config: watch::Sender::new(Arc::new(config)),
            console,
            http,
            #[cfg(unix)]
            guard,
            https_port: None,
        }
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<AppConfig> {
        self.config.borrow().clone()
    }

    /// Makes `config` the one in force; the one it replaces.
    pub(super) fn replace_config(&self, config: Arc<AppConfig>) -> Arc<AppConfig> {
        self.config.send_replace(config)
    }
}
