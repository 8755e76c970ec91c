//! Batches built ahead of the consumer on a background thread, so the GPU does not wait for
//! decoding. A bounded channel keeps at most `ahead` batches waiting; an error or a panic while
//! loading reaches the consumer as an `Err`, after which the loader stays stopped.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};

use super::batch::{load_batch_into, Batch, Order, RandomCrops};
use super::contain::panic_message;
use super::Dataset;

pub struct Loader {
    rx: Option<Receiver<Result<Batch>>>,
    /// Batches the consumer is done with, whose buffers the next batches reuse.
    recycle: SyncSender<Batch>,
    thread: Option<JoinHandle<()>>,
    next: usize,
    failed: bool,
}

impl Loader {
    /// Starts loading batches `first`, `first + 1`, ... of `order` from `dataset`, keeping up to
    /// `ahead` (at least 1) finished batches queued.
    /// With `crop_seed`, each clip's crop starts where [`RandomCrops`] says.
    pub fn spawn(
        dataset: Arc<dyn Dataset>,
        order: Order,
        first: usize,
        ahead: usize,
        crop_seed: Option<u64>,
    ) -> Result<Loader> {
        let (tx, rx) = sync_channel(ahead.max(1));
        let (recycle, recycled) = sync_channel::<Batch>(ahead.max(1) + 1);
        let thread = std::thread::Builder::new()
            .name("sn-data-loader".into())
            .spawn(move || {
                for b in first.. {
                    let reuse = recycled.try_recv().ok();
                    let crops = crop_seed.map(|seed| RandomCrops { seed, batch: b });
                    let load = || load_batch_into(&*dataset, &order.batch(b), reuse, crops);
                    let loaded = catch_unwind(AssertUnwindSafe(load))
                        .unwrap_or_else(|panic| Err(anyhow!("the loader panicked: {}", panic_message(&*panic))))
                        .with_context(|| format!("loading batch {b}"));
                    let failed = loaded.is_err();
                    // A send fails only when the consumer has gone: then stop quietly.
                    if tx.send(loaded).is_err() || failed {
                        return;
                    }
                }
            })
            .context("cannot start the data loader thread")?;
        Ok(Loader { rx: Some(rx), recycle, thread: Some(thread), next: first, failed: false })
    }

    /// The next batch in order, waiting for it if the thread has not finished it yet.
    pub fn next_batch(&mut self) -> Result<Batch> {
        if self.failed {
            return Err(anyhow!("the loader stopped after an earlier error (batch {})", self.next));
        }
        let received = self.rx.as_ref().expect("receiver lives until drop").recv();
        let batch = received.unwrap_or_else(|_| Err(anyhow!("the loader thread ended unexpectedly")));
        match &batch {
            Ok(_) => self.next += 1,
            Err(_) => self.failed = true,
        }
        batch
    }
}

impl Loader {
    /// Gives back a batch the consumer is done with, so a later batch reuses its memory.
    pub fn recycle(&self, batch: Batch) {
        // A full queue or a stopped thread only means the buffers are freed instead.
        let _ = self.recycle.try_send(batch);
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Dropping the receiver first makes a thread blocked on a full queue return.
        drop(self.rx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
