//! Runs third-party code whose bugs must cost one file, not the process: a panic inside becomes
//! an error holding its message, and the default hook's "thread panicked" report is held back
//! for it, since the error already says what happened and which file it was.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`contain`], whose caller reports the panic itself.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// `f()`, or the message of the panic it raised.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                report(info)
            }
        }));
    });
    let outer = CONTAINED.with(|c| c.replace(true));
    // Whatever `f` left half-done is dropped with the error, never used again.
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    result.map_err(|panic| panic_message(&*panic))
}

/// The text a panic was raised with.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_thread_goes_on() {
        assert_eq!(contain(|| 7), Ok(7));
        let index: usize = std::hint::black_box(3);
        let err = contain(|| [1, 2][index]).unwrap_err();
        assert_eq!(err, "index out of bounds: the len is 2 but the index is 3");
        assert_eq!(contain(|| panic!("{} of {}", 1, 2)), Err::<(), _>("1 of 2".into()));
        assert!(!CONTAINED.with(Cell::get), "the hook reports panics outside again");
    }
}
