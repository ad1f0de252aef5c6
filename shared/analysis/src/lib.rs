//! Meshwatch analysis: the pure core of the aggregator (ARCHITECTURE.md §1, §7). No I/O, no
//! async runtime, no clock: window times come with the input, so every result is a function
//! of its inputs (and of the state passed in), and a replay gives the same rows.
//!
//! # Data flow
//!
//! ```text
//!  detector scores ──► threshold  (SPOT / DSPOT per (graph, service) series)
//!                         │ score, threshold, is_anomaly      (→ anomaly_scores)
//!                         ▼
//!                      incident   (grouping by call-graph connectivity and time)
//!                         │ opened / updated / resolved / merged, versioned
//!                         ▼
//!                      rootcause  (personalised PageRank on the anomalous subgraph)
//!                         │ ranked candidates with evidence   (→ incidents)
//!
//!  forecasts ─────────► forecast   (SLO crossings within the horizon)
//!                         │ predicted incidents               (→ incidents, status predicted)
//! ```
//!
//! # Modules
//! - [`threshold`]: adaptive thresholds on anomaly scores — [`Spot`] (SPOT / DSPOT, Siffer et
//!   al., KDD 2017) with a robust fallback while calibrating, and [`Thresholds`], a bounded
//!   LRU map of them per (graph, service). Serialisable state.
//! - [`window`]: the per-window input ([`WindowInput`]) shared by incidents and ranking.
//! - [`incident`]: [`IncidentTracker`] turns windows into [`IncidentChange`]s with stable ids
//!   and versions. Serialisable state.
//! - [`rootcause`]: [`rank_root_causes`] and [`personalized_pagerank`].
//! - [`forecast`]: [`predicted_incidents`] from a [`ForecastInput`] and an [`SloConfig`].
//! - [`id`]: [`stable_id`], the hashing behind every id.
//! - [`error`]: the crate's error, [`AnalysisError`].

pub mod error;
pub mod forecast;
pub mod id;
pub mod incident;
pub mod rootcause;
pub mod threshold;
pub mod window;

pub use error::AnalysisError;
pub use forecast::{
    ForecastBasis, ForecastInput, ForecastPoint, MetricForecast, PredictedIncident, SloConfig,
    predicted_incidents,
};
pub use id::stable_id;
pub use incident::{
    ChangeKind, Incident, IncidentChange, IncidentConfig, IncidentStatus, IncidentTracker,
};
pub use rootcause::{RankConfig, RootCause, personalized_pagerank, rank_root_causes};
pub use threshold::{
    Decision, GpdFit, SeriesKey, SeriesState, Spot, ThresholdConfig, Thresholds, ThresholdsState,
};
pub use window::{CallEdge, FeatureContribution, ServiceWindow, WindowInput, anomaly_ratio};
