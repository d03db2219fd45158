//! How both persistent engines lay out an asset: its whole record (the
//! checkpoint) written every few versions, a small head (version, minion,
//! serial claim, last collect, volatile facts, the digest of the stable
//! facts a collect left) rewritten by each collect, and the change records
//! after the checkpoint replayed on read. A collect that changes nothing
//! but volatile facts rewrites the head alone (on sled, found so by the
//! digest, without reading the document). On sled, a collect that changed
//! a few stable facts reads those alone, told by the digests of each fact
//! the last collect left ([`FactsDigests`]).

use inventory::{AssetId, AssetRecord, ChangeRecord};
use serde::{Deserialize, Serialize};

/// Versions between two writes of an asset's whole document.
pub const CHECKPOINT_EVERY: u64 = 16;

/// What a collect rewrites of an asset: everything but the document.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Head {
    pub(crate) version: u64,
    pub(crate) minion: Option<String>,
    pub(crate) expected_serial: Option<String>,
    pub(crate) last_collect_ms: Option<i64>,
    pub(crate) observed: serde_json::Value,
    /// Set by a collect: the digest of the stable facts it left in the
    /// document, with the presence online, a kind and this minion. A
    /// collect whose stable facts have the same digest changes nothing in
    /// the document, so it writes the head alone, without reading the
    /// document. Any other write of the head (an edit, presence, a
    /// checkpoint an edit writes) leaves it out; on sled, a collect that
    /// writes a new checkpoint also writes a head at its version with the
    /// digest. Short on disk: every collect rewrites every head.
    #[serde(rename = "fd", default, skip_serializing_if = "Option::is_none")]
    pub(crate) facts_digest: Option<u64>,
}

/// The 64-bit XXH3 hash of the stable part of `facts` (without the values
/// `volatile` names). Two collects of the same asset are told apart by
/// it, and only by the same minion: a minion that made its own facts
/// collide would only hide what it could leave unreported anyway, so the
/// hash need not resist one doing so (a head written with another hash
/// differs, and that collect reads the document).
pub(crate) fn facts_digest(facts: &serde_json::Value, volatile: &[String]) -> u64 {
    // Hashed in one call: fed piece by piece, the many small pieces cost
    // several times the hashing.
    let mut bytes = Vec::with_capacity(16 * 1024);
    inventory::document::feed_stable(facts, volatile, &mut bytes);
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// The digests of a collect's stable facts: of them all ([`facts_digest`])
/// and of each top-level fact, so that the facts a later collect changed
/// are told without reading the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FactsDigests {
    /// Of them all, as [`facts_digest`].
    pub(crate) whole: u64,
    /// Of each stable top-level fact in key order: its key's, and its key
    /// and value's.
    pub(crate) entries: Vec<(u64, u64)>,
}

impl FactsDigests {
    /// The digests of `facts` under the `volatile` patterns, and the key
    /// of each entry.
    pub(crate) fn of<'f>(
        facts: &'f serde_json::Value,
        volatile: &[String],
    ) -> (FactsDigests, Vec<&'f str>) {
        let mut bytes = Vec::with_capacity(16 * 1024);
        let fed = inventory::document::feed_stable_entries(facts, volatile, &mut bytes);
        Self::from_fed(&bytes, fed)
    }

    /// The digests of the stable children of `value`, the fact `key`, as
    /// [`FactsDigests::of`] gives those of the facts, and the key of each;
    /// `None` when it is not an object or it is volatile whole.
    pub(crate) fn children<'f>(
        value: &'f serde_json::Value,
        key: &str,
        volatile: &[String],
    ) -> Option<(FactsDigests, Vec<&'f str>)> {
        let mut bytes = Vec::with_capacity(2 * 1024);
        let fed = inventory::document::feed_stable_children(value, key, volatile, &mut bytes)?;
        Some(Self::from_fed(&bytes, fed))
    }

    fn from_fed<'f>(
        bytes: &[u8],
        fed: Vec<(&'f str, std::ops::Range<usize>)>,
    ) -> (FactsDigests, Vec<&'f str>) {
        use xxhash_rust::xxh3::xxh3_64;
        let mut keys = Vec::with_capacity(fed.len());
        let mut entries = Vec::with_capacity(fed.len());
        for (key, range) in fed {
            entries.push((xxh3_64(key.as_bytes()), xxh3_64(&bytes[range])));
            keys.push(key);
        }
        let whole = xxh3_64(bytes);
        (FactsDigests { whole, entries }, keys)
    }

    /// The keys of `later`'s entries (`keys`, in its order) whose facts
    /// differ from these, when both have the same keys; `None` when keys
    /// were added or removed.
    pub(crate) fn changed<'k>(
        &self,
        later: &FactsDigests,
        keys: &[&'k str],
    ) -> Option<Vec<&'k str>> {
        if self.entries.len() != later.entries.len() || keys.len() != later.entries.len() {
            return None;
        }
        let mut changed = Vec::new();
        for ((before, after), key) in self.entries.iter().zip(&later.entries).zip(keys) {
            if before.0 != after.0 {
                return None;
            }
            if before.1 != after.1 {
                changed.push(*key);
            }
        }
        Some(changed)
    }
}

impl Head {
    pub(crate) fn of(rec: &AssetRecord) -> Head {
        Head {
            version: rec.version,
            minion: rec.minion.clone(),
            expected_serial: rec.expected_serial.clone(),
            last_collect_ms: rec.last_collect_ms,
            observed: rec.observed.clone(),
            facts_digest: None,
        }
    }

    /// Whether a collect by `minion` whose stable facts have `digest`
    /// would leave the document as it is: the head is a collect's by this
    /// minion (nothing changed the asset since) and the digests match.
    pub(crate) fn unchanged_by(&self, minion: &str, digest: u64) -> bool {
        self.facts_digest == Some(digest) && self.minion.as_deref() == Some(minion)
    }

    /// This head after a collect at `now_ms` that left the document as it
    /// is (see [`Head::unchanged_by`]): its time and volatile `facts`. A
    /// collect that changed the document sets the version and digest too.
    pub(crate) fn collected(
        &self,
        facts: &serde_json::Value,
        volatile: &[String],
        now_ms: i64,
    ) -> Head {
        Head {
            version: self.version,
            minion: self.minion.clone(),
            expected_serial: self.expected_serial.clone(),
            last_collect_ms: Some(now_ms),
            observed: inventory::document::volatile_of(facts, volatile),
            facts_digest: self.facts_digest,
        }
    }
}

/// Whether an asset read at checkpoint version `base` is written as its
/// head alone (it is still close to the checkpoint) rather than whole as a
/// new checkpoint.
pub(crate) fn head_only(rec: &AssetRecord, base: u64, every: u64) -> bool {
    rec.version >= base && rec.version - base < every
}

/// An asset as read: the record at its latest version, and the version its
/// stored document (the checkpoint) is at.
pub(crate) struct Loaded {
    pub(crate) rec: AssetRecord,
    pub(crate) base: u64,
}

/// The latest record from a checkpoint, its head and the change records
/// after the checkpoint (`change(v)` reads version `v`).
pub(crate) fn assemble<E>(
    base: AssetRecord,
    head: Option<Head>,
    mut change: impl FnMut(&AssetId, u64) -> Result<Option<ChangeRecord>, E>,
    missing: impl Fn(String) -> E,
) -> Result<Loaded, E> {
    let base_version = base.version;
    let Some(h) = head.filter(|h| h.version >= base_version) else {
        return Ok(Loaded {
            rec: base,
            base: base_version,
        });
    };
    let mut rec = base;
    for v in base_version + 1..=h.version {
        let c = change(&rec.id, v)?.ok_or_else(|| {
            missing(format!(
                "asset {}: change record {v} after checkpoint {base_version} is missing",
                rec.id
            ))
        })?;
        inventory::document::apply(&mut rec.document, &c.changes);
    }
    rec.version = h.version;
    rec.minion = h.minion;
    rec.expected_serial = h.expected_serial;
    rec.last_collect_ms = h.last_collect_ms;
    rec.observed = h.observed;
    Ok(Loaded {
        rec,
        base: base_version,
    })
}

/// Versions between checkpoints for a history kept to `history_keep`
/// changes (0: all): never more than it keeps, so pruning never takes a
/// change a read must replay.
pub(crate) fn checkpoint_every(history_keep: usize) -> u64 {
    match history_keep {
        0 => CHECKPOINT_EVERY,
        keep => CHECKPOINT_EVERY.min(u64::try_from(keep).unwrap_or(u64::MAX)),
    }
}
