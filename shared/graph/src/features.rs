//! Feature encoding, the one source of truth (ARCHITECTURE.md §4): a sequence of window
//! snapshots of one graph becomes the model tensors of the ONNX contract (§5).
//!
//! - [`schema`]: the versioned feature list ([`FEATURE_SCHEMA_VERSION`]): every node feature,
//!   edge feature and forecast target, with its transform and the statistic it reads. The
//!   tables in `docs/dataset-format.md` are generated from it ([`schema::schema_markdown`]).
//! - [`step`]: one window reduced to feature rows ([`StepFeatures`]); what a history or a
//!   dataset shard keeps per window instead of the snapshot with its sketches.
//! - [`encode`]: a sequence of steps to dense tensors ([`EncodedSequence`]): the union of nodes
//!   (sorted by name) and of edges over the sequence, per-step masks, edge weights and features,
//!   window starts, and the raw forecast targets.
//! - [`labels`]: ground truth per window and node from fault labels, for datasets.
//!
//! `meshwatch dataset build` writes what this module produces; training reads those files and
//! never re-implements the encoding. The inference services call the same functions.

pub mod encode;
pub mod labels;
pub mod schema;
pub mod step;

pub use encode::{EncodeError, EncodedSequence, encode, encode_snapshots};
pub use labels::{WindowLabels, fault_types, window_labels};
pub use schema::{
    EDGE_FEATURE_COUNT, EDGE_FEATURE_NAMES, EDGE_FEATURES, FEATURE_SCHEMA_VERSION,
    NODE_FEATURE_COUNT, NODE_FEATURE_NAMES, NODE_FEATURES, NODE_KINDS, TARGET_COUNT, TARGET_NAMES,
    TARGETS, Transform,
};
pub use step::{EdgeRow, NodeRow, StepFeatures};

/// A dense row-major (C order) tensor: `data.len()` is the product of `shape`. Small on
/// purpose: the encoder only fills tensors, and the writers and runtimes take the flat data.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T> {
    shape: Vec<usize>,
    data: Vec<T>,
}

/// A tensor whose element count does not fit in memory addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tensor of shape {shape:?} is too large")]
pub struct TensorTooLarge {
    pub shape: Vec<usize>,
}

impl<T: Clone> Tensor<T> {
    /// A tensor of `shape` filled with `value`.
    pub fn filled(shape: &[usize], value: T) -> Result<Self, TensorTooLarge> {
        let len = element_count(shape).ok_or_else(|| TensorTooLarge {
            shape: shape.to_vec(),
        })?;
        Ok(Self {
            shape: shape.to_vec(),
            data: vec![value; len],
        })
    }
}

impl<T> Tensor<T> {
    /// A tensor from its data; `None` when the length is not the product of `shape`.
    pub fn from_vec(shape: &[usize], data: Vec<T>) -> Option<Self> {
        (element_count(shape) == Some(data.len())).then(|| Self {
            shape: shape.to_vec(),
            data,
        })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    pub fn into_parts(self) -> (Vec<usize>, Vec<T>) {
        (self.shape, self.data)
    }

    /// Flat position of `index`; `None` when its rank or a coordinate is out of range.
    pub fn offset(&self, index: &[usize]) -> Option<usize> {
        if index.len() != self.shape.len() {
            return None;
        }
        let mut offset = 0usize;
        for (&i, &n) in index.iter().zip(&self.shape) {
            if i >= n {
                return None;
            }
            offset = offset * n + i;
        }
        Some(offset)
    }

    /// The element at `index`, if in range.
    pub fn get(&self, index: &[usize]) -> Option<&T> {
        self.offset(index).and_then(|o| self.data.get(o))
    }

    /// The last axis at `prefix` (all but the last coordinate), as a slice.
    pub fn row(&self, prefix: &[usize]) -> Option<&[T]> {
        let (&last, _) = self.shape.split_last()?;
        if prefix.len() + 1 != self.shape.len() {
            return None;
        }
        let mut index = prefix.to_vec();
        index.push(0);
        if last == 0 {
            return prefix
                .iter()
                .zip(&self.shape)
                .all(|(i, n)| i < n)
                .then_some(&self.data[..0]);
        }
        let start = self.offset(&index)?;
        self.data.get(start..start + last)
    }

    pub(crate) fn row_mut(&mut self, prefix: &[usize]) -> Option<&mut [T]> {
        let (&last, _) = self.shape.split_last()?;
        if prefix.len() + 1 != self.shape.len() || last == 0 {
            return None;
        }
        let mut index = prefix.to_vec();
        index.push(0);
        let start = self.offset(&index)?;
        self.data.get_mut(start..start + last)
    }

    pub(crate) fn get_mut(&mut self, index: &[usize]) -> Option<&mut T> {
        self.offset(index).and_then(|o| self.data.get_mut(o))
    }
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_indexing_is_row_major() {
        let t = Tensor::from_vec(&[2, 3], vec![0, 1, 2, 3, 4, 5]).expect("6 elements");
        assert_eq!(t.get(&[1, 0]), Some(&3));
        assert_eq!(t.get(&[0, 2]), Some(&2));
        assert_eq!(t.get(&[2, 0]), None);
        assert_eq!(t.get(&[0]), None);
        assert_eq!(t.row(&[1]), Some(&[3, 4, 5][..]));
        assert!(Tensor::from_vec(&[2, 2], vec![0; 3]).is_none());
        let empty: Tensor<f32> = Tensor::filled(&[2, 0], 0.0).expect("small");
        assert_eq!(empty.data().len(), 0);
        assert_eq!(empty.row(&[1]), Some(&[][..]));
        assert!(Tensor::filled(&[usize::MAX, 2], 0u8).is_err());
        let scalar = Tensor::from_vec(&[], vec![7i64]).expect("one element");
        assert_eq!(scalar.get(&[]), Some(&7));
    }
}
