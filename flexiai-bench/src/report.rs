//! Runs every section and writes the report: a Markdown section of BENCHMARKS.md between
//! markers, and the propagation plot as a hand-written SVG.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use crate::RunArgs;
use crate::cost::{CostResult, Load};
use crate::hotpath::HotPathRow;
use crate::hydrate::{HydrateRow, MemoryResult};
use crate::machine::Machine;
use crate::propagation::PropagationRow;
use crate::trip::TripRow;

/// Start marker of the generated section in BENCHMARKS.md.
pub(crate) const START: &str = "<!-- fleet-bench:start -->";
/// End marker of the generated section in BENCHMARKS.md.
pub(crate) const END: &str = "<!-- fleet-bench:end -->";
/// Where the plot goes, relative to the workspace root.
pub(crate) const SVG_PATH: &str = "docs/bench/propagation.svg";

/// Progress on stderr.
#[allow(clippy::print_stderr)]
pub(crate) fn log(message: &str) {
    eprintln!("[fleet-bench] {message}");
}

/// Everything one run measured.
struct Results {
    machine: Machine,
    quick: bool,
    transitions: u64,
    propagation: Vec<PropagationRow>,
    cost: CostResult,
    cost_secs: f64,
    hot: Vec<HotPathRow>,
    hot_calls: usize,
    trip: Vec<TripRow>,
    trip_rate: u64,
    hydrate: Vec<HydrateRow>,
    hydrate_reps: usize,
    memory: MemoryResult,
    seconds: f64,
}

/// `fleet-bench run`: every section but `scale` (the default), or one named section.
pub(crate) async fn run_all(args: RunArgs) -> crate::Result<()> {
    match args.section.as_deref() {
        None | Some("fleet") => {}
        Some("scale") => return crate::scale::run(&args).await,
        Some(other) => return Err(format!("unknown section `{other}` (fleet, scale)").into()),
    }
    let started = Instant::now();
    let quick = args.quick;
    let machine = crate::machine::describe();
    let transitions = if quick { 120 } else { 400 };
    let counts = [1, 4, 8, 16];
    let propagation =
        tokio::task::block_in_place(|| crate::propagation::run(&counts, transitions, 3000))?;
    let cost_secs = if quick { 2.0 } else { 6.0 };
    let cost = crate::cost::run(
        &[1_000, 10_000, 100_000],
        cost_secs,
        if quick { 5.0 } else { 10.0 },
    )
    .await?;
    let hot_calls = if quick { 300_000 } else { 1_000_000 };
    let hot = crate::hotpath::run(hot_calls).await?;
    let trip_rate = 200;
    let trip_counts: &[usize] = if quick { &[4, 16] } else { &[4, 8, 16] };
    let trip_trials = if quick { 3 } else { 7 };
    let trip =
        tokio::task::block_in_place(|| crate::trip::run(trip_counts, trip_trials, trip_rate))?;
    let hydrate_reps = if quick { 3 } else { 7 };
    let hydrate = crate::hydrate::run(&[10, 100, 1000], hydrate_reps).await?;
    let memory = crate::hydrate::memory(10_000)?;
    let results = Results {
        machine,
        quick,
        transitions,
        propagation,
        cost,
        cost_secs,
        hot,
        hot_calls,
        trip,
        trip_rate,
        hydrate,
        hydrate_reps,
        memory,
        seconds: started.elapsed().as_secs_f64(),
    };
    let markdown = render(&results)?;
    let svg = plot(&results.propagation);
    print_report(&markdown);
    if !args.no_write {
        let svg_path = args.root.join(SVG_PATH);
        if let Some(dir) = svg_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&svg_path, svg)?;
        splice(&args.root.join("BENCHMARKS.md"), START, END, &markdown)?;
        log(&format!(
            "wrote {} and {}",
            args.root.join("BENCHMARKS.md").display(),
            svg_path.display()
        ));
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_report(markdown: &str) {
    println!("{markdown}");
}

/// Replaces the section of `path` between `start` and `end` (or appends one), leaving the
/// rest of the file as it is.
pub(crate) fn splice(path: &Path, start: &str, end: &str, section: &str) -> crate::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{start}\n{section}\n{end}");
    let new = match (text.find(start), text.find(end)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{block}{}", &text[..a], &text[b + end.len()..])
        }
        _ => format!("{}\n{block}\n", text.trim_end()),
    };
    std::fs::write(path, new)?;
    Ok(())
}

pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**missed**" }
}

/// A ratio for a table cell: `-` when it has no value (both sides missed: inf / inf).
fn ratio_cell(r: f64) -> String {
    if r.is_nan() {
        "-".to_owned()
    } else {
        format!("{r:.2}x")
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

#[allow(clippy::too_many_lines)]
fn render(r: &Results) -> crate::Result<String> {
    let mut s = String::new();
    let m = &r.machine;
    writeln!(s, "## Fleet benchmarks (flexiai-bench)\n")?;
    writeln!(
        s,
        "Generated by `cargo xtask bench`{} in {:.0} s. Every section starts its own \
         `redis-server` on a free loopback port (flexiai-testkit), runs flexiai and its baseline \
         in the same run, and judges by the ratio where a target is a ratio. Reproduce with:\n",
        if r.quick { " --quick" } else { "" },
        r.seconds
    )?;
    writeln!(s, "```")?;
    writeln!(
        s,
        "cargo xtask bench            # full run, rewrites this section and {SVG_PATH}"
    )?;
    writeln!(
        s,
        "cargo xtask bench --quick    # fewer samples, about a third of the time"
    )?;
    writeln!(
        s,
        "# or directly: cargo run --release -p flexiai-bench --bin fleet-bench -- run [--quick]"
    )?;
    writeln!(s, "```\n")?;
    writeln!(
        s,
        "Machine: `nproc` = {}, {}, {}, {}, {}. All worker processes, the bench and \
         redis-server share these cores.\n",
        m.cpus, m.cpu_model, m.kernel, m.rustc, m.redis
    )?;

    // Targets.
    let prop_ratio_ok = r
        .propagation
        .iter()
        .all(|p| ratio(p.flexiai.p99, p.raw.p99) <= 2.0);
    let prop_ms_ok = r.propagation.iter().all(|p| p.flexiai.p99 < 1000.0);
    let worst_ratio = r
        .propagation
        .iter()
        .map(|p| ratio(p.flexiai.p99, p.raw.p99))
        .fold(0.0, f64::max);
    let worst_p99 = r
        .propagation
        .iter()
        .map(|p| p.flexiai.p99)
        .fold(0.0, f64::max);
    let steady: Vec<_> = r
        .cost
        .rows
        .iter()
        .filter(|c| c.strategy == "flexiai" && c.load == Load::Steady)
        .collect();
    let steady_net = steady.iter().map(|c| c.net_per_1000()).fold(0.0, f64::max);
    let steady_gross = steady.iter().map(|c| c.per_1000()).fold(0.0, f64::max);
    let storm: Vec<_> = r
        .cost
        .rows
        .iter()
        .filter(|c| c.strategy == "flexiai" && c.load == Load::StormClosed)
        .collect();
    let storm_rates: Vec<f64> = storm
        .iter()
        .map(|c| c.net_commands.max(0.0) / (c.calls as f64 / c.achieved_rate.max(1e-9)))
        .collect();
    let storm_lo = storm_rates.iter().copied().fold(f64::INFINITY, f64::min);
    let storm_hi = storm_rates.iter().copied().fold(0.0, f64::max);
    let storm_flat = storm_hi <= 1.5 * storm_lo.max(1.0);
    let hot_p99: Vec<f64> = r.hot.iter().map(|h| h.per_call.p99).collect();
    let hot_lo = hot_p99.iter().copied().fold(f64::INFINITY, f64::min);
    let hot_hi = hot_p99.iter().copied().fold(0.0, f64::max);
    writeln!(s, "### Targets\n")?;
    writeln!(s, "| target | measured | verdict |")?;
    writeln!(s, "|---|---|---|")?;
    writeln!(
        s,
        "| propagation p99 within 2x of the raw PUBLISH hop | worst ratio {worst_ratio:.2}x | {} |",
        verdict(prop_ratio_ok)
    )?;
    writeln!(
        s,
        "| propagation p99 under 1 ms on loopback | worst p99 {worst_p99:.0} µs | {} |",
        verdict(prop_ms_ok)
    )?;
    writeln!(
        s,
        "| at most 1 command per 1,000 calls in steady state | {steady_net:.3} caused by calls; \
         {steady_gross:.2} including the idle background ({:.1} commands/s) | {} calls / {} with background |",
        r.cost.background_per_sec,
        verdict(steady_net <= 1.0),
        verdict(steady_gross <= 1.0)
    )?;
    writeln!(
        s,
        "| storm cost flat in request rate | {storm_lo:.1} to {storm_hi:.1} commands/s above background from 1k to 100k calls/s | {} |",
        verdict(storm_flat)
    )?;
    writeln!(
        s,
        "| hot-path p99 within 2x across Redis up / down / hung | p99 {hot_lo:.0} to {hot_hi:.0} ns ({:.2}x) | {} |",
        ratio(hot_hi, hot_lo),
        verdict(hot_hi <= 2.0 * hot_lo)
    )?;
    writeln!(s)?;

    // Propagation.
    writeln!(s, "### Propagation\n")?;
    writeln!(
        s,
        "Worker A (its own process, `StateSyncManager` + `RedisBackend`, default `SyncOptions`) \
         makes {} transitions (alternating `force_open` / `reset`, 3-4 ms apart, after 10 \
         warm-up ones); each of N other worker processes runs a thread that polls its breaker's \
         lock-free state word every {} µs (`nanosleep` with 1 µs timer slack: spinning \
         watchers in 17 processes saturate 2 cores and distort both sides) and records the \
         wall-clock microsecond at which each new version appears, so every figure carries up \
         to ~{} µs of polling delay, on both sides alike. Latency = that instant minus the instant A called the \
         transition (same host, same clock), over all transitions and all receivers. Baseline, \
         same run, same server, same pacing: one process `PUBLISH`es {}-byte messages with \
         redis-rs, N processes subscribed with redis-rs `PubSub` store each sequence number \
         into an atomic that an identical polling thread observes (\"raw\"; \"raw, handler\" \
         is the time inside the message handler, without the watcher). \"on the wire\" is when \
         a plain redis-rs subscriber on flexiai's channel received the event: the sender's \
         share of the flexiai time. A transition (or raw message) a receiver never observed \
         counts as a miss: an infinite latency in the samples, the percentiles and the \
         verdicts (`inf` when more than 1% were missed). Times in µs.\n",
        r.transitions,
        crate::worker::POLL_MICROS,
        crate::worker::POLL_MICROS + 10,
        crate::worker::RAW_PAYLOAD_BYTES
    )?;
    writeln!(
        s,
        "| N receivers | samples | flexiai p50 | flexiai p99 | flexiai max | raw p50 | raw p99 | raw max | raw, handler p50 / p99 | p99 flexiai / raw | flexiai on the wire p50 / p99 | not observed (flexiai / raw) |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for p in &r.propagation {
        writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} | {} | {:.0} / {:.0} | {} / {} |",
            p.n,
            p.flexiai.n,
            p.flexiai.p50,
            p.flexiai.p99,
            p.flexiai.max,
            p.raw.p50,
            p.raw.p99,
            p.raw.max,
            p.raw_direct.p50,
            p.raw_direct.p99,
            ratio_cell(ratio(p.flexiai.p99, p.raw.p99)),
            p.flexiai_to_wire.p50,
            p.flexiai_to_wire.p99,
            p.flexiai_missing,
            p.raw_missing
        )?;
    }
    writeln!(
        s,
        "\n![Propagation latency against worker count]({SVG_PATH})\n\n[Plot: propagation latency against worker count]({SVG_PATH})\n"
    )?;

    // Cost.
    writeln!(s, "### Redis cost\n")?;
    writeln!(
        s,
        "Redis commands per 1,000 guarded calls, from `INFO commandstats` deltas around {:.0} s \
         of calls at each target rate in steady state and a third of that in the storms (`INFO` itself excluded). flexiai: one worker, \
         `StateSyncManager` with default `SyncOptions` (flush 50 ms, reconcile 5 s, heartbeat \
         1 s), a fresh breaker per row. Baseline (\"per-call Redis\"), implemented in the bench \
         as gobreaker's distributed breaker and pybreaker's Redis storage work: `GET` the shared \
         state before every call, then `SET failures 0` on success or `INCR failures` on \
         failure (plus `SET state open` at the threshold), one awaited command at a time on a \
         redis-rs multiplexed connection. The idle background of the running flexiai manager \
         was {:.2} commands/s over {:.1} s ({}); \"net\" subtracts it from every row (it runs \
         during the baseline's rows too). Rejected calls count as guarded calls.\n",
        r.cost_secs, r.cost.background_per_sec, r.cost.background_secs, r.cost.background_breakdown
    )?;
    writeln!(
        s,
        "| load | target calls/s | strategy | achieved calls/s | commands | per 1,000 calls | net per 1,000 calls | net commands/s | commands |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|")?;
    for c in &r.cost.rows {
        let secs = c.calls as f64 / c.achieved_rate.max(1e-9);
        writeln!(
            s,
            "| {} | {} | {} | {:.0} | {} | {:.3} | {:.3} | {:.1} | {} |",
            c.load.label(),
            c.target_rate,
            c.strategy,
            c.achieved_rate,
            c.commands,
            c.per_1000(),
            c.net_per_1000(),
            c.net_commands.max(0.0) / secs.max(1e-9),
            if c.breakdown.is_empty() {
                "none"
            } else {
                &c.breakdown
            }
        )?;
    }
    writeln!(s)?;

    // Hot path.
    writeln!(
        s,
        "### Hot-path admission latency with Redis up, down and hung\n"
    )?;
    writeln!(
        s,
        "`try_acquire()` + `Permit::success()` on a registered breaker, {} calls per phase \
         after {} warm-up calls, on a blocking thread while the manager's driver runs in the \
         same process over a real `RedisBackend` (heartbeat 100 ms, operation timeout 250 ms, \
         reconcile 500 ms, so the driver is busy timing out and retrying during the faults). \
         Phases in this order: up; hung (`SIGSTOP`, measured from 0.8 s after); resumed and \
         resynced; killed (`SIGKILL`, measured from 0.8 s after). \"per call\" times each call \
         with `Instant::now()` on both sides (the two clock reads, about 20-40 ns, are \
         included); \"batched\" times 100 calls together. Times in ns.\n",
        r.hot_calls,
        r.hot_calls / 10
    )?;
    writeln!(
        s,
        "| Redis | manager | per call p50 | per call p99 | per call max | batched p50 | batched p99 | p99 vs up |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|---|")?;
    let up_p99 = r.hot.first().map_or(f64::NAN, |h| h.per_call.p99);
    for h in &r.hot {
        writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2}x |",
            h.phase,
            h.mode,
            h.per_call.p50,
            h.per_call.p99,
            h.per_call.max,
            h.batched.p50,
            h.batched.p99,
            ratio(h.per_call.p99, up_p99)
        )?;
    }
    writeln!(s)?;

    // Trip.
    writeln!(s, "### Fleet trip time\n")?;
    writeln!(
        s,
        "N worker processes each call a fake provider {} times per second (failure threshold 5, \
         default `SyncOptions`); at an instant announced in advance the provider starts failing \
         on every worker. Each worker's polling watcher (50 µs) records when its breaker becomes OPEN \
         (locally or applied from the fleet). Time from the provider's death, in ms; a worker \
         alone would need 5 failures = {:.0} ms at this rate.\n",
        r.trip_rate,
        5000.0 / r.trip_rate as f64
    )?;
    writeln!(
        s,
        "| N workers | trials | first worker open (median) | every worker open (median) | every worker open (worst) | first-to-last spread (median) | trials with a worker not open after 1 s |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|")?;
    for t in &r.trip {
        writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {} |",
            t.n, t.trials, t.first_ms, t.all_ms_p50, t.all_ms_max, t.spread_ms, t.incomplete
        )?;
    }
    writeln!(s)?;

    // Hydrate.
    writeln!(s, "### Start-up hydrate and memory\n")?;
    writeln!(
        s,
        "A worker stored every provider's state (forced open, version 1); then a fresh \
         `StateSyncManager` with the same providers registered (version 0) runs `start()` \
         {} times per size. Commands from `INFO commandstats` (median repetition); round trips \
         count each pool checkout's pipelined `UNWATCH`+`PING` once. \"applied\" is how many \
         breakers came out of `start()` in the stored state.\n",
        r.hydrate_reps
    )?;
    writeln!(
        s,
        "| providers | start() p50 | start() max | commands | round trips | applied | commands |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|")?;
    for h in &r.hydrate {
        writeln!(
            s,
            "| {} | {:.2} ms | {:.2} ms | {} | {} | {} / {} | {} |",
            h.providers,
            h.time_ms.p50,
            h.time_ms.max,
            h.commands,
            h.round_trips,
            h.applied,
            h.providers,
            h.breakdown
        )?;
    }
    let mem = &r.memory;
    writeln!(s, "\n{}", memory_line(mem))?;
    Ok(s)
}

/// The memory sentence of the report.
fn memory_line(mem: &MemoryResult) -> String {
    format!(
        "Memory, {} breakers (default `BreakerConfig`, names `p0`..), counting global \
         allocator: **{:.0} bytes per breaker** (`Arc<CircuitBreaker>`) plus **{:.0} bytes per \
         breaker** to register it with a `StateSyncManager` (registry entry, observer); resident \
         set growth over both steps {:.0} bytes per breaker.",
        mem.count, mem.breaker_bytes, mem.register_bytes, mem.rss_bytes
    )
}

/// `fleet-bench memory`: the memory sentence, and what a client spends per
/// (provider, model) pair, without Redis or the other sections.
pub(crate) async fn memory_only() -> crate::Result<()> {
    let mem = crate::hydrate::memory(10_000)?;
    let per_model = crate::client_memory::per_model_bytes(1_000).await?;
    log(&memory_line(&mem));
    log(&format!(
        "Client, one provider entry serving 1000 models: {per_model:.0} bytes per (provider, model) pair (its breaker, slot and counters)."
    ));
    Ok(())
}

/// The propagation plot: p50 and p99 against worker count, flexiai and raw, as SVG.
fn plot(rows: &[PropagationRow]) -> String {
    use crate::plot::{Chart, Scale, Series};
    type Value = fn(&PropagationRow) -> f64;
    let series: [(&str, &'static str, &'static str, Value); 4] = [
        ("flexiai p99", "#1f5fbf", "6 4", |r| r.flexiai.p99),
        ("flexiai p50", "#1f5fbf", "", |r| r.flexiai.p50),
        ("raw PUBLISH p99", "#d2691e", "6 4", |r| r.raw.p99),
        ("raw PUBLISH p50", "#d2691e", "", |r| r.raw.p50),
    ];
    crate::plot::svg(&[Chart {
        title: "Propagation latency against receiving workers (µs)".to_owned(),
        x_label: "receiving worker processes (N, log scale)".to_owned(),
        y_label: "µs from transition to applied".to_owned(),
        x_ticks: rows.iter().map(|r| r.n as f64).collect(),
        y_scale: Scale::Linear,
        series: series
            .iter()
            .map(|&(label, color, dash, value)| Series {
                label: label.to_owned(),
                color,
                dash,
                points: rows.iter().map(|r| (r.n as f64, value(r))).collect(),
            })
            .collect(),
    }])
}
