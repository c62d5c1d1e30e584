//! Choosing a free port for a new app process from `[server] ports`: a port is free
//! when 127.0.0.1 can bind it right now and no recorded process holds it.
//!
//! Between the check and the app's own bind another program could take the port; the
//! health check then fails and the deploy with it, which is safe (the old process keeps
//! serving) and rare enough not to need port passing over a socket.

use std::net::TcpListener;

use crate::core::app_process::PortRange;

pub fn pick_free(range: PortRange, seed: u32, taken: &[u16]) -> Option<u16> {
    range
        .candidates(seed, taken)
        .into_iter()
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
}

/// Whether `port` can be bound now (a restarted process keeps its port when it can).
pub fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_ports_in_use_and_taken() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let range = PortRange {
            first: port,
            last: port.saturating_add(3),
        };
        let picked = pick_free(range, 0, &[port + 1]).unwrap();
        assert!(picked != port && picked != port + 1, "{picked}");
        assert!(!is_free(port));
        let only = PortRange {
            first: port,
            last: port,
        };
        assert_eq!(pick_free(only, 0, &[]), None);
    }
}
