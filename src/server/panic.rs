//! What dispatch needs to log a recovered panic: its message and, for blocks whose `errors`
//! plugin asks for `stacktrace`, the stack where it happened.
//!
//! By the time `catch_unwind` returns, the stack that panicked is gone, so the trace has to be
//! taken inside the panic hook, on the panicking thread. [`capture_backtraces`] installs, once
//! per process, a hook that stores `Backtrace::force_capture()` in a thread-local slot and then
//! runs the hook that was there before (which prints the panic's location to stderr, as it
//! always did). Dispatch recovers panics on the thread that polled the chain, the same thread
//! the hook ran on, and [`take_backtrace`] hands it the trace.
//!
//! Queries pay nothing for this: no flag is armed per query. The hook costs a stack walk per
//! panic, and only once some block has asked for it.

use std::any::Any;
use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    /// The trace of the last panic on this thread, until dispatch takes it.
    static LAST: RefCell<Option<Backtrace>> = const { RefCell::new(None) };
}

/// Installs the capturing hook (idempotent).
pub fn capture_backtraces() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let trace = Backtrace::force_capture();
            // A panic while this thread's locals are being destroyed has nowhere to keep a trace.
            let _ = LAST.try_with(|slot| {
                if let Ok(mut slot) = slot.try_borrow_mut() {
                    *slot = Some(trace);
                }
            });
            previous(info);
        }));
    });
}

/// The trace of the last panic on this thread, if the hook captured one; clears it, so a trace
/// never outlives the panic it belongs to.
pub fn take_backtrace() -> Option<Backtrace> {
    LAST.try_with(|slot| slot.try_borrow_mut().ok().and_then(|mut s| s.take())).ok().flatten()
}

/// The panic's message, as Go's `recover()` value prints: the `&str` or `String` given to
/// `panic!`, else a placeholder.
pub fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(a panic without a message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_keeps_the_trace_of_the_panic_on_this_thread() {
        capture_backtraces();
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 42)).unwrap_err();
        assert_eq!(message(&*caught), "boom 42");
        let trace = take_backtrace().expect("captured").to_string();
        assert!(trace.contains("the_hook_keeps_the_trace"), "{trace}");
        assert!(take_backtrace().is_none(), "taken once");
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(message(&*caught), "(a panic without a message)");
        let _ = take_backtrace();
    }
}
