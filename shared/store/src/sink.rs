//! The [`Store`] trait: where rows go, ClickHouse or the embedded sink.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{Rows, StoreError};

/// The future a [`Store`] returns (boxed, so that `dyn Store` works).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A destination for rows: [`crate::ClickHouseStore`] in production, an embedded sink in the
/// all-in-one mode. The aggregator writes through `Arc<dyn Store>` (or a [`crate::Writer`]
/// around one) and does not know which.
///
/// Contract of [`Store::insert`]: when it returns `Ok`, every row is durable in the store (for
/// ClickHouse: the server acknowledged the INSERT of each table), so the messages they came
/// from may be acked. On `Err`, any subset of the rows may have been written: the caller
/// retries the same rows when [`StoreError::is_retryable`] says so, and the tables' keys make
/// the second copy replace the first (ReplacingMergeTree in ClickHouse, upserts in the embedded
/// sink).
pub trait Store: Send + Sync + fmt::Debug {
    /// Writes `rows`, table by table; returns after the store acknowledged all of them.
    fn insert<'a>(&'a self, rows: &'a Rows) -> StoreFuture<'a, ()>;

    /// A short name for logs and metric labels (`clickhouse`, `sqlite`).
    fn kind(&self) -> &'static str;
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn insert<'a>(&'a self, rows: &'a Rows) -> StoreFuture<'a, ()> {
        (**self).insert(rows)
    }

    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn insert<'a>(&'a self, rows: &'a Rows) -> StoreFuture<'a, ()> {
        (**self).insert(rows)
    }

    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}
