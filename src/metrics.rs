//! Prometheus/OpenMetrics endpoint: `GET /metrics` on `metrics_addr`, served by core 0.
//!
//! - [`histogram`]: the per-core, per-command latency histograms recorded on the request path
//!   (held by `Shared::latency`).
//! - [`collect`]: scrape-time snapshot of every core's and group's atomics, encoded with
//!   prometheus-client.
//! - [`http`]: the bounded one-request-per-connection HTTP server.
//!
//! Nothing here takes a lock or allocates on the request path: commands only do the two
//! relaxed atomic adds of [`Timer::record`]; everything else runs on core 0 per scrape.

pub mod collect;
pub mod histogram;
pub mod http;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use glommio::net::TcpListener;

use crate::core::Core;
pub use collect::{render, Snapshot};
pub use histogram::{family_name, family_of, Histogram, HistogramSnapshot, Latency};

/// Starts the metrics endpoint on this core (the caller picks core 0). A bind failure is
/// logged and leaves the node serving without metrics.
pub fn spawn(core: Rc<Core>, addr: SocketAddr) {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen on metrics_addr; metrics disabled");
            return;
        }
    };
    tracing::info!(%addr, "metrics endpoint listening");
    let shared = core.shared.clone();
    let render: Rc<dyn Fn() -> Result<String, std::fmt::Error>> = Rc::new(move || render(&shared));
    glommio::spawn_local(async move {
        http::accept_loop(listener, &core.shutdown, http::Limits::DEFAULT, render).await;
    })
    .detach();
}

/// Measures one command, from when it was parsed to when its reply is encoded.
#[derive(Clone, Copy, Debug)]
pub struct Timer {
    family: usize,
    start: Instant,
}

impl Timer {
    /// A timer for the command `argv` (its name picks the family) started at `start`.
    pub fn new(argv: &[Bytes], start: Instant) -> Timer {
        Timer {
            family: argv
                .first()
                .map_or_else(|| family_of(b""), |n| family_of(n)),
            start,
        }
    }

    /// Records the time since `start` into this core's histogram of the command's family.
    pub fn record(self, core: &Core) {
        core.shared
            .latency
            .record(core.index, self.family, self.start.elapsed());
    }
}
