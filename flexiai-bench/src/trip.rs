//! Fleet trip time: the provider dies under load across N worker processes; time until
//! every worker's breaker is open.

use std::time::Duration;

use flexiai_testkit::RedisServer;

use crate::procs::{Proc, broadcast, rows};
use crate::stats::{median, summarize};

/// Results for one worker count.
#[derive(Debug, Clone)]
pub(crate) struct TripRow {
    /// Worker processes.
    pub(crate) n: usize,
    /// Trials run.
    pub(crate) trials: usize,
    /// Median over trials of the time until the first worker opened (ms).
    pub(crate) first_ms: f64,
    /// Median over trials of the time until every worker was open (ms).
    pub(crate) all_ms_p50: f64,
    /// Worst trial: time until every worker was open (ms).
    pub(crate) all_ms_max: f64,
    /// Median over trials of the spread between the first and the last worker (ms).
    pub(crate) spread_ms: f64,
    /// Trials in which some worker had not opened within the observation window.
    pub(crate) incomplete: usize,
}

/// Each worker calls the provider `rate` times per second; threshold 5.
pub(crate) fn run(counts: &[usize], trials: usize, rate: u64) -> crate::Result<Vec<TripRow>> {
    let server = RedisServer::start()?;
    let url = server.url();
    let mut out = Vec::new();
    for &n in counts {
        crate::report::log(&format!("fleet trip: N = {n}, {trials} trials"));
        let prefix = format!("trip{n}");
        let mut workers = (0..n)
            .map(|_| Proc::spawn("flexiai", &url, &prefix, &[]))
            .collect::<crate::Result<Vec<_>>>()?;
        broadcast(&mut workers, "arm")?;
        broadcast(&mut workers, &format!("load {rate}"))?;
        std::thread::sleep(Duration::from_millis(300));
        let (mut first, mut all, mut spread) = (Vec::new(), Vec::new(), Vec::new());
        let mut incomplete = 0;
        for _ in 0..trials {
            broadcast(&mut workers, "report")?;
            let die_at = crate::now_micros() + 200_000;
            broadcast(&mut workers, &format!("die {die_at}"))?;
            std::thread::sleep(Duration::from_millis(1200));
            let reports = broadcast(&mut workers, "report")?;
            broadcast(&mut workers, "heal")?;
            let opened: Vec<Option<u64>> = reports
                .iter()
                .map(|r| {
                    rows(r, "seen")
                        .into_iter()
                        .filter(|row| row.get(1) == Some(&1))
                        .filter_map(|row| row.get(2).copied())
                        .find(|at| *at >= die_at)
                })
                .collect();
            if opened.iter().any(Option::is_none) {
                incomplete += 1;
            }
            let times: Vec<u64> = opened.into_iter().flatten().collect();
            if let (Some(lo), Some(hi)) = (times.iter().min(), times.iter().max()) {
                #[allow(clippy::cast_precision_loss)]
                {
                    first.push((lo - die_at) as f64 / 1000.0);
                    all.push((hi - die_at) as f64 / 1000.0);
                    spread.push((hi - lo) as f64 / 1000.0);
                }
            }
            // Close the fleet again for the next trial.
            if let Some(w) = workers.first_mut() {
                w.cmd("reset")?;
            }
            std::thread::sleep(Duration::from_millis(400));
        }
        drop(workers);
        let all_summary = summarize(&all);
        out.push(TripRow {
            n,
            trials,
            first_ms: median(&first),
            all_ms_p50: all_summary.p50,
            all_ms_max: all_summary.max,
            spread_ms: median(&spread),
            incomplete,
        });
    }
    drop(server);
    Ok(out)
}
