//! The attacker's threads run at nice 19, the lowest CPU priority, and, when `bench abuse`
//! asks, on the hub's CPU rather than the honest clients'.
//!
//! In reality the attacker is another machine; here it shares a two-CPU machine with the hub
//! and the honest clients it is measured against. Generating a flood (2,500 requests a second,
//! 1,500 streamed answers of the reply-engine double, each request on a connection of its own)
//! costs CPU, and every honest send or read that waits behind an attacker's work is counted as
//! the hub's latency. A nice-19 thread gets 15/1024 of the CPU against a normal one and loses to
//! it when both want to run, but the kernel's work for its sockets (connection set-up, loopback
//! delivery) is done on its CPU at no priority at all: on the honest clients' CPU, attack 9's
//! 1,500 connections made honest p99 2–4× the calm phase's while the hub's CPU was 82 % idle;
//! moved to the hub's CPU, 1.05×. So `bench abuse` puts the attacker on the hub's CPU
//! ([`pin_this_thread`]): what generating an attack costs is then taken from the hub, never
//! hidden from it, and the honest clients' clock, which is the measurement, runs undisturbed.
//! Lowering a thread's own priority or moving it needs no privilege. On Linux a thread has a
//! nice value and a CPU mask of its own (set through its thread id); elsewhere this does nothing.

/// Lowers the calling thread to nice 19 (see the module docs); what it got, for the log.
pub fn lower_this_thread() -> String {
    imp::lower()
}

/// Keeps the calling thread on `cpus` (CPU numbers as `taskset -c` takes them); what it got,
/// for the log.
pub fn pin_this_thread(cpus: &[usize]) -> String {
    imp::pin(cpus)
}

#[cfg(target_os = "linux")]
mod imp {
    use rustix::process::setpriority_process;
    use rustix::thread::{gettid, sched_setaffinity, CpuSet};

    pub fn lower() -> String {
        match setpriority_process(Some(gettid()), 19) {
            Ok(()) => "nice 19".to_owned(),
            Err(e) => format!("normal priority (nice 19 refused: {e})"),
        }
    }

    pub fn pin(cpus: &[usize]) -> String {
        let mut set = CpuSet::new();
        for &cpu in cpus.iter().filter(|&&c| c < CpuSet::MAX_CPU) {
            set.set(cpu);
        }
        match sched_setaffinity(None, &set) {
            Ok(()) => format!("CPUs {cpus:?}"),
            Err(e) => format!("any CPU (pinning to {cpus:?} refused: {e})"),
        }
    }

    #[cfg(test)]
    pub fn nice() -> i32 {
        rustix::process::getpriority_process(Some(gettid())).unwrap_or(i32::MIN)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn lower() -> String {
        "normal priority (lowered only on Linux)".to_owned()
    }

    pub fn pin(_cpus: &[usize]) -> String {
        "any CPU (pinned only on Linux)".to_owned()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn only_the_lowered_thread_is_nice_19() {
        let before = super::imp::nice();
        let (got, nice) =
            std::thread::spawn(|| (super::lower_this_thread(), super::imp::nice())).join().expect("thread");
        assert_eq!(got, "nice 19");
        assert_eq!(nice, 19);
        assert_eq!(super::imp::nice(), before, "other threads keep their priority");
    }

    #[test]
    fn only_the_pinned_thread_is_kept_on_its_cpu() {
        use rustix::thread::sched_getaffinity;
        let before = sched_getaffinity(None).expect("mask");
        let (got, mask) = std::thread::spawn(|| {
            let got = super::pin_this_thread(&[0]);
            (got, sched_getaffinity(None).expect("mask"))
        })
        .join()
        .expect("thread");
        assert_eq!(got, "CPUs [0]");
        assert!(mask.is_set(0) && mask.count() == 1, "the thread runs on CPU 0 only");
        assert!(sched_getaffinity(None).expect("mask") == before, "other threads keep their CPUs");
    }
}
