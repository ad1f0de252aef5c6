//! Redelivery, out-of-order and late windows, bounds, eviction and window length changes.

use proptest::prelude::*;

use super::*;
use crate::window::fixtures::{WINDOW_MS, start, step};

/// Window starts the history holds for `graph`.
fn kept(history: &History, graph: &str) -> Vec<i64> {
    history
        .graphs
        .get(graph)
        .map(|g| g.windows.keys().copied().collect())
        .unwrap_or_default()
}

/// Which steps of the window ending at window `k` are observed.
fn observed(history: &History, graph: &str, k: i64) -> Vec<bool> {
    let (_, steps) = history.window(graph, start(k)).expect("known graph");
    steps.iter().map(|s| s.observed).collect()
}

#[test]
fn new_windows_fill_the_history() {
    let mut history = History::new(3, 10);
    assert!(!history.has_graph("g"));
    assert_eq!(history.insert("g", WINDOW_MS, step(0, 1)), Insert::New);
    assert!(history.has_graph("g"));
    assert_eq!(history.graphs(), 1);
    assert_eq!(history.steps(), 3);
    assert_eq!(history.last_scored("g"), None);

    let (window_ms, steps) = history.window("g", start(0)).expect("known graph");
    assert_eq!(window_ms, WINDOW_MS);
    assert_eq!(
        steps.iter().map(|s| s.window_start_ms).collect::<Vec<_>>(),
        [start(-2), start(-1), start(0)]
    );
    assert_eq!(steps[0], StepFeatures::missing(start(-2)));
    assert_eq!(steps[2], step(0, 1));

    assert_eq!(history.insert("g", WINDOW_MS, step(2, 1)), Insert::New);
    assert_eq!(observed(&history, "g", 2), [true, false, true]);
}

#[test]
fn unknown_graphs_have_no_window() {
    let mut history = History::new(3, 10);
    assert!(history.window("g", start(0)).is_none());
    assert_eq!(history.last_scored("g"), None);
    history.mark_scored("g", start(0));
    assert!(!history.has_graph("g"));
    assert_eq!(history.graphs(), 0);
}

#[test]
fn a_redelivered_window_is_already_scored_and_not_replaced() {
    let mut history = History::new(3, 10);
    assert_eq!(history.insert("g", WINDOW_MS, step(5, 1)), Insert::New);
    history.mark_scored("g", start(5));
    assert_eq!(history.last_scored("g"), Some(start(5)));
    assert_eq!(
        history.insert("g", WINDOW_MS, step(5, 99)),
        Insert::AlreadyScored
    );
    let (_, steps) = history.window("g", start(5)).expect("known graph");
    assert_eq!(steps[2], step(5, 1), "the scored version stays");
}

#[test]
fn an_already_scored_window_missing_from_the_history_is_stored() {
    let mut history = History::new(4, 10);
    history.insert("g", WINDOW_MS, step(1, 1));
    history.insert("g", WINDOW_MS, step(3, 1));
    // After a restart: the last published report was window 3.
    history.mark_scored_through("g", start(3));
    // Window 2 is read back from the stream: not scored again, but kept as context for
    // window 4.
    assert_eq!(
        history.insert("g", WINDOW_MS, step(2, 1)),
        Insert::AlreadyScored
    );
    assert_eq!(kept(&history, "g"), [start(1), start(2), start(3)]);
    assert_eq!(history.insert("g", WINDOW_MS, step(4, 1)), Insert::New);
    assert_eq!(observed(&history, "g", 4), [true, true, true, true]);
    // Scored and older than the oldest kept window: neither stored nor too old.
    assert_eq!(
        history.insert("g", WINDOW_MS, step(0, 1)),
        Insert::AlreadyScored
    );
    assert_eq!(
        kept(&history, "g"),
        [start(1), start(2), start(3), start(4)]
    );
    assert_eq!(history.last_scored("g"), Some(start(3)));
}

#[test]
fn a_window_redelivered_behind_later_ones_is_still_scored() {
    // Window 2 was in hand when a replica died; 3 and 4 were scored before its redelivery.
    let mut history = History::new(4, 10);
    history.mark_scored_through("g", start(1));
    for k in [3, 4] {
        history.insert("g", WINDOW_MS, step(k, 1));
        history.mark_scored("g", start(k));
    }
    history.mark_scored_through("g", start(1));
    assert_eq!(history.insert("g", WINDOW_MS, step(2, 1)), Insert::New);
    history.mark_scored("g", start(2));
    // A second redelivery of any of them is a duplicate.
    for k in [2, 3, 4] {
        assert_eq!(
            history.insert("g", WINDOW_MS, step(k, 7)),
            Insert::AlreadyScored,
            "window {k}"
        );
    }
    assert_eq!(history.last_scored("g"), Some(start(4)));
}

#[test]
fn out_of_order_windows_after_the_last_scored_are_new() {
    let mut history = History::new(4, 10);
    history.insert("g", WINDOW_MS, step(1, 1));
    history.mark_scored("g", start(1));
    assert_eq!(history.insert("g", WINDOW_MS, step(4, 1)), Insert::New);
    assert_eq!(history.insert("g", WINDOW_MS, step(3, 1)), Insert::New);
    assert_eq!(history.insert("g", WINDOW_MS, step(2, 1)), Insert::New);
    assert_eq!(
        kept(&history, "g"),
        [start(1), start(2), start(3), start(4)]
    );
    // An unscored window that arrives again replaces the stored one.
    assert_eq!(history.insert("g", WINDOW_MS, step(3, 7)), Insert::New);
    let (_, steps) = history.window("g", start(3)).expect("known graph");
    assert_eq!(steps[3], step(3, 7));
}

#[test]
fn windows_before_the_kept_range_are_too_old() {
    let mut history = History::new(3, 10);
    history.insert("g", WINDOW_MS, step(10, 1));
    // Kept range: windows 8..=10.
    assert_eq!(history.insert("g", WINDOW_MS, step(7, 1)), Insert::TooOld);
    assert_eq!(kept(&history, "g"), [start(10)]);
    assert_eq!(history.insert("g", WINDOW_MS, step(8, 1)), Insert::New);
    assert_eq!(kept(&history, "g"), [start(8), start(10)]);
    // Too old also when scoring lags behind.
    history.mark_scored("g", start(5));
    assert_eq!(history.insert("g", WINDOW_MS, step(6, 1)), Insert::TooOld);
}

#[test]
fn memory_stays_within_t_windows() {
    let mut history = History::new(3, 10);
    for k in 0..100 {
        assert_eq!(history.insert("g", WINDOW_MS, step(k, 1)), Insert::New);
        history.mark_scored("g", start(k));
        assert!(kept(&history, "g").len() <= 3);
    }
    assert_eq!(kept(&history, "g"), [start(97), start(98), start(99)]);
    // A jump forward drops everything out of range.
    assert_eq!(history.insert("g", WINDOW_MS, step(500, 1)), Insert::New);
    assert_eq!(kept(&history, "g"), [start(500)]);
    assert_eq!(observed(&history, "g", 500), [false, false, true]);
}

#[test]
fn off_grid_windows_are_bounded_too() {
    let mut history = History::new(2, 10);
    let mut s = step(0, 1);
    for offset in 0..10 {
        s.window_start_ms = start(0) + offset;
        history.insert("g", WINDOW_MS, s.clone());
    }
    assert_eq!(kept(&history, "g").len(), 2);
}

#[test]
fn a_new_window_length_resets_the_graph() {
    let mut history = History::new(3, 10);
    history.insert("g", WINDOW_MS, step(1, 1));
    history.insert("g", WINDOW_MS, step(2, 1));
    history.mark_scored("g", start(2));
    let mut half = step(2, 1);
    half.window_start_ms = start(2);
    assert_eq!(
        history.insert("g", WINDOW_MS / 2, half.clone()),
        Insert::New
    );
    assert_eq!(history.last_scored("g"), None);
    assert_eq!(kept(&history, "g"), [start(2)]);
    let (window_ms, steps) = history.window("g", start(2)).expect("known graph");
    assert_eq!(window_ms, WINDOW_MS / 2);
    assert_eq!(
        steps.iter().map(|s| s.window_start_ms).collect::<Vec<_>>(),
        [start(1), start(1) + 30_000, start(2)]
    );
    assert_eq!(steps[2], half);
}

#[test]
fn the_least_recently_updated_graph_is_evicted() {
    let mut history = History::new(2, 2);
    history.insert("a", WINDOW_MS, step(0, 1));
    history.insert("b", WINDOW_MS, step(0, 1));
    // `a` is updated again: `b` is now the least recent.
    history.insert("a", WINDOW_MS, step(1, 1));
    assert_eq!(history.insert("c", WINDOW_MS, step(0, 1)), Insert::New);
    assert_eq!(history.graphs(), 2);
    assert_eq!(history.evicted(), 1);
    assert!(history.has_graph("a"));
    assert!(!history.has_graph("b"));
    assert!(history.has_graph("c"));
    // Marking a window scored is an update too: `a` stays, `c` goes.
    history.mark_scored("a", start(1));
    history.insert("d", WINDOW_MS, step(0, 1));
    assert_eq!(history.evicted(), 2);
    assert!(history.has_graph("a"));
    assert!(!history.has_graph("c"));
    // An evicted graph comes back empty.
    assert_eq!(history.insert("b", WINDOW_MS, step(0, 1)), Insert::New);
    assert_eq!(history.last_scored("b"), None);
    assert_eq!(history.evicted(), 3);
    assert_eq!(history.recency.len(), history.graphs.len());
}

#[test]
fn late_windows_keep_the_history_of_a_window_redelivered_behind_newer_ones() {
    let mut history = History::with_late_windows(3, 3, 10);
    for k in 0..6 {
        assert_eq!(
            history.insert("g", WINDOW_MS, step(k, 1)),
            Insert::New,
            "{k}"
        );
        if k != 2 {
            history.mark_scored("g", start(k));
        }
    }
    // Window 2 comes back 3 windows behind the newest: within T + 3 windows of it.
    assert_eq!(history.insert("g", WINDOW_MS, step(2, 1)), Insert::New);
    assert_eq!(observed(&history, "g", 2), [true, true, true]);
    assert_eq!(kept(&history, "g").len(), 6);
    // Beyond T + 3 windows: too old.
    assert_eq!(history.insert("g", WINDOW_MS, step(-1, 1)), Insert::TooOld);
    // Without late windows, window 2 would have lost its history.
    let mut tight = History::new(3, 10);
    for k in [0, 1, 3, 4] {
        tight.insert("g", WINDOW_MS, step(k, 1));
    }
    assert_eq!(tight.insert("g", WINDOW_MS, step(2, 1)), Insert::New);
    assert_eq!(observed(&tight, "g", 2), [false, false, true]);
}

#[test]
fn the_watermark_keeps_the_latest() {
    let mut history = History::new(2, 2);
    history.insert("g", WINDOW_MS, step(3, 1));
    history.mark_scored_through("g", start(3));
    history.mark_scored_through("g", start(1));
    assert_eq!(history.last_scored("g"), Some(start(3)));
    assert_eq!(
        history.insert("g", WINDOW_MS, step(2, 1)),
        Insert::AlreadyScored
    );
}

#[test]
fn zero_sizes_are_read_as_one() {
    let mut history = History::new(0, 0);
    assert_eq!(history.steps(), 1);
    history.insert("a", WINDOW_MS, step(0, 1));
    history.insert("b", WINDOW_MS, step(0, 1));
    assert_eq!(history.graphs(), 1);
    assert_eq!(history.evicted(), 1);
    let (_, steps) = history.window("b", start(0)).expect("known graph");
    assert_eq!(steps, [step(0, 1)]);
}

#[test]
fn extreme_window_starts_do_not_overflow() {
    let mut history = History::new(3, 2);
    let mut s = step(0, 1);
    s.window_start_ms = i64::MIN;
    assert_eq!(history.insert("g", WINDOW_MS, s.clone()), Insert::New);
    assert!(history.window("g", i64::MIN).is_none());
    s.window_start_ms = i64::MAX;
    assert_eq!(history.insert("g", WINDOW_MS, s), Insert::New);
    assert_eq!(kept(&history, "g"), [i64::MAX]);
    let (_, steps) = history.window("g", i64::MAX).expect("in range");
    assert_eq!(steps.len(), 3);
}

proptest! {
    /// Arrival order does not change the window of the newest window, and the bound holds
    /// after every insert.
    #[test]
    fn arrival_order_does_not_change_the_window(
        windows in prop::collection::btree_set(0i64..20, 1..12),
        seed in prop::collection::vec(any::<u32>(), 12),
        steps in 1usize..6,
    ) {
        let sorted: Vec<i64> = windows.iter().copied().collect();
        let mut shuffled = sorted.clone();
        // A permutation driven by the seed (Fisher-Yates).
        for i in (1..shuffled.len()).rev() {
            let j = seed[i] as usize % (i + 1);
            shuffled.swap(i, j);
        }
        let newest = *sorted.last().expect("at least one window");
        let mut in_order = History::new(steps, 1);
        let mut any_order = History::new(steps, 1);
        for &k in &sorted {
            prop_assert_eq!(in_order.insert("g", WINDOW_MS, step(k, 1 + k as u64)), Insert::New);
        }
        for &k in &shuffled {
            let result = any_order.insert("g", WINDOW_MS, step(k, 1 + k as u64));
            prop_assert_ne!(result, Insert::AlreadyScored);
            prop_assert!(kept(&any_order, "g").len() <= steps);
        }
        prop_assert_eq!(
            in_order.window("g", start(newest)),
            any_order.window("g", start(newest))
        );
        let (_, window) = any_order.window("g", start(newest)).expect("known graph");
        for s in &window {
            let k = (s.window_start_ms - start(0)) / i64::from(WINDOW_MS);
            prop_assert_eq!(s.observed, windows.contains(&k));
        }
    }
}
