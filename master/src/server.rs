//! The master daemon: wires the sockets, the worker pool, the job table, the
//! store and the API together, and shuts them down in order.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use keys::{KeyStore, PkiStore, SigningKey};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{MasterConfig, StoreEngine};
use crate::error::MasterError;
use crate::requests::{self, NonceCache};
use crate::service::jobs::JobsService;
use crate::transport;
use crate::transport::gate::{Gate, Port};
use store::{SledStore, Store};

/// The PUB topic every minion subscribes to.
pub const BROADCAST_TOPIC: &[u8] = b"cmdb";

/// Associated data bound into every sealed publish.
pub const PUBLISH_AAD: &[u8] = b"cmdb-publish";

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix time in microseconds.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// State shared by the workers and the API.
pub struct Shared {
    /// Settings.
    pub cfg: MasterConfig,
    /// Minion keys.
    pub pki: Arc<dyn KeyStore>,
    /// The other peers of a master cluster, told of every stored return.
    pub peers: Option<mpsc::Sender<crate::cluster::Message>>,
    /// The session key the peers of a cluster share.
    pub session_share: Option<crate::cluster::SessionShare>,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Every asset's current query view, for listings.
    pub index: Arc<crate::service::index::AssetIndex>,
    /// Jobs: publishing, the live table, following returns.
    pub jobs: JobsService,
    /// Users and tokens of the API.
    pub users: crate::service::users::UsersService,
    /// The master's signing key.
    pub master_key: SigningKey,
    /// Random id of this master process.
    pub boot_id: u64,
    /// Recently seen auth nonces.
    pub nonces: NonceCache,
    /// Presence.
    pub presence: crate::presence::Presence,
    /// Session and channel keys.
    pub keyring: Arc<crate::keyring::Keyring>,
    /// Auth rate limits per connection.
    pub auth_limiter: crate::requests::AuthLimiter,
    /// Keys pending acceptance: set from each listing of the keys and
    /// counted up on new keys, whose check against `max_pending` and write
    /// hold this lock.
    pub pending_keys: std::sync::Mutex<PendingCount>,
    /// A collect stored a new asset or a host's guests since the last pass
    /// relating VMs to their hosts.
    pub relate_pending: std::sync::atomic::AtomicBool,
    /// Rate-limited logging of limit refusals.
    pub limit_log: crate::requests::LimitLog,
    /// Large returns arriving in parts.
    pub chunks: crate::chunks::Assembly,
    /// Connections and whether they authenticated.
    pub gate: Arc<Gate>,
    /// What happens, for listeners of `GET /v1/events`.
    pub events: Arc<crate::events::EventBus>,
    /// Figures for `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Jobs over SSH on the hosts of the roster.
    pub ssh: crate::service::ssh::SshService,
}

fn random_u64() -> u64 {
    u64::from_le_bytes(keys::random())
}

/// Where a master keeps its records and its minion keys.
pub struct Stores {
    /// Jobs, returns, the inventory, users and tokens.
    pub store: Arc<dyn Store>,
    /// Minion keys.
    pub keys: Arc<dyn KeyStore>,
    /// The PostgreSQL engine itself, when it is the store (what the peers
    /// of a cluster share beyond records: the session key).
    pub postgres: Option<Arc<store::PgStore>>,
}

/// The engine `store` names; an error names it without its password.
fn engine(cfg: &MasterConfig) -> Result<StoreEngine, MasterError> {
    Ok(cfg
        .store_engine()
        .map_err(|reason| store::StoreError::Open {
            path: store::postgres::redact(&cfg.store),
            reason,
        })?)
}

/// The store and the key store `cfg` names: sled and the pki directory
/// `pki`, or both in PostgreSQL (the master keypair stays in `pki`).
pub fn open_stores(cfg: &MasterConfig, pki: PkiStore) -> Result<Stores, MasterError> {
    Ok(match engine(cfg)? {
        StoreEngine::Sled(path) => Stores {
            store: Arc::new(SledStore::open(&path, cfg.inventory.clone())?),
            keys: Arc::new(pki),
            postgres: None,
        },
        StoreEngine::Postgres(url) => {
            let pg = Arc::new(store::PgStore::connect(&url, cfg.inventory.clone())?);
            Stores {
                keys: Arc::new(pg.keys()),
                store: pg.clone(),
                postgres: Some(pg),
            }
        }
    })
}

/// The key store alone (what `cmdb-key` works on while the master is
/// stopped): the pki directory `pki`, or the cluster's database.
pub fn open_key_store(cfg: &MasterConfig, pki: PkiStore) -> Result<Arc<dyn KeyStore>, MasterError> {
    match engine(cfg)? {
        StoreEngine::Postgres(url) => Ok(Arc::new(
            store::PgStore::connect(&url, cfg.inventory.clone())?.keys(),
        )),
        StoreEngine::Sled(_) => Ok(Arc::new(pki)),
    }
}

/// Runs the master until `shutdown` completes, then stops its tasks and
/// flushes the store.
pub async fn run(cfg: MasterConfig, shutdown: impl Future<Output = ()>) -> Result<(), MasterError> {
    std::fs::create_dir_all(&cfg.state_dir).map_err(|source| MasterError::Io {
        path: cfg.state_dir.clone(),
        source,
    })?;
    let pki_dir = PkiStore::open(cfg.pki_dir())?;
    let master_key = keys::load_or_create_keypair(
        &pki_dir.root().join("master.pem"),
        &pki_dir.root().join("master.pub"),
    )?;
    let Stores {
        store: engine,
        keys: pki,
        postgres,
    } = open_stores(&cfg, pki_dir)?;
    let index = Arc::new(crate::service::index::AssetIndex::default());
    let store: Arc<dyn Store> = Arc::new(crate::service::index::IndexedStore::new(
        engine,
        index.clone(),
    ));

    let conn_limit = transport::connection_limit(&cfg, daemon::raise_nofile_limit());
    let (pub_sock, pub_watch): (zeromq::PubSocket, _) = transport::bind(
        &cfg.interface,
        cfg.publish_port,
        transport::publish_options(&cfg, conn_limit),
        Port::Publish,
    )
    .await?;
    let (router, req_watch): (zeromq::RouterSocket, _) = transport::bind(
        &cfg.interface,
        cfg.ret_port,
        transport::request_options(&cfg, conn_limit),
        Port::Request,
    )
    .await?;
    let gate = Arc::new(Gate::new(
        Duration::from_secs(cfg.auth_grace_secs),
        cfg.max_unauthenticated,
    ));
    let api_listener = crate::api::bind_unix(&cfg.api_socket())?;
    let api_tls = if cfg.api.listen.is_empty() {
        None
    } else {
        Some(crate::api::tls::bind(&cfg).await?)
    };

    let cancel = CancellationToken::new();
    let (pub_tx, pub_rx) = mpsc::channel(1024);
    let (queue_tx, queue_rx) = mpsc::channel(cfg.request_queue);
    let (reply_tx, reply_rx) = mpsc::channel(cfg.request_queue);

    let listing = pki.list()?;
    let keyring = Arc::new(crate::keyring::Keyring::new(
        now_us() as u64,
        listing.accepted.iter().cloned().collect(),
    ));
    // The peers of a cluster hold one session key: the one in the database,
    // or this one when there is none yet.
    let session_share = match (&cfg.cluster_id, &postgres) {
        (Some(id), Some(pg)) => {
            let share = crate::cluster::SessionShare::new(pg.clone(), &master_key, id);
            let (epoch, key) = keyring.session();
            let (epoch, key) = share.agree(None, epoch, key).map_err(|e| {
                store::StoreError::Engine(format!("the cluster's session key: {e}"))
            })?;
            keyring.replace(epoch, key);
            Some(share)
        }
        _ => None,
    };
    let events = Arc::new(crate::events::EventBus::default());
    let boot_id = random_u64();
    // A peer of a master cluster: NATS must answer before it takes work.
    let nats = match (&cfg.cluster_id, &cfg.nats_url) {
        (Some(id), Some(url)) => {
            let shown = crate::cluster::redact(url);
            let client = crate::cluster::connect(url, Duration::from_secs(10))
                .await
                .map_err(|reason| MasterError::Bind {
                    addr: shown.clone(),
                    reason,
                })?;
            let sub = crate::cluster::subscribe(&client, id)
                .await
                .map_err(|reason| MasterError::Bind {
                    addr: shown.clone(),
                    reason,
                })?;
            let (tx, rx) = mpsc::channel(crate::cluster::OUTBOX);
            info!(cluster_id = %id, nats = %shown, "peer of a master cluster");
            Some((client, id.clone(), tx, rx, shown, sub))
        }
        _ => None,
    };
    let mut jobs = JobsService::new(
        &cfg,
        store.clone(),
        pki.clone(),
        master_key.clone(),
        keyring.clone(),
        pub_tx,
        events.clone(),
    );
    if let Some((client, _, tx, _, url, _)) = &nats {
        jobs = jobs.with_peers(tx.clone(), client.clone(), url.clone());
    }
    match jobs.restore() {
        Ok(0) => {}
        Ok(n) => info!(jobs = n, "restored live jobs for minions that missed them"),
        Err(e) => warn!(error = %e, "could not restore live jobs"),
    }
    let shared = Arc::new(Shared {
        events,
        metrics: Default::default(),
        keyring,
        auth_limiter: crate::requests::AuthLimiter::default(),
        pending_keys: std::sync::Mutex::new(PendingCount {
            keys: listing.pending.len(),
            added: 0,
        }),
        relate_pending: std::sync::atomic::AtomicBool::new(true),
        limit_log: crate::requests::LimitLog::default(),
        chunks: crate::chunks::Assembly::new(
            cfg.max_return_bytes,
            cfg.max_return_bytes.saturating_mul(4),
        ),
        gate: gate.clone(),
        pki,
        store: store.clone(),
        index,
        jobs,
        users: crate::service::users::UsersService::new(store.clone()),
        ssh: crate::service::ssh::SshService::new(&cfg),
        boot_id,
        peers: nats.as_ref().map(|(_, _, tx, _, _, _)| tx.clone()),
        session_share,
        nonces: NonceCache::default(),
        presence: crate::presence::Presence::new(now_ms(), {
            // One asset at a time: whole records of every asset at once
            // would be most of the master's memory at start.
            let mut known = Vec::new();
            store.scan_assets(None, &mut |a| {
                if let Some(m) = a.minion {
                    known.push((m, a.document["presence"] == "online"));
                }
                true
            })?;
            known
        }),
        master_key,
        cfg,
    });

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(transport::gate::run(
        gate,
        vec![pub_watch, req_watch],
        cancel.clone(),
    ));
    tasks.spawn(transport::publish_loop(pub_sock, pub_rx, cancel.clone()));
    tasks.spawn(transport::request_loop(
        router,
        queue_tx,
        transport::QueueBudget::new(shared.cfg.request_queue_bytes),
        reply_rx,
        cancel.clone(),
    ));
    let queue: transport::SharedQueue = Arc::new(tokio::sync::Mutex::new(queue_rx));
    let (durable_tx, durable_rx) = mpsc::channel(shared.cfg.request_queue);
    tasks.spawn(flusher(shared.clone(), durable_rx, reply_tx.clone()));
    for _ in 0..shared.cfg.workers {
        tasks.spawn(worker(
            shared.clone(),
            queue.clone(),
            reply_tx.clone(),
            durable_tx.clone(),
            cancel.clone(),
            postgres.is_some(),
        ));
    }
    drop(reply_tx);
    drop(durable_tx);
    let api_state = crate::api::ApiState {
        shared: shared.clone(),
        cancel: cancel.clone(),
        nonces: Default::default(),
        ui: Arc::new(crate::ui::Ui::new()?),
    };
    if let Some((listener, acceptor)) = api_tls {
        tasks.spawn(crate::api::tls::serve(
            listener,
            acceptor,
            api_state.clone(),
        ));
    }
    tasks.spawn(crate::api::serve_unix(api_listener, api_state));
    tasks.spawn(housekeeping(shared.clone(), cancel.clone()));
    if let Some((client, id, _, rx, _, sub)) = nats {
        let codec = crate::cluster::Codec::new(&shared.master_key, &id, boot_id);
        tasks.spawn(crate::cluster::send_loop(
            client.clone(),
            id.clone(),
            codec.clone(),
            rx,
            cancel.clone(),
        ));
        tasks.spawn(crate::cluster::receive_loop(
            shared.clone(),
            sub,
            codec,
            cancel.clone(),
        ));
    }
    tasks.spawn(index_refresher(shared.clone(), cancel.clone()));
    if shared.cfg.ssh.collect_interval > 0 {
        tasks.spawn(crate::service::ssh::schedule(
            shared.clone(),
            cancel.clone(),
        ));
    }

    info!(
        publish_port = shared.cfg.publish_port,
        ret_port = shared.cfg.ret_port,
        interface = %shared.cfg.interface,
        max_connections = conn_limit,
        api_socket = %shared.cfg.api_socket().display(),
        "master ready"
    );
    shutdown.await;
    info!("master shutting down");
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    flush_presence(&shared);
    if let Err(e) = store.flush() {
        error!(error = %e, "could not flush the store on shutdown");
    }
    let _ = std::fs::remove_file(shared.cfg.api_socket());
    info!("master stopped");
    Ok(())
}

/// A reply that acknowledges a stored return, and that return.
type Durable = (Vec<Bytes>, Option<(crate::jobs::Finished, store::Stored)>);

/// The least time between the starts of two flushes of the group commit.
/// A flush is a hand-off to the store's I/O threads and a sync, tens of
/// microseconds of CPU whatever it covers; returns trickling in (a fleet's
/// ping) would otherwise be flushed a few at a time, thousands of times a
/// second. Their replies wait at most this much longer.
const FLUSH_SPACING: Duration = Duration::from_millis(2);

/// Group commit: replies that acknowledge stored returns wait here until
/// one flush of the store covers all of them, then go out.
async fn flusher(
    shared: Arc<Shared>,
    mut durable: mpsc::Receiver<Vec<Durable>>,
    replies: mpsc::Sender<Vec<Vec<Bytes>>>,
) {
    let mut batch = Vec::new();
    let mut last_flush = tokio::time::Instant::now() - FLUSH_SPACING;
    while let Some(first) = durable.recv().await {
        batch.extend(first);
        tokio::time::sleep_until(last_flush + FLUSH_SPACING).await;
        last_flush = tokio::time::Instant::now();
        while batch.len() < 8192 {
            match durable.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let store = shared.store.clone();
        let flushed = tokio::task::spawn_blocking(move || store.flush()).await;
        match flushed {
            Ok(Ok(())) => {
                let mut out = Vec::with_capacity(batch.len());
                for (frames, stored) in batch.drain(..) {
                    if let Some((ret, outcome)) = stored {
                        requests::notify_stored(&shared, &ret, &outcome);
                    }
                    out.push(frames);
                }
                if replies.send(out).await.is_err() {
                    return;
                }
            }
            Ok(Err(e)) => {
                error!(error = %e, "store flush failed; returns stay unacknowledged and will be retried");
                batch.clear();
            }
            Err(e) => {
                error!(error = %e, "store flush task failed");
                batch.clear();
            }
        }
    }
}

/// Batches of at least this many requests are handled off the async
/// runtime's thread (`block_in_place`). A full batch is tens of milliseconds
/// of CPU (a collect's returns are stored in it): on the runtime's thread it
/// would hold up the sockets' tasks, and a worker woken onto that thread
/// would wait for the batch to end instead of running beside it. A small
/// batch (returns trickling in) is handled in place: moving it costs a
/// hand-off of the runtime's thread, and workers on threads of their own
/// cost a wake-up of a runtime thread for every batch (measured on a fleet's
/// ping: 2-3 times the context switches, ~10 % more CPU).
const OFF_RUNTIME_BATCH: usize = 32;

/// With a store across the network (PostgreSQL), how long a worker waits
/// for more requests after the first before it handles them (unless a
/// batch fills sooner). Each batch is a transaction and a few round trips
/// whatever it holds, and returns trickling in (a fleet's ping) made batches
/// of one or two dozen. Gathering for 2 ms took PostgreSQL's commits per
/// fleet ping down by a sixth to a third and its CPU by about a fifth; a
/// reply waits at most that much longer.
const GATHER: Duration = Duration::from_millis(2);

/// A request worker: verifies, decodes, stores and answers batches of
/// requests. With a store that waits on the network (PostgreSQL) every
/// batch leaves the runtime's thread.
async fn worker(
    shared: Arc<Shared>,
    queue: transport::SharedQueue,
    replies: mpsc::Sender<Vec<Vec<Bytes>>>,
    durable: mpsc::Sender<Vec<Durable>>,
    cancel: CancellationToken,
    blocking_store: bool,
) {
    let can_leave_runtime = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread;
    loop {
        // One request, and whatever else is already queued (up to a batch;
        // with a network store, whatever comes within `GATHER`): their
        // signatures are checked together.
        let batch = {
            let mut q = queue.lock().await;
            let first = tokio::select! {
                _ = cancel.cancelled() => None,
                m = q.recv() => m,
            };
            let mut batch: Vec<transport::Inbound> = first.into_iter().collect();
            while !batch.is_empty() && batch.len() < requests::BATCH {
                match q.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            if blocking_store && !batch.is_empty() {
                let until = tokio::time::Instant::now() + GATHER;
                while batch.len() < requests::BATCH {
                    match tokio::time::timeout_at(until, q.recv()).await {
                        Ok(Some(m)) => batch.push(m),
                        _ => break,
                    }
                }
            }
            batch
        };
        if batch.is_empty() || cancel.is_cancelled() {
            break;
        }
        // Requests whose connection closed while they waited are dropped
        // unhandled, as the kernel drops what a closed connection had not
        // yet delivered: answering them is wasted, and when a fleet
        // reconnects at once it is what keeps the queue from filling with
        // requests whose minions have given up and asked again.
        let peers: Vec<Bytes> = batch
            .iter()
            .map(|m| m.route.first().cloned().unwrap_or_default())
            .collect();
        let gone = shared
            .gate
            .gone(&peers.iter().map(Bytes::as_ref).collect::<Vec<_>>());
        let (batch, peers): (Vec<transport::Inbound>, Vec<Bytes>) = batch
            .into_iter()
            .zip(peers)
            .zip(gone)
            .filter_map(|(m, gone)| (!gone).then_some(m))
            .unzip();
        if batch.is_empty() {
            continue;
        }
        let frames: Vec<(&[u8], &[u8])> = peers
            .iter()
            .zip(&batch)
            .map(|(peer, m)| (peer.as_ref(), m.payload.as_ref()))
            .collect();
        let handled = if can_leave_runtime && (blocking_store || frames.len() >= OFF_RUNTIME_BATCH)
        {
            tokio::task::block_in_place(|| requests::handle_batch(&shared, &frames, now_ms()))
        } else {
            requests::handle_batch(&shared, &frames, now_ms())
        };
        // The batch's replies leave in one hand-off each way (stored returns
        // through the group commit, the rest straight to the socket): one
        // wake-up of the runtime per batch, not per reply.
        let (mut plain, mut stored) = (Vec::new(), Vec::new());
        for ((inbound, peer), handled) in batch.into_iter().zip(&peers).zip(handled) {
            if handled.trusted {
                shared.gate.trust(peer);
            }
            let mut frames = inbound.route;
            frames.push(Bytes::from(handled.reply));
            if handled.durable {
                stored.push((frames, handled.stored));
            } else {
                plain.push(frames);
            }
        }
        let sent = (stored.is_empty() || durable.send(stored).await.is_ok())
            && (plain.is_empty() || replies.send(plain).await.is_ok());
        if !sent {
            return;
        }
    }
}

/// The master's count of keys pending acceptance.
#[derive(Debug, Default)]
pub struct PendingCount {
    /// Keys pending.
    pub keys: usize,
    /// New keys counted so far.
    pub added: u64,
}

impl PendingCount {
    /// Counts a new pending key.
    pub fn add(&mut self) {
        self.keys += 1;
        self.added += 1;
    }

    /// Takes the count from a listing that found `listed` pending keys,
    /// read when `added_before` keys had been counted. Keys counted while it
    /// was read may be in it or not: they are counted again, so the count
    /// errs high (refusing early) until the next listing, never low.
    pub fn listed(&mut self, listed: usize, added_before: u64) {
        let since = usize::try_from(self.added.saturating_sub(added_before)).unwrap_or(usize::MAX);
        self.keys = listed.saturating_add(since);
    }
}

/// Reads written assets into the asset index once writes have paused for
/// a few seconds (not while a fleet collect is being stored), so that the
/// next listing finds it fresh; its own task, so that a long read never
/// holds up housekeeping. In the same pauses, at most every
/// `relate_every_secs` and when collects may have changed them, it sets
/// the hosts VMs run on: that pass reads every asset, and in the middle
/// of a fleet collect of 9,000 it took about 0.7 CPU-s from it. Writes
/// that never pause delay a pass by five such periods at most.
async fn index_refresher(shared: Arc<Shared>, cancel: CancellationToken) {
    let relate_every = Duration::from_secs(shared.cfg.inventory.relate_every_secs.max(1));
    let mut related_at = tokio::time::Instant::now();
    // When a pass was first found due.
    let mut relate_asked: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Ticks missed during a long refresh are not made up at once: the
    // writes counted since must stay quiet for whole seconds again.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_marks = u64::MAX;
    let mut quiet_ticks = 0u32;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let marks = shared.index.marks();
        quiet_ticks = if marks == last_marks {
            quiet_ticks.saturating_add(1)
        } else {
            0
        };
        // Writes made while a refresh reads count as writes.
        last_marks = marks;
        if quiet_ticks >= 3 && (shared.index.dirty_len() > 0 || !shared.index.is_loaded()) {
            quiet_ticks = 0;
            let sh = shared.clone();
            let done = tokio::task::spawn_blocking(move || {
                crate::service::inventory::Filter::refresh_index(&sh)
            })
            .await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "could not refresh the asset index"),
                Err(e) => warn!(error = %e, "asset index refresh failed"),
            }
        }
        // Writes that never pause (collects spread over the hour) hold a
        // pass off for five periods at most.
        if shared
            .relate_pending
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            relate_asked.get_or_insert_with(tokio::time::Instant::now);
        }
        let overdue = relate_asked.is_some_and(|at| at.elapsed() >= relate_every.saturating_mul(5));
        if relate_asked.is_some()
            && (quiet_ticks >= 3 || overdue)
            && related_at.elapsed() >= relate_every
            && shared
                .relate_pending
                .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            related_at = tokio::time::Instant::now();
            relate_asked = None;
            let s = shared.clone();
            match tokio::task::spawn_blocking(move || crate::service::inventory::relate_guests(&s))
                .await
            {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => info!(vms = n, "set the host VMs run on from their hosts' guests"),
                Ok(Err(e)) => warn!(error = %e, "could not relate VMs to their hosts"),
                Err(e) => warn!(error = %e, "relating VMs to their hosts failed"),
            }
        }
    }
}

/// Longest time housekeeping goes without listing the keys, even when
/// their generation says nothing changed.
const KEYS_RELIST: Duration = Duration::from_secs(30);

async fn housekeeping(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut rotated_at = tokio::time::Instant::now();
    let rotate_every = Duration::from_secs(shared.cfg.session_rotate_secs);
    let mut swept_at: Option<tokio::time::Instant> = None;
    let mut listed_generation: Option<u64> = None;
    let mut listed_at: Option<tokio::time::Instant> = None;
    loop {
        let asked = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => false,
            _ = shared.keyring.rotation_asked() => true,
        };
        if !asked && swept_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            swept_at = Some(tokio::time::Instant::now());
            let keep_ms = match shared.cfg.keep_jobs {
                0 => i64::MAX,
                h => i64::try_from(h.saturating_mul(3_600_000)).unwrap_or(i64::MAX),
            };
            let store = shared.store.clone();
            let cutoff = now_ms().saturating_sub(keep_ms);
            let live_ms = i64::try_from(
                shared
                    .cfg
                    .job_live_secs
                    .max(shared.cfg.job_timeout)
                    .saturating_mul(1000),
            )
            .unwrap_or(i64::MAX);
            let live_cutoff = now_ms().saturating_sub(live_ms);
            let expired = tokio::task::spawn_blocking(move || {
                store.drop_envelopes(live_cutoff)?;
                store.expire_jobs(cutoff)
            });
            match expired.await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => info!(
                    jobs = n,
                    keep_jobs_hours = shared.cfg.keep_jobs,
                    "expired old jobs and their returns"
                ),
                Ok(Err(e)) => warn!(error = %e, "could not expire old jobs"),
                Err(e) => warn!(error = %e, "job janitor failed"),
            }
        }
        // The keys are listed again when they changed, when a rotation is
        // asked for or due, and at least every KEYS_RELIST.
        let rotation_due = asked || rotated_at.elapsed() >= rotate_every;
        let generation = shared.pki.generation().ok();
        let unchanged = !rotation_due
            && generation.is_some()
            && generation == listed_generation
            && listed_at.is_some_and(|t| t.elapsed() < KEYS_RELIST);
        let listed = if unchanged {
            None
        } else {
            let lock = || {
                shared
                    .pending_keys
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            };
            let added = lock().added;
            let listing = shared.pki.list();
            if let Ok(l) = &listing {
                lock().listed(l.pending.len(), added);
            }
            Some(listing)
        };
        match listed {
            None => {}
            Some(Ok(listing)) => {
                listed_generation = generation;
                listed_at = Some(tokio::time::Instant::now());
                let mut accepted: std::collections::BTreeSet<String> =
                    listing.accepted.into_iter().collect();
                // A listing may miss a key accepted since it was read (its
                // minion may hold the session key already), and a directory
                // listing a key file being replaced (rename over it) at
                // that moment. Minions missing from it are looked up in a
                // second listing, read after they were seen: only those
                // missing from both count as removed.
                let mut missing = shared.keyring.missing_from(&accepted);
                if !missing.is_empty() {
                    match shared.pki.list() {
                        Ok(again) => {
                            for id in again.accepted {
                                if missing.remove(&id) {
                                    accepted.insert(id);
                                }
                            }
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot list keys");
                            accepted.append(&mut missing);
                        }
                    }
                }
                let gone = shared.keyring.update_accepted(accepted, &missing);
                if !gone.is_empty() || rotated_at.elapsed() >= rotate_every {
                    let (epoch, handed) = hand_over_session_key(&shared).await;
                    rotated_at = tokio::time::Instant::now();
                    info!(epoch, removed = gone.len(), handed, "session key rotated");
                }
                shared.keyring.rotation_settled();
            }
            Some(Err(e)) => {
                warn!(error = %e, "cannot list keys");
                shared.keyring.rotation_settled();
            }
        }
        shared.jobs.tracker().prune();
        let dropped = shared
            .chunks
            .expire(std::time::Instant::now(), Duration::from_secs(300));
        if dropped > 0 {
            warn!(
                returns = dropped,
                "dropped large returns no part of which came for 5 minutes"
            );
        }
        record_presence(&shared);
    }
}

/// Rotates the session key without leaving anyone deaf: the new key is
/// sealed to each accepted minion that held the old one and published to
/// its key group ([`protocol::key_topic`]), and only then installed, so every
/// job published under it comes after the hand-over on each minion's
/// subscription. Minions that miss it (reconnecting) fetch the key when a
/// heartbeat tells them of the new epoch. Returns the epoch and how many
/// were handed the key.
pub async fn hand_over_session_key(shared: &Arc<Shared>) -> (u64, usize) {
    let mut epoch = shared.keyring.next_epoch(now_us() as u64);
    let mut key = protocol::seal::SymmetricKey(crate::keyring::random());
    if let Some(share) = &shared.session_share {
        // One new key for every peer: this one, unless another peer
        // rotated first, then that one.
        let seen = shared.keyring.session().0;
        let share = share.clone();
        let agreed = tokio::task::spawn_blocking(move || share.agree(Some(seen), epoch, key)).await;
        match agreed {
            Ok(Ok((e, k))) => {
                let mine = e == epoch;
                (epoch, key) = (e, k);
                if mine && let Some(peers) = &shared.peers {
                    let _ = peers.try_send(crate::cluster::Message::Session { epoch });
                }
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot agree on the cluster's session key; keeping the old one");
                return (shared.keyring.session().0, 0);
            }
            Err(e) => {
                warn!(error = %e, "agreeing on the session key failed");
                return (shared.keyring.session().0, 0);
            }
        }
    }
    hand_over(shared, epoch, key).await
}

/// Hands `key` of `epoch` to the minions holding the current key (each
/// sealed to its own key, on the PUB socket) and installs it.
pub async fn hand_over(
    shared: &Arc<Shared>,
    epoch: u64,
    key: protocol::seal::SymmetricKey,
) -> (u64, usize) {
    if epoch <= shared.keyring.session().0 {
        return (shared.keyring.session().0, 0);
    }
    let recipients = shared.keyring.accepted_holders();
    let s = shared.clone();
    let k = key.clone();
    let built = tokio::task::spawn_blocking(move || {
        let mut groups: std::collections::BTreeMap<String, Vec<protocol::HandedKey>> =
            std::collections::BTreeMap::new();
        for id in recipients {
            let Ok(mid) = protocol::MinionId::new(id.as_str()) else {
                continue;
            };
            let Ok(Some(vk)) = s.keyring.accepted_key(s.pki.as_ref(), &mid) else {
                continue;
            };
            match protocol::seal::seal_session_key(
                &vk,
                &id,
                crate::keyring::random(),
                crate::keyring::random(),
                epoch,
                &k,
            ) {
                Ok(key) => groups
                    .entry(protocol::key_topic(&id))
                    .or_default()
                    .push(protocol::HandedKey { minion: mid, key }),
                Err(e) => warn!(minion_id = %id, error = %e, "cannot seal the session key"),
            }
        }
        let mut out = Vec::with_capacity(groups.len());
        for (topic, keys) in groups {
            let ids: Vec<String> = keys.iter().map(|k| k.minion.to_string()).collect();
            let hand = protocol::KeyHandOver {
                issued_at_ms: now_ms(),
                keys,
            };
            match protocol::Envelope::seal("master", &s.master_key, &hand) {
                Ok(env) => out.push((ids, vec![Bytes::from(topic), Bytes::from(env.to_bytes())])),
                Err(e) => warn!(error = %e, "cannot sign a session key hand-over"),
            }
        }
        out
    })
    .await
    .unwrap_or_default();
    let mut handed = Vec::new();
    for (ids, frames) in built {
        shared.jobs.send_frames(frames).await;
        handed.extend(ids);
    }
    let count = handed.len();
    shared.keyring.install(epoch, key, handed);
    (epoch, count)
}

/// Writes last-seen times and the presence flips as of now to the store,
/// with a `cmdb/presence/<id>` event for each flip.
pub fn record_presence(shared: &Shared) {
    flush_presence(shared);
    let offline_after = shared.cfg.inventory.offline_after_secs as i64 * 1000;
    // A peer of a cluster hears only its own minions; when the others'
    // were last heard from is in the shared store (asked outside the
    // presence lock, about online minions gone quiet here only).
    if shared.peers.is_some() {
        let stale = shared.presence.stale_online(now_ms(), offline_after);
        if !stale.is_empty() {
            match shared.store.last_seen_all(&stale) {
                Ok(heard) => {
                    for (m, at) in heard {
                        shared.presence.heard_elsewhere(&m, at);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "could not read when other peers last heard from minions")
                }
            }
        }
    }
    for (minion, online) in shared.presence.flips(now_ms(), offline_after) {
        match shared.store.set_presence(&minion, online, now_ms()) {
            Ok(true) => {
                info!(minion_id = %minion, online, "presence changed");
                let ev = crate::events::PresenceEvent {
                    id: &minion,
                    presence: if online { "online" } else { "offline" },
                };
                shared
                    .events
                    .emit(|| format!("cmdb/presence/{minion}"), &ev);
            }
            Ok(false) => {}
            Err(e) => warn!(minion_id = %minion, error = %e, "could not record presence"),
        }
    }
}

fn flush_presence(shared: &Shared) {
    let seen: Vec<(String, i64)> = shared.presence.take_dirty().into_iter().collect();
    if seen.is_empty() {
        return;
    }
    if let Err(e) = shared.store.set_last_seen_all(&seen) {
        warn!(error = %e, minions = seen.len(), "could not record when minions were last heard from; trying again at the next tick");
        shared.presence.restore_dirty(seen);
    }
}
