//! The streaming path's memory: the last T windows of each graph, as feature steps
//! ([`StepFeatures`], a few hundred bytes per node rather than a snapshot's sketches), and which
//! windows were scored, so that a redelivered snapshot is not scored twice — while a window
//! that comes back late without having been scored (its message was in hand when a replica
//! died, and is redelivered behind later windows) still is.
//!
//! Scored windows are known two ways: each window this process scored
//! ([`History::mark_scored`], kept while within K windows of the newest), and a watermark
//! ([`History::mark_scored_through`]): after a restart, the graph's last published report says
//! every window up to it was scored (windows of one graph are scored in order).
//!
//! Bounded: at most K = T + late windows per graph (those within K windows of the newest; see
//! [`History::with_late_windows`]), and at most
//! `max_graphs` graphs; a new graph beyond that evicts the graph least recently updated (by
//! [`History::insert`], whatever its outcome, or [`History::mark_scored`]), counted in
//! [`History::evicted`].
//!
//! Window starts are expected on one grid per graph (multiples of the window length, as the
//! ingest aligns them); [`History::window`] reads the T grid points ending at the window asked
//! for, so an entry off that grid is never fed to the model.

use std::collections::{BTreeMap, HashMap};

use meshwatch_graph::features::StepFeatures;

/// What [`History::insert`] did with a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Newer than anything scored for the graph: stored; score it.
    New,
    /// This graph and window were already scored (a redelivery): do not score again.
    AlreadyScored,
    /// Older than the history's oldest kept window and not scored: too late to matter.
    TooOld,
}

/// The last T windows of each graph.
#[derive(Debug)]
pub struct History {
    /// T: windows fed to the model.
    steps: usize,
    /// Windows kept per graph: T plus how far behind the newest a window may arrive (a
    /// redelivery) and still be scored with its whole history.
    keep: usize,
    max_graphs: usize,
    graphs: HashMap<String, GraphHistory>,
    /// Graph names by their last update (a logical clock), least recent first.
    recency: BTreeMap<u64, String>,
    clock: u64,
    evicted: u64,
}

/// One graph's windows.
#[derive(Debug)]
struct GraphHistory {
    window_ms: u32,
    /// At most K entries, none older than the newest minus (K - 1) windows.
    windows: BTreeMap<i64, StepFeatures>,
    /// Windows scored by this process, within K windows of the newest.
    scored: std::collections::BTreeSet<i64>,
    /// Every window up to this one was scored (by an earlier process).
    scored_through: Option<i64>,
    /// Key of this graph in [`History::recency`].
    updated: u64,
}

impl GraphHistory {
    fn new(window_ms: u32, updated: u64) -> Self {
        Self {
            window_ms,
            windows: BTreeMap::new(),
            scored: std::collections::BTreeSet::new(),
            scored_through: None,
            updated,
        }
    }

    /// Milliseconds from the oldest to the newest of K windows: (K - 1) · window.
    fn span(&self, steps: usize) -> i128 {
        i128::from(self.window_ms) * (steps as i128 - 1)
    }

    /// Whether `start` is older than the oldest window kept beside the newest one.
    fn too_old(&self, start: i64, steps: usize) -> bool {
        self.windows
            .keys()
            .next_back()
            .is_some_and(|&newest| i128::from(start) < i128::from(newest) - self.span(steps))
    }

    fn is_scored(&self, start: i64) -> bool {
        self.scored_through.is_some_and(|s| start <= s) || self.scored.contains(&start)
    }

    fn last_scored(&self) -> Option<i64> {
        self.scored.last().copied().max(self.scored_through)
    }

    /// Drops the windows (and scored marks) older than the newest minus (K - 1) windows, then
    /// the oldest beyond K.
    fn prune(&mut self, steps: usize) {
        if let Some(&newest) = self.windows.keys().next_back() {
            let cutoff = i128::from(newest) - self.span(steps);
            if let Ok(cutoff) = i64::try_from(cutoff) {
                self.windows = self.windows.split_off(&cutoff);
                self.scored = self.scored.split_off(&cutoff);
            }
        }
        while self.windows.len() > steps {
            self.windows.pop_first();
        }
    }
}

impl History {
    /// An empty history keeping `steps` (T) windows per graph for at most `max_graphs` graphs
    /// (0 is read as 1 for both).
    pub fn new(steps: usize, max_graphs: usize) -> Self {
        Self::with_late_windows(steps, 0, max_graphs)
    }

    /// Like [`History::new`], keeping `late_windows` more windows per graph: a window arriving
    /// up to that many windows behind the newest (redelivered after a replica died with it in
    /// hand) is still [`Insert::New`] and gets its whole history.
    pub fn with_late_windows(steps: usize, late_windows: usize, max_graphs: usize) -> Self {
        Self {
            steps: steps.max(1),
            keep: steps.max(1).saturating_add(late_windows),
            max_graphs: max_graphs.max(1),
            graphs: HashMap::new(),
            recency: BTreeMap::new(),
            clock: 0,
            evicted: 0,
        }
    }

    /// Records the window `step` of `graph` (windows of `window_ms`).
    ///
    /// - A window that was scored (see the module docs) is [`Insert::AlreadyScored`]. It
    ///   does not replace what the history holds for that window, but a window the history
    ///   lacks (within the kept range) is stored: it still gives later windows their context
    ///   (after a restart, the stream is read back from before the last scored window).
    /// - Otherwise the window is stored, replacing an entry with the same start, and is
    ///   [`Insert::New`], also when it is older than the newest stored window (an out-of-order
    ///   arrival, or a redelivery of a window never scored) — unless it is older than the newest
    ///   minus (K - 1) windows: [`Insert::TooOld`], not stored.
    /// - A `window_ms` other than the graph's resets the graph's history (windows and last
    ///   scored) before storing: [`Insert::New`].
    ///
    /// A graph not yet known is added, evicting the least recently updated graph when
    /// `max_graphs` are held.
    pub fn insert(&mut self, graph: &str, window_ms: u32, step: StepFeatures) -> Insert {
        let steps = self.keep;
        let start = step.window_start_ms;
        let entry = self.touch(graph, window_ms);
        if entry.window_ms != window_ms {
            *entry = GraphHistory::new(window_ms, entry.updated);
        }
        if entry.is_scored(start) {
            if !entry.windows.contains_key(&start) && !entry.too_old(start, steps) {
                entry.windows.insert(start, step);
                entry.prune(steps);
            }
            return Insert::AlreadyScored;
        }
        if entry.too_old(start, steps) {
            return Insert::TooOld;
        }
        entry.windows.insert(start, step);
        entry.prune(steps);
        Insert::New
    }

    /// The graph's window length and T steps ending at `last_window_start_ms` (oldest first),
    /// windows the history lacks as [`StepFeatures::missing`]; `None` if the graph is unknown
    /// (or the window starts would leave the `i64` range).
    pub fn window(
        &self,
        graph: &str,
        last_window_start_ms: i64,
    ) -> Option<(u32, Vec<StepFeatures>)> {
        let entry = self.graphs.get(graph)?;
        let last = i128::from(last_window_start_ms);
        let window = i128::from(entry.window_ms);
        let steps = (0..self.steps)
            .map(|t| {
                let back = (self.steps - 1 - t) as i128;
                let start = i64::try_from(last - back * window).ok()?;
                Some(
                    entry
                        .windows
                        .get(&start)
                        .cloned()
                        .unwrap_or_else(|| StepFeatures::missing(start)),
                )
            })
            .collect::<Option<Vec<_>>>()?;
        Some((entry.window_ms, steps))
    }

    /// Records that the graph's window starting at `window_start_ms` was scored (its report
    /// published): it is [`Insert::AlreadyScored`] from now on (while within K windows of the
    /// newest; older ones are [`Insert::TooOld`] anyway). Does nothing for an unknown graph.
    pub fn mark_scored(&mut self, graph: &str, window_start_ms: i64) {
        self.mark(graph, |entry| {
            entry.scored.insert(window_start_ms);
        });
    }

    /// Records that every window of the graph up to `window_start_ms` was scored (by an
    /// earlier process: the graph's last published report). Keeps the latest mark; does
    /// nothing for an unknown graph.
    pub fn mark_scored_through(&mut self, graph: &str, window_start_ms: i64) {
        self.mark(graph, |entry| {
            entry.scored_through = Some(
                entry
                    .scored_through
                    .map_or(window_start_ms, |s| s.max(window_start_ms)),
            );
        });
    }

    fn mark(&mut self, graph: &str, update: impl FnOnce(&mut GraphHistory)) {
        if !self.graphs.contains_key(graph) {
            return;
        }
        let updated = self.tick();
        if let Some(entry) = self.graphs.get_mut(graph) {
            self.recency.remove(&entry.updated);
            self.recency.insert(updated, graph.to_owned());
            entry.updated = updated;
            update(entry);
        }
    }

    /// Start of the graph's last scored window.
    pub fn last_scored(&self, graph: &str) -> Option<i64> {
        self.graphs.get(graph)?.last_scored()
    }

    /// Whether the history holds the graph.
    pub fn has_graph(&self, graph: &str) -> bool {
        self.graphs.contains_key(graph)
    }

    /// Graphs held.
    pub fn graphs(&self) -> usize {
        self.graphs.len()
    }

    /// Graphs evicted so far to keep within `max_graphs`.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// T: windows kept per graph.
    pub fn steps(&self) -> usize {
        self.steps
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The graph's entry, marked as just updated; created (after an eviction if the history is
    /// full) when unknown.
    fn touch(&mut self, graph: &str, window_ms: u32) -> &mut GraphHistory {
        let updated = self.tick();
        if let Some(entry) = self.graphs.get(graph) {
            self.recency.remove(&entry.updated);
        } else {
            while self.graphs.len() >= self.max_graphs {
                let Some((_, oldest)) = self.recency.pop_first() else {
                    break;
                };
                self.graphs.remove(&oldest);
                self.evicted += 1;
            }
        }
        self.recency.insert(updated, graph.to_owned());
        let entry = self
            .graphs
            .entry(graph.to_owned())
            .or_insert_with(|| GraphHistory::new(window_ms, updated));
        entry.updated = updated;
        entry
    }
}

#[cfg(test)]
mod tests;
