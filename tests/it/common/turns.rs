//! Which tests run beside which, now that every area's tests share one process. Most tests
//! share the machine with a neighbour, as they did inside their own area's binary; a few must
//! have it to themselves: the chaos suite (its judge times revocations under a load and faults
//! of its own making), the flood past a node's file limit (thousands of sockets in this very
//! process) and the full disk (a node hammered with logins until it dies). Those hold
//! [`alone`] for their whole run; every test that starts nodes holds [`shared`] while they run
//! (`TestSite` holds one for its lifetime).
//!
//! It owns only the order of tests; it must not know what any test does.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};

/// Who holds a turn: the threads of the tests sharing the machine (once per guard), the test
/// that has it alone, and how many such tests wait for it.
struct Turns {
    shared: Vec<ThreadId>,
    alone: Option<ThreadId>,
    waiting: usize,
}

static TURNS: Mutex<Turns> = Mutex::new(Turns {
    shared: Vec::new(),
    alone: None,
    waiting: 0,
});
static CHANGED: Condvar = Condvar::new();

fn turns() -> MutexGuard<'static, Turns> {
    // A test that panicked while holding the lock left the counts whole (no panic happens
    // between its updates): carry on.
    TURNS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wait(guard: MutexGuard<'static, Turns>) -> MutexGuard<'static, Turns> {
    CHANGED.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// A share of the machine, held until dropped.
pub struct Shared {
    thread: ThreadId,
}

/// Waits until no test has the machine alone, then shares it. A test waiting to run alone goes
/// first, except for a test that already shares (a second site of the same test), which would
/// otherwise wait for itself.
pub fn shared() -> Shared {
    let me = thread::current().id();
    let mut turns = turns();
    loop {
        let may = match turns.alone {
            Some(holder) => holder == me,
            None => turns.waiting == 0 || turns.shared.contains(&me),
        };
        if may {
            break;
        }
        turns = wait(turns);
    }
    turns.shared.push(me);
    Shared { thread: me }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut turns = turns();
        if let Some(k) = turns.shared.iter().position(|t| *t == self.thread) {
            turns.shared.swap_remove(k);
        }
        CHANGED.notify_all();
    }
}

/// The machine to one test alone, held until dropped.
pub struct Alone;

/// Waits until no other test runs nodes, then keeps every other test from starting any. The
/// test's own sites share with it.
pub fn alone() -> Alone {
    let me = thread::current().id();
    let mut turns = turns();
    turns.waiting += 1;
    while turns.alone.is_some() || turns.shared.iter().any(|t| *t != me) {
        turns = wait(turns);
    }
    turns.waiting -= 1;
    turns.alone = Some(me);
    Alone
}

impl Drop for Alone {
    fn drop(&mut self) {
        turns().alone = None;
        CHANGED.notify_all();
    }
}
