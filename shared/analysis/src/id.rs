//! Stable, deterministic ids.

use sha2::{Digest, Sha256};

/// The first 16 hex digits (64 bits) of SHA-256 over `parts`, each followed by a NUL byte (so
/// `["ab", "c"]` and `["a", "bc"]` differ). The same parts give the same id on every run.
#[must_use]
pub fn stable_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    hex::encode(&digest[..8])
}
