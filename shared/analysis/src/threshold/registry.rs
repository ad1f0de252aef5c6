//! A bounded map of adaptive thresholds, one per (graph, service) series, least recently used
//! evicted first.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{Decision, Spot, ThresholdConfig};
use crate::error::{AnalysisError, Problems};

/// Identity of one score series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Graph name.
    pub graph: String,
    /// Service (node) name.
    pub service: String,
}

/// One series in [`ThresholdsState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    /// The series.
    pub key: SeriesKey,
    /// Its threshold.
    pub spot: Spot,
}

/// Serialisable state of [`Thresholds`]: series least recently used first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdsState {
    /// Configuration of new series.
    pub config: ThresholdConfig,
    /// Bound on the number of series.
    pub max_series: usize,
    /// Series evicted so far.
    pub evicted: u64,
    /// The series, least recently used first.
    pub series: Vec<SeriesState>,
}

#[derive(Debug, Clone)]
struct Entry {
    spot: Spot,
    last_used: u64,
}

/// The thresholds of every (graph, service) series, at most `max_series` of them: observing a
/// new series when full evicts the least recently observed one (counted in [`Self::evicted`]);
/// an evicted series that comes back starts calibrating again.
#[derive(Debug, Clone)]
pub struct Thresholds {
    config: ThresholdConfig,
    max_series: usize,
    series: HashMap<SeriesKey, Entry>,
    /// Recency index: use tick → series.
    recency: BTreeMap<u64, SeriesKey>,
    tick: u64,
    evicted: u64,
}

impl Thresholds {
    /// An empty map; `config` is validated and `max_series` must be at least 1.
    pub fn new(config: ThresholdConfig, max_series: usize) -> Result<Self, AnalysisError> {
        let mut p = Problems::default();
        if let Err(AnalysisError::InvalidConfig { problems }) = config.validate() {
            for problem in problems {
                p.check(true, problem);
            }
        }
        p.check(max_series == 0, "max_series must be at least 1");
        p.finish()?;
        Ok(Self {
            config,
            max_series,
            series: HashMap::new(),
            recency: BTreeMap::new(),
            tick: 0,
            evicted: 0,
        })
    }

    /// Judges `score` of `service` in `graph` with that series' threshold (created on first use).
    pub fn observe(&mut self, graph: &str, service: &str, score: f64) -> Decision {
        let key = SeriesKey {
            graph: graph.to_owned(),
            service: service.to_owned(),
        };
        self.tick = self.tick.saturating_add(1);
        let tick = self.tick;
        if let Some(entry) = self.series.get_mut(&key) {
            self.recency.remove(&entry.last_used);
            entry.last_used = tick;
            self.recency.insert(tick, key);
            return entry.spot.observe(score);
        }
        while self.series.len() >= self.max_series {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.series.remove(&oldest);
            self.evicted = self.evicted.saturating_add(1);
        }
        let mut spot = self.fresh();
        let decision = spot.observe(score);
        self.series.insert(
            key.clone(),
            Entry {
                spot,
                last_used: tick,
            },
        );
        self.recency.insert(tick, key);
        decision
    }

    /// The threshold of a series, if it is tracked.
    #[must_use]
    pub fn get(&self, graph: &str, service: &str) -> Option<&Spot> {
        self.series
            .get(&SeriesKey {
                graph: graph.to_owned(),
                service: service.to_owned(),
            })
            .map(|e| &e.spot)
    }

    /// Series tracked now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Series evicted so far.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Snapshot of the whole state, least recently used series first (deterministic).
    #[must_use]
    pub fn state(&self) -> ThresholdsState {
        let series = self
            .recency
            .values()
            .filter_map(|key| {
                self.series.get(key).map(|e| SeriesState {
                    key: key.clone(),
                    spot: e.spot.clone(),
                })
            })
            .collect();
        ThresholdsState {
            config: self.config.clone(),
            max_series: self.max_series,
            evicted: self.evicted,
            series,
        }
    }

    /// Restores a state written by [`Self::state`]. The state's configuration is validated; when
    /// it holds more than `max_series` series the least recently used ones are evicted.
    pub fn from_state(state: ThresholdsState) -> Result<Self, AnalysisError> {
        let mut this = Self::new(state.config, state.max_series)?;
        this.evicted = state.evicted;
        for SeriesState { key, spot } in state.series {
            spot.config().validate()?;
            this.tick = this.tick.saturating_add(1);
            let tick = this.tick;
            if let Some(old) = this.series.insert(
                key.clone(),
                Entry {
                    spot,
                    last_used: tick,
                },
            ) {
                this.recency.remove(&old.last_used);
            }
            this.recency.insert(tick, key);
            while this.series.len() > this.max_series {
                let Some((_, oldest)) = this.recency.pop_first() else {
                    break;
                };
                this.series.remove(&oldest);
                this.evicted = this.evicted.saturating_add(1);
            }
        }
        Ok(this)
    }

    fn fresh(&self) -> Spot {
        // Validated in `new` / `from_state`.
        Spot::from_valid(self.config.clone())
    }
}
