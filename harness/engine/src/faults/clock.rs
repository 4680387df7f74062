//! Sleeps with sub-millisecond precision, for the delays the fault proxy adds. tokio's timer
//! wheel rounds every deadline up to its next millisecond tick, which would add up to a
//! millisecond to each delayed chunk on top of the configured latency. One thread keeps the
//! pending deadlines and wakes each sleeper at its moment (a timed futex wait on Linux is
//! accurate to tens of microseconds); long sleeps spend their first part on tokio's timer.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{Condvar, Mutex, OnceLock},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

struct Clock {
    pending: Mutex<BinaryHeap<Reverse<Wake>>>,
    changed: Condvar,
}

struct Wake {
    at: Instant,
    tx: oneshot::Sender<()>,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Wake {}

impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Wake {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// Sleeps past this much on tokio's timer first.
const COARSE: Duration = Duration::from_millis(3);

/// The clock and its thread, or `None` when no thread could be started.
fn clock() -> Option<&'static Clock> {
    static CLOCK: OnceLock<Option<&'static Clock>> = OnceLock::new();
    *CLOCK.get_or_init(|| {
        let clock: &'static Clock = Box::leak(Box::new(Clock {
            pending: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("harness-fault-clock".into())
            .spawn(move || run(clock))
            .ok()
            .map(|_| clock)
    })
}

fn run(clock: &'static Clock) {
    let mut pending = clock.pending.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        while pending.peek().is_some_and(|Reverse(w)| w.at <= now) {
            if let Some(Reverse(w)) = pending.pop() {
                let _ = w.tx.send(());
            }
        }
        pending = match pending.peek().map(|Reverse(w)| w.at) {
            None => clock
                .changed
                .wait(pending)
                .unwrap_or_else(|e| e.into_inner()),
            Some(at) => {
                clock
                    .changed
                    .wait_timeout(pending, at.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

/// Returns at `at`, give or take tens of microseconds; at once for a moment already past.
pub async fn sleep_until(at: tokio::time::Instant) {
    let at = at.into_std();
    let now = Instant::now();
    if at <= now {
        return;
    }
    if at - now > COARSE {
        tokio::time::sleep_until((at - COARSE).into()).await;
    }
    let Some(clock) = clock() else {
        tokio::time::sleep_until(at.into()).await;
        return;
    };
    let (tx, rx) = oneshot::channel();
    {
        let mut pending = clock.pending.lock().unwrap_or_else(|e| e.into_inner());
        let first = pending.peek().is_none_or(|Reverse(w)| at < w.at);
        pending.push(Reverse(Wake { at, tx }));
        if first {
            clock.changed.notify_one();
        }
    }
    if rx.await.is_err() {
        // The clock's thread is gone: tokio's timer, rounded up, is still a sleep.
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_no_earlier_than_its_moment_and_at_once_for_a_past_one() {
        for delay in [Duration::from_micros(300), Duration::from_millis(7)] {
            let start = tokio::time::Instant::now();
            sleep_until(start + delay).await;
            let took = start.elapsed();
            assert!(took >= delay, "woke after {took:?}, before {delay:?}");
        }
        let past = tokio::time::Instant::now() - Duration::from_millis(1);
        let t = Instant::now();
        sleep_until(past).await;
        assert!(
            t.elapsed() < Duration::from_millis(50),
            "a past moment waited"
        );
    }
}
