//! The commands of the `meshwatch` binary, as a library so that tests can call them.

pub mod bench;
pub mod dataset;
pub mod demo;
pub mod input;
pub mod loadgen;
pub mod migrate;
pub mod model;
pub mod offline;
pub mod output;
pub mod replay;
pub mod run;
pub mod simulate;
pub mod snapshot;

/// Meshwatch's cache directory, as the scripts use it: `$MESHWATCH_CACHE`, else
/// `$HOME/.cache/meshwatch`; `None` when neither is set.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("MESHWATCH_CACHE")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|home| std::path::PathBuf::from(home).join(".cache/meshwatch"))
        })
}
