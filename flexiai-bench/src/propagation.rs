//! Propagation: a transition on worker A until it is applied on each of N other worker
//! processes, against raw redis-rs `PUBLISH` to N subscriber processes in the same run.

use std::collections::HashMap;
use std::time::Duration;

use flexiai_testkit::RedisServer;

use crate::procs::{Proc, broadcast, rows};
use crate::stats::{Summary, summarize};

/// Results for one worker count.
#[derive(Debug, Clone)]
pub(crate) struct PropagationRow {
    /// Receiving processes.
    pub(crate) n: usize,
    /// flexiai: sender's transition to applied on a receiver (µs), over all receivers.
    pub(crate) flexiai: Summary,
    /// Raw redis-rs: `PUBLISH` issued to the value visible to the receiver's watcher (µs).
    pub(crate) raw: Summary,
    /// Raw redis-rs: `PUBLISH` issued to the subscriber's message handler (µs), no watcher.
    pub(crate) raw_direct: Summary,
    /// flexiai: transition to the event reaching a plain subscriber on the channel (µs): the
    /// sender-side share of the propagation time.
    pub(crate) flexiai_to_wire: Summary,
    /// Transitions that some receiver never observed (coalesced or lost).
    pub(crate) flexiai_missing: usize,
    /// Raw messages some receiver never observed.
    pub(crate) raw_missing: usize,
}

/// Per receiver and sent message, the latency in µs; a message a receiver never observed
/// counts as a miss, an infinite latency, so percentiles are over everything sent (a
/// p99 hides nothing when more than 1% was never seen). Also returns the number of misses.
fn latencies(sent: &[Vec<u64>], seen: &[Vec<Vec<u64>>], at_index: usize) -> (Vec<f64>, usize) {
    let mut out = Vec::new();
    let mut missing = 0;
    for receiver in seen {
        let by_key: HashMap<u64, u64> = receiver
            .iter()
            .filter_map(|r| Some((*r.first()?, *r.get(at_index)?)))
            .collect();
        for s in sent {
            let (Some(key), Some(at)) = (s.first(), s.get(1)) else {
                continue;
            };
            match by_key.get(key) {
                #[allow(clippy::cast_precision_loss)]
                Some(seen_at) => out.push(seen_at.saturating_sub(*at) as f64),
                None => {
                    missing += 1;
                    out.push(f64::INFINITY);
                }
            }
        }
    }
    (out, missing)
}

/// Rounds per worker count; the two sides alternate.
const ROUNDS: u64 = 8;

fn settle() {
    std::thread::sleep(Duration::from_millis(150));
}

/// Runs the raw baseline then flexiai for each `n`.
pub(crate) fn run(
    counts: &[usize],
    transitions: u64,
    gap_us: u64,
) -> crate::Result<Vec<PropagationRow>> {
    let server = RedisServer::start()?;
    let url = server.url();
    let mut rows_out = Vec::new();
    for &n in counts {
        crate::report::log(&format!(
            "propagation: N = {n}, raw redis-rs and flexiai, interleaved"
        ));
        // Both sets of processes live through the whole measurement; the two sides take turns
        // in rounds, so that load from outside the bench hits both alike.
        let channel = format!("raw{n}");
        let mut subs = (0..n)
            .map(|_| Proc::spawn("raw-sub", &url, "raw", &["--channel", &channel]))
            .collect::<crate::Result<Vec<_>>>()?;
        let mut publisher = Proc::spawn("raw-pub", &url, "raw", &["--channel", &channel])?;
        let prefix = format!("prop{n}");
        let mut sender = Proc::spawn("flexiai", &url, &prefix, &[])?;
        let mut receivers = (0..n)
            .map(|_| Proc::spawn("flexiai", &url, &prefix, &[]))
            .collect::<crate::Result<Vec<_>>>()?;
        let mut tap = Proc::spawn("raw-sub", &url, &prefix, &[])?;
        broadcast(&mut subs, "arm")?;
        broadcast(&mut receivers, "arm")?;
        // Warm-up: pool connections open, code paged in.
        publisher.cmd(&format!("transitions 10 {gap_us}"))?;
        sender.cmd(&format!("transitions 10 {gap_us}"))?;
        settle();
        broadcast(&mut subs, "report")?;
        broadcast(&mut receivers, "report")?;
        tap.cmd("report")?;
        let (mut raw, mut raw_direct, mut flexiai, mut to_wire) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut raw_missing, mut flexiai_missing) = (0, 0);
        let per_round = (transitions / ROUNDS).max(1);
        for _ in 0..ROUNDS {
            let sent = rows(
                &publisher.cmd(&format!("transitions {per_round} {gap_us}"))?,
                "sent",
            );
            settle();
            let reports = broadcast(&mut subs, "report")?;
            let watched: Vec<_> = reports.iter().map(|r| rows(r, "seen")).collect();
            let direct: Vec<_> = reports.iter().map(|r| rows(r, "direct")).collect();
            let (l, missing) = latencies(&sent, &watched, 2);
            raw.extend(l);
            raw_missing += missing;
            raw_direct.extend(latencies(&sent, &direct, 1).0);

            let sent = rows(
                &sender.cmd(&format!("transitions {per_round} {gap_us}"))?,
                "sent",
            );
            settle();
            let reports = broadcast(&mut receivers, "report")?;
            let tap_report = tap.cmd("report")?;
            let seen: Vec<_> = reports.iter().map(|r| rows(r, "seen")).collect();
            let (l, missing) = latencies(&sent, &seen, 2);
            flexiai.extend(l);
            flexiai_missing += missing;
            to_wire.extend(latencies(&sent, &[rows(&tap_report, "direct")], 1).0);
        }
        drop(tap);
        drop(receivers);
        drop(sender);
        drop(publisher);
        drop(subs);
        rows_out.push(PropagationRow {
            n,
            flexiai: summarize(&flexiai),
            raw: summarize(&raw),
            raw_direct: summarize(&raw_direct),
            flexiai_to_wire: summarize(&to_wire),
            flexiai_missing,
            raw_missing,
        });
    }
    drop(server);
    Ok(rows_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unobserved_transitions_count_as_misses_in_the_percentiles() {
        // 100 sent; the one receiver saw 97 of them, each 10 µs later.
        let sent: Vec<Vec<u64>> = (0..100).map(|k| vec![k, 1000]).collect();
        let seen = vec![(0..97).map(|k| vec![k, 0, 1010]).collect::<Vec<_>>()];
        let (samples, missing) = latencies(&sent, &seen, 2);
        assert_eq!((samples.len(), missing), (100, 3));
        let summary = summarize(&samples);
        assert_eq!(summary.p50, 10.0);
        assert!(summary.p99.is_infinite(), "3% missing must show in the p99");
    }
}
