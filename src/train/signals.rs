//! Ctrl-C and SIGTERM (what `timeout`, Slurm and docker send) during training: the first finishes
//! the step in flight, saves and exits with 128 + the signal (130, 143), so a script sees an
//! interrupted run as interrupted; a second one of the same kind exits at once, leaving the last
//! checkpoint on disk as it was.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// The signals a run stops for.
const STOPPING: [i32; 2] = [SIGINT, SIGTERM];

struct Watch {
    /// The signal that arrived (0: none yet).
    received: Arc<AtomicUsize>,
    /// Set by the first signal: the next one exits the process.
    stopping: Arc<AtomicBool>,
}

fn watch() -> Result<&'static Watch> {
    static WATCH: OnceLock<Watch> = OnceLock::new();
    if let Some(w) = WATCH.get() {
        return Ok(w);
    }
    let w = Watch { received: Arc::new(AtomicUsize::new(0)), stopping: Arc::new(AtomicBool::new(false)) };
    for signal in STOPPING {
        // Registered first, so it sees the flag as it was before this signal set it.
        flag::register_conditional_shutdown(signal, 128 + signal, w.stopping.clone())
            .context("installing the signal handlers")?;
        flag::register(signal, w.stopping.clone()).context("installing the signal handlers")?;
        flag::register_usize(signal, w.received.clone(), signal as usize).context("installing the signal handlers")?;
    }
    Ok(WATCH.get_or_init(|| w))
}

/// Starts watching for Ctrl-C and SIGTERM (once per process; each call clears what an earlier run
/// received).
pub fn arm() -> Result<()> {
    let w = watch()?;
    w.received.store(0, Ordering::SeqCst);
    w.stopping.store(false, Ordering::SeqCst);
    Ok(())
}

/// The signal that asked the run to stop, if one did.
pub fn received() -> Option<i32> {
    let w = watch().ok()?;
    match w.received.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal as i32),
    }
}

/// The signal's name, for messages.
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "Ctrl-C (SIGINT)",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
