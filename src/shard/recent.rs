//! Bounded memories of recent items (client message ids, stream positions), keyed by a 128-bit
//! hash of what identifies the item. The hash is SipHash with two per-process random keys, so
//! nobody can choose ids that collide, and a key is two words: no strings or user ids are
//! cloned into the map, and forgetting the oldest entry is a cheap lookup.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

/// Makes the keys of a `Recent` map from anything hashable.
pub struct Keyer(RandomState, RandomState);

impl Keyer {
    pub fn new() -> Keyer {
        Keyer(RandomState::new(), RandomState::new())
    }

    pub fn key(&self, what: impl Hash) -> u128 {
        ((self.0.hash_one(&what) as u128) << 64) | self.1.hash_one(&what) as u128
    }
}

impl Default for Keyer {
    fn default() -> Self {
        Keyer::new()
    }
}

/// The map's own hasher: its keys are already random, so it only folds them to 64 bits.
#[derive(Default)]
pub struct Folded(u64);

impl Hasher for Folded {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, k: u128) {
        self.0 = (k as u64) ^ ((k >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed here; anything else still hashes (FNV-1a).
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100000001b3);
        }
    }
}

/// At most `cap` entries; past it the oldest inserted is forgotten.
pub struct Recent<V> {
    map: HashMap<u128, V, BuildHasherDefault<Folded>>,
    order: VecDeque<u128>,
    cap: usize,
}

impl<V> Recent<V> {
    pub fn new(cap: usize) -> Recent<V> {
        Recent { map: HashMap::default(), order: VecDeque::new(), cap: cap.max(1) }
    }

    pub fn get(&self, key: u128) -> Option<&V> {
        self.map.get(&key)
    }

    /// Inserts or replaces (a replaced entry keeps its age).
    pub fn insert(&mut self, key: u128, v: V) {
        if self.map.insert(key, v).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// Forgets `key`. Its place in the age order stays until that age comes, so a key
    /// inserted again soon may be forgotten early (a cache miss, never a wrong value); the
    /// order still holds at most `cap` keys.
    pub fn remove(&mut self, key: u128) {
        self.map.remove(&key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// A message recently recorded in a user's Messages stream (`Shard::recent_stream`).
#[derive(Clone, Copy, Debug)]
pub struct RecentDelivery {
    /// Where it sits in the user's Messages stream.
    pub stream_seq: u64,
    /// Its seq in the conversation.
    pub conv_seq: u64,
    /// The other user of the conversation (`Shard::keyer`'s key of the id).
    pub peer: u128,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_tells_keys_apart() {
        let k = Keyer::new();
        // Tuples of strings: ("ab", "c") and ("a", "bc") are different items.
        assert_ne!(k.key(("ab", "c")), k.key(("a", "bc")));
        assert_eq!(k.key((1u32, "x", 7u64)), k.key((1u32, "x", 7u64)));
        let mut r = Recent::new(3);
        for i in 0..5u64 {
            r.insert(k.key(i), i);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.get(k.key(1u64)), None, "the oldest are forgotten");
        assert_eq!(r.get(k.key(4u64)), Some(&4));
        r.insert(k.key(2u64), 20);
        r.insert(k.key(5u64), 5);
        assert_eq!(r.get(k.key(2u64)), None, "replacing does not make an entry younger");
        assert_eq!(r.get(k.key(5u64)), Some(&5));
        r.remove(k.key(5u64));
        assert_eq!(r.get(k.key(5u64)), None, "removed");
        for _ in 0..10 {
            r.insert(k.key(5u64), 50);
            r.remove(k.key(5u64));
        }
        r.insert(k.key(5u64), 51);
        assert!(r.len() <= 3 && r.order.len() <= 3, "re-inserting a removed key stays bounded");
        r.insert(k.key(6u64), 6);
        assert_eq!(r.get(k.key(6u64)), Some(&6));
    }
}
