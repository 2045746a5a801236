//! `flexiai`: see a fleet of workers fail over and recover, and operate a Redis-synced fleet.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod demo;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// A worker driven over stdin/stdout, for multi-process tests and `demo --processes`.
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
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
            Command::Worker(args) => worker::run(args).await,
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
