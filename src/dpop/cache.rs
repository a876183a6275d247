//! Ready key pairs of the sessions in use, so a request does not rebuild its session's pair
//! (a scalar multiplication) before each proof. Bounded: at most [`CAPACITY`] pairs (about
//! 400 bytes each); when full, an arbitrary one makes room. An entry is found by the full 96
//! bytes of the key (the hash only picks the slot): a pair is never used for other bytes.

use ring::signature::EcdsaKeyPair;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock};

/// Most pairs kept.
const CAPACITY: usize = 1024;

type Slot = (Box<[u8; 96]>, Arc<EcdsaKeyPair>);

struct Cache {
    hasher: std::collections::hash_map::RandomState,
    pairs: Mutex<HashMap<u64, Slot>>,
}

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Cache {
        hasher: std::collections::hash_map::RandomState::new(),
        pairs: Mutex::new(HashMap::with_capacity(CAPACITY)),
    })
}

pub(super) fn get(raw: &[u8; 96]) -> Option<Arc<EcdsaKeyPair>> {
    let cache = cache();
    let slot = cache.hasher.hash_one(raw);
    let pairs = cache.pairs.lock().unwrap_or_else(|e| e.into_inner());
    match pairs.get(&slot) {
        Some((bytes, pair)) if **bytes == *raw => Some(Arc::clone(pair)),
        _ => None,
    }
}

pub(super) fn put(raw: &[u8; 96], pair: &Arc<EcdsaKeyPair>) {
    let cache = cache();
    let slot = cache.hasher.hash_one(raw);
    let mut pairs = cache.pairs.lock().unwrap_or_else(|e| e.into_inner());
    if pairs.len() >= CAPACITY && !pairs.contains_key(&slot) {
        if let Some(evicted) = pairs.keys().next().copied() {
            pairs.remove(&evicted);
        }
    }
    pairs.insert(slot, (Box::new(*raw), Arc::clone(pair)));
}

#[cfg(test)]
pub(super) fn len() -> usize {
    cache().pairs.lock().map(|p| p.len()).unwrap_or(0)
}
