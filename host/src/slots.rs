//! A counting semaphore limiting how many hosts run at once in one test process.
//!
//! Cargo runs the tests of a binary in parallel threads; each booted host costs a systemd, a
//! journald and whatever the test installs, on a 2-core machine. `FERRY_MAX_HOSTS` (default 2)
//! bounds them. A thread that already holds a slot gets another one at once, even over the
//! limit, so a test that boots two hosts cannot deadlock against another test doing the same.

use std::cell::Cell;
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::{self, ThreadId};

static USED: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

thread_local! {
    static HELD_HERE: Cell<usize> = const { Cell::new(0) };
}

fn max_hosts() -> usize {
    std::env::var("FERRY_MAX_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_usize)
        .max(1)
}

/// One running host's slot; given back on drop.
#[derive(Debug)]
pub struct Slot {
    thread: ThreadId,
}

pub fn acquire() -> Slot {
    let max = max_hosts();
    let held_here = HELD_HERE.with(Cell::get);
    let mut used = USED.lock().unwrap_or_else(PoisonError::into_inner);
    if held_here == 0 {
        while *used >= max {
            used = FREED.wait(used).unwrap_or_else(PoisonError::into_inner);
        }
    }
    *used += 1;
    HELD_HERE.with(|h| h.set(h.get() + 1));
    Slot {
        thread: thread::current().id(),
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut used = USED.lock().unwrap_or_else(PoisonError::into_inner);
        *used = used.saturating_sub(1);
        drop(used);
        FREED.notify_all();
        if thread::current().id() == self.thread {
            HELD_HERE.with(|h| h.set(h.get().saturating_sub(1)));
        }
    }
}
