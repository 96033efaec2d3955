//! The server's caches, all one kind: a bounded, concurrent, sharded cache (`quick_cache`,
//! which keeps the entries asked for again and evicts the others, rather than starting over
//! when full), sized in the configuration ([`CacheSizes`]), counting its hits and misses for
//! `GET /metrics`.
//!
//! A cache must never make a miss slower than no cache. Where a miss is cheap to answer again
//! (a decision, a slice), a cache keeps an answer only when its key comes a second time
//! ([`Cache::second_sight`]): a stream of questions that never repeat then costs a lookup and
//! a hash per question, never an insert and an eviction. Where a miss is dear (a stored user
//! read from the database) it keeps every answer ([`Cache::new`]).
//!
//! What is kept where: stored users' facts by id ([`crate::manage::FactsCache`]), and per
//! served bundle the decisions of context-free questions, the slices of questions with a
//! context, and parsed inline entities ([`crate::state::SliceCache`],
//! [`crate::slice::InlineCache`]). A bundle's caches go with the bundle, so nothing kept can
//! outlive the policies and entities it was computed from.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How many entries each cache holds (0: that cache is off); the defaults are
/// [`crate::config::Settings`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Stored users' facts (and ids found not to be stored users).
    pub users: usize,
    /// Decisions of context-free questions, per bundle.
    pub decisions: usize,
    /// Slices of questions with a context, and parsed inline entities, per bundle.
    pub slices: usize,
    /// The most held entities kept whole as Cedar entities as well (0: never).
    pub whole_entities: usize,
}

/// Hits and misses of one cache, for the process's lifetime (a bundle's caches are replaced at
/// every install; their counts add up here).
#[derive(Debug, Default)]
pub struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Counts {
    /// Hits and misses so far.
    pub fn get(&self) -> (u64, u64) {
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }
}

/// The counts of every cache of the process, by name (`GET /metrics`).
#[derive(Debug, Default)]
pub struct AllCounts {
    /// Stored users' facts.
    pub users: Counts,
    /// Decisions.
    pub decisions: Counts,
    /// Slices.
    pub slices: Counts,
    /// Inline entities.
    pub inline: Counts,
}

impl AllCounts {
    /// Each cache's name and counts.
    pub fn each(&self) -> [(&'static str, &Counts); 4] {
        [
            ("users", &self.users),
            ("decisions", &self.decisions),
            ("slices", &self.slices),
            ("inline_entities", &self.inline),
        ]
    }
}

/// The process's cache counts.
pub static COUNTS: std::sync::LazyLock<AllCounts> = std::sync::LazyLock::new(AllCounts::default);

/// A bounded cache; with capacity 0 it keeps nothing and costs nothing.
pub struct Cache<K, V> {
    inner: Option<quick_cache::sync::Cache<K, V>>,
    counts: &'static Counts,
    door: Option<Doorkeeper>,
}

/// The keys offered lately, as hashes in a direct-mapped table: a key is admitted when its
/// slot already holds its hash (it was offered before, and no other key has taken the slot
/// since). Lock-free; a lost race only forgets a sighting.
struct Doorkeeper {
    slots: Box<[AtomicU64]>,
    hasher: foldhash::fast::RandomState,
}

impl Doorkeeper {
    /// Four slots per entry the cache holds (a power of two, so a mask picks the slot).
    fn new(capacity: usize) -> Self {
        let n = capacity.saturating_mul(4).next_power_of_two().max(64);
        Self {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// True when `key` was offered before; notes it otherwise.
    fn admits<K: Hash>(&self, key: &K) -> bool {
        // Never 0, which marks an empty slot.
        let h = self.hasher.hash_one(key) | 1;
        let mask = self.slots.len() - 1;
        let slot = &self.slots[(h as usize) & mask];
        if slot.load(Relaxed) == h {
            true
        } else {
            slot.store(h, Relaxed);
            false
        }
    }
}

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("on", &self.inner.is_some())
            .finish()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    /// A cache of at most `capacity` entries counting into `counts`, keeping every entry
    /// offered.
    pub fn new(capacity: usize, counts: &'static Counts) -> Self {
        Self {
            inner: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)),
            counts,
            door: None,
        }
    }

    /// Like [`Self::new`], but keeping an entry only when its key is offered a second time
    /// while still remembered (about four times `capacity` keys are remembered).
    pub fn second_sight(capacity: usize, counts: &'static Counts) -> Self {
        Self {
            door: (capacity > 0).then(|| Doorkeeper::new(capacity)),
            ..Self::new(capacity, counts)
        }
    }

    /// True when it keeps anything at all.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// The entry of `key`, counted as a hit or a miss.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        let c = self.inner.as_ref()?;
        let got = c.get(key);
        let counter = if got.is_some() {
            &self.counts.hits
        } else {
            &self.counts.misses
        };
        counter.fetch_add(1, Relaxed);
        got
    }

    /// Keeps `value` for `key` (for a [`Self::second_sight`] cache, if `key` was offered
    /// before).
    pub fn insert(&self, key: K, value: V) {
        if let Some(c) = &self.inner {
            if self.door.as_ref().is_none_or(|d| d.admits(&key)) {
                c.insert(key, value);
            }
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        if let Some(c) = &self.inner {
            c.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cache, Counts};

    fn counts() -> &'static Counts {
        Box::leak(Box::new(Counts::default()))
    }

    #[test]
    fn hits_and_misses_are_counted() {
        let c = counts();
        let cache: Cache<String, u32> = Cache::new(100, c);
        assert_eq!(cache.get("a"), None);
        cache.insert("a".to_owned(), 1);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("b"), None);
        assert_eq!(c.get(), (1, 2));
        cache.clear();
        assert_eq!(cache.get("a"), None);
        assert_eq!(c.get(), (1, 3));
    }

    #[test]
    fn a_cache_of_nothing_keeps_and_counts_nothing() {
        let c = counts();
        let cache: Cache<String, u32> = Cache::new(0, c);
        cache.insert("a".to_owned(), 1);
        assert_eq!(cache.get("a"), None);
        assert!(!cache.is_on());
        assert_eq!(c.get(), (0, 0));
    }

    #[test]
    fn a_second_sight_cache_keeps_an_answer_offered_twice_and_no_other() {
        let c = counts();
        let cache: Cache<u32, u32> = Cache::second_sight(100, c);
        cache.insert(1, 10);
        assert_eq!(cache.get(&1), None, "kept at its first sighting");
        cache.insert(1, 10);
        assert_eq!(cache.get(&1), Some(10));
        // A stream of keys that never repeat leaves nothing behind.
        for i in 1000..100_000 {
            cache.insert(i, i);
        }
        let kept = (1000..100_000).filter(|i| cache.get(i).is_some()).count();
        assert_eq!(kept, 0);
        assert_eq!(cache.get(&1), Some(10), "evicted by keys that were never kept");
    }

    #[test]
    fn a_full_cache_keeps_what_is_asked_for_again() {
        let cache: Cache<u32, u32> = Cache::new(100, counts());
        for i in 0..100 {
            cache.insert(i, i);
        }
        // Key 7 is asked for again and again while a thousand others pass through once.
        for i in 100..1100 {
            assert_eq!(cache.get(&7), Some(7));
            cache.insert(i, i);
        }
        assert_eq!(cache.get(&7), Some(7));
    }
}
