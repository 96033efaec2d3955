//! The server's caches, all one kind: a bounded, concurrent, sharded cache (`quick_cache`,
//! which keeps the entries asked for again and evicts the others, rather than starting over
//! when full), sized in the configuration ([`CacheSizes`]), counting its hits and misses for
//! `GET /metrics`.
//!
//! What is kept where: stored users' facts by id ([`crate::manage::FactsCache`]), and per
//! served bundle the decisions of context-free questions, the slices of questions with a
//! context, and parsed inline entities ([`crate::state::SliceCache`],
//! [`crate::slice::InlineCache`]). A bundle's caches go with the bundle, so nothing kept can
//! outlive the policies and entities it was computed from.

use std::hash::Hash;
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
}

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("on", &self.inner.is_some())
            .finish()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    /// A cache of at most `capacity` entries counting into `counts`.
    pub fn new(capacity: usize, counts: &'static Counts) -> Self {
        Self {
            inner: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)),
            counts,
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

    /// Keeps `value` for `key`.
    pub fn insert(&self, key: K, value: V) {
        if let Some(c) = &self.inner {
            c.insert(key, value);
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
