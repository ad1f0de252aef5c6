//! The session pool of a [`super::Model`]: a free list of sessions and a condition variable.
//! A run checks a session out, and the checkout puts it back when dropped, also when the run
//! panics, so a panic never takes a session away from the pool.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ort::session::Session;

/// Sessions that are not running, and a signal for those waiting for one.
#[derive(Debug)]
pub(super) struct Pool {
    free: Mutex<Vec<Session>>,
    freed: Condvar,
    size: usize,
}

impl Pool {
    pub(super) fn new(sessions: Vec<Session>) -> Self {
        Self {
            size: sessions.len(),
            free: Mutex::new(sessions),
            freed: Condvar::new(),
        }
    }

    /// Sessions in the pool, free or not.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// Sessions free right now.
    pub(super) fn free(&self) -> usize {
        self.lock().len()
    }

    /// A free session; waits for one at most `wait` (`None`: without bound). `None` when none
    /// became free in time.
    pub(super) fn take(&self, wait: Option<Duration>) -> Option<Checkout<'_>> {
        // a wait too long to represent is a wait without bound
        let deadline = wait.and_then(|wait| Instant::now().checked_add(wait));
        let mut free = self.lock();
        loop {
            if let Some(session) = free.pop() {
                return Some(Checkout {
                    pool: self,
                    session: Some(session),
                });
            }
            free = match (wait, deadline) {
                (Some(_), Some(deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.freed
                        .wait_timeout(free, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                _ => self
                    .freed
                    .wait(free)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Session>> {
        // The list is only pushed to and popped from while locked: a panic elsewhere cannot
        // leave it half-changed, so a poisoned lock is still a valid list.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A session checked out of the pool; back in the pool when dropped.
#[derive(Debug)]
pub(super) struct Checkout<'a> {
    pool: &'a Pool,
    /// `Some` until dropped.
    session: Option<Session>,
}

impl Deref for Checkout<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        self.session
            .as_ref()
            .expect("a checkout holds its session until it is dropped")
    }
}

impl DerefMut for Checkout<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("a checkout holds its session until it is dropped")
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool.lock().push(session);
            self.pool.freed.notify_one();
        }
    }
}
