//! The writer actor and the handle the rest of the gateway uses.

use super::{
    CacheError, CacheResult, CacheStore, Cached, Candidate, Entry, EntryFilter, ExactKey, NewEntry,
    RebuildReport, SweepReport, Writer,
};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// Clock in unix milliseconds (injectable for tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How often the writer applies the hits noted by [`CacheHandle::record_hit`].
pub const HIT_APPLY_INTERVAL: Duration = Duration::from_millis(250);

/// Owns all mutations of a [`CacheStore`]. Runs on its own [`Arbiter`] (sled
/// flushes block), sweeps expiry and limits every `sweep_interval_secs`, and
/// starts an index rebuild on a separate thread when tombstones pile up.
pub struct CacheWriter {
    store: Arc<CacheStore>,
    /// The store's write side: owning it is what makes this actor the only writer.
    writer: Writer,
    clock: Clock,
}

impl CacheWriter {
    pub fn new(store: Arc<CacheStore>, writer: Writer, clock: Clock) -> Self {
        Self {
            store,
            writer,
            clock,
        }
    }

    fn apply_hits(&mut self) {
        if let Err(e) = self.store.apply_hits(&mut self.writer) {
            tracing::warn!(error = %e, "cannot record cache hits");
        }
    }

    fn periodic(&mut self) {
        match self.store.sweep(&mut self.writer, (self.clock)()) {
            Ok(r) if r.expired + r.evicted > 0 => {
                tracing::debug!(expired = r.expired, evicted = r.evicted, "cache sweep")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cache sweep failed"),
        }
        if self.store.needs_rebuild() {
            spawn_rebuild(self.store.clone(), false, |r| {
                if let Err(e) = r {
                    tracing::error!(error = %e, "cache index rebuild failed")
                }
            });
        }
    }

    /// Pending hit counts applied, sled flushed, changed graphs dumped: everything
    /// written so far survives a restart. Returns the number of partitions dumped.
    fn persist(&mut self) -> CacheResult<usize> {
        self.apply_hits();
        self.store.flush()?;
        self.store.persist_index(false)
    }

    /// Dumps the graphs that changed (writer thread: inserts wait meanwhile,
    /// which the dump needs anyway).
    fn dump(&mut self) {
        if let Err(e) = self.store.persist_index(false) {
            tracing::error!(error = %e, "cache index dump failed");
        }
    }
}

fn spawn_rebuild(
    store: Arc<CacheStore>,
    force: bool,
    done: impl FnOnce(CacheResult<Option<RebuildReport>>) + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("cache-rebuild".into())
        .spawn(move || {
            let r = store.rebuild(force);
            if matches!(r, Ok(Some(_))) {
                // A rebuilt graph replaces its dump: the next start-up
                // reloads it instead of rebuilding again.
                if let Err(e) = store.persist_index(false) {
                    tracing::error!(error = %e, "cache index dump after rebuild failed");
                }
            }
            done(r)
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot spawn cache rebuild thread");
    }
}

impl Actor for CacheWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = Duration::from_secs(self.store.config().sweep_interval_secs.max(1));
        ctx.run_interval(every, |act, _| act.periodic());
        ctx.run_interval(HIT_APPLY_INTERVAL, |act, _| act.apply_hits());
        let dump_every = self.store.config().index_dump_interval_secs;
        if self.store.config().index_dump && dump_every > 0 {
            ctx.run_interval(Duration::from_secs(dump_every), |act, _| act.dump());
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Err(e) = self.persist() {
            tracing::error!(error = %e, "persisting the cache at shutdown failed");
        }
    }
}

/// Stores a batch (flushed before the reply); replies with the new ids.
#[derive(Message, Debug)]
#[rtype(result = "CacheResult<Vec<u64>>")]
pub struct Insert(pub Vec<NewEntry>);

/// Deletes one entry; `Err(NotFound)` if it is not live.
#[derive(Message, Debug)]
#[rtype(result = "CacheResult<()>")]
pub struct Delete(pub u64);

/// Deletes every entry matching the filter; replies with the count.
#[derive(Message, Debug)]
#[rtype(result = "CacheResult<u64>")]
pub struct DeleteWhere(pub EntryFilter);

/// Runs an expiry + eviction sweep now.
#[derive(Message, Debug)]
#[rtype(result = "CacheResult<SweepReport>")]
pub struct Sweep;

/// Rebuilds the index (the partitions that need it, or all with `force`) on
/// a separate thread; replies when it is swapped in. `Ok(None)`: nothing
/// needed or a rebuild was already running.
#[derive(Message, Debug)]
#[rtype(result = "CacheResult<Option<RebuildReport>>")]
pub struct Rebuild {
    pub force: bool,
}

/// Makes everything written so far durable before the process exits: pending hit
/// counts, a sled flush and a dump of the graphs that changed (so the next start-up
/// reloads them instead of re-inserting every point). Replies with the number of
/// partitions dumped. Sent at shutdown, after the HTTP server stopped: the arbiter's
/// own `stopped` would run on a thread the process does not wait for.
#[derive(Message, Debug)]
#[rtype(result = "CacheResult<usize>")]
pub struct Persist;

impl Handler<Persist> for CacheWriter {
    type Result = CacheResult<usize>;
    fn handle(&mut self, _: Persist, _: &mut Self::Context) -> Self::Result {
        self.persist()
    }
}

impl Handler<Insert> for CacheWriter {
    type Result = CacheResult<Vec<u64>>;
    fn handle(&mut self, msg: Insert, _: &mut Self::Context) -> Self::Result {
        self.store
            .insert_batch(&mut self.writer, msg.0, (self.clock)())
    }
}

impl Handler<Delete> for CacheWriter {
    type Result = CacheResult<()>;
    fn handle(&mut self, msg: Delete, _: &mut Self::Context) -> Self::Result {
        self.store.delete(&mut self.writer, msg.0)
    }
}

impl Handler<DeleteWhere> for CacheWriter {
    type Result = CacheResult<u64>;
    fn handle(&mut self, msg: DeleteWhere, _: &mut Self::Context) -> Self::Result {
        self.store.delete_where(&mut self.writer, &msg.0)
    }
}

impl Handler<Sweep> for CacheWriter {
    type Result = CacheResult<SweepReport>;
    fn handle(&mut self, _: Sweep, _: &mut Self::Context) -> Self::Result {
        self.store.sweep(&mut self.writer, (self.clock)())
    }
}

impl Handler<Rebuild> for CacheWriter {
    type Result = ResponseFuture<CacheResult<Option<RebuildReport>>>;
    fn handle(&mut self, msg: Rebuild, _: &mut Self::Context) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn_rebuild(self.store.clone(), msg.force, move |r| {
            let _ = tx.send(r);
        });
        Box::pin(async move { rx.await.map_err(|_| CacheError::WriterGone)? })
    }
}

/// What the rest of the gateway holds: reads go straight to the shared
/// store, writes to the writer actor. Cheap to clone.
#[derive(Clone)]
pub struct CacheHandle {
    pub store: Arc<CacheStore>,
    pub writer: Addr<CacheWriter>,
    clock: Clock,
}

impl CacheHandle {
    /// Starts the writer on a new arbiter, handing it the store's [`Writer`]. Must be
    /// called inside a running actix `System`; fails when the store's writer was
    /// already taken (a store has one writer).
    pub fn start(store: Arc<CacheStore>) -> CacheResult<Self> {
        Self::start_with_clock(store, Arc::new(super::now_ms))
    }

    /// Like [`CacheHandle::start`] with an injected clock.
    pub fn start_with_clock(store: Arc<CacheStore>, clock: Clock) -> CacheResult<Self> {
        let writer = store.take_writer().ok_or(CacheError::WriterTaken)?;
        let arbiter = Arbiter::new();
        let (s, c) = (store.clone(), clock.clone());
        let writer = CacheWriter::start_in_arbiter(&arbiter.handle(), move |_| {
            CacheWriter::new(s, writer, c)
        });
        Ok(Self {
            store,
            writer,
            clock,
        })
    }

    /// Current time of the handle's clock.
    pub fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    pub fn get(&self, id: u64) -> CacheResult<Option<Entry>> {
        self.store.get(id, self.now_ms())
    }

    pub fn get_exact(&self, key: &ExactKey) -> CacheResult<Option<Entry>> {
        self.store.get_exact(key, self.now_ms())
    }

    pub fn get_cached(&self, id: u64) -> CacheResult<Option<Cached>> {
        self.store.get_cached(id, self.now_ms())
    }

    pub fn get_exact_cached(&self, key: &ExactKey) -> CacheResult<Option<Cached>> {
        self.store.get_exact_cached(key, self.now_ms())
    }

    pub fn search(&self, vector: &[f32], partition: &str, k: usize) -> CacheResult<Vec<Candidate>> {
        self.store.search(vector, partition, k, self.now_ms())
    }

    /// A search of width `ef` (`None`: the configured `ef_search`).
    pub fn search_ef(
        &self,
        vector: &[f32],
        partition: &str,
        k: usize,
        ef: Option<usize>,
    ) -> CacheResult<Vec<Candidate>> {
        self.store
            .search_ef(vector, partition, k, self.now_ms(), ef)
    }

    pub async fn insert(&self, batch: Vec<NewEntry>) -> CacheResult<Vec<u64>> {
        self.writer
            .send(Insert(batch))
            .await
            .map_err(|_| CacheError::WriterGone)?
    }

    pub async fn delete(&self, id: u64) -> CacheResult<()> {
        self.writer
            .send(Delete(id))
            .await
            .map_err(|_| CacheError::WriterGone)?
    }

    pub async fn delete_where(&self, filter: EntryFilter) -> CacheResult<u64> {
        self.writer
            .send(DeleteWhere(filter))
            .await
            .map_err(|_| CacheError::WriterGone)?
    }

    pub async fn sweep(&self) -> CacheResult<SweepReport> {
        self.writer
            .send(Sweep)
            .await
            .map_err(|_| CacheError::WriterGone)?
    }

    pub async fn rebuild(&self, force: bool) -> CacheResult<Option<RebuildReport>> {
        self.writer
            .send(Rebuild { force })
            .await
            .map_err(|_| CacheError::WriterGone)?
    }

    /// Counts a hit. Noted in memory, not sent: a message would wake the writer's
    /// thread for every hit, which on a VM costs more than the rest of serving one;
    /// the writer applies noted hits every [`HIT_APPLY_INTERVAL`].
    pub fn record_hit(&self, id: u64) {
        self.store.note_hit(id, self.now_ms());
    }
}
