//! `flexiai`: see a fleet of workers fail over and recover, and operate a Redis-synced fleet.
#![allow(clippy::print_stdout, clippy::print_stderr)]

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
            Command::Demo(args) => demo::run(args).await,
            Command::Status(fleet) => ops::status(fleet).await,
            Command::Watch(args) => ops::watch(args).await,
            Command::Workers(fleet) => ops::workers(fleet).await,
            Command::ForceOpen(args) => ops::control(args, CircuitState::ForcedOpen).await,
            Command::Disable(args) => ops::control(args, CircuitState::Disabled).await,
            Command::Reset(args) => ops::control(args, CircuitState::Closed).await,
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
