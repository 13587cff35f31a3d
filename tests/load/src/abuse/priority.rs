//! The attacker's threads run at nice 19, the lowest CPU priority, so that on the load
//! generator's CPU the honest clients always run first.
//!
//! In reality the attacker is another machine; here it shares a CPU with the honest clients it
//! is measured against. Generating a flood (2,500 requests a second, 1,500 streamed answers of
//! the reply-engine double) costs CPU, and without this every honest read that waits behind an
//! attacker's task would be counted as the hub's latency. A nice-19 thread gets 15/1024 of the
//! CPU against a normal one and loses to it when both want to run. Lowering a thread's own
//! priority needs no privilege. On Linux a thread has a nice value of its own (set through its
//! thread id); elsewhere this does nothing.

/// Lowers the calling thread to nice 19 (see the module docs); what it got, for the log.
pub fn lower_this_thread() -> String {
    imp::lower()
}

#[cfg(target_os = "linux")]
mod imp {
    use rustix::process::setpriority_process;
    use rustix::thread::gettid;

    pub fn lower() -> String {
        match setpriority_process(Some(gettid()), 19) {
            Ok(()) => "nice 19".to_owned(),
            Err(e) => format!("normal priority (nice 19 refused: {e})"),
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
}
