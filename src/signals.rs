//! Stop requests from the outside: Ctrl+C, SIGINT, SIGTERM and SIGHUP on Unix, Ctrl+C and
//! Ctrl+Break on Windows (through ctrlc). The first asks for a graceful stop, a second one for
//! an immediate kill.

use tokio::sync::mpsc;

pub struct Signals {
    rx: mpsc::UnboundedReceiver<()>,
}

impl Signals {
    /// Installs the handler; call once, before the runtime starts.
    pub fn install() -> Result<Signals, ctrlc::Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        ctrlc::set_handler(move || {
            // The receiver lives until ancm exits; a signal after that has nothing to stop.
            let _ = tx.send(());
        })?;
        Ok(Signals { rx })
    }

    /// Waits for the next stop request.
    pub async fn next(&mut self) {
        if self.rx.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}
