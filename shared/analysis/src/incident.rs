//! Incidents: anomalous services grouped by call-graph connectivity within a window and by time
//! across windows, so that one fault gives one incident rather than one alert per service.
//!
//! # Grouping within a window
//! Anomalous services connected through the window's call edges, taken undirected, form one
//! group. With `bridge_normal` (the default) two anomalous services that share a normal
//! neighbour are connected too (at most one normal node in between): a fault often leaves an
//! intermediate service under its threshold while its callers and callees are over theirs.
//! The partition is computed by union-find, so it does not depend on input order.
//!
//! # Across windows
//! A group joins an open incident of its graph that holds one of its services or one of their
//! direct neighbours in the window. When a group touches several open incidents, they merge
//! into the one opened first (ties by id); the others resolve with `merged_into` set. A group
//! that touches none opens an incident. The matching is computed over all groups at once (a
//! union-find over groups and incidents), so it is order-independent as well.
//!
//! # Opening
//! A group that touches no open incident opens one only when it is more than a blip: one of its
//! services has been anomalous for `open_after_windows` consecutive windows (2), or its
//! severity — the largest `score/threshold` ratio of its services — reaches `open_severity`
//! (2). The incident's opening time is then the first window of the longest such run, so it
//! dates the onset rather than the confirmation. Until then the group waits: its services'
//! scores are stored as anomalous, but no incident row is written. Joining an open incident
//! needs neither condition.
//!
//! An incident that grew or stayed anomalous in a window is updated: services added, severity
//! = the largest `score/threshold` ratio of its services over its life, `last_anomalous_ms`;
//! its root causes ([`crate::rootcause`]) are ranked again when this window's severity reaches
//! that peak — the strongest evidence — so a weaker window later (the fault fading, a blip of a
//! neighbour) does not replace them. It resolves at the
//! first window that starts `resolve_after_windows` window lengths or more after its last
//! anomalous window with none of its services anomalous.
//!
//! # Identity
//! `id` = the first 16 hex digits of SHA-256(`"incident"`, graph, opening window start, smallest
//! service of the opening group), so a replay yields the same ids. `version` starts at 1 and
//! increments with every change emitted (the row version of a ReplacingMergeTree). Times are
//! window starts (unix ms) of the windows in which the changes happened.

mod tracker;

use serde::{Deserialize, Serialize};

use crate::error::{AnalysisError, Problems};
use crate::rootcause::{RankConfig, RootCause};

pub use tracker::IncidentTracker;

/// Configuration of incident tracking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// Consecutive windows with none of its services anomalous after which an incident resolves.
    pub resolve_after_windows: u32,
    /// Whether two anomalous services sharing a normal neighbour belong to one group.
    pub bridge_normal: bool,
    /// Consecutive anomalous windows of one of its services after which a new group opens an
    /// incident (1: at once).
    pub open_after_windows: u32,
    /// Severity (largest score/threshold ratio) at which a new group opens an incident at once.
    pub open_severity: f64,
    /// Root-cause ranking.
    pub rank: RankConfig,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self {
            resolve_after_windows: 3,
            bridge_normal: true,
            open_after_windows: 2,
            open_severity: 2.0,
            rank: RankConfig::default(),
        }
    }
}

impl IncidentConfig {
    /// Checks every field, reporting all problems at once.
    pub fn validate(&self) -> Result<(), AnalysisError> {
        let mut p = Problems::default();
        p.check(
            !(1..=100_000).contains(&self.resolve_after_windows),
            "resolve_after_windows must be in 1..=100000",
        );
        p.check(
            !(1..=100_000).contains(&self.open_after_windows),
            "open_after_windows must be in 1..=100000",
        );
        p.check(
            !(self.open_severity.is_finite() && self.open_severity >= 1.0),
            "open_severity must be finite and >= 1",
        );
        self.rank.check(&mut p);
        p.finish()
    }
}

/// Lifecycle state of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Some of its services are anomalous, or were within `resolve_after_windows`.
    Open,
    /// Over (or merged into another incident).
    Resolved,
}

impl IncidentStatus {
    /// Lower-case name, as stored.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }
}

/// The full state of one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id (16 hex digits).
    pub id: String,
    /// Graph name.
    pub graph: String,
    /// Open or resolved.
    pub status: IncidentStatus,
    /// Start of the window that opened it, unix ms.
    pub opened_ms: i64,
    /// Start of the window of its latest change, unix ms.
    pub updated_ms: i64,
    /// Start of the window that resolved it, unix ms.
    pub resolved_ms: Option<i64>,
    /// Start of its latest window with one of its services anomalous, unix ms.
    pub last_anomalous_ms: i64,
    /// Largest `score/threshold` ratio of its services so far.
    pub severity: f64,
    /// Every service that was anomalous in it, sorted.
    pub services: Vec<String>,
    /// Ranked root-cause candidates (from its latest anomalous window).
    pub root_causes: Vec<RootCause>,
    /// Incremented with every change, from 1.
    pub version: u64,
    /// The incident this one was merged into, if any.
    pub merged_into: Option<String>,
}

/// What happened to an incident in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Opened in this window.
    Opened,
    /// Still anomalous, or grew.
    Updated,
    /// Resolved after enough normal windows.
    Resolved,
    /// Resolved by merging into another incident (`merged_into`).
    Merged,
}

/// One change of one incident, with its full new state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentChange {
    /// What happened.
    pub kind: ChangeKind,
    /// The incident after the change.
    pub incident: Incident,
}

#[cfg(test)]
mod tests;
