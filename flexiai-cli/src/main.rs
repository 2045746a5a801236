//! `flexiai`: see a fleet of workers fail over and recover, operate a Redis-synced fleet, and
//! try a client config with one streamed prompt (`flexiai chat`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod chat;
mod demo;
mod metrics;
mod ops;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flexiai_events::CircuitState;

/// The flexiai-rs command line.
#[derive(Debug, Parser)]
#[command(name = "flexiai", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sends one prompt through a config file's providers, streaming the answer and showing
    /// which provider and model answered and which were skipped or failed.
    Chat(chat::ChatArgs),
    /// Runs a fleet of workers against fake providers: the primary fails, the fleet fails
    /// over together, then recovers with a few probes. In-memory by default.
    Demo(demo::DemoArgs),
    /// The fleet-wide breaker table: state, version and counts per provider.
    Status(ops::FleetArgs),
    /// A live tail of the fleet's events channel.
    Watch(ops::WatchArgs),
    /// Live workers, from their heartbeats.
    Workers(ops::FleetArgs),
    /// Isolates a provider on every worker until reset.
    ForceOpen(ops::ControlArgs),
    /// Bypasses a provider's breaker on every worker until reset.
    Disable(ops::ControlArgs),
    /// Closes a provider's breaker on every worker, clearing its counts.
    Reset(ops::ControlArgs),
    /// Moves the fleet's stored state between key layouts (`plain` <-> `hash-tagged`, which
    /// Redis Cluster requires); version-checked and idempotent, safe while workers run.
    MigrateKeys(ops::MigrateArgs),
    /// A worker driven over stdin/stdout, for the multi-process tests.
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
    /// One worker process of `demo --processes`.
    #[command(hide = true)]
    DemoWorker(demo::DemoWorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("flexiai: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Chat(args) => chat::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Status(fleet) => ops::status(fleet).await,
            Command::Watch(args) => ops::watch(args).await,
            Command::Workers(fleet) => ops::workers(fleet).await,
            Command::ForceOpen(args) => ops::control(args, CircuitState::ForcedOpen).await,
            Command::Disable(args) => ops::control(args, CircuitState::Disabled).await,
            Command::Reset(args) => ops::control(args, CircuitState::Closed).await,
            Command::MigrateKeys(args) => ops::migrate(args).await,
            Command::Worker(args) => worker::run(args).await,
            Command::DemoWorker(args) => demo::run_worker(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flexiai: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Errors of the command line; each message says what to do.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
