//! Versioned schema migrations, embedded in the binary and applied idempotently at start-up.
//!
//! Each file `migrations/NNNN_name.sql` is one migration: statements separated by a `;` at the
//! end of a line, `--` comment lines ignored. Statements must be idempotent
//! (`CREATE TABLE IF NOT EXISTS`, `ALTER TABLE ... ADD COLUMN IF NOT EXISTS`), which is what
//! makes concurrent starts safe: ClickHouse has no transactions for DDL, so two processes that
//! start together may both run a migration; both succeed, both record it, and
//! `schema_migrations` (a ReplacingMergeTree keyed by version, read with FINAL) keeps one row.
//!
//! A migration's checksum (SHA-256 of its text) is recorded when it is applied. At every start,
//! the recorded checksums are compared with this build's: a changed migration is an error that
//! names it ([`StoreError::MigrationChanged`]); change the schema with a new migration instead.
//! Versions recorded in the database but unknown to this build (a newer build migrated it) are
//! logged and left alone, so an older replica can still start during a rolling upgrade.

use clickhouse::Row;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::StoreError;

/// One migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Version, strictly increasing.
    pub version: u32,
    /// Short name (the file name without number and extension).
    pub name: &'static str,
    /// The SQL text.
    pub sql: &'static str,
}

/// The schema of ARCHITECTURE.md §7, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "graph",
        sql: include_str!("../migrations/0001_graph.sql"),
    },
    Migration {
        version: 2,
        name: "anomaly_scores",
        sql: include_str!("../migrations/0002_anomaly_scores.sql"),
    },
    Migration {
        version: 3,
        name: "incidents",
        sql: include_str!("../migrations/0003_incidents.sql"),
    },
    Migration {
        version: 4,
        name: "forecasts",
        sql: include_str!("../migrations/0004_forecasts.sql"),
    },
];

/// The bookkeeping table, created before any migration runs.
pub(crate) const SCHEMA_MIGRATIONS_DDL: &str = "\
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version     UInt32,
    name        String,
    checksum    String,
    applied_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version";

impl Migration {
    /// SHA-256 of the SQL text, lowercase hex.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// The statements of the migration, without comment lines and empty statements.
    pub fn statements(&self) -> Vec<String> {
        let mut statements = Vec::new();
        let mut current = String::new();
        for line in self.sql.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with("--") {
                continue;
            }
            if let Some(body) = trimmed.strip_suffix(';') {
                current.push_str(body);
                push_statement(&mut statements, &mut current);
            } else {
                current.push_str(line);
                current.push('\n');
            }
        }
        push_statement(&mut statements, &mut current);
        statements
    }
}

fn push_statement(statements: &mut Vec<String>, current: &mut String) {
    let statement = current.trim();
    if !statement.is_empty() {
        statements.push(statement.to_owned());
    }
    current.clear();
}

/// A row of `schema_migrations`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct AppliedMigration {
    /// Version.
    pub version: u32,
    /// Name at the time it was applied.
    pub name: String,
    /// Checksum at the time it was applied.
    pub checksum: String,
}

/// What a migration run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run.
    pub applied: Vec<u32>,
    /// Versions found applied already (checksums matched).
    pub already_applied: Vec<u32>,
    /// Tables whose TTL this run changed.
    pub ttl_changed: Vec<String>,
}

/// Checks that `migrations` are numbered strictly increasingly (a build-time invariant, checked
/// by a unit test for [`MIGRATIONS`]).
pub(crate) fn check_order(migrations: &[Migration]) -> Result<(), StoreError> {
    for pair in migrations.windows(2) {
        if let [a, b] = pair
            && a.version >= b.version
        {
            return Err(StoreError::Config(vec![format!(
                "migration versions must increase: {} ({}) before {} ({})",
                a.version, a.name, b.version, b.name
            )]));
        }
    }
    Ok(())
}

/// Compares the recorded migrations with `migrations`: the changed one is an error.
pub(crate) fn verify_applied(
    database: &str,
    migrations: &[Migration],
    applied: &[AppliedMigration],
) -> Result<(), StoreError> {
    for record in applied {
        match migrations.iter().find(|m| m.version == record.version) {
            Some(migration) => {
                let current = migration.checksum();
                if current != record.checksum {
                    return Err(StoreError::MigrationChanged {
                        version: record.version,
                        name: migration.name.to_owned(),
                        database: database.to_owned(),
                        applied: record.checksum.clone(),
                        current,
                    });
                }
            }
            None => tracing::warn!(
                database,
                version = record.version,
                name = %record.name,
                "database has a migration this build does not know; leaving it alone"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_are_ordered_and_split() {
        check_order(MIGRATIONS).expect("ordered");
        let graph = MIGRATIONS[0].statements();
        assert_eq!(graph.len(), 2);
        assert!(graph[0].starts_with("CREATE TABLE IF NOT EXISTS graph_nodes"));
        assert!(graph[1].starts_with("CREATE TABLE IF NOT EXISTS graph_edges"));
        for migration in MIGRATIONS {
            let statements = migration.statements();
            assert!(!statements.is_empty(), "{}", migration.name);
            for statement in statements {
                assert!(!statement.contains("--"), "{statement}");
                assert!(!statement.ends_with(';'), "{statement}");
                // `?` is the clickhouse crate's bind placeholder.
                assert!(!statement.contains('?'), "{statement}");
            }
        }
    }

    #[test]
    fn out_of_order_migrations_are_refused() {
        let a = Migration {
            version: 2,
            name: "a",
            sql: "SELECT 1",
        };
        let b = Migration {
            version: 2,
            name: "b",
            sql: "SELECT 1",
        };
        assert!(check_order(&[a, b]).is_err());
    }

    #[test]
    fn a_changed_checksum_names_the_migration() {
        let applied = vec![AppliedMigration {
            version: 3,
            name: "incidents".to_owned(),
            checksum: "0".repeat(64),
        }];
        let err = verify_applied("db", MIGRATIONS, &applied).expect_err("changed");
        let message = err.to_string();
        assert!(message.contains("migration 3 (incidents)"), "{message}");
        assert!(!err.is_retryable());
        let unknown = vec![AppliedMigration {
            version: 99,
            name: "future".to_owned(),
            checksum: String::new(),
        }];
        verify_applied("db", MIGRATIONS, &unknown).expect("unknown versions are tolerated");
    }

    #[test]
    fn statements_split_on_line_end_semicolons_only() {
        let m = Migration {
            version: 1,
            name: "x",
            sql: "-- a; comment\nCREATE TABLE a (s String DEFAULT ';')\nENGINE = Memory;\n\n-- end\nSELECT 1\n",
        };
        assert_eq!(
            m.statements(),
            vec![
                "CREATE TABLE a (s String DEFAULT ';')\nENGINE = Memory".to_owned(),
                "SELECT 1".to_owned()
            ]
        );
    }
}
