//! The invariant checker over a run's [`History`].

use std::collections::BTreeMap;

use crate::fleet::{COMMAND_TIMEOUT_MS, HALF_OPEN_MAX, History};

/// Admission plus recording an outcome must stay far below a Redis round trip that waits:
/// while Redis is paused or a proxy blackholed, a call that waited would take the command
/// timeout. Measured by the worker around each call.
pub(crate) const ADMISSION_BOUND_US: u64 = COMMAND_TIMEOUT_MS * 1000 / 2;

/// The checks, by name (the names `--exclude` takes).
pub(crate) const CHECKS: [&str; 5] = [
    "admission_never_waits",
    "convergence",
    "operator_holds",
    "probe_budget",
    "linear_history",
];

/// One violation: which check, and what broke it.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    pub(crate) check: &'static str,
    pub(crate) detail: String,
}

fn violation(check: &'static str, detail: String) -> Violation {
    Violation { check, detail }
}

/// Every check that reads the history alone (convergence is checked live, at the end).
pub(crate) fn check(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    admission(history, &mut out);
    operator_holds(history, &mut out);
    probe_budget(history, &mut out);
    linear_history(history, &mut out);
    out
}

/// No call ever waited on Redis: every batch's slowest admission is under the bound.
fn admission(history: &History, out: &mut Vec<Violation>) {
    for b in &history.batches {
        if b.max_admit_us > ADMISSION_BOUND_US {
            out.push(violation(
                "admission_never_waits",
                format!(
                    "t={} ms worker {}: a call took {} us to admit and record (bound {} us)",
                    b.t_ms, b.worker, b.max_admit_us, ADMISSION_BOUND_US
                ),
            ));
        }
    }
}

/// An acknowledged force-open/disable is not replaced in the store by anything but a later
/// operator action: every stored write after the operator's own, up to the next operator
/// write, carries the operator's state.
fn operator_holds(history: &History, out: &mut Vec<Violation>) {
    let is_operator = |by: &str| by.starts_with("flexiai-cli@");
    for (i, action) in history.operators.iter().enumerate() {
        let Some(version) = action.version else {
            continue; // not acknowledged: nothing was promised
        };
        let wanted = action.op.state();
        if wanted == "closed" {
            continue; // a reset hands the provider back to the breakers
        }
        let next_op_ms = history
            .operators
            .get(i + 1)
            .map_or(u64::MAX, |next| next.start_ms);
        // Find the operator's own write; what follows it in channel order is what the
        // store did next.
        let Some(own) = history.writes.iter().position(|w| {
            w.t_ms >= action.start_ms
                && is_operator(&w.by)
                && w.version == version
                && w.state == wanted
        }) else {
            continue; // the watcher was disconnected when it was written
        };
        for w in &history.writes[own + 1..] {
            if w.t_ms >= next_op_ms || is_operator(&w.by) {
                break;
            }
            if w.state != wanted {
                out.push(violation(
                    "operator_holds",
                    format!(
                        "operator {} acknowledged at t={} ms as v{version}; at t={} ms {} stored {} v{} before any operator action",
                        action.op.command(),
                        action.ack_ms,
                        w.t_ms,
                        w.by,
                        w.state,
                        w.version
                    ),
                ));
                break;
            }
        }
    }
}

/// At most `HALF_OPEN_MAX` probes per half-open period (its version) fleet-wide, counting
/// probes admitted while the worker was synced before and after the batch. A period in which
/// a probing worker was killed is left out: its lease expires and another worker may probe.
///
/// A version alone does not name a period: an empty restart starts the versions again, and
/// (with protocol v2) an operator override starts a new epoch. No half-open period spans a
/// Redis restart or an operator command, so those count as period boundaries too.
fn probe_budget(history: &History, out: &mut Vec<Violation>) {
    let restarts = |t: u64| history.redis_restarts.iter().filter(|&&r| r <= t).count();
    let operators = |t: u64| history.operators.iter().filter(|o| o.start_ms <= t).count();
    let mut per_period: BTreeMap<(usize, usize, u64), Vec<(u64, usize)>> = BTreeMap::new();
    for b in history.batches.iter().filter(|b| b.synced) {
        for &v in &b.probes {
            per_period
                .entry((restarts(b.t_ms), operators(b.t_ms), v))
                .or_default()
                .push((b.t_ms, b.worker));
        }
    }
    let killed: Vec<u64> = history.kills.iter().filter_map(|k| k.2).collect();
    for ((_, _, version), probes) in per_period {
        if probes.len() as u64 > HALF_OPEN_MAX && !killed.contains(&version) {
            out.push(violation(
                "probe_budget",
                format!(
                    "half-open period v{version}: {} probes (budget {HALF_OPEN_MAX}) at (t ms, worker) {probes:?}",
                    probes.len()
                ),
            ));
        }
    }
}

/// One linear history per Redis lifetime: stored versions never go back, and one version
/// is one state.
fn linear_history(history: &History, out: &mut Vec<Violation>) {
    let epoch = |t: u64| history.redis_restarts.iter().filter(|&&r| r <= t).count();
    let mut last: Option<(usize, u64, &str, u64)> = None;
    for w in &history.writes {
        let e = epoch(w.t_ms);
        if let Some((le, lv, ls, lt)) = last
            && le == e
        {
            if w.version < lv {
                out.push(violation(
                    "linear_history",
                    format!(
                        "t={} ms: {} stored v{} ({}) after v{lv} ({ls}) at t={lt} ms",
                        w.t_ms, w.by, w.version, w.state
                    ),
                ));
            } else if w.version == lv && w.state != ls {
                out.push(violation(
                    "linear_history",
                    format!(
                        "t={} ms: v{} stored as {} by {} and as {ls} at t={lt} ms",
                        w.t_ms, w.version, w.state, w.by
                    ),
                ));
            }
        }
        if last.is_none_or(|(le, lv, _, _)| le != e || w.version >= lv) {
            last = Some((e, w.version, w.state.as_str(), w.t_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{Batch, OperatorAction, Write};
    use crate::schedule::Operator;

    fn write(t_ms: u64, state: &str, version: u64, by: &str) -> Write {
        Write {
            t_ms,
            state: state.into(),
            version,
            by: by.into(),
        }
    }

    #[test]
    fn an_override_replaced_by_a_worker_is_a_violation() {
        let mut h = History::default();
        h.operators.push(OperatorAction {
            start_ms: 10,
            ack_ms: 12,
            op: Operator::ForceOpen,
            version: Some(4),
        });
        h.writes
            .push(write(11, "forced_open", 4, "flexiai-cli@h:1:1"));
        h.writes.push(write(13, "forced_open", 4, "w:1:1"));
        assert!(check(&h).is_empty());
        h.writes.push(write(14, "closed", 6, "w:1:1"));
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].check, "operator_holds");
    }

    #[test]
    fn an_override_is_judged_from_its_own_write_not_an_earlier_identical_one() {
        // After an empty restart versions start again: an older run of the same operator
        // write must not be taken for this one.
        let mut h = History::default();
        h.writes
            .push(write(1, "forced_open", 1, "flexiai-cli@h:1:0"));
        h.writes.push(write(2, "forced_open", 1, "w:1:1"));
        h.redis_restarts.push(3);
        h.operators.push(OperatorAction {
            start_ms: 4,
            ack_ms: 6,
            op: Operator::ForceOpen,
            version: Some(1),
        });
        h.writes
            .push(write(5, "forced_open", 1, "flexiai-cli@h:1:1"));
        h.writes.push(write(5, "open", 59, "w:1:1"));
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("open v59"), "{v:?}");
    }

    #[test]
    fn two_synced_probes_in_one_period_are_a_violation_unless_the_first_died() {
        let batch = |worker, probes: Vec<u64>| Batch {
            t_ms: 1,
            worker,
            state: "half_open".into(),
            version: 5,
            calls: 1,
            max_admit_us: 3,
            probes,
            synced: true,
        };
        let mut h = History::default();
        h.batches.push(batch(0, vec![5]));
        assert!(check(&h).is_empty());
        h.batches.push(batch(1, vec![5]));
        assert_eq!(check(&h)[0].check, "probe_budget");
        h.kills.push((2, 0, Some(5)));
        assert!(check(&h).is_empty());
    }

    #[test]
    fn the_same_version_after_an_empty_restart_or_an_override_is_another_period() {
        let batch = |t_ms, worker| Batch {
            t_ms,
            worker,
            state: "half_open".into(),
            version: 5,
            calls: 1,
            max_admit_us: 3,
            probes: vec![5],
            synced: true,
        };
        let mut h = History::default();
        h.batches.push(batch(1, 0));
        h.redis_restarts.push(2);
        h.batches.push(batch(3, 1));
        h.operators.push(OperatorAction {
            start_ms: 4,
            ack_ms: 5,
            op: Operator::Reset,
            version: Some(1),
        });
        h.batches.push(batch(6, 2));
        assert!(check(&h).is_empty(), "{:?}", check(&h));
        h.batches.push(batch(7, 3));
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn a_version_going_back_or_forking_is_a_violation_within_one_redis_lifetime() {
        let mut h = History::default();
        h.writes.push(write(1, "open", 3, "a"));
        h.writes.push(write(2, "open", 3, "b"));
        assert!(check(&h).is_empty());
        h.writes.push(write(3, "closed", 3, "b"));
        h.writes.push(write(4, "closed", 2, "c"));
        assert_eq!(check(&h).len(), 2);
        let mut restarted = History::default();
        restarted.writes.push(write(1, "open", 3, "a"));
        restarted.redis_restarts.push(2);
        restarted.writes.push(write(3, "closed", 0, "b"));
        assert!(check(&restarted).is_empty());
    }
}
