//! Header maps put in place without dropping the empty ones (BENCHMARKS.md, "Header maps that
//! hold nothing"). A `HeaderMap` with no capacity owns no memory (`HeaderMap::new` "will not
//! allocate"; `mem::take` leaves one), yet its destructor is ~60 instructions: a proxied
//! request made several such maps, each dropped for nothing.

use http::HeaderMap;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

/// Puts `fields` in `slot` and lets the map it held go: forgotten if it has no capacity (the
/// one `http::Request::new` or `Response::new` made, that `fields` replace), dropped otherwise.
pub fn replace(slot: &mut HeaderMap, fields: HeaderMap) {
    let old = std::mem::replace(slot, fields);
    if old.capacity() == 0 {
        std::mem::forget(old);
    }
}

/// A header map that can be taken from, and whose drop skips a map with no capacity as
/// [`replace`] does: what [`Fields::take`] leaves owns no memory, and its destructor would run
/// for nothing when the holder goes (`forward::Prepared`, once its fields went upstream). A
/// map with any capacity is dropped.
pub struct Fields(ManuallyDrop<HeaderMap>);

impl Fields {
    pub fn new(map: HeaderMap) -> Fields {
        Fields(ManuallyDrop::new(map))
    }

    /// The fields; a map with no capacity is left.
    pub fn take(&mut self) -> HeaderMap {
        // The map inside, not the `ManuallyDrop` (whose default would never be dropped).
        std::mem::take::<HeaderMap>(&mut self.0)
    }
}

impl Deref for Fields {
    type Target = HeaderMap;
    fn deref(&self) -> &HeaderMap {
        &self.0
    }
}

impl DerefMut for Fields {
    fn deref_mut(&mut self) -> &mut HeaderMap {
        &mut self.0
    }
}

/// The number of fields only: their values may carry the user's credential.
impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fields")
            .field("len", &self.0.len())
            .finish()
    }
}

impl Drop for Fields {
    fn drop(&mut self) {
        if self.0.capacity() != 0 {
            drop(self.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::headers::tests::map;
    use http::HeaderValue;

    /// `replace` forgets only maps that own no memory: its premise is that the maps `http`
    /// makes empty (`HeaderMap::new`, `Default`, so `mem::take`) have no capacity, and that a
    /// map that held fields keeps its capacity when emptied (it is then dropped as usual).
    #[test]
    fn replace_forgets_only_maps_without_capacity() {
        assert_eq!(HeaderMap::new().capacity(), 0);
        let mut used = map(&[("a", "1"), ("b", "2")]);
        let fields = std::mem::take(&mut used);
        assert_eq!(used.capacity(), 0, "what mem::take leaves");
        let mut cleared = map(&[("c", "3")]);
        cleared.clear();
        assert!(
            cleared.capacity() > 0,
            "an emptied map still owns its table"
        );

        let mut slot = HeaderMap::new();
        replace(&mut slot, fields);
        assert_eq!(slot.get("a").unwrap(), "1");
        assert_eq!(slot.get("b").unwrap(), "2");
        replace(&mut slot, cleared);
        assert!(slot.is_empty());
    }

    /// `Fields` drops a map that holds anything (its values are freed: nothing leaks), and
    /// `take` hands the fields over whole, leaving a map with no capacity.
    #[test]
    fn fields_drop_what_they_hold_and_take_leaves_nothing() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static FREED: AtomicUsize = AtomicUsize::new(0);
        struct Owner(&'static [u8]);
        impl AsRef<[u8]> for Owner {
            fn as_ref(&self) -> &[u8] {
                self.0
            }
        }
        impl Drop for Owner {
            fn drop(&mut self) {
                FREED.fetch_add(1, Ordering::SeqCst);
            }
        }
        let held = || {
            let value =
                HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(Owner(b"v"))).unwrap();
            let mut map = HeaderMap::new();
            map.insert("x-held", value);
            Fields::new(map)
        };

        drop(held());
        assert_eq!(FREED.load(Ordering::SeqCst), 1, "a held map is dropped");

        let mut fields = held();
        let taken = fields.take();
        assert_eq!(fields.capacity(), 0, "what take leaves");
        assert_eq!(taken.get("x-held").unwrap(), "v");
        drop(fields);
        assert_eq!(
            FREED.load(Ordering::SeqCst),
            1,
            "the value went with the taken map"
        );
        drop(taken);
        assert_eq!(FREED.load(Ordering::SeqCst), 2);

        let mut emptied = held();
        emptied.clear();
        assert_eq!(FREED.load(Ordering::SeqCst), 3, "cleared");
        assert!(emptied.capacity() > 0);
        drop(emptied);
    }
}
