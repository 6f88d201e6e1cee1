//! The limits a listener keeps against slow or greedy clients (header and body read timeouts,
//! keep-alive, open connections, in-flight webhooks, header sizes), and rate-limited logging of
//! faults that repeat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a client has to send a request's whole header block (and how long a kept-alive
/// connection may sit idle before its next request): 8x8 sends a webhook's headers in one packet,
/// so anything slower is a stuck or hostile client holding a connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's whole body once its headers are in: webhook bodies
/// are 1 to 3 KiB (`routes::BODY_BYTES_MAX` at most), which any live client sends at once.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections on the public listener: with `ADMIN_MAX_CONNECTIONS`, `MAX_IN_FLIGHT` outgoing
/// requests of script nodes and `DESCRIPTORS_SPARE`, within the usual soft limit of 1024
/// descriptors per process, so `accept` never fails for lack of descriptors and webhooks keep being
/// answered; over it, a new connection is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a connection over the cap is kept after its 503, reading what the client still sends,
/// so closing it does not reset it before the client reads the 503.
pub const REFUSE_LINGER: Duration = Duration::from_secs(1);
/// Connections over the cap being answered 503 at once; beyond it they are closed without an
/// answer (each holds a descriptor for up to `REFUSE_LINGER`).
pub const REFUSING_MAX: usize = 32;
/// The share of `--max-connections` that connections without an authenticated webhook may hold
/// (1/N of them): health probes and the first request of a new 8x8 connection need few; the other
/// three quarters stay for connections that carried an authenticated webhook, so clients without
/// the secret cannot take the slots 8x8 needs.
pub const UNAUTHENTICATED_SHARE_DIVISOR: usize = 4;
/// Unauthenticated connections one source address may hold (a `--trusted-proxy` is counted only
/// overall: it carries many clients): a load balancer probes over one or two; more than this from
/// one address is a flood, whose oldest idle connection makes room for the next.
pub const UNAUTHENTICATED_PER_SOURCE_MAX: usize = 64;
/// How long an unauthenticated connection may sit idle (nothing being answered) before it is
/// closed: health probes and 8x8's first request come at once on a new connection; a connection
/// kept open without the secret only holds a slot. Promoted connections keep the header read
/// timeout as their keep-alive.
pub const UNAUTHENTICATED_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection that found every slot taken waits for the idle unauthenticated one it
/// evicted to close (a few scheduler turns); past it, it is answered 503.
pub const EVICT_WAIT: Duration = Duration::from_millis(200);
/// Connections from a source outside `--allow-from` being answered 403 at once; beyond it they are
/// closed without an answer (each holds a descriptor for up to `REFUSE_LINGER`).
pub const FORBIDDING_MAX: usize = 32;
/// Open connections on the admin listener: a few operators and scrapers.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;
/// Descriptors the process needs besides connections: the store's files or database pool, the
/// standard streams, the listeners, the 8x8 API client.
pub const DESCRIPTORS_SPARE: usize = 128;
/// Webhooks being answered at once: each holds a store transaction (and maybe a script's HTTP
/// request); over it a webhook gets 503 with `Retry-After` at once instead of queueing until 8x8
/// gives up on it.
pub const MAX_IN_FLIGHT: usize = 256;
/// What an over-cap webhook is told to wait, in seconds (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 1;
/// Largest request head (request line and headers): 8x8's are under 1 KiB; a JWT in the URL adds
/// at most `auth::JWT_BYTES_MAX`.
pub const HEADER_BYTES_MAX: usize = 16 * 1024;
/// Most headers in one request: 8x8 sends about ten.
pub const HEADERS_MAX: usize = 64;
/// hyper's read buffer per connection (its minimum is 8 KiB): a head and a webhook body.
pub const READ_BUFFER_BYTES: usize = HEADER_BYTES_MAX + 64 * 1024;
/// How long `accept` pauses after a failure other than a refused connection (e.g. no descriptor
/// left), so the loop does not spin while the cause persists.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one line per this interval for a fault that repeats (refused sources, connections over
/// the cap, failed accepts), with the count of the ones left out.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The limits of one listener (the constants above, some overridden by `serve` flags).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_in_flight: MAX_IN_FLIGHT,
        }
    }
}

impl Limits {
    /// Descriptors the node may need at once with these limits.
    pub fn descriptors_needed(&self) -> usize {
        self.max_connections
            .saturating_add(ADMIN_MAX_CONNECTIONS)
            .saturating_add(self.max_in_flight)
            .saturating_add(REFUSING_MAX)
            .saturating_add(FORBIDDING_MAX)
            .saturating_add(DESCRIPTORS_SPARE)
    }
}

/// The process's soft limit on open files, where the system tells it (`/proc/self/limits`).
pub(crate) fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Lets one event of a kind through per `LOG_EVERY`, counting the others.
#[derive(Debug, Default)]
pub(crate) struct RateLimited {
    last_ms: AtomicU64,
    skipped: AtomicU64,
}

impl RateLimited {
    pub(crate) const fn new() -> RateLimited {
        RateLimited { last_ms: AtomicU64::new(0), skipped: AtomicU64::new(0) }
    }

    /// `Some(events left out since the last one let through)` when this one should be logged.
    pub(crate) fn allow(&self, now_ms: u64) -> Option<u64> {
        let every = u64::try_from(LOG_EVERY.as_millis()).unwrap_or(u64::MAX);
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < every {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match self.last_ms.compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => Some(self.skipped.swap(0, Ordering::Relaxed)),
            Err(_) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_left_out() {
        let r = RateLimited::new();
        assert_eq!(r.allow(1_000), Some(0));
        assert_eq!(r.allow(1_001), None);
        assert_eq!(r.allow(5_000), None);
        assert_eq!(r.allow(11_000), Some(2));
        assert_eq!(r.allow(11_001), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_open_file_limit_is_read_and_the_defaults_fit_the_usual_1024() {
        assert!(open_files_limit().is_some_and(|n| n > 0));
        assert!(Limits::default().descriptors_needed() <= 1024);
    }
}
