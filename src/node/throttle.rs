//! Rate limits for log lines that anyone who reaches the node can repeat (a fault per webhook, a
//! refused request): the first few in each window are logged, the rest counted and summed up in
//! the next line that gets through.

use std::sync::Mutex;

/// Lines of one kind logged per window before the rest are only counted.
pub const LINES_PER_WINDOW: u32 = 10;
/// The window: long enough that a flood logs a few lines a minute, short enough that a new fault
/// after a quiet spell is seen at once.
pub const WINDOW_MS: u64 = 10_000;

/// One kind of log line's budget.
pub struct Throttle {
    state: Mutex<Window>,
}

struct Window {
    start_ms: Option<u64>,
    logged: u32,
    suppressed: u64,
}

/// Whether to log a line now, and how many were dropped since the last one that was logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Log { suppressed: u64 },
    Drop,
}

impl Throttle {
    pub const fn new() -> Throttle {
        Throttle { state: Mutex::new(Window { start_ms: None, logged: 0, suppressed: 0 }) }
    }

    /// Takes one line from the budget of the window `now_ms` falls in.
    pub fn check(&self, now_ms: u64) -> Verdict {
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if w.start_ms.is_none_or(|start| now_ms.saturating_sub(start) >= WINDOW_MS) {
            w.start_ms = Some(now_ms);
            w.logged = 0;
        }
        if w.logged < LINES_PER_WINDOW {
            w.logged += 1;
            let suppressed = std::mem::take(&mut w.suppressed);
            Verdict::Log { suppressed }
        } else {
            w.suppressed = w.suppressed.saturating_add(1);
            Verdict::Drop
        }
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}

/// `tracing::warn!` for a line a request can cause, throttled per call site (its own
/// `Throttle`): past the window's budget the line goes out at debug, and the next one logged at
/// warn carries `suppressed`, the count left out.
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LOG: $crate::node::throttle::Throttle = $crate::node::throttle::Throttle::new();
        match LOG.check($crate::node::now_ms()) {
            $crate::node::throttle::Verdict::Log { suppressed } => ::tracing::warn!(suppressed, $($arg)+),
            $crate::node::throttle::Verdict::Drop => ::tracing::debug!($($arg)+),
        }
    }};
}
pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_a_few_lines_per_window_and_counts_the_rest() {
        let t = Throttle::new();
        let logged = (0..100).filter(|_| matches!(t.check(1_000), Verdict::Log { .. })).count();
        assert_eq!(logged, LINES_PER_WINDOW as usize);
        assert_eq!(t.check(1_000 + WINDOW_MS - 1), Verdict::Drop);
        assert_eq!(t.check(1_000 + WINDOW_MS), Verdict::Log { suppressed: 91 });
        assert_eq!(t.check(1_000 + WINDOW_MS), Verdict::Log { suppressed: 0 });
    }
}
