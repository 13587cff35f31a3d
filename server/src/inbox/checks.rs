//! Where the hub checks operator passwords: [`CHECK_THREADS`] threads of their own, each with
//! one [`Hasher`] (19 MiB of argon2 memory, kept), taking checks from a bounded queue.
//!
//! A check is tens of milliseconds of CPU and 19 MiB of memory. Run on the runtime's blocking
//! pool, every check at once had a thread and its own 19 MiB, and what the C allocator kept
//! of them afterwards stayed: a few dozen failed sign-ins left the hub hundreds of megabytes
//! larger. Here the checks the sign-in limit admits (`inbox::limit`) wait their turn, so the
//! hub never holds more than [`CHECK_THREADS`] × 19 MiB for them and never spends more than that
//! many cores, however many arrive.
//!
//! The queue has two lanes of [`QUEUE_PER_LANE`] checks each: sign-ins from an address the
//! operator signed in from before, which the threads take first, and all others. A check
//! that finds its lane full is refused [`Busy`] (the caller answers `503` with `Retry-After`),
//! so strangers' sign-ins can never keep an operator's from being checked.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use tokio::sync::oneshot;

use super::password::Hasher;

/// Threads that check passwords.
pub(crate) const CHECK_THREADS: usize = 2;

/// Checks that may wait in each lane.
pub(crate) const QUEUE_PER_LANE: usize = 32;

/// Which lane of the queue a check waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// A sign-in from an address the operator signed in from lately: taken first.
    Known,
    /// Every other sign-in.
    Other,
}

/// The check's lane was full: try again in a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// One password to check: against a stored hash, or against none (an unknown name, which takes
/// the same time and matches nothing).
struct Job {
    password: String,
    stored: Option<String>,
    done: oneshot::Sender<bool>,
}

#[derive(Default)]
struct Waiting {
    known: VecDeque<Job>,
    other: VecDeque<Job>,
    closed: bool,
}

impl Waiting {
    /// The next check to run: the known lane's first.
    fn next(&mut self) -> Option<Job> {
        self.known.pop_front().or_else(|| self.other.pop_front())
    }
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<Waiting>,
    ready: Condvar,
    /// Checks being worked on now.
    running: AtomicUsize,
    /// The most ever worked on at once.
    most_running: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One checking thread: the next job, known lane first, until the hub is gone.
    fn work(&self) {
        let mut hasher = Hasher::default();
        loop {
            let job = {
                let mut waiting = self.lock();
                loop {
                    if let Some(job) = waiting.next() {
                        break job;
                    }
                    if waiting.closed {
                        return;
                    }
                    waiting = self.ready.wait(waiting).unwrap_or_else(|p| p.into_inner());
                }
            };
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            let matched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &job.stored {
                Some(stored) => hasher.verify(&job.password, stored),
                None => {
                    hasher.verify_nobody(&job.password);
                    false
                }
            }));
            self.running.fetch_sub(1, Ordering::SeqCst);
            if matched.is_err() {
                // Whatever the hasher held may be half-written; start the next check afresh.
                hasher = Hasher::default();
            }
            let _ = job.done.send(matched.unwrap_or(false));
        }
    }
}

/// See the module docs. The threads start at the first check and end when this is dropped.
#[derive(Default)]
pub(crate) struct PasswordChecks {
    shared: OnceLock<Arc<Shared>>,
}

impl std::fmt::Debug for PasswordChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChecks").field("started", &self.shared.get().is_some()).finish()
    }
}

impl PasswordChecks {
    fn shared(&self) -> &Arc<Shared> {
        self.shared.get_or_init(|| Self::start(CHECK_THREADS))
    }

    /// The queue, with `threads` threads taking checks from it.
    fn start(threads: usize) -> Arc<Shared> {
        {
            let shared = Arc::new(Shared::default());
            for i in 0..threads {
                let mine = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name(format!("password-check-{i}"))
                    .spawn(move || mine.work());
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start a password-checking thread");
                }
            }
            shared
        }
    }

    /// Whether `password` matches `stored` (a PHC string; `None` for an unknown name, which
    /// matches nothing after the same work). Waits in `lane` for a checking thread; `Err(Busy)`
    /// at once when [`QUEUE_PER_LANE`] checks wait there already.
    pub(crate) async fn verify(
        &self,
        lane: Lane,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, Busy> {
        let shared = self.shared();
        let (done, answer) = oneshot::channel();
        {
            let mut waiting = shared.lock();
            let queue = match lane {
                Lane::Known => &mut waiting.known,
                Lane::Other => &mut waiting.other,
            };
            if queue.len() >= QUEUE_PER_LANE {
                return Err(Busy);
            }
            queue.push_back(Job { password, stored, done });
        }
        shared.ready.notify_one();
        // A check whose thread died answers no match.
        Ok(answer.await.unwrap_or(false))
    }

    /// The most checks ever worked on at once (at most [`CHECK_THREADS`]).
    #[cfg(test)]
    fn most_running(&self) -> usize {
        self.shared.get().map_or(0, |s| s.most_running.load(Ordering::SeqCst))
    }
}

impl Drop for PasswordChecks {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.get() {
            shared.lock().closed = true;
            shared.ready.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many checks arrive at once, at most two run (two hashers' memory) and each
    /// gets its answer; only the right password matches.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_run_two_at_a_time() {
        let checks = Arc::new(PasswordChecks::default());
        let stored = super::super::password::hash("correct horse battery").expect("hash");
        let mut waiting = Vec::new();
        for i in 0..QUEUE_PER_LANE {
            let (checks, stored) = (Arc::clone(&checks), stored.clone());
            waiting.push(tokio::spawn(async move {
                let password = if i == 0 { "correct horse battery" } else { "wrong" };
                checks.verify(Lane::Other, password.into(), Some(stored)).await
            }));
        }
        let mut answers = Vec::new();
        for w in waiting {
            answers.push(w.await.expect("task"));
        }
        assert_eq!(answers[0], Ok(true));
        assert!(answers[1..].iter().all(|a| *a == Ok(false)), "{answers:?}");
        assert_eq!(checks.verify(Lane::Known, "x".into(), None).await, Ok(false));
        let most = checks.most_running();
        assert!((1..=CHECK_THREADS).contains(&most), "{most} checks at once");
    }

    /// A lane holds [`QUEUE_PER_LANE`] checks and refuses the next at once; the other lane has
    /// room of its own, and its checks are taken first.
    #[tokio::test]
    async fn a_full_lane_refuses_and_the_known_lane_goes_first() {
        let checks = Arc::new(PasswordChecks::default());
        let shared = Arc::clone(checks.shared.get_or_init(|| PasswordChecks::start(0)));
        let queued = |lane: Lane| {
            let waiting = shared.lock();
            match lane {
                Lane::Known => waiting.known.len(),
                Lane::Other => waiting.other.len(),
            }
        };
        let mut pending = Vec::new();
        for _ in 0..QUEUE_PER_LANE {
            let checks = Arc::clone(&checks);
            pending.push(tokio::spawn(async move { checks.verify(Lane::Other, "other".into(), None).await }));
        }
        while queued(Lane::Other) < QUEUE_PER_LANE {
            tokio::task::yield_now().await;
        }
        assert_eq!(checks.verify(Lane::Other, "one more".into(), None).await, Err(Busy));
        let known = Arc::clone(&checks);
        pending.push(tokio::spawn(async move { known.verify(Lane::Known, "known".into(), None).await }));
        while queued(Lane::Known) < 1 {
            tokio::task::yield_now().await;
        }
        let next = shared.lock().next().expect("a check");
        assert_eq!(next.password, "known");
        for p in pending {
            p.abort();
        }
    }
}
