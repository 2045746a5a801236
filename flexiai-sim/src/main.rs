//! `flexiai-sim`: runs seeds of the deterministic fleet simulation (`cargo xtask sim`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flexiai_sim::seeds::{KNOWN_BUGS, REGRESSION_SEEDS, ci_seeds, diagnose};
use flexiai_sim::{FailureReport, SeedReport, run_seed};

const USAGE: &str = "\
usage: flexiai-sim [--seeds N [--from F]] [--seed S] [--ci] [--known-bugs]
                   [--scale K] [--jobs J] [--time-budget SECS] [--history] [--verbose]

  --seeds N        run seeds F..F+N (default F = 0)
  --seed S         run one seed and print its plan (and, with --history, every record)
  --ci             the regression seeds and the fixed CI seed set
  --known-bugs     the seeds of open defects: which still fail, which now pass
  --scale K        stretch each fault phase K times (default 1, the CI size)
  --jobs J         worker threads (default 1)
  --time-budget S  stop starting seeds after S seconds of wall time
  --verbose        print every seed's history hash (compare with `--seed S` to check replay)";

struct Args {
    seeds: Option<u64>,
    from: u64,
    seed: Option<u64>,
    ci: bool,
    known_bugs: bool,
    scale: u64,
    jobs: usize,
    budget: Option<Duration>,
    history: bool,
    verbose: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        seeds: None,
        from: 0,
        seed: None,
        ci: false,
        known_bugs: false,
        scale: 1,
        jobs: 1,
        budget: None,
        history: false,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            it.next()
                .ok_or_else(|| format!("{name} needs a value"))?
                .parse::<u64>()
                .map_err(|e| format!("{name}: {e}"))
        };
        match arg.as_str() {
            "--seeds" => args.seeds = Some(value("--seeds")?),
            "--from" => args.from = value("--from")?,
            "--seed" => args.seed = Some(value("--seed")?),
            "--scale" => args.scale = value("--scale")?.max(1),
            "--jobs" => args.jobs = usize::try_from(value("--jobs")?.max(1)).unwrap_or(1),
            "--time-budget" => args.budget = Some(Duration::from_secs(value("--time-budget")?)),
            "--ci" => args.ci = true,
            "--known-bugs" => args.known_bugs = true,
            "--history" => args.history = true,
            "--verbose" => args.verbose = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("{message}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    if args.known_bugs {
        return known_bugs(&args);
    }
    if let Some(seed) = args.seed {
        return single(seed, &args);
    }
    let seeds: Vec<u64> = if args.ci {
        REGRESSION_SEEDS
            .iter()
            .map(|s| s.seed)
            .chain(ci_seeds())
            .collect()
    } else {
        (args.from..args.from + args.seeds.unwrap_or(100)).collect()
    };
    many(&seeds, &args)
}

fn single(seed: u64, args: &Args) -> ExitCode {
    let report = match run_seed(seed, args.scale) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("seed {seed}: {error}");
            return ExitCode::FAILURE;
        }
    };
    if args.history {
        for (index, entry) in report.history.entries.iter().enumerate() {
            println!("#{index:<6} @{:>7} ms {:?}", entry.at_ms, entry.record);
        }
    }
    if report.violations.is_empty() {
        print!("{}", report.plan);
        println!(
            "seed {seed} ok: {} records, {:.1} simulated minutes, history hash {:016x}",
            report.history.entries.len(),
            report.simulated.as_secs_f64() / 60.0,
            report.hash
        );
        ExitCode::SUCCESS
    } else {
        println!("{}", FailureReport(&report));
        ExitCode::FAILURE
    }
}

fn known_bugs(args: &Args) -> ExitCode {
    println!("known-bug seeds ({}):", KNOWN_BUGS.len());
    let mut fixed = 0;
    for bug in KNOWN_BUGS {
        match run_seed(bug.seed, args.scale) {
            Ok(report) => {
                let broken = report.broken();
                if broken.contains(&bug.invariant) {
                    println!(
                        "  seed {:>6} STILL FAILS {}: {}",
                        bug.seed, bug.invariant, bug.defect
                    );
                } else {
                    fixed += 1;
                    println!(
                        "  seed {:>6} now passes {} ({}); other broken: {:?}: move it to REGRESSION_SEEDS",
                        bug.seed, bug.invariant, bug.defect, broken
                    );
                }
            }
            Err(error) => println!("  seed {:>6} could not run: {error}", bug.seed),
        }
    }
    println!("{fixed} of {} known-bug seeds now pass", KNOWN_BUGS.len());
    ExitCode::SUCCESS
}

struct Tally {
    run: u64,
    ran: Vec<u64>,
    simulated: Duration,
    failed: Vec<(u64, String, Vec<&'static str>, Vec<&'static str>)>,
    by_defect: BTreeMap<&'static str, Vec<u64>>,
    by_invariant: BTreeMap<&'static str, u64>,
    printed: u64,
}

fn many(seeds: &[u64], args: &Args) -> ExitCode {
    let started = Instant::now();
    let tally = Mutex::new(Tally {
        run: 0,
        ran: Vec::new(),
        simulated: Duration::ZERO,
        failed: Vec::new(),
        by_invariant: BTreeMap::new(),
        by_defect: BTreeMap::new(),
        printed: 0,
    });
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..args.jobs {
            scope.spawn(|| {
                loop {
                    if args.budget.is_some_and(|b| started.elapsed() >= b) {
                        return;
                    }
                    let index = {
                        let mut n = next
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(&seed) = seeds.get(index) else {
                        return;
                    };
                    match run_seed(seed, args.scale) {
                        Ok(report) => record(&tally, &report, args.verbose),
                        Err(error) => eprintln!("seed {seed}: {error}"),
                    }
                }
            });
        }
    });
    let tally = tally
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    println!(
        "\nsimulated {} seeds ({} requested), {:.2} simulated hours in {:.0} s of wall time",
        tally.run,
        seeds.len(),
        tally.simulated.as_secs_f64() / 3600.0,
        started.elapsed().as_secs_f64()
    );
    println!(
        "failing seeds: {} ; violations by invariant (seeds): {:?}",
        tally.failed.len(),
        tally.by_invariant
    );
    let mut failed = tally.failed;
    failed.sort();
    for (seed, profile, broken, defects) in failed.iter().take(60) {
        println!("  seed {seed:>6} {profile:<10} {broken:?} {defects:?}");
    }
    println!("by defect (first seeds):");
    for (defect, seeds) in &tally.by_defect {
        let mut seeds = seeds.clone();
        seeds.sort_unstable();
        let shown: Vec<u64> = seeds.iter().copied().take(12).collect();
        println!("  {defect}: {} seeds, e.g. {shown:?}", seeds.len());
    }
    let mut passing: Vec<u64> = seeds
        .iter()
        .copied()
        .filter(|s| tally.ran.contains(s) && !failed.iter().any(|f| f.0 == *s))
        .collect();
    passing.sort_unstable();
    println!(
        "passing seeds ({}): {:?}",
        passing.len(),
        passing.iter().take(80).collect::<Vec<_>>()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn record(tally: &Mutex<Tally>, report: &SeedReport, verbose: bool) {
    let mut t = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if verbose {
        println!(
            "seed {} history hash {:016x} records {} broken {:?}",
            report.plan.seed,
            report.hash,
            report.history.entries.len(),
            report.broken()
        );
    }
    t.run += 1;
    t.ran.push(report.plan.seed);
    t.simulated += report.simulated;
    if report.violations.is_empty() {
        return;
    }
    let broken = report.broken();
    for name in &broken {
        *t.by_invariant.entry(name).or_insert(0) += 1;
    }
    let defects = diagnose(report);
    for defect in &defects {
        t.by_defect
            .entry(defect)
            .or_default()
            .push(report.plan.seed);
    }
    t.failed.push((
        report.plan.seed,
        format!("{:?}", report.plan.profile),
        broken,
        defects,
    ));
    if t.printed < 3 {
        t.printed += 1;
        println!("{}", FailureReport(report));
    } else {
        println!("seed {} FAILED {:?}", report.plan.seed, diagnose(report));
    }
}
