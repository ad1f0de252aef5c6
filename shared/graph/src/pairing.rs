//! The span-pairing store (OpenTelemetry Collector servicegraph semantics, extended to spans
//! without kinds; ARCHITECTURE.md §3).
//!
//! Two indexes, both keyed by `(trace id, span id of the would-be caller)`:
//! - `callers`: spans that may be the caller side of a call (client/producer spans, and spans
//!   without a kind, which may be parents of another service's spans), waiting for children;
//! - `orphans`: spans that may be the callee side (server/consumer spans, spans without a kind
//!   that have a parent), waiting for their parent.
//!
//! Entries never outlive their window: the aggregator expires every entry when the window of
//! its own end time closes. The store is bounded; an entry that does not fit is not stored and
//! the span's relation is counted as dropped.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::snapshot::ConnectionType;
use crate::window::NodeId;

/// `(trace id, span id)` packed for fast hashing.
pub(crate) type Key = (u128, u64);

pub(crate) fn key(trace_id: &[u8; 16], span_id: &[u8; 8]) -> Key {
    (u128::from_le_bytes(*trace_id), u64::from_le_bytes(*span_id))
}

/// The side of a span that takes part in a relation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Side {
    pub service: NodeId,
    /// Client/producer (caller side) or server/consumer (callee side): a kinded pair is an edge
    /// even within one service; an unkinded pair only across services.
    pub kinded: bool,
    /// Producer or consumer: the edge is a messaging edge.
    pub messaging: bool,
    pub duration_ms: f64,
    pub error: bool,
    /// Window (start ms) the span belongs to.
    pub window: i64,
}

/// A would-be caller waiting for children.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallerEntry {
    pub side: Side,
    /// Virtual callee from the span's attributes, used if no child ever pairs.
    pub virtual_callee: Option<(NodeId, ConnectionType)>,
    /// Children of other services paired so far.
    pub matched: u32,
}

/// A would-be callee waiting for its parent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildEntry {
    pub span_id: [u8; 8],
    pub side: Side,
}

/// Orphans of one parent: almost always one.
pub(crate) type Children = SmallVec<[ChildEntry; 1]>;

/// Bounded pairing store of one graph.
#[derive(Debug)]
pub(crate) struct PairingStore {
    callers: FxHashMap<Key, CallerEntry>,
    orphans: FxHashMap<Key, Children>,
    len: usize,
    limit: usize,
}

/// Why an entry was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreRefusal {
    Full,
    Duplicate,
}

impl PairingStore {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            callers: FxHashMap::default(),
            orphans: FxHashMap::default(),
            len: 0,
            limit,
        }
    }

    /// Entries held (callers plus orphans).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn caller_mut(&mut self, key: &Key) -> Option<&mut CallerEntry> {
        self.callers.get_mut(key)
    }

    pub(crate) fn remove_caller(&mut self, key: &Key) -> Option<CallerEntry> {
        let removed = self.callers.remove(key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    pub(crate) fn insert_caller(
        &mut self,
        key: Key,
        entry: CallerEntry,
    ) -> Result<(), StoreRefusal> {
        if self.len >= self.limit {
            return Err(StoreRefusal::Full);
        }
        match self.callers.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => Err(StoreRefusal::Duplicate),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(entry);
                self.len += 1;
                Ok(())
            }
        }
    }

    /// Takes every orphan waiting for parent `key`.
    pub(crate) fn take_orphans(&mut self, key: &Key) -> Option<Children> {
        let taken = self.orphans.remove(key);
        if let Some(children) = &taken {
            self.len -= children.len();
        }
        taken
    }

    pub(crate) fn insert_orphan(
        &mut self,
        parent: Key,
        child: ChildEntry,
    ) -> Result<(), StoreRefusal> {
        if self.len >= self.limit {
            return Err(StoreRefusal::Full);
        }
        let children = self.orphans.entry(parent).or_default();
        if children.iter().any(|c| c.span_id == child.span_id) {
            return Err(StoreRefusal::Duplicate);
        }
        children.push(child);
        self.len += 1;
        Ok(())
    }

    /// Removes the orphan `span_id` of parent `key` if it is still waiting.
    pub(crate) fn remove_orphan(&mut self, key: &Key, span_id: &[u8; 8]) -> Option<ChildEntry> {
        let children = self.orphans.get_mut(key)?;
        let pos = children.iter().position(|c| &c.span_id == span_id)?;
        let child = children.remove(pos);
        if children.is_empty() {
            self.orphans.remove(key);
        }
        self.len -= 1;
        Some(child)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side() -> Side {
        Side {
            service: 1,
            kinded: true,
            messaging: false,
            duration_ms: 1.0,
            error: false,
            window: 0,
        }
    }

    #[test]
    fn bound_and_duplicates() {
        let mut s = PairingStore::new(2);
        let entry = CallerEntry {
            side: side(),
            virtual_callee: None,
            matched: 0,
        };
        assert_eq!(s.insert_caller((1, 1), entry), Ok(()));
        assert_eq!(s.insert_caller((1, 1), entry), Err(StoreRefusal::Duplicate));
        let child = ChildEntry {
            span_id: [2; 8],
            side: side(),
        };
        assert_eq!(s.insert_orphan((1, 9), child), Ok(()));
        assert_eq!(s.insert_orphan((1, 8), child), Err(StoreRefusal::Full));
        assert_eq!(s.len(), 2);
        assert!(s.remove_orphan(&(1, 9), &[2; 8]).is_some());
        assert!(s.remove_orphan(&(1, 9), &[2; 8]).is_none());
        assert!(s.remove_caller(&(1, 1)).is_some());
        assert_eq!(s.len(), 0);
    }
}
