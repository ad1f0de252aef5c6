//! Migrations and TTLs.

use meshwatch_store::{ClickHouseStore, MIGRATIONS, Migration, StoreError, TtlConfig};

use crate::fixtures::{cleanup, config, count};

#[tokio::test]
async fn migrations_apply_on_an_empty_database_and_are_idempotent() -> anyhow::Result<()> {
    let config = config("migrate").await?;
    let (store, first) = ClickHouseStore::connect(&config).await?;
    assert_eq!(first.applied, vec![1, 2, 3, 4]);
    assert!(first.already_applied.is_empty());
    // Every table got its configured TTL.
    assert_eq!(
        first.ttl_changed,
        vec![
            "graph_nodes",
            "graph_edges",
            "anomaly_scores",
            "incidents",
            "forecasts"
        ]
    );

    let tables: Vec<String> = store
        .client()
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind(store.database())
        .fetch_all()
        .await?;
    assert_eq!(
        tables,
        [
            "anomaly_scores",
            "forecasts",
            "graph_edges",
            "graph_nodes",
            "incidents",
            "schema_migrations"
        ]
    );

    // A second start (a second process) changes nothing.
    let (store, second) = ClickHouseStore::connect(&config).await?;
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, vec![1, 2, 3, 4]);
    assert!(second.ttl_changed.is_empty(), "{:?}", second.ttl_changed);
    let records = store.applied_migrations().await?;
    assert_eq!(records.len(), 4);
    for (record, migration) in records.iter().zip(MIGRATIONS) {
        assert_eq!(record.version, migration.version);
        assert_eq!(record.name, migration.name);
        assert_eq!(record.checksum, migration.checksum());
    }
    assert_eq!(
        count(&store, "SELECT count() FROM schema_migrations FINAL").await?,
        4
    );
    cleanup(&store).await;
    Ok(())
}

#[tokio::test]
async fn concurrent_starts_both_succeed_with_one_record_per_version() -> anyhow::Result<()> {
    let config = config("concurrent").await?;
    let a = ClickHouseStore::new(&config)?;
    let b = ClickHouseStore::new(&config)?;
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra?;
    rb?;
    assert_eq!(a.applied_migrations().await?.len(), MIGRATIONS.len());
    let (_, again) = ClickHouseStore::connect(&config).await?;
    assert!(again.applied.is_empty());
    cleanup(&a).await;
    Ok(())
}

#[tokio::test]
async fn a_changed_applied_migration_is_refused() -> anyhow::Result<()> {
    let config = config("changed").await?;
    let (store, _) = ClickHouseStore::connect(&config).await?;
    let mut changed: Vec<Migration> = MIGRATIONS.to_vec();
    changed[2].sql =
        "CREATE TABLE IF NOT EXISTS incidents (id String) ENGINE = MergeTree ORDER BY id";
    let error = store
        .migrate_with(&changed)
        .await
        .expect_err("a changed migration must be refused");
    assert!(
        matches!(&error, StoreError::MigrationChanged { version: 3, name, .. } if name == "incidents"),
        "{error}"
    );
    assert!(
        error.to_string().contains("migration 3 (incidents)"),
        "{error}"
    );
    assert!(!error.is_retryable());

    // A new migration after the applied ones is applied.
    let mut extended: Vec<Migration> = MIGRATIONS.to_vec();
    extended.push(Migration {
        version: 5,
        name: "extra_column",
        sql: "-- a later change\nALTER TABLE forecasts ADD COLUMN IF NOT EXISTS note String DEFAULT '';\n",
    });
    let report = store.migrate_with(&extended).await?;
    assert_eq!(report.applied, vec![5]);
    // This build does not know version 5: tolerated (rolling upgrades).
    store.migrate().await?;
    cleanup(&store).await;
    Ok(())
}

#[tokio::test]
async fn ttls_follow_the_configuration() -> anyhow::Result<()> {
    let mut config = config("ttl").await?;
    let (store, _) = ClickHouseStore::connect(&config).await?;
    let ddl = |table: &'static str| {
        let store = store.clone();
        async move {
            store
                .client()
                .query(
                    "SELECT create_table_query FROM system.tables WHERE database = ? AND name = ?",
                )
                .bind(store.database())
                .bind(table)
                .fetch_one::<String>()
                .await
        }
    };
    assert!(
        ddl("graph_nodes")
            .await?
            .contains("TTL toDateTime(window_start) + toIntervalDay(7)")
    );
    assert!(
        ddl("incidents")
            .await?
            .contains("TTL toDateTime(updated_at) + toIntervalDay(365)")
    );

    config.ttl = TtlConfig {
        graph_days: 2,
        forecasts_days: 0,
        ..TtlConfig::default()
    };
    let (store2, report) = ClickHouseStore::connect(&config).await?;
    assert_eq!(
        report.ttl_changed,
        vec!["graph_nodes", "graph_edges", "forecasts"]
    );
    assert!(
        ddl("graph_edges")
            .await?
            .contains("TTL toDateTime(window_start) + toIntervalDay(2)")
    );
    assert!(!ddl("forecasts").await?.contains(" TTL "));
    assert!(ddl("anomaly_scores").await?.contains("toIntervalDay(30)"));
    let (_, again) = ClickHouseStore::connect(&config).await?;
    assert!(again.ttl_changed.is_empty());
    cleanup(&store2).await;
    Ok(())
}
