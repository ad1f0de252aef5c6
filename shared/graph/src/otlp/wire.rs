//! Placeholder replaced by the zero-copy scanner.
