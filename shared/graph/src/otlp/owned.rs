//! Placeholder replaced by the owned-request decoder.
