//! `meshwatch migrate`: the ClickHouse schema — versioned migrations, then the configured TTLs —
//! applied as the aggregator applies it at start-up, for operators who migrate before they
//! deploy (`docs/store.md`). Idempotent; a migration changed since it was applied is refused.

use anyhow::Context;
use clap::Args;
use meshwatch_store::{ClickHouseConfig, ClickHouseStore, TtlConfig};

/// Arguments of `meshwatch migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// ClickHouse HTTP interface
    #[arg(long, env = "CLICKHOUSE_URL", default_value = "http://127.0.0.1:8123")]
    pub url: String,
    /// Database (created when missing)
    #[arg(long, default_value = "meshwatch")]
    pub database: String,
    /// User (default: the server's default user)
    #[arg(long, env = "CLICKHOUSE_USER")]
    pub user: Option<String>,
    /// Password of the user
    #[arg(long, env = "CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Days of graph rows to keep (0: forever)
    #[arg(long, default_value_t = TtlConfig::default().graph_days)]
    pub graph_days: u32,
    /// Days of anomaly scores to keep (0: forever)
    #[arg(long, default_value_t = TtlConfig::default().scores_days)]
    pub scores_days: u32,
    /// Days of incidents to keep (0: forever)
    #[arg(long, default_value_t = TtlConfig::default().incidents_days)]
    pub incidents_days: u32,
    /// Days of forecasts to keep (0: forever)
    #[arg(long, default_value_t = TtlConfig::default().forecasts_days)]
    pub forecasts_days: u32,
    /// Only list the migrations applied so far; change nothing
    #[arg(long)]
    pub status: bool,
}

/// Runs `meshwatch migrate`; prints what it did.
pub fn run(args: &MigrateArgs) -> anyhow::Result<()> {
    let config = ClickHouseConfig {
        url: args.url.clone(),
        database: args.database.clone(),
        user: args.user.clone(),
        password: args.password.clone(),
        ttl: TtlConfig {
            graph_days: args.graph_days,
            scores_days: args.scores_days,
            incidents_days: args.incidents_days,
            forecasts_days: args.forecasts_days,
        },
        ..ClickHouseConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = ClickHouseStore::new(&config)?;
        if args.status {
            let applied = store
                .applied_migrations()
                .await
                .with_context(|| format!("reading {}.schema_migrations", args.database))?;
            for m in &applied {
                println!("{:>4}  {}  {}", m.version, m.name, m.checksum);
            }
            println!(
                "{} migration(s) applied in {}",
                applied.len(),
                args.database
            );
            return Ok(());
        }
        let report = store
            .migrate()
            .await
            .with_context(|| format!("migrating {} at {}", args.database, args.url))?;
        println!(
            "database {}: applied {:?}, already applied {:?}, TTL changed on {:?}",
            args.database, report.applied, report.already_applied, report.ttl_changed
        );
        Ok(())
    })
}
