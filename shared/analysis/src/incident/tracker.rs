//! The incident state machine over windows (see the module docs of [`crate::incident`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ChangeKind, Incident, IncidentChange, IncidentConfig, IncidentStatus};
use crate::error::AnalysisError;
use crate::id::stable_id;
use crate::rootcause;
use crate::window::{CanonicalWindow, WindowInput};

/// Open incidents of one graph and the last window seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GraphState {
    last_window_start_ms: i64,
    /// Open incidents by id.
    open: BTreeMap<String, Incident>,
    /// Services anomalous in the last window, with the first window of their current run.
    #[serde(default)]
    streaks: BTreeMap<String, i64>,
}

/// Tracks incidents per graph from the windows' scores. Serialisable, so that its state can be
/// persisted and restored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentTracker {
    config: IncidentConfig,
    graphs: BTreeMap<String, GraphState>,
}

/// Union-find over `0..n` (path halving, union by smaller index as root, so roots are
/// deterministic).
struct Partition(Vec<usize>);

impl Partition {
    fn new(n: usize) -> Self {
        Self((0..n).collect())
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.0[hi] = lo;
    }

    /// Classes as sorted lists of members, ordered by smallest member.
    fn classes(&mut self) -> Vec<Vec<usize>> {
        let mut by_root: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for x in 0..self.0.len() {
            let r = self.find(x);
            by_root.entry(r).or_default().push(x);
        }
        by_root.into_values().collect()
    }
}

/// Groups of anomalous services connected in the window (see the module docs).
pub(super) fn groups(window: &CanonicalWindow, bridge_normal: bool) -> Vec<BTreeSet<String>> {
    let anomalous: Vec<&String> = window.anomalous().collect();
    let index: BTreeMap<&str, usize> = anomalous
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let mut partition = Partition::new(anomalous.len());
    for (a, b) in &window.edges {
        if let (Some(&i), Some(&j)) = (index.get(a.as_str()), index.get(b.as_str())) {
            partition.union(i, j);
        }
    }
    if bridge_normal {
        for (node, neighbours) in &window.neighbours {
            if index.contains_key(node.as_str()) {
                continue;
            }
            let mut bridged = neighbours.iter().filter_map(|n| index.get(n.as_str()));
            if let Some(&first) = bridged.next() {
                for &other in bridged {
                    partition.union(first, other);
                }
            }
        }
    }
    partition
        .classes()
        .into_iter()
        .map(|class| class.into_iter().map(|i| anomalous[i].clone()).collect())
        .collect()
}

impl IncidentTracker {
    /// A tracker with no incident; the configuration is validated.
    pub fn new(config: IncidentConfig) -> Result<Self, AnalysisError> {
        config.validate()?;
        Ok(Self {
            config,
            graphs: BTreeMap::new(),
        })
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &IncidentConfig {
        &self.config
    }

    /// Open incidents of `graph`, by id.
    pub fn open_incidents(&self, graph: &str) -> impl Iterator<Item = &Incident> {
        self.graphs
            .get(graph)
            .into_iter()
            .flat_map(|g| g.open.values())
    }

    /// Processes one window: returns the changes it caused, sorted by incident id then kind.
    /// Windows of a graph must come in increasing `window_start_ms`; an earlier or repeated
    /// one is refused with [`AnalysisError::WindowOutOfOrder`] and changes nothing.
    pub fn observe(&mut self, window: &WindowInput) -> Result<Vec<IncidentChange>, AnalysisError> {
        let canonical = CanonicalWindow::new(window)?;
        if let Some(state) = self.graphs.get(&window.graph)
            && window.window_start_ms <= state.last_window_start_ms
        {
            return Err(AnalysisError::WindowOutOfOrder {
                graph: window.graph.clone(),
                window_start_ms: window.window_start_ms,
                last_window_start_ms: state.last_window_start_ms,
            });
        }
        let config = &self.config;
        let state = self
            .graphs
            .entry(window.graph.clone())
            .or_insert_with(|| GraphState {
                last_window_start_ms: window.window_start_ms,
                open: BTreeMap::new(),
                streaks: BTreeMap::new(),
            });
        let now = window.window_start_ms;
        let window_ms = i64::from(window.window_ms.max(1));
        // A gap in the windows ends every run.
        let contiguous = now.saturating_sub(state.last_window_start_ms) <= window_ms;
        state.streaks = canonical
            .anomalous()
            .map(|s| {
                let start = match state.streaks.get(s) {
                    Some(&start) if contiguous => start,
                    _ => now,
                };
                (s.clone(), start)
            })
            .collect();
        state.last_window_start_ms = now;

        let groups = groups(&canonical, config.bridge_normal);
        let open_ids: Vec<String> = state.open.keys().cloned().collect();
        // Nodes 0..G are groups, G..G+I open incidents.
        let mut partition = Partition::new(groups.len() + open_ids.len());
        for (g, group) in groups.iter().enumerate() {
            for (k, id) in open_ids.iter().enumerate() {
                let Some(incident) = state.open.get(id) else {
                    continue;
                };
                if touches(group, incident, &canonical) {
                    partition.union(g, groups.len() + k);
                }
            }
        }

        let mut changes = Vec::new();
        let mut touched: BTreeSet<String> = BTreeSet::new();
        for class in partition.classes() {
            let (members, incidents): (Vec<usize>, Vec<usize>) =
                class.into_iter().partition(|&x| x < groups.len());
            if members.is_empty() {
                continue;
            }
            let mut services: BTreeSet<String> = BTreeSet::new();
            for &g in &members {
                services.extend(groups[g].iter().cloned());
            }
            let window_severity = services
                .iter()
                .map(|s| canonical.ratio(s))
                .fold(0.0, f64::max);
            // Incidents of the class, first opened first.
            let mut existing: Vec<Incident> = incidents
                .iter()
                .filter_map(|&k| open_ids.get(k - groups.len()))
                .filter_map(|id| state.open.remove(id))
                .collect();
            existing.sort_by(|a, b| a.opened_ms.cmp(&b.opened_ms).then(a.id.cmp(&b.id)));
            let mut existing = existing.into_iter();
            let (mut target, kind) = match existing.next() {
                Some(first) => (first, ChangeKind::Updated),
                None => {
                    // The first window of the longest run among the group's services.
                    let onset = services
                        .iter()
                        .filter_map(|s| state.streaks.get(s))
                        .copied()
                        .min()
                        .unwrap_or(now);
                    let run = (now - onset) / window_ms + 1;
                    if run < i64::from(config.open_after_windows)
                        && window_severity < config.open_severity
                    {
                        // A blip so far: no incident unless it lasts or grows.
                        continue;
                    }
                    let smallest = services.first().map_or("", String::as_str);
                    let opened = onset.to_string();
                    let id = stable_id(&["incident", &window.graph, &opened, smallest]);
                    let incident = Incident {
                        id,
                        graph: window.graph.clone(),
                        status: IncidentStatus::Open,
                        opened_ms: onset,
                        updated_ms: now,
                        resolved_ms: None,
                        last_anomalous_ms: now,
                        severity: 0.0,
                        services: Vec::new(),
                        root_causes: Vec::new(),
                        version: 0,
                        merged_into: None,
                    };
                    (incident, ChangeKind::Opened)
                }
            };
            let mut all: BTreeSet<String> = target.services.iter().cloned().collect();
            all.extend(services);
            for mut merged in existing {
                all.extend(merged.services.iter().cloned());
                target.severity = target.severity.max(merged.severity);
                merged.status = IncidentStatus::Resolved;
                merged.resolved_ms = Some(now);
                merged.updated_ms = now;
                merged.merged_into = Some(target.id.clone());
                merged.version += 1;
                changes.push(IncidentChange {
                    kind: ChangeKind::Merged,
                    incident: merged,
                });
            }
            // Ranked on the window of peak severity, the strongest evidence: a weaker window
            // later in the incident (the fault fading, a blip nearby) does not re-rank it.
            if target.root_causes.is_empty() || window_severity >= target.severity {
                target.root_causes = rootcause::rank(&all, &canonical, &config.rank);
            }
            target.severity = target.severity.max(window_severity);
            target.services = all.into_iter().collect();
            target.last_anomalous_ms = now;
            target.updated_ms = now;
            target.version += 1;
            touched.insert(target.id.clone());
            changes.push(IncidentChange {
                kind,
                incident: target.clone(),
            });
            state.open.insert(target.id.clone(), target);
        }

        // Resolve the quiet ones.
        let quiet_ms = i64::from(config.resolve_after_windows) * i64::from(window.window_ms.max(1));
        let due: Vec<String> = state
            .open
            .values()
            .filter(|i| !touched.contains(&i.id))
            .filter(|i| now.saturating_sub(i.last_anomalous_ms) >= quiet_ms)
            .map(|i| i.id.clone())
            .collect();
        for id in due {
            if let Some(mut incident) = state.open.remove(&id) {
                incident.status = IncidentStatus::Resolved;
                incident.resolved_ms = Some(now);
                incident.updated_ms = now;
                incident.version += 1;
                changes.push(IncidentChange {
                    kind: ChangeKind::Resolved,
                    incident,
                });
            }
        }
        changes.sort_by(|a, b| a.incident.id.cmp(&b.incident.id).then(a.kind.cmp(&b.kind)));
        Ok(changes)
    }
}

/// Whether `group` shares a service with `incident` or is adjacent to one of its services.
fn touches(group: &BTreeSet<String>, incident: &Incident, window: &CanonicalWindow) -> bool {
    incident
        .services
        .iter()
        .any(|s| group.contains(s) || window.neighbours_of(s).any(|n| group.contains(n)))
}
