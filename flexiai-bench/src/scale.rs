//! Fleet scale (issue 14): fleets of 10 to 1,000 simulated workers, each a real
//! `StateSyncManager` over its own `RedisBackend`, packed into a few fleet processes
//! ([`crate::fleet`]), against one `redis-server`; the current design (fleet counting in the
//! store) next to the broadcast design it replaced, rebuilt in the bench as the baseline.
//! Written into BENCHMARKS.md between its own markers, with a log-log plot in
//! `docs/bench/scale.svg`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use flexiai_testkit::RedisServer;
use serde_json::Value;
use tokio::runtime::Handle;

use crate::RunArgs;
use crate::fleet::{CALLS_PER_SEC, WATCH_MICROS};
use crate::plot::{Chart, Scale, Series};
use crate::procs::Proc;
use crate::redis_stats::{ServerInfo, StatsReader};
use crate::report::{log, verdict};
use crate::stats::median;

/// Start marker of the scale section in BENCHMARKS.md.
pub(crate) const START: &str = "<!-- fleet-bench:scale:start -->";
/// End marker of the scale section.
pub(crate) const END: &str = "<!-- fleet-bench:scale:end -->";
/// The plot, relative to the workspace root.
pub(crate) const SVG_PATH: &str = "docs/bench/scale.svg";
/// Fleet sizes of a run without `--sizes`.
const SIZES: [usize; 6] = [10, 50, 100, 250, 500, 1000];
/// Most simulated workers in one fleet process.
const PER_PROCESS: usize = 250;
/// Outcome sends per worker per second the storm asks of the broadcast design: one per
/// 50 ms flush, every flush sees a failure (200 calls/s, every 4th fails).
const NOMINAL_SENDS: f64 = 20.0;

/// Outcome sends per worker per second the storm asks of `design`: the store design
/// reports once per default `outcome_report_interval`.
fn nominal_sends(design: Design) -> f64 {
    match design {
        Design::Store => {
            1.0 / flexiai_sync::SyncOptions::default()
                .outcome_report_interval
                .as_secs_f64()
        }
        Design::Broadcast => NOMINAL_SENDS,
    }
}
/// A fleet whose Redis holds more than this is stopped (slow pub/sub consumers' output
/// buffers grow without bound up to the server's limits, 32 MB each by default).
const MEMORY_GUARD: u64 = 2 << 30;
/// The phase fails to hold when fewer than this share of the expected deliveries were
/// decoded.
const DELIVERY_FLOOR: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Design {
    Store,
    Broadcast,
}

impl Design {
    fn arg(self) -> &'static str {
        match self {
            Design::Store => "store",
            Design::Broadcast => "broadcast",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Design::Store => "store (current)",
            Design::Broadcast => "broadcast (old)",
        }
    }
}

/// Cumulative counters summed over a fleet's processes (see `fleet::stats`).
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    calls: u64,
    decoded: u64,
    outcome_decoded: u64,
    published_outcomes: u64,
    reports: u64,
    transitions: u64,
    gaps: u64,
    errors: u64,
    degraded: u64,
}

impl Counts {
    fn add(&mut self, v: &Value) {
        let get = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        self.calls += get("calls");
        self.decoded += get("decoded");
        self.outcome_decoded += get("outcome_decoded");
        self.published_outcomes += get("published_outcomes");
        self.reports += get("reports");
        self.transitions += get("transitions");
        self.gaps += get("gaps");
        self.errors += get("errors");
        self.degraded += get("degraded");
    }
    fn since(&self, e: &Counts) -> Counts {
        Counts {
            calls: self.calls - e.calls.min(self.calls),
            decoded: self.decoded - e.decoded.min(self.decoded),
            outcome_decoded: self.outcome_decoded - e.outcome_decoded.min(self.outcome_decoded),
            published_outcomes: self.published_outcomes
                - e.published_outcomes.min(self.published_outcomes),
            reports: self.reports - e.reports.min(self.reports),
            transitions: self.transitions - e.transitions.min(self.transitions),
            gaps: self.gaps - e.gaps.min(self.gaps),
            errors: self.errors - e.errors.min(self.errors),
            degraded: self.degraded,
        }
    }
}

/// One measured phase of one fleet.
#[derive(Debug, Clone, Default)]
struct Phase {
    /// Redis CPU seconds per second.
    cpu: f64,
    /// Bytes out of Redis per second.
    bytes: f64,
    /// Commands per second (the bench's own `INFO` calls excluded).
    commands: f64,
    /// Events from other workers decoded, per worker per second.
    decoded_pw: f64,
    /// Outcome-delta events among them, per worker per second.
    outcome_decoded_pw: f64,
    /// Outcome sends per worker per second: `record_outcomes` (store) or outcome-delta
    /// `PUBLISH`es (broadcast).
    sends_pw: f64,
    /// Guarded calls per second, whole fleet.
    calls: f64,
    /// Share of the expected deliveries that were decoded (broadcast: publishes x (N - 1)).
    delivered: Option<f64>,
    gaps: u64,
    errors: u64,
    /// Workers whose breaker was open at the end of the phase.
    open_at_end: usize,
    /// Why the phase was cut short, if it was.
    aborted: Option<String>,
    /// Outcome sends per worker per second the storm asks of this phase's design.
    nominal_sends: f64,
}

impl Phase {
    /// Why this phase shows the design not holding the load, if it does.
    fn failure(&self, storm: bool) -> Option<String> {
        if let Some(reason) = &self.aborted {
            return Some(reason.clone());
        }
        if self.gaps > 0 {
            return Some(format!("{} subscriptions dropped or lagged", self.gaps));
        }
        if let Some(d) = self.delivered.filter(|d| *d < DELIVERY_FLOOR) {
            return Some(format!(
                "only {:.0}% of the published deltas reached the other workers",
                d * 100.0
            ));
        }
        if storm && self.sends_pw < self.nominal_sends / 2.0 {
            return Some(format!(
                "workers managed {:.1} outcome sends/s each, under half the {:.0}/s the load asks",
                self.sends_pw, self.nominal_sends
            ));
        }
        None
    }
}

/// Trip trials of one fleet.
#[derive(Debug, Clone, Default)]
struct Trip {
    trials: usize,
    /// Per trial: ms from the provider's death until the first worker was open.
    first_ms: Vec<f64>,
    /// Per trial in which every worker opened: ms until the last one was.
    last_ms: Vec<f64>,
    /// Workers not open by the end of a trial, summed over trials.
    never_open: usize,
}

#[derive(Debug, Clone)]
enum Status {
    Held,
    NotHeld(String),
    Skipped(String),
}

/// Everything measured for one (size, design).
#[derive(Debug, Clone)]
struct Row {
    n: usize,
    design: Design,
    procs: usize,
    start_secs: f64,
    healthy: Option<Phase>,
    storm: Option<Phase>,
    trip: Option<Trip>,
    status: Status,
}

/// Phase lengths of a run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    warm: Duration,
    phase: Duration,
    storm_warm: Duration,
    trials: usize,
    trip_timeout: Duration,
    budget: Duration,
}

/// A running fleet: its processes.
struct Fleet {
    procs: Vec<Proc>,
    n: usize,
}

impl Fleet {
    fn start(url: &str, prefix: &str, design: Design, n: usize) -> crate::Result<Fleet> {
        let count = n.div_ceil(PER_PROCESS).max(2).min(n);
        let mut procs = Vec::with_capacity(count);
        for i in 0..count {
            let size = n / count + usize::from(i < n % count);
            let size = size.to_string();
            procs.push(Proc::launch(&[
                "fleet",
                "--design",
                design.arg(),
                "--redis",
                url,
                "--prefix",
                prefix,
                "--workers",
                size.as_str(),
            ])?);
        }
        for p in &mut procs {
            p.wait_ready()?;
        }
        Ok(Fleet { procs, n })
    }

    fn all(&mut self, line: &str) -> crate::Result<Vec<Value>> {
        crate::procs::broadcast(&mut self.procs, line)
    }

    fn counts(&mut self) -> crate::Result<Counts> {
        let mut c = Counts::default();
        for v in self.all("stats")? {
            c.add(&v);
        }
        Ok(c)
    }

    /// (open, closed, lowest version) over the fleet.
    fn states(&mut self) -> crate::Result<(usize, usize, u64)> {
        let mut open = 0;
        let mut closed = 0;
        let mut min_version = u64::MAX;
        for v in self.all("states")? {
            let get = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
            open += usize::try_from(get("open")).unwrap_or(0);
            closed += usize::try_from(get("closed")).unwrap_or(0);
            min_version = min_version.min(get("min_version"));
        }
        Ok((open, closed, min_version))
    }

    fn mode(&mut self, mode: &str, at: u64) -> crate::Result<()> {
        self.all(&format!("mode {mode} {at}")).map(drop)
    }

    /// Closes the whole fleet: one worker resets its breaker and the fleet follows (stored
    /// and announced like any transition). Tried again if a race lost the reset.
    fn reset(&mut self) -> crate::Result<bool> {
        for _ in 0..3 {
            let reply = self.procs.first_mut().ok_or("empty fleet")?.cmd("reset")?;
            let version = reply.get("version").and_then(Value::as_u64).unwrap_or(0);
            let deadline = Instant::now() + Duration::from_secs(8);
            while Instant::now() < deadline {
                let (_, closed, min_version) = self.states()?;
                if closed == self.n && min_version >= version {
                    return Ok(true);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(false)
    }

    fn opened(&mut self) -> crate::Result<Vec<Option<u64>>> {
        let mut out = Vec::with_capacity(self.n);
        for v in self.all("opened")? {
            if let Some(times) = v.get("opened").and_then(Value::as_array) {
                out.extend(times.iter().map(Value::as_u64));
            }
        }
        Ok(out)
    }
}

/// Reads the server's `INFO` from blocking code.
struct Info<'a> {
    handle: &'a Handle,
    reader: StatsReader,
    /// `INFO` calls made (each one is a command the server counts).
    calls: u64,
}

impl Info<'_> {
    fn read(&mut self) -> crate::Result<ServerInfo> {
        self.calls += 1;
        self.handle.block_on(self.reader.info())
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Raises the soft limit on open files to the hard limit: redis-server (a child, inheriting
/// it) needs one descriptor per client, and each simulated worker holds two connections.
fn raise_nofile() -> String {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                format!("raised from {soft} to {hard}")
            } else {
                format!("{soft} (hard limit {hard})")
            }
        }
        Err(error) => format!("unknown ({error})"),
    }
}

/// `fleet-bench run --section scale`.
pub(crate) async fn run(args: &RunArgs) -> crate::Result<()> {
    let started = Instant::now();
    let quick = args.quick;
    let sizes: Vec<usize> = if args.sizes.is_empty() {
        SIZES.to_vec()
    } else {
        args.sizes.clone()
    };
    let plan = if quick {
        Plan {
            warm: Duration::from_secs(1),
            phase: Duration::from_secs(3),
            storm_warm: Duration::from_millis(2500),
            trials: 1,
            trip_timeout: Duration::from_secs(6),
            budget: Duration::from_secs(6 * 60),
        }
    } else {
        Plan {
            warm: Duration::from_secs(2),
            phase: Duration::from_secs(8),
            storm_warm: Duration::from_secs(3),
            trials: 3,
            trip_timeout: Duration::from_secs(8),
            budget: Duration::from_secs(14 * 60),
        }
    };
    let machine = crate::machine::describe();
    let nofile = raise_nofile();
    let load_before = loadavg();
    let handle = Handle::current();
    let (rows, idle_cpu) = tokio::task::block_in_place(|| measure_all(&handle, &sizes, plan))?;
    let load_after = loadavg();
    let seconds = started.elapsed().as_secs_f64();
    let markdown = render(&Report {
        machine: &machine,
        quick,
        plan,
        rows: &rows,
        idle_cpu,
        nofile: &nofile,
        load_before: &load_before,
        load_after: &load_after,
        seconds,
    })?;
    let svg = plot(&rows, &sizes);
    #[allow(clippy::print_stdout)]
    {
        println!("{markdown}");
    }
    if !args.no_write {
        let svg_path = args.root.join(SVG_PATH);
        if let Some(dir) = svg_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&svg_path, svg)?;
        let md = args.root.join("BENCHMARKS.md");
        crate::report::splice(&md, START, END, &markdown)?;
        log(&format!(
            "wrote {} and {}",
            md.display(),
            svg_path.display()
        ));
    }
    Ok(())
}

fn measure_all(handle: &Handle, sizes: &[usize], plan: Plan) -> crate::Result<(Vec<Row>, f64)> {
    let started = Instant::now();
    // Room for 1,000 workers' two connections each, and then some.
    let server = RedisServer::builder()
        .args(["--maxclients", "10000"])
        .start()?;
    let url = server.url();
    let mut info = Info {
        handle,
        reader: handle.block_on(StatsReader::connect(&url))?,
        calls: 0,
    };
    // The server's own idle cost (cron), subtracted as "net".
    let i0 = info.read()?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let i1 = info.read()?;
    let idle_cpu = (i1.cpu_secs - i0.cpu_secs) / t0.elapsed().as_secs_f64();
    log(&format!("scale: idle redis-server CPU {idle_cpu:.4} s/s"));

    let mut rows = Vec::new();
    let mut broadcast_stop: Option<String> = None;
    for &n in sizes {
        for design in [Design::Store, Design::Broadcast] {
            let skip = if started.elapsed() > plan.budget {
                Some(format!(
                    "not run: the section's time budget ({} s) was spent",
                    plan.budget.as_secs()
                ))
            } else if design == Design::Broadcast {
                broadcast_stop.clone()
            } else {
                None
            };
            if let Some(reason) = skip {
                rows.push(Row {
                    n,
                    design,
                    procs: 0,
                    start_secs: 0.0,
                    healthy: None,
                    storm: None,
                    trip: None,
                    status: Status::Skipped(reason),
                });
                continue;
            }
            // A fleet that fails outright (a timeout, a process that died) is a measured
            // result of its own: recorded, and the section goes on.
            let row = measure_fleet(&mut info, &url, n, design, plan).unwrap_or_else(|error| {
                log(&format!("scale: N = {n}, {}: {error}", design.arg()));
                Row {
                    n,
                    design,
                    procs: 0,
                    start_secs: 0.0,
                    healthy: None,
                    storm: None,
                    trip: None,
                    status: Status::NotHeld(format!("the run failed: {error}")),
                }
            });
            if design == Design::Broadcast
                && let Status::NotHeld(reason) = &row.status
            {
                broadcast_stop = Some(format!(
                    "not run: the broadcast design did not hold N = {n} ({reason})"
                ));
            }
            rows.push(row);
        }
    }
    drop(server);
    Ok((rows, idle_cpu))
}

#[allow(clippy::cast_precision_loss)]
fn measure_phase(
    info: &mut Info<'_>,
    fleet: &mut Fleet,
    design: Design,
    length: Duration,
) -> crate::Result<Phase> {
    let n = fleet.n as f64;
    let c0 = fleet.counts()?;
    let calls0 = info.calls;
    let i0 = info.read()?;
    let t0 = Instant::now();
    let mut aborted = None;
    while t0.elapsed() < length {
        std::thread::sleep(Duration::from_millis(500));
        let now = info.read()?;
        if now.used_memory > MEMORY_GUARD {
            aborted = Some(format!(
                "stopped after {:.1} s: Redis memory reached {} MB (pub/sub output buffers)",
                t0.elapsed().as_secs_f64(),
                now.used_memory >> 20
            ));
            break;
        }
    }
    let i1 = info.read()?;
    let secs = t0.elapsed().as_secs_f64();
    let info_calls = info.calls - calls0;
    let c = fleet.counts()?.since(&c0);
    let (open, _, _) = fleet.states()?;
    let delivered = (design == Design::Broadcast && c.published_outcomes > 0)
        .then(|| c.outcome_decoded as f64 / (c.published_outcomes as f64 * (n - 1.0).max(1.0)));
    Ok(Phase {
        cpu: (i1.cpu_secs - i0.cpu_secs) / secs,
        bytes: i1.net_out_bytes.saturating_sub(i0.net_out_bytes) as f64 / secs,
        commands: i1
            .commands
            .saturating_sub(i0.commands)
            .saturating_sub(info_calls) as f64
            / secs,
        decoded_pw: c.decoded as f64 / secs / n,
        outcome_decoded_pw: c.outcome_decoded as f64 / secs / n,
        sends_pw: (c.reports + c.published_outcomes) as f64 / secs / n,
        calls: c.calls as f64 / secs,
        delivered,
        gaps: c.gaps,
        errors: c.errors,
        open_at_end: open,
        aborted,
        nominal_sends: nominal_sends(design),
    })
}

fn measure_fleet(
    info: &mut Info<'_>,
    url: &str,
    n: usize,
    design: Design,
    plan: Plan,
) -> crate::Result<Row> {
    log(&format!(
        "scale: N = {n}, {} design: starting",
        design.arg()
    ));
    let t = Instant::now();
    let prefix = format!("scale{n}{}", design.arg());
    let mut fleet = Fleet::start(url, &prefix, design, n)?;
    let start_secs = t.elapsed().as_secs_f64();
    let procs = fleet.procs.len();
    std::thread::sleep(plan.warm);

    log(&format!("scale: N = {n}, {}: healthy", design.arg()));
    let healthy = measure_phase(info, &mut fleet, design, plan.phase)?;
    let mut status = Status::Held;
    if let Some(reason) = healthy.failure(false) {
        status = Status::NotHeld(format!("healthy: {reason}"));
    }

    log(&format!(
        "scale: N = {n}, {}: storm under the threshold",
        design.arg()
    ));
    fleet.mode("storm", crate::now_micros())?;
    std::thread::sleep(plan.storm_warm);
    let storm = measure_phase(info, &mut fleet, design, plan.phase)?;
    fleet.mode("healthy", crate::now_micros())?;
    if matches!(status, Status::Held)
        && let Some(reason) = storm.failure(true)
    {
        status = Status::NotHeld(format!("storm: {reason}"));
    }

    // The current design's trip time is a target at every size: measured even when the
    // storm showed strain. The baseline stops where it stops holding.
    let trip = if design == Design::Store || matches!(status, Status::Held) {
        log(&format!("scale: N = {n}, {}: tripping storm", design.arg()));
        Some(trips(&mut fleet, plan)?)
    } else {
        None
    };
    drop(fleet);
    Ok(Row {
        n,
        design,
        procs,
        start_secs,
        healthy: Some(healthy),
        storm: Some(storm),
        trip,
        status,
    })
}

#[allow(clippy::cast_precision_loss)]
fn trips(fleet: &mut Fleet, plan: Plan) -> crate::Result<Trip> {
    let mut trip = Trip {
        trials: plan.trials,
        ..Trip::default()
    };
    for _ in 0..plan.trials {
        // A fresh closed period, then a second of healthy calls.
        if !fleet.reset()? {
            log("scale: the fleet did not close after a reset; trial run anyway");
        }
        std::thread::sleep(Duration::from_secs(1));
        fleet.all("arm")?;
        let die_at = crate::now_micros() + 200_000;
        fleet.mode("dead", die_at)?;
        let deadline = Instant::now() + Duration::from_millis(200) + plan.trip_timeout;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            if fleet.states()?.0 == fleet.n {
                // The watcher polls every 500 µs: let it record the last one.
                std::thread::sleep(Duration::from_millis(5));
                break;
            }
        }
        let opened = fleet.opened()?;
        fleet.mode("healthy", crate::now_micros())?;
        let times: Vec<u64> = opened.iter().flatten().copied().collect();
        trip.never_open += opened.len() - times.len() + fleet.n.saturating_sub(opened.len());
        if let Some(first) = times.iter().min() {
            trip.first_ms
                .push(first.saturating_sub(die_at) as f64 / 1000.0);
        }
        if times.len() == fleet.n
            && let Some(last) = times.iter().max()
        {
            trip.last_ms
                .push(last.saturating_sub(die_at) as f64 / 1000.0);
        }
    }
    Ok(trip)
}

struct Report<'a> {
    machine: &'a crate::machine::Machine,
    quick: bool,
    plan: Plan,
    rows: &'a [Row],
    idle_cpu: f64,
    nofile: &'a str,
    load_before: &'a str,
    load_after: &'a str,
    seconds: f64,
}

/// Least-squares slope of ln(y) against ln(n): 1 is linear, 2 quadratic.
fn slope(points: &[(f64, f64)]) -> f64 {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if pts.len() < 2 {
        return f64::NAN;
    }
    #[allow(clippy::cast_precision_loss)]
    let k = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / k;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / k;
    let num: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let den: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    num / den
}

fn fmt_bytes(b: f64) -> String {
    if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

fn fmt_ms(v: &[f64]) -> String {
    if v.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.0}", median(v))
    }
}

/// `f` of each phase divided by its fleet size.
#[allow(clippy::cast_precision_loss)]
fn per_worker(v: &[(usize, &Phase)], f: impl Fn(&Phase) -> f64) -> Vec<f64> {
    v.iter().map(|(n, p)| f(p) / *n as f64).collect()
}

/// The phases a design measured, as (n, phase) over held sizes.
fn series<'a>(
    rows: &'a [Row],
    design: Design,
    pick: impl Fn(&'a Row) -> Option<&'a Phase> + 'a,
) -> Vec<(usize, &'a Phase)> {
    rows.iter()
        .filter(|r| r.design == design)
        .filter_map(|r| pick(r).map(|p| (r.n, p)))
        .collect()
}

#[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
fn render(r: &Report<'_>) -> crate::Result<String> {
    let mut s = String::new();
    let m = r.machine;
    let idle = r.idle_cpu;
    writeln!(s, "## Fleet scale (flexiai-bench, scale section)\n")?;
    writeln!(
        s,
        "Generated by `cargo xtask bench --section scale{}` in {:.0} s ({} s phases, {} trip \
         trial(s) per fleet). Machine: `nproc` = {}, {}, {}, {}, {}; **shared and loaded**: load \
         average {} at the start and {} at the end (other engineers' builds), so wall-time \
         figures (trip times, achieved rates) are noisy; Redis CPU seconds, bytes and command \
         counts are per unit of work and move far less. Open-file limit: {}.\n",
        if r.quick { " --quick" } else { "" },
        r.seconds,
        r.plan.phase.as_secs(),
        r.plan.trials,
        m.cpus,
        m.cpu_model,
        m.kernel,
        m.rustc,
        m.redis,
        r.load_before,
        r.load_after,
        r.nofile
    )?;

    // Targets.
    let store_storm = series(r.rows, Design::Store, |row| row.storm.as_ref());
    let store_healthy = series(r.rows, Design::Store, |row| row.healthy.as_ref());
    let held_storm: Vec<(usize, &Phase)> = store_storm
        .iter()
        .filter(|(_, p)| p.failure(true).is_none())
        .copied()
        .collect();
    let net = move |p: &Phase| (p.cpu - idle).max(0.0);
    let cpu_pw = per_worker(&held_storm, net);
    let cmd_pw = per_worker(&held_storm, |p| p.commands);
    let cpu_slope = slope(
        &held_storm
            .iter()
            .map(|(n, p)| (*n as f64, net(p)))
            .collect::<Vec<_>>(),
    );
    let cmd_slope = slope(
        &held_storm
            .iter()
            .map(|(n, p)| (*n as f64, p.commands))
            .collect::<Vec<_>>(),
    );
    let healthy_cmd_pw = per_worker(&store_healthy, |p| p.commands);
    // Growth of the per-worker cost from the smallest to the largest fleet: flat (or
    // falling, as the server batches more clients per event-loop turn) is the target.
    let growth = |v: &[f64]| match (v.first(), v.last()) {
        (Some(a), Some(b)) if *a > 0.0 => b / a,
        _ => f64::NAN,
    };
    let flat = growth(&cmd_pw) <= 1.25
        && growth(&cpu_pw) <= 1.5
        && growth(&healthy_cmd_pw) <= 1.25
        && cmd_slope <= 1.15
        && cpu_slope <= 1.15
        && held_storm.len() == store_storm.len()
        && !held_storm.is_empty();
    let largest = store_storm.iter().max_by_key(|(n, _)| *n);
    let store_trips: Vec<(usize, &Trip)> = r
        .rows
        .iter()
        .filter(|row| row.design == Design::Store)
        .filter_map(|row| row.trip.as_ref().map(|t| (row.n, t)))
        .collect();
    let no_decode = store_storm
        .iter()
        .all(|(_, p)| p.decoded_pw == 0.0 && p.open_at_end == 0)
        && !store_storm.is_empty();
    let smallest_trip = store_trips.iter().min_by_key(|(n, _)| *n);
    let largest_trip = store_trips.iter().max_by_key(|(n, _)| *n);

    writeln!(s, "### Targets (current design)\n")?;
    writeln!(s, "| target | measured | verdict |")?;
    writeln!(s, "|---|---|---|")?;
    writeln!(
        s,
        "| per-worker Redis cost flat in N (total linear) | storm: per-worker commands/s {:.1} to {:.1} (largest N / smallest N: {:.2}x), per-worker net CPU {:.0} to {:.0} µs/s ({:.2}x); log-log slope of the totals against N: commands {:.2}, net CPU {:.2}; healthy: per-worker commands/s {:.2} to {:.2} ({:.2}x) | {} |",
        cmd_pw.iter().copied().fold(f64::INFINITY, f64::min),
        cmd_pw.iter().copied().fold(0.0, f64::max),
        growth(&cmd_pw),
        cpu_pw.iter().copied().fold(f64::INFINITY, f64::min) * 1e6,
        cpu_pw.iter().copied().fold(0.0, f64::max) * 1e6,
        growth(&cpu_pw),
        cmd_slope,
        cpu_slope,
        healthy_cmd_pw.iter().copied().fold(f64::INFINITY, f64::min),
        healthy_cmd_pw.iter().copied().fold(0.0, f64::max),
        growth(&healthy_cmd_pw),
        verdict(flat)
    )?;
    match largest {
        Some((n, p)) => writeln!(
            s,
            "| a 1,000-worker storm below 25% of one Redis core | N = {n}: {:.1}% of a core | {} |",
            p.cpu * 100.0,
            verdict(*n >= 1000 && p.cpu < 0.25 && p.failure(true).is_none())
        )?,
        None => writeln!(
            s,
            "| a 1,000-worker storm below 25% of one Redis core | not measured | **missed** |"
        )?,
    }
    writeln!(
        s,
        "| no outcome events decoded by workers in a storm that does not trip | events decoded per worker per second in the 25% storm: {}; breakers open at its end: {} | {} |",
        store_storm
            .iter()
            .map(|(n, p)| format!("N = {n}: {:.2}", p.decoded_pw))
            .collect::<Vec<_>>()
            .join(", "),
        store_storm
            .iter()
            .map(|(_, p)| p.open_at_end)
            .sum::<usize>(),
        verdict(no_decode)
    )?;
    match (smallest_trip, largest_trip) {
        (Some((n0, t0)), Some((n1, t1))) if !t0.last_ms.is_empty() && !t1.last_ms.is_empty() => {
            let (a, b) = (median(&t0.last_ms), median(&t1.last_ms));
            let (fa, fb) = (median(&t0.first_ms), median(&t1.first_ms));
            writeln!(
                s,
                "| trip time at N = 1,000 within 2x of N = 10 | last worker open (median): {b:.0} ms at N = {n1} vs {a:.0} ms at N = {n0} ({:.2}x); first: {fb:.0} vs {fa:.0} ms ({:.2}x); workers never open: {} | {} |",
                b / a,
                fb / fa,
                t1.never_open + t0.never_open,
                verdict(*n1 >= 1000 && *n0 <= 10 && b <= 2.0 * a && t1.never_open == 0)
            )?;
        }
        _ => writeln!(
            s,
            "| trip time at N = 1,000 within 2x of N = 10 | not measured at both sizes | **missed** |"
        )?,
    }
    writeln!(s)?;

    // Baseline status.
    let broadcast_largest = r
        .rows
        .iter()
        .filter(|row| row.design == Design::Broadcast && matches!(row.status, Status::Held))
        .map(|row| row.n)
        .max();
    let broadcast_failed: Vec<String> = r
        .rows
        .iter()
        .filter(|row| row.design == Design::Broadcast)
        .filter_map(|row| match &row.status {
            Status::NotHeld(reason) => Some(format!("N = {}: {reason}", row.n)),
            _ => None,
        })
        .collect();
    writeln!(
        s,
        "Broadcast baseline: held up to N = {} on this machine{}.\n",
        broadcast_largest.map_or("none".to_owned(), |n| n.to_string()),
        if broadcast_failed.is_empty() {
            String::new()
        } else {
            format!(
                "; did not hold {} and was not run at larger N",
                broadcast_failed.join("; ")
            )
        }
    )?;

    // Cost table.
    writeln!(s, "### Redis cost per fleet size\n")?;
    writeln!(
        s,
        "Deltas of `INFO` over each phase: Redis CPU (`used_cpu_sys` + `used_cpu_user`, in % \
         of one core; the idle server's own {:.2}% is included here and subtracted as \"net\" \
         per worker), bytes out (`total_net_output_bytes`), commands \
         (`total_commands_processed`, the bench's `INFO` calls excluded; it also counts the \
         commands a Lua script runs: one `record_outcomes` is an `EVALSHA` running `TIME`, one \
         or two `HINCRBY`, `HGETALL`, `PEXPIRE` and `SET`, 6 to 7 commands in all; a heartbeat \
         is an `EVALSHA` running `TIME`, `ZREMRANGEBYSCORE` and `ZADD`). \"decoded\" counts \
         events from other workers that reached a worker's handler (each was decoded by its \
         subscriber), per worker per second; \"sends\" are `record_outcomes` commands (store) \
         or outcome-delta `PUBLISH`es (broadcast) per worker per second (the storm asks for \
         {:.0} of the store design, one per `outcome_report_interval`, and {NOMINAL_SENDS:.0} \
         of the broadcast design, one per flush); \"delivered\" is decoded deltas / (deltas published x (N - 1)).\n",
        idle * 100.0,
        nominal_sends(Design::Store)
    )?;
    writeln!(
        s,
        "| N | design | load | Redis CPU | net CPU per worker | bytes out/s | per worker | commands/s | per worker | decoded /worker/s (outcome deltas) | sends /worker/s | delivered | calls/s | held |"
    )?;
    writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for row in r.rows {
        let n = row.n as f64;
        match (&row.healthy, &row.storm) {
            (Some(h), Some(st)) => {
                for (load, p, storm) in [("healthy", h, false), ("storm 25%", st, true)] {
                    writeln!(
                        s,
                        "| {} | {} | {load} | {:.2}% | {:.1} µs/s | {} | {} | {:.0} | {:.2} | {:.1} ({:.1}) | {:.2} | {} | {:.0} | {} |",
                        row.n,
                        row.design.label(),
                        p.cpu * 100.0,
                        net(p) / n * 1e6,
                        fmt_bytes(p.bytes),
                        fmt_bytes(p.bytes / n),
                        p.commands,
                        p.commands / n,
                        p.decoded_pw,
                        p.outcome_decoded_pw,
                        p.sends_pw,
                        p.delivered
                            .map_or("-".to_owned(), |d| format!("{:.0}%", d * 100.0)),
                        p.calls,
                        match p.failure(storm) {
                            Some(f) => format!("**no**: {f}"),
                            None if p.errors > 0 => format!("yes ({} backend errors)", p.errors),
                            None => "yes".to_owned(),
                        }
                    )?;
                }
            }
            _ => {
                let reason = match &row.status {
                    Status::Skipped(reason) | Status::NotHeld(reason) => reason.clone(),
                    Status::Held => String::new(),
                };
                writeln!(
                    s,
                    "| {} | {} | - | | | | | | | | | | | {reason} |",
                    row.n,
                    row.design.label()
                )?;
            }
        }
    }
    writeln!(s)?;

    // Trip table.
    writeln!(s, "### Tripping storm\n")?;
    writeln!(
        s,
        "The provider dies (every call fails) at an instant announced to every fleet process \
         200 ms ahead, after a reset of the fleet and 1 s of healthy calls. Each process's \
         watcher thread polls its breakers every {WATCH_MICROS} µs and records when each was \
         first open; times in ms from the death, median over trials (worst in brackets). The \
         store design decides the trip from the fleet's totals once every worker has had a \
         heartbeat, a report interval and a flush to report (`heartbeat_interval` + \
         `outcome_report_interval` + `flush_interval` = 2.05 s with the defaults) after the \
         worker first saw the storm; the broadcast design \
         trips in each worker's own window as soon as the absorbed deltas cross the \
         threshold.\n"
    )?;
    writeln!(
        s,
        "| N | design | processes | fleet start-up | trials | first worker open | last worker open | workers never open |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|---|")?;
    for row in r.rows {
        let Some(t) = &row.trip else {
            continue;
        };
        let worst = t.last_ms.iter().copied().fold(f64::NAN, f64::max);
        writeln!(
            s,
            "| {} | {} | {} | {:.1} s | {} | {} | {} ({}) | {} |",
            row.n,
            row.design.label(),
            row.procs,
            row.start_secs,
            t.trials,
            fmt_ms(&t.first_ms),
            fmt_ms(&t.last_ms),
            if worst.is_finite() {
                format!("{worst:.0}")
            } else {
                "-".to_owned()
            },
            t.never_open
        )?;
    }
    writeln!(
        s,
        "\n![Fleet scale: Redis cost and decoded events against fleet size]({SVG_PATH})\n\n[Plot: Redis CPU, bytes out and events decoded per worker against N, log-log]({SVG_PATH})\n"
    )?;

    // How it is built.
    writeln!(s, "### How the section is built\n")?;
    writeln!(
        s,
        "One `redis-server` (flexiai-testkit, `--maxclients 10000`, persistence off) for the \
         whole section; each fleet uses its own key prefix and channel. A fleet of N is split \
         into fleet processes of at most {PER_PROCESS} simulated workers (at least 2), so 2 cores \
         hold 1,000. Every simulated worker has its own `RedisBackend` (`pool_size(1)`: one \
         multiplexed command connection, plus the backend's subscriber connection: 2 Redis \
         clients per worker) and its own breaker `p` with the failure-rate policy (50% over \
         10 s in 10 slices, at least 100 calls). One thread per process calls every breaker \
         of the process once per 5 ms ({CALLS_PER_SEC} calls/s per worker) against a fake \
         provider: healthy (every call succeeds), the storm under the threshold (every 4th \
         call fails: 25%, so every 50 ms flush of every worker sees a failure, the worst case \
         for both designs), or dead (every call fails). Per fleet: start, {} s warm-up, a \
         healthy phase, the 25% storm ({:.1} s to settle, then a phase), then the tripping \
         trials.\n",
        r.plan.warm.as_secs(),
        r.plan.storm_warm.as_secs_f64()
    )?;
    writeln!(
        s,
        "* **store (current)**: each worker is a `StateSyncManager` with default \
         `SyncOptions` (flush 50 ms, outcome reports every 1 s, heartbeat 1 s, reconcile \
         5 s), the breaker registered with it. Outcomes go to the store (`record_outcomes`, \
         one Lua script call per provider per report interval while failures occur, the \
         counts of the flushes in between accumulated), the channel carries transitions only. \
         Its per-worker background: the heartbeat script and the `storming` read each \
         second, the reconcile `MGET` every 5 s, the subscriber's keep-alive `PING` every 5 s."
    )?;
    writeln!(
        s,
        "* **broadcast (old, baseline)**: the driver loop flexiai-sync ran before issue 14, \
         rebuilt in `flexiai-bench/src/fleet.rs` over the same `SyncBackend` API and the \
         same `RedisBackend` (one command connection, one subscriber). Every 50 ms flush that \
         saw a failure, the worker `PUBLISH`es one outcome-delta event: \
         `CircuitBreakerEvent::outcomes(provider, worker, failures, successes)` with \
         `metadata.version` set to the period, JSON through the backend's serializer: the \
         event and encoding the old `flush_outcomes` sent. Every worker's subscriber receives \
         and decodes every event on the channel; the loop absorbs other workers' deltas of \
         its current period into its breaker's window (`absorb_remote_outcomes`), which trips \
         locally (the fleet does not decide). Transitions go out through the same \
         compare-and-set-and-publish script as today (a lost one adopts the stored state); \
         the heartbeat script every 1 s, a reconcile `MGET` every 5 s, no `storming` read. \
         The breaker reads its outcome counts from its own counters (`outcome_totals`) \
         instead of the old per-outcome observer, which changes nothing Redis sees. A \
         broadcast fleet that does not hold a load (a subscription dropped, under {:.0}% of \
         the published deltas decoded by the other workers, under half the asked sends, or \
         Redis memory above {} MB) stops the baseline: larger N are not run, and the row \
         says why.",
        DELIVERY_FLOOR * 100.0,
        MEMORY_GUARD >> 20
    )?;
    writeln!(s, "\nReproduce:\n")?;
    writeln!(s, "```")?;
    writeln!(
        s,
        "cargo xtask bench --section scale          # this section and {SVG_PATH}; the rest of BENCHMARKS.md is kept"
    )?;
    writeln!(
        s,
        "cargo xtask bench --section scale --quick  # 3 s phases, one trip trial"
    )?;
    writeln!(
        s,
        "# or: cargo run --release -p flexiai-bench --bin fleet-bench -- run --section scale [--quick] [--sizes 10,100]"
    )?;
    writeln!(s, "```")?;
    Ok(s)
}

fn plot(rows: &[Row], sizes: &[usize]) -> String {
    let x_ticks: Vec<f64> = sizes.iter().map(|n| *n as f64).collect();
    let colors = [(Design::Store, "#1f5fbf"), (Design::Broadcast, "#d2691e")];
    type Pick = fn(&Row) -> Option<&Phase>;
    let loads: [(&str, &'static str, Pick); 2] = [
        ("storm 25%", "", |r| r.storm.as_ref()),
        ("healthy", "6 4", |r| r.healthy.as_ref()),
    ];
    let make = |value: fn(&Phase, usize) -> f64, loads: &[(&str, &'static str, Pick)]| {
        let mut out = Vec::new();
        for (design, color) in colors {
            for &(load, dash, pick) in loads {
                out.push(Series {
                    label: format!("{}, {load}", design.label()),
                    color,
                    dash,
                    points: rows
                        .iter()
                        .filter(|r| r.design == design)
                        .filter_map(|r| pick(r).map(|p| (r.n as f64, value(p, r.n))))
                        .collect(),
                });
            }
        }
        out
    };
    let charts = [
        Chart {
            title: "Redis CPU (seconds per second) against fleet size".to_owned(),
            x_label: "workers (N, log scale)".to_owned(),
            y_label: "Redis CPU s/s (log)".to_owned(),
            x_ticks: x_ticks.clone(),
            y_scale: Scale::Log,
            series: make(|p, _| p.cpu, &loads),
        },
        Chart {
            title: "Bytes out of Redis per second against fleet size".to_owned(),
            x_label: "workers (N, log scale)".to_owned(),
            y_label: "bytes/s (log)".to_owned(),
            x_ticks: x_ticks.clone(),
            y_scale: Scale::Log,
            series: make(|p, _| p.bytes, &loads),
        },
        Chart {
            title: "Events decoded per worker per second (store: 0, not drawn)".to_owned(),
            x_label: "workers (N, log scale)".to_owned(),
            y_label: "events/worker/s (log)".to_owned(),
            x_ticks,
            y_scale: Scale::Log,
            series: make(|p, _| p.decoded_pw, &loads[..1]),
        },
    ];
    crate::plot::svg(&charts)
}

#[cfg(test)]
mod tests {
    use super::slope;

    #[test]
    fn slope_of_linear_and_quadratic() {
        let lin: Vec<(f64, f64)> = [10.0, 100.0, 1000.0]
            .iter()
            .map(|n| (*n, 3.0 * n))
            .collect();
        let quad: Vec<(f64, f64)> = [10.0, 100.0, 1000.0].iter().map(|n| (*n, n * n)).collect();
        assert!((slope(&lin) - 1.0).abs() < 1e-9);
        assert!((slope(&quad) - 2.0).abs() < 1e-9);
    }
}
