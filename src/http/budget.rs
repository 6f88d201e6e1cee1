//! The budget of unauthenticated connections on the public listener: a connection on which no
//! request has yet passed the webhook secret (or JWT) check holds a slot of a small budget, per
//! source address and overall, and is closed after a short idle time; over the budget the oldest
//! idle one is evicted (or, if none is idle, the new one refused). A connection that carries an
//! authenticated webhook is promoted: it leaves the budget and keeps the long keep-alive. So
//! clients without the secret cannot hold the slots 8x8's authenticated webhooks need.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::warn;

use super::limits::{
    RateLimited, UNAUTHENTICATED_IDLE_TIMEOUT, UNAUTHENTICATED_PER_SOURCE_MAX, UNAUTHENTICATED_SHARE_DIVISOR,
};
use crate::node::{self, metrics};

static BUSY: RateLimited = RateLimited::new();

/// The unauthenticated connections of one listener.
pub(crate) struct Budget {
    overall: usize,
    per_source: usize,
    idle: Duration,
    epoch: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Unauthenticated connections, by id (ids grow with age).
    conns: HashMap<u64, Arc<Conn>>,
    /// Unauthenticated connections per source (trusted proxies are not counted here).
    by_source: HashMap<IpAddr, usize>,
}

/// Why a new connection was not admitted: the budget is full and every unauthenticated
/// connection is answering a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// One connection as the budget sees it.
pub(crate) struct Conn {
    id: u64,
    source: IpAddr,
    /// Counted in its source's budget (not a trusted proxy, which carries many clients).
    per_source: bool,
    /// Requests being answered on it.
    active: AtomicUsize,
    /// When a request last started or ended on it (ms since the budget's epoch).
    last_ms: AtomicU64,
    /// A request was answered on it: an idle kept-alive connection, evicted before one whose
    /// first request (8x8's webhook, on a new connection) may be arriving.
    served: AtomicBool,
    promoted: AtomicBool,
    evicted: AtomicBool,
    dismissed: Notify,
    budget: Option<Arc<Budget>>,
}

impl Budget {
    /// The budget of a listener with `max_connections` and `header_read_timeout` (an idle
    /// unauthenticated connection is closed after the shorter of it and
    /// `UNAUTHENTICATED_IDLE_TIMEOUT`).
    pub(crate) fn new(max_connections: usize, header_read_timeout: Duration) -> Budget {
        let overall = (max_connections / UNAUTHENTICATED_SHARE_DIVISOR).max(1);
        Budget {
            overall,
            per_source: UNAUTHENTICATED_PER_SOURCE_MAX.min(overall),
            idle: UNAUTHENTICATED_IDLE_TIMEOUT.min(header_read_timeout),
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it: every change is one step.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Admits a new connection from `source` (`per_source`: counted in its source's budget),
    /// evicting the oldest idle unauthenticated connection of that source, or overall, when the
    /// budget is full.
    pub(crate) fn admit(self: &Arc<Self>, source: IpAddr, per_source: bool) -> Result<Arc<Conn>, Full> {
        let mut state = self.state();
        if per_source && state.by_source.get(&source).copied().unwrap_or(0) >= self.per_source {
            let victim = oldest_idle(&state, |c| c.per_source && c.source == source).ok_or(Full)?;
            evict(&mut state, victim);
        }
        if state.conns.len() >= self.overall {
            let victim = oldest_idle(&state, |_| true).ok_or(Full)?;
            evict(&mut state, victim);
        }
        let id = state.next;
        state.next = state.next.wrapping_add(1);
        let conn = Arc::new(Conn {
            id,
            source,
            per_source,
            active: AtomicUsize::new(0),
            last_ms: AtomicU64::new(self.now_ms()),
            served: AtomicBool::new(false),
            promoted: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            dismissed: Notify::new(),
            budget: Some(self.clone()),
        });
        if per_source {
            let n = state.by_source.entry(source).or_default();
            *n = n.saturating_add(1);
        }
        state.conns.insert(id, conn.clone());
        Ok(conn)
    }

    /// Evicts the oldest idle unauthenticated connection but `except` (the one that needs the
    /// room), if there is one: to make room when every connection slot is taken.
    pub(crate) fn evict_oldest_idle(&self, except: &Conn) -> bool {
        let mut state = self.state();
        match oldest_idle(&state, |c| c.id != except.id) {
            Some(victim) => {
                evict(&mut state, victim);
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        let mut state = self.state();
        remove(&mut state, id);
    }
}

/// The idle connection (nothing being answered) of those `of` picks to evict first: one already
/// served before one not yet, then the longest idle.
fn oldest_idle(state: &State, of: impl Fn(&Conn) -> bool) -> Option<u64> {
    state
        .conns
        .values()
        .filter(|c| of(c) && c.active.load(Ordering::Acquire) == 0)
        .min_by_key(|c| (!c.served.load(Ordering::Acquire), c.last_ms.load(Ordering::Acquire), c.id))
        .map(|c| c.id)
}

fn evict(state: &mut State, id: u64) {
    if let Some(conn) = remove(state, id) {
        conn.evicted.store(true, Ordering::Release);
        conn.dismissed.notify_one();
    }
}

fn remove(state: &mut State, id: u64) -> Option<Arc<Conn>> {
    let conn = state.conns.remove(&id)?;
    if conn.per_source
        && let Some(n) = state.by_source.get_mut(&conn.source)
    {
        *n = n.saturating_sub(1);
        if *n == 0 {
            state.by_source.remove(&conn.source);
        }
    }
    Some(conn)
}

impl Conn {
    /// A connection outside any budget (the admin listener's): promoted from the start.
    pub(crate) fn unbudgeted(source: IpAddr) -> Arc<Conn> {
        Arc::new(Conn {
            id: 0,
            source,
            per_source: false,
            active: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            served: AtomicBool::new(false),
            promoted: AtomicBool::new(true),
            evicted: AtomicBool::new(false),
            dismissed: Notify::new(),
            budget: None,
        })
    }

    /// A request on it passed the webhook secret check: it leaves the budget for good.
    pub(crate) fn promote(&self) {
        if !self.promoted.swap(true, Ordering::AcqRel)
            && let Some(budget) = &self.budget
        {
            budget.remove(self.id);
        }
    }

    /// Counts a request as being answered on it while the guard lives.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Busy(self.clone())
    }

    /// Requests being answered on it now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    fn touch(&self) {
        if let Some(budget) = &self.budget {
            self.last_ms.store(budget.now_ms(), Ordering::Release);
        }
    }

    /// Resolves when the connection should be closed: it was evicted to make room, or it is still
    /// unauthenticated and has been idle longer than the budget's idle timeout. Never resolves for a
    /// promoted connection (the listener's own keep-alive limit ends it).
    pub(crate) async fn dismissed(&self) {
        let Some(budget) = &self.budget else {
            return std::future::pending().await;
        };
        loop {
            if self.evicted.load(Ordering::Acquire) {
                return;
            }
            if self.promoted.load(Ordering::Acquire) {
                // Only eviction is left, and a promoted connection is never evicted.
                return std::future::pending().await;
            }
            let idle_ms = budget.now_ms().saturating_sub(self.last_ms.load(Ordering::Acquire));
            let limit_ms = u64::try_from(budget.idle.as_millis()).unwrap_or(u64::MAX);
            if self.active() == 0 && idle_ms >= limit_ms {
                return;
            }
            // While a request is answered, look again a whole idle time later (its end restarts
            // the idle time).
            let wait = match self.active() {
                0 => Duration::from_millis(limit_ms.saturating_sub(idle_ms).max(1)),
                _ => budget.idle,
            };
            tokio::select! {
                () = self.dismissed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// What the webhook routes get from the connection (a request extension): its place in the
/// unauthenticated budget, and the in-flight cap.
#[derive(Clone)]
pub(crate) struct Admission {
    conn: Arc<Conn>,
    in_flight: Arc<Semaphore>,
}

/// More webhooks in flight than the cap (answered 503 `overloaded`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Overloaded;

impl Admission {
    pub(crate) fn new(conn: Arc<Conn>, in_flight: Arc<Semaphore>) -> Admission {
        Admission { conn, in_flight }
    }

    /// The request's credentials passed: its connection leaves the unauthenticated budget.
    pub(crate) fn promote(&self) {
        self.conn.promote();
    }

    /// An in-flight permit for a webhook whose body is read and whose credentials passed, held
    /// while it is answered; `Err` over the cap (counted for `endpoint`).
    pub(crate) fn enter(&self, endpoint: &'static str) -> Result<OwnedSemaphorePermit, Overloaded> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            metrics::webhook_answered(endpoint, "overloaded");
            if let Some(skipped) = BUSY.allow(node::now_ms()) {
                warn!(skipped, "webhook answered 503: too many in flight");
            }
            Overloaded
        })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(budget) = &self.0.budget {
            budget.remove(self.0.id);
        }
    }
}

/// Holds a connection in its budget until dropped (when the connection ends).
pub(crate) struct Registered(pub(crate) Arc<Conn>);

/// A request being answered on a connection.
pub(crate) struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.served.store(true, Ordering::Release);
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn over_the_budget_the_oldest_idle_is_evicted_and_promoted_ones_leave_it() {
        // 8 connections: 2 unauthenticated at most (a quarter), 2 per source.
        let b = Arc::new(Budget::new(8, Duration::from_secs(10)));
        let a1 = b.admit(ip("127.0.0.2"), true).unwrap();
        let a2 = b.admit(ip("127.0.0.2"), true).unwrap();
        let _busy = a2.busy();
        // Over the source's budget: a1, idle, makes room.
        let a3 = b.admit(ip("127.0.0.2"), true).unwrap();
        assert!(a1.evicted.load(Ordering::Acquire));
        tokio::time::timeout(Duration::from_secs(1), a1.dismissed()).await.unwrap();
        // Every one busy: refused.
        let _busy3 = a3.busy();
        assert_eq!(b.admit(ip("127.0.0.1"), true).err(), Some(Full));
        // A promoted one leaves the budget.
        a3.promote();
        let c = b.admit(ip("127.0.0.1"), true).unwrap();
        assert!(!a2.evicted.load(Ordering::Acquire) && !a3.evicted.load(Ordering::Acquire));
        assert!(!b.evict_oldest_idle(&c), "the other one left is busy");
        drop(Registered(c));
        assert_eq!(b.state().conns.len(), 1);
    }
}
