//! `fleet-bench`: the fleet benchmarks of flexiai-rs, run by `cargo xtask bench`.
//!
//! Every section spawns its own `redis-server` through `flexiai-testkit` (never an existing
//! server), measures flexiai next to a baseline measured in the same run, and the results are
//! written into `BENCHMARKS.md` between `<!-- fleet-bench:start -->` and
//! `<!-- fleet-bench:end -->`, with the propagation plot in `docs/bench/propagation.svg`.
//!
//! ```text
//! fleet-bench run [--quick] [--root DIR]     the fleet sections, then rewrite BENCHMARKS.md
//! fleet-bench run --section scale [--quick]  fleets of 10 to 1,000 workers (own markers)
//! fleet-bench callgrind --config plain|synced  hot-path loop for callgrind instruction counts
//! fleet-bench memory                         the memory figures only, printed
//! fleet-bench worker --mode ...              a worker process (spawned by `run`)
//! fleet-bench fleet --design ...             many simulated workers (spawned by `run`)
//! ```

mod callgrind;
mod client_memory;
mod cost;
mod fleet;
mod hotpath;
mod hydrate;
mod machine;
mod plot;
mod procs;
mod propagation;
mod redis_stats;
mod report;
mod scale;
mod stats;
mod trip;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts allocations, for the memory-per-breaker figure; costs a few relaxed atomics per
/// allocation, and nothing measured on the hot path allocates.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Errors are reported once, at the top.
pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Wall-clock microseconds since the Unix epoch (all processes run on one host, one clock).
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, Parser)]
#[command(
    name = "fleet-bench",
    about = "Fleet benchmarks of flexiai-rs against spawned redis-server instances"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every section and rewrite the fleet sections of BENCHMARKS.md.
    Run(RunArgs),
    /// Only the memory figures: bytes per breaker, and per (provider, model) pair of a
    /// client; printed, BENCHMARKS.md left alone.
    Memory,
    /// A worker process, spawned by `run`.
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
    /// A process of many simulated workers (scale section), spawned by `run`.
    #[command(hide = true)]
    Fleet(fleet::FleetArgs),
    /// Instruction counts of the closed hot path with and without sync attached, for
    /// `valgrind --tool=callgrind` (see BENCHMARKS.md).
    Callgrind(callgrind::CallgrindArgs),
}

/// Options of `fleet-bench run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Fewer samples and shorter phases (about a third of the time).
    #[arg(long)]
    pub(crate) quick: bool,
    /// The workspace root (BENCHMARKS.md and docs/bench/ are written there).
    #[arg(long, default_value = ".")]
    pub(crate) root: PathBuf,
    /// Only print the report; leave BENCHMARKS.md and the plot alone.
    #[arg(long)]
    pub(crate) no_write: bool,
    /// Run one section: `fleet` (the default: propagation, cost, hot path, trip, hydrate)
    /// or `scale` (fleets of 10 to 1,000 workers, its own part of BENCHMARKS.md).
    #[arg(long)]
    pub(crate) section: Option<String>,
    /// Scale section only: the fleet sizes to run (default 10,50,100,250,500,1000).
    #[arg(long, value_delimiter = ',')]
    pub(crate) sizes: Vec<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            report::log(&format!("fleet-bench: cannot start tokio: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run(args) => runtime.block_on(report::run_all(args)),
        Command::Memory => runtime.block_on(report::memory_only()),
        Command::Worker(args) => runtime.block_on(worker::run(args)),
        Command::Fleet(args) => runtime.block_on(fleet::run(args)),
        Command::Callgrind(args) => runtime.block_on(callgrind::run(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report::log(&format!("fleet-bench: {error}"));
            ExitCode::FAILURE
        }
    }
}
