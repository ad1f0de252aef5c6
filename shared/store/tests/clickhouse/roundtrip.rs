//! Rows in, the documented queries out; re-delivered rows do not duplicate.

use meshwatch_store::{Rows, Store, queries};

use crate::fixtures::{T0, WINDOW_MS, cleanup, count, incident, node, sample, store};

const TABLES: [&str; 5] = [
    "graph_nodes",
    "graph_edges",
    "anomaly_scores",
    "incidents",
    "forecasts",
];

#[tokio::test]
async fn every_table_round_trips_through_the_documented_queries() -> anyhow::Result<()> {
    let store = store("roundtrip").await?;
    let rows = sample("prod");
    store.insert(&rows).await?;
    // Another graph, which no query of "prod" may return.
    store.insert(&sample("staging")).await?;

    let at = T0 + 2 * i64::from(WINDOW_MS);
    let nodes = store.graph_nodes_at("prod", at).await?;
    let mut expected: Vec<_> = rows
        .graph_nodes
        .iter()
        .filter(|n| n.window_start == at)
        .cloned()
        .collect();
    expected.sort_by(|a, b| a.service.cmp(&b.service));
    assert_eq!(nodes, expected);
    assert_eq!(
        nodes
            .iter()
            .find(|n| n.service == "db")
            .and_then(|n| n.cpu_utilization),
        None
    );

    let edges = store.graph_edges_at("prod", at).await?;
    assert_eq!(edges.len(), 2);
    assert_eq!(
        (edges[0].caller.as_str(), edges[0].callee.as_str()),
        ("checkout", "db")
    );
    assert_eq!(edges[0], rows.graph_edges[5]);

    let window = store.window_scores("prod", at).await?;
    assert_eq!(window.len(), 3);
    assert_eq!(window[0].service, "db", "anomalies first");
    assert!(window[0].is_anomaly);
    assert_eq!(
        window[0].contributions,
        rows.anomaly_scores[8].contributions
    );

    let scores = store
        .service_scores("prod", "db", T0, T0 + 3 * i64::from(WINDOW_MS))
        .await?;
    let expected: Vec<_> = rows
        .anomaly_scores
        .iter()
        .filter(|s| s.service == "db")
        .cloned()
        .collect();
    assert_eq!(scores, expected);
    // The range is half-open.
    assert_eq!(store.service_scores("prod", "db", T0, at).await?.len(), 2);

    let forecasts = store
        .service_forecasts("prod", "db", T0, T0 + 10 * i64::from(WINDOW_MS))
        .await?;
    assert_eq!(forecasts.len(), 4);
    let mut expected = rows.forecasts.clone();
    expected.sort_by_key(|f| (f.target_time, f.horizon));
    assert_eq!(forecasts, expected);

    let incidents = store.latest_incidents("prod", T0, 10).await?;
    assert_eq!(
        incidents,
        vec![rows.incidents[1].clone()],
        "the latest version"
    );
    let causes: Vec<_> = incidents[0].root_causes().map(|(s, _, _)| s).collect();
    assert_eq!(causes, ["payments", "checkout"]);
    // One row per candidate, with its rank.
    let ranked: Vec<(String, u32, f64)> = store
        .client()
        .query(
            "SELECT rc.service, rank, rc.score FROM incidents FINAL \
             ARRAY JOIN root_causes AS rc, arrayEnumerate(root_causes.service) AS rank \
             WHERE graph = ? AND incident_id = ? ORDER BY rank",
        )
        .bind("prod")
        .bind("inc-1")
        .fetch_all()
        .await?;
    assert_eq!(
        ranked,
        [
            ("payments".to_owned(), 1, 0.72),
            ("checkout".to_owned(), 2, 0.21)
        ]
    );
    assert_eq!(store.latest_incidents("prod", T0 + 1, 10).await?, vec![]);
    assert_eq!(store.latest_incidents("nowhere", 0, 10).await?, vec![]);

    cleanup(&store).await;
    Ok(())
}

#[tokio::test]
async fn rows_written_twice_are_one_row_per_key() -> anyhow::Result<()> {
    let store = store("dedup").await?;
    let rows = sample("prod");
    store.insert(&rows).await?;
    // A re-delivery after a lost ack, in a different batch shape.
    let again = Rows {
        anomaly_scores: rows.anomaly_scores.clone(),
        ..Rows::default()
    };
    store.insert(&again).await?;
    store.insert(&rows).await?;

    // FINAL collapses at read time, before any merge.
    for table in TABLES {
        let raw = count(&store, &format!("SELECT count() FROM {table}")).await?;
        let final_ = count(&store, &format!("SELECT count() FROM {table} FINAL")).await?;
        let keys = match table {
            "graph_nodes" => rows.graph_nodes.len(),
            "graph_edges" => rows.graph_edges.len(),
            "anomaly_scores" => rows.anomaly_scores.len(),
            "incidents" => 1,
            _ => rows.forecasts.len(),
        } as u64;
        assert_eq!(final_, keys, "{table} FINAL");
        assert!(
            raw > keys,
            "{table}: the copies are there before a merge ({raw})"
        );
    }
    // So do merges.
    for table in TABLES {
        store
            .execute(&format!("OPTIMIZE TABLE {table} FINAL"))
            .await?;
    }
    assert_eq!(
        count(&store, "SELECT count() FROM anomaly_scores").await?,
        rows.anomaly_scores.len() as u64
    );
    assert_eq!(count(&store, "SELECT count() FROM incidents").await?, 1);
    // The argMax form gives the same latest state as FINAL.
    let status: String = store
        .client()
        .query("SELECT argMax(status, version) FROM incidents WHERE incident_id = ?")
        .bind("inc-1")
        .fetch_one()
        .await?;
    assert_eq!(status, "resolved");
    cleanup(&store).await;
    Ok(())
}

#[tokio::test]
async fn an_older_incident_version_arriving_late_does_not_win() -> anyhow::Result<()> {
    let store = store("versions").await?;
    store
        .insert(&vec![incident("prod", "inc-7", 3, "resolved")].into())
        .await?;
    store
        .insert(&vec![incident("prod", "inc-7", 2, "open")].into())
        .await?;
    let latest = store.latest_incidents("prod", 0, 10).await?;
    assert_eq!(latest.len(), 1);
    assert_eq!(
        (latest[0].version, latest[0].status.as_str()),
        (3, "resolved")
    );
    cleanup(&store).await;
    Ok(())
}

#[tokio::test]
async fn every_documented_query_parses_and_runs_on_an_empty_database() -> anyhow::Result<()> {
    let store = store("queries").await?;
    for (name, sql) in queries::ALL {
        let result = store
            .client()
            .query_raw(&format!("EXPLAIN SYNTAX {sql}"))
            .param("graph", "g")
            .param("service", "s")
            .param("since_ms", 0_i64)
            .param("from_ms", 0_i64)
            .param("to_ms", 1_i64)
            .param("at_ms", 0_i64)
            .param("limit", 1_u32)
            .fetch_all::<String>()
            .await;
        assert!(result.is_ok(), "{name}: {result:?}");
    }
    assert!(store.latest_incidents("g", 0, 1).await?.is_empty());
    assert!(
        store
            .service_scores("g", "s", 0, i64::MAX / 2)
            .await?
            .is_empty()
    );
    assert!(
        store
            .service_forecasts("g", "s", 0, i64::MAX / 2)
            .await?
            .is_empty()
    );
    assert!(store.graph_nodes_at("g", 0).await?.is_empty());
    assert!(store.graph_edges_at("g", 0).await?.is_empty());
    assert!(store.window_scores("g", 0).await?.is_empty());
    cleanup(&store).await;
    Ok(())
}

#[tokio::test]
async fn a_row_that_does_not_fit_the_schema_is_not_retryable() -> anyhow::Result<()> {
    let store = store("schema").await?;
    // graph_nodes rows into graph_edges: the client checks the columns before sending.
    let error = store
        .insert_table("graph_edges", &[node("prod", 0, "a")])
        .await
        .expect_err("mismatch");
    assert!(!error.is_retryable(), "{error}");
    let error = store
        .execute("SELECT * FROM no_such_table")
        .await
        .expect_err("unknown table");
    assert!(!error.is_retryable(), "{error}");
    cleanup(&store).await;
    Ok(())
}
