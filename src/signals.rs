//! SIGTERM and SIGINT while the bootstrap runs. As PID 1 the kernel drops signals that have no
//! handler, so handlers are installed before anything waits.

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::error::{exit, Error, Result};

/// Installed handlers for the termination signals.
pub struct Shutdown {
    term: Signal,
    int: Signal,
}

impl Shutdown {
    /// Install the handlers (needs a tokio runtime).
    pub fn install() -> Result<Self> {
        let term = signal(SignalKind::terminate())
            .map_err(|e| Error::Runtime(format!("cannot handle SIGTERM: {e}")))?;
        let int = signal(SignalKind::interrupt())
            .map_err(|e| Error::Runtime(format!("cannot handle SIGINT: {e}")))?;
        Ok(Shutdown { term, int })
    }

    /// Resolves when a termination signal arrives, as the error to exit with.
    pub async fn received(&mut self, doing: &str) -> Error {
        let (name, code) = tokio::select! {
            _ = self.term.recv() => ("SIGTERM", exit::SIGTERM),
            _ = self.int.recv() => ("SIGINT", exit::SIGINT),
        };
        Error::Signalled { name, code, doing: doing.to_string() }
    }
}
