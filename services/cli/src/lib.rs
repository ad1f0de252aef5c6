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

/// An error and its causes in one line, outermost first, each joined by ": " — leaving out a
/// cause whose text the line already holds. The workspace's errors write their source into
/// their own message (`"model {dir}: {source}"`), so anyhow's `{:#}` would repeat each one.
pub fn describe_error(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::describe_error;

    #[derive(Debug, thiserror::Error)]
    #[error("no library")]
    struct Leaf;

    #[derive(Debug, thiserror::Error)]
    #[error("model m: {0}")]
    struct Mid(#[source] Leaf);

    #[test]
    fn describe_error_names_each_cause_once() {
        let error = anyhow::Error::new(Mid(Leaf)).context("cannot start");
        assert_eq!(
            format!("{error:#}"),
            "cannot start: model m: no library: no library"
        );
        assert_eq!(describe_error(&error), "cannot start: model m: no library");
        // a cause that its parent does not quote is kept
        let error = anyhow::Error::new(Leaf).context("cannot start");
        assert_eq!(describe_error(&error), "cannot start: no library");
    }
}
