//! Choosing a free port for a new app process from `[server] ports`: a port is free
//! when 127.0.0.1 can bind it right now and no recorded process holds it.
//!
//! Between the check and the app's own bind another program could take the port; the
//! health check then fails and the deploy with it, which is safe (the old process keeps
//! serving) and rare enough not to need port passing over a socket.

use std::net::TcpListener;

use crate::core::app_process::PortRange;

/// Where in the range to start looking: spread by time, by process and by call, so
/// two stagehands (or two starts in the same millisecond) rarely try the same port
/// first and race for it.
pub fn seed(now_ms: i64) -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let mixed = (now_ms as u64) ^ (u64::from(std::process::id()) << 20) ^ (u64::from(call) << 40);
    // Fibonacci hashing: nearby inputs land far apart.
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

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
    fn seeds_differ_within_one_millisecond() {
        assert_ne!(seed(1_000), seed(1_000));
    }

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
