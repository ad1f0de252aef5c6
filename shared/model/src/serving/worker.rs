//! The batching worker of a [`super::Server`]: collects queued requests, validates them, joins
//! those that can share a run, runs them on blocking threads (at most one per session) and
//! replies.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::{Current, Inferred, Request, ServeError, Shared};
use crate::batch::{BatchKey, batch_key, join};
use crate::error::ModelError;
use crate::io::{ModelInputs, ModelOutputs};
use crate::metrics::reason;

/// Runs until every sender is gone and the queue is empty, then waits for the runs in flight.
pub(super) async fn run(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Request>) {
    let permits = Arc::new(Semaphore::new(shared.options.load.sessions.max(1)));
    let mut running = JoinSet::new();
    loop {
        // a permit first: while every session is busy the requests wait in the queue (bounded)
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        while let Some(done) = running.try_join_next() {
            report(done);
        }
        let Some(first) = receiver.recv().await else {
            break;
        };
        let batch = collect(&shared, first, &mut receiver).await;
        let shared = Arc::clone(&shared);
        running.spawn_blocking(move || {
            run_batch(&shared, batch);
            drop(permit);
        });
    }
    while let Some(done) = running.join_next().await {
        report(done);
    }
}

fn report(done: Result<(), tokio::task::JoinError>) {
    if let Err(error) = done {
        // the requests of that batch see their replies dropped: ServeError::Closed
        tracing::error!(%error, "a model batch run failed");
    }
}

/// `first` and the requests that arrive within `max_batch_wait` of it, until their nodes reach
/// `max_batch_nodes`.
async fn collect(
    shared: &Shared,
    first: Request,
    receiver: &mut mpsc::Receiver<Request>,
) -> Vec<Request> {
    let options = &shared.options;
    let mut nodes = nodes(&first.inputs);
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now().checked_add(options.max_batch_wait);
    while nodes < options.max_batch_nodes {
        let next = if options.max_batch_wait.is_zero() {
            receiver.try_recv().ok()
        } else if let Some(deadline) = deadline {
            tokio::time::timeout_at(deadline, receiver.recv())
                .await
                .ok()
                .flatten()
        } else {
            receiver.recv().await
        };
        let Some(next) = next else {
            break;
        };
        nodes = nodes.saturating_add(self::nodes(&next.inputs));
        batch.push(next);
    }
    batch
}

fn nodes(inputs: &ModelInputs) -> usize {
    inputs.node_features.shape()[1]
}

/// Validates the requests of a batch, groups them by [`BatchKey`] and runs each group on the
/// model serving now. Blocking.
fn run_batch(shared: &Shared, batch: Vec<Request>) {
    let current = shared.current();
    let name = current.info.name.as_str();
    let metrics = shared.metrics;
    let mut groups: Vec<(BatchKey, Vec<Request>)> = Vec::new();
    for request in batch {
        if request.reply.is_closed() {
            metrics.error(name, reason::ABANDONED);
            continue;
        }
        metrics
            .queue_wait_seconds
            .with_label_values(&[name])
            .observe(request.enqueued.elapsed().as_secs_f64());
        if let Err(error) = current.model.validate(&request.inputs) {
            reply_error(
                shared,
                &current,
                request,
                ServeError::from(ModelError::Shape(error)),
            );
            continue;
        }
        let key = batch_key(&request.inputs);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(request),
            None => groups.push((key, vec![request])),
        }
    }
    for (_, group) in groups {
        run_group(shared, &current, group);
    }
}

/// Runs one group (joined when it has several requests) and replies to each request. When a
/// joined run fails for a reason other than busy sessions, each request runs alone, so that
/// one bad graph fails only its own request.
fn run_group(shared: &Shared, current: &Current, group: Vec<Request>) {
    let result = if let [request] = group.as_slice() {
        timed_run(shared, current, &request.inputs, 1).map(|outputs| vec![outputs])
    } else {
        let parts: Vec<&ModelInputs> = group.iter().map(|r| &r.inputs).collect();
        join(&parts).map_err(ServeError::from).and_then(|joined| {
            let outputs = timed_run(shared, current, &joined.inputs, parts.len())?;
            joined.split(outputs).map_err(ServeError::from)
        })
    };
    match result {
        Ok(outputs) => {
            for (request, outputs) in group.into_iter().zip(outputs) {
                // a caller that gave up meanwhile does not take its reply: nothing to do
                let _gone = request.reply.send(Ok(Inferred {
                    outputs,
                    model: Arc::clone(&current.info),
                }));
            }
        }
        Err(error) if group.len() > 1 && !error.is_retryable() => {
            tracing::warn!(
                model = %current.info.name,
                graphs = group.len(),
                %error,
                "a joined run failed; running its graphs one by one"
            );
            for request in group {
                run_group(shared, current, vec![request]);
            }
        }
        Err(error) => {
            for request in group {
                reply_error(shared, current, request, error.duplicate());
            }
        }
    }
}

/// Runs `inputs` (`graphs` requests) with the bounded session wait and records the run.
fn timed_run(
    shared: &Shared,
    current: &Current,
    inputs: &ModelInputs,
    graphs: usize,
) -> Result<ModelOutputs, ServeError> {
    let info = &current.info;
    let name = info.name.as_str();
    let metrics = shared.metrics;
    let started = Instant::now();
    let outputs = current
        .model
        .run_within(inputs, shared.options.session_wait)?;
    metrics
        .inference_seconds
        .with_label_values(&[name, info.execution_provider.name()])
        .observe(started.elapsed().as_secs_f64());
    #[allow(clippy::cast_precision_loss)] // graph and node counts far below 2^52
    {
        metrics
            .batch_graphs
            .with_label_values(&[name])
            .observe(graphs as f64);
        metrics
            .batch_nodes
            .with_label_values(&[name])
            .observe(nodes(inputs) as f64);
    }
    Ok(outputs)
}

fn reply_error(shared: &Shared, current: &Current, request: Request, error: ServeError) {
    shared.metrics.error(&current.info.name, error.reason());
    let _gone = request.reply.send(Err(error));
}
