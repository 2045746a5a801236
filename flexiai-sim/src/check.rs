//! The invariant checker: reads a recorded history and reports every violation, each with
//! the index of the record that broke it. Each invariant is one function.

use std::collections::{BTreeMap, BTreeSet};

use flexiai_breaker::CircuitState;

use crate::history::{Actor, Base, History, Record, SyncState};

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The check function that found it.
    pub invariant: &'static str,
    /// The record that broke it.
    pub index: usize,
    /// The provider concerned.
    pub provider: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// Runs every check.
pub fn check_all(
    history: &History,
    half_open_max_calls: u32,
    probe_lease_ttl_ms: u64,
) -> Vec<Violation> {
    let mut out = check_linear_history(history);
    out.extend(check_operator_precedence(history));
    out.extend(check_probe_budget(
        history,
        half_open_max_calls,
        probe_lease_ttl_ms,
    ));
    out.extend(check_outcome_periods(history));
    out.extend(check_retry_after_deadlines(history));
    out.extend(check_degrade_on_evidence(history));
    out.extend(check_liveness(history));
    out
}

/// **One linear history per provider**: a stored snapshot is only replaced by a successor
/// of it, i.e. a write whose writer's state descends from the snapshot it replaced (it
/// adopted it, wrote it, or read it and agreed; a snapshot of the same version and state
/// counts as the same point). Writing into an empty store is fine
/// (Redis restarted empty); writing over a snapshot the writer never adopted is a lost
/// update, with two exceptions the protocol prescribes (ARCHITECTURE.md, P2 and P3), both
/// only by a writer whose state grew from a known stored snapshot and at a higher revision:
///
/// - *A later override's state over an earlier epoch's*: an operator's override outranks
///   every revision of an epoch begun before it (only overrides begin epochs), so a branch
///   of such an epoch is dropped whole when it meets the override (P2), and when a wipe let
///   it into the store, the override is written back over it (P3). The writer's epoch must
///   have been begun by an operator write recorded after the replaced epoch began: an
///   override written back over a later one (an operator clock behind) stays a lost update.
/// - *A sibling a wipe let in*: within one store lifetime stored snapshots form one chain,
///   so a stored snapshot that does not descend from the writer's base (nor the base from
///   it) got there after a wipe the base predates (the base's last store write is older
///   than the last wipe), written by a worker that had not seen it. The store holds less
///   than the writer knows, and P3 writes the writer's history back over it (the driver
///   does the same when the sibling has the base's revision with another state). A stored
///   snapshot that descends from the writer's base is a decision it did not see: writing
///   over it stays a lost update, after a wipe too.
pub fn check_linear_history(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    // Per provider, each stored point's parents: what it was stored over, and the points its
    // writer went through on the way from its base. A writer descends from every ancestor of
    // its base too: a worker that adopted v5 (stored over v4) grew from v4 as well, so writing
    // its v5 back over a v4 a lagging worker put into an emptied store replaces nothing it
    // did not see.
    let mut parents: BTreeMap<(&str, Point), Vec<Point>> = BTreeMap::new();
    // Per provider and point, the record of its last store write; per provider and epoch,
    // the operator write that began it (epoch 0 begins with the history).
    let mut written: BTreeMap<(&str, Point), usize> = BTreeMap::new();
    let mut begun: BTreeMap<(&str, u64), usize> = BTreeMap::new();
    let mut last_wipe: Option<usize> = None;
    for (index, entry) in history.entries.iter().enumerate() {
        if matches!(entry.record, Record::StoreWiped) {
            last_wipe = Some(index);
        }
        let Record::StoreWrite {
            by,
            provider,
            before: Some(before),
            after,
            base,
            path,
        } = &entry.record
        else {
            link_write(&mut parents, &entry.record);
            note_write(&mut written, &mut begun, index, &entry.record);
            continue;
        };
        // The writer descends from `before` if it adopted it (its base) or went through the
        // same point (epoch, version, state) by itself since: two workers that made the same
        // transition from one base are on one history.
        // Closed v0 of epoch 0 is the first point of every history (what a fresh worker writes
        // into an empty store): replacing it overwrites no decision, as writing into an empty
        // store does not.
        let origin =
            before.epoch == 0 && before.version == 0 && before.state == CircuitState::Closed;
        let ok = origin
            || match base {
                Base::Known(id) => {
                    (id.epoch == before.epoch
                        && id.version == before.version
                        && id.state == before.state)
                        || (id.epoch == before.epoch
                            && path
                                .iter()
                                .any(|(v, s)| *v == before.version && *s == before.state))
                        || ancestor(
                            &parents,
                            provider,
                            (id.epoch, id.version, id.state),
                            (before.epoch, before.version, before.state),
                        )
                }
                Base::Unknown => true,
                // A fresh breaker starts at the first point of every history: closed, v0.
                Base::Fresh => {
                    before.epoch == 0
                        && ((before.version == 0 && before.state == CircuitState::Closed)
                            || path
                                .iter()
                                .any(|(v, s)| *v == before.version && *s == before.state))
                }
            };
        let ok = ok
            || match base {
                Base::Known(id) => {
                    let base_point = (id.epoch, id.version, id.state);
                    let before_point = (before.epoch, before.version, before.state);
                    let higher = (after.epoch, after.version) > (before.epoch, before.version);
                    let superseded = before.epoch < after.epoch
                        && id.epoch == after.epoch
                        && matches!(
                            (
                                begun.get(&(provider.as_str(), after.epoch)),
                                begun_at(&begun, provider, before.epoch),
                            ),
                            (Some(later), Some(earlier)) if *later > earlier
                        )
                        && last_wipe.is_some_and(|wipe| {
                            begun
                                .get(&(provider.as_str(), after.epoch))
                                .is_some_and(|b| wipe > *b)
                        });
                    let sibling = before.epoch == after.epoch
                        && id.epoch == after.epoch
                        && !ancestor(&parents, provider, before_point, base_point)
                        && !ancestor(&parents, provider, base_point, before_point)
                        && base_point != before_point
                        && matches!(
                            (written.get(&(provider.as_str(), base_point)), last_wipe),
                            (Some(stored), Some(wipe)) if *stored < wipe
                        );
                    higher && (superseded || sibling)
                }
                Base::Unknown | Base::Fresh => false,
            };
        if !ok {
            let from = match base {
                Base::Known(id) => format!("descends from {id}"),
                _ => "descends from nothing stored".to_owned(),
            };
            out.push(Violation {
                invariant: "check_linear_history",
                index,
                provider: Some(provider.clone()),
                message: format!(
                    "{by} stored {after} over {before}, which it never adopted (its state {from})"
                ),
            });
        }
        // Linked after judging it: a write is never its own evidence.
        link_write(&mut parents, &entry.record);
        note_write(&mut written, &mut begun, index, &entry.record);
    }
    out
}

/// Records when a store write stored its point, and when an operator's write began an epoch.
fn note_write<'h>(
    written: &mut BTreeMap<(&'h str, Point), usize>,
    begun: &mut BTreeMap<(&'h str, u64), usize>,
    index: usize,
    record: &'h Record,
) {
    if let Record::StoreWrite {
        by,
        provider,
        after,
        ..
    } = record
    {
        written.insert(
            (provider.as_str(), (after.epoch, after.version, after.state)),
            index,
        );
        if *by == Actor::Operator {
            begun
                .entry((provider.as_str(), after.epoch))
                .or_insert(index);
        }
    }
}

/// When `epoch` of `provider` began: epoch 0 with the history, any other with the operator
/// write that began it (none recorded: unknown).
fn begun_at(begun: &BTreeMap<(&str, u64), usize>, provider: &str, epoch: u64) -> Option<usize> {
    if epoch == 0 {
        return Some(0);
    }
    begun.get(&(provider, epoch)).copied()
}

/// Records what a store write tells about ancestry (see [`check_linear_history`]).
fn link_write<'h>(parents: &mut BTreeMap<(&'h str, Point), Vec<Point>>, record: &'h Record) {
    if let Record::StoreWrite {
        provider,
        before,
        after,
        base,
        path,
        ..
    } = record
    {
        let mut chain: Vec<Point> = Vec::new();
        if let Base::Known(id) = base {
            chain.push((id.epoch, id.version, id.state));
        }
        chain.extend(path.iter().map(|(v, s)| (after.epoch, *v, *s)));
        let after_point = (after.epoch, after.version, after.state);
        let mut link = |child: Point, parent: Point| {
            if child != parent {
                let list = parents.entry((provider.as_str(), child)).or_default();
                if !list.contains(&parent) {
                    list.push(parent);
                }
            }
        };
        for pair in chain.windows(2) {
            link(pair[1], pair[0]);
        }
        if let Some(last) = chain.last() {
            link(after_point, *last);
        }
        if let Some(before) = before {
            link(after_point, (before.epoch, before.version, before.state));
        }
    }
}

/// A point of a provider's history: epoch, version, state.
type Point = (u64, u64, CircuitState);

/// Whether `target` is a proper ancestor of `from` in the recorded store history.
fn ancestor(
    parents: &BTreeMap<(&str, Point), Vec<Point>>,
    provider: &str,
    from: Point,
    target: Point,
) -> bool {
    let mut seen: Vec<Point> = vec![from];
    let mut queue: Vec<Point> = vec![from];
    while let Some(point) = queue.pop() {
        for parent in parents.get(&(provider, point)).into_iter().flatten() {
            if *parent == target {
                return true;
            }
            if !seen.contains(parent) && seen.len() < 10_000 {
                seen.push(*parent);
                queue.push(*parent);
            }
        }
    }
    false
}

/// **Operators outrank the breaker**: once an operator's `forced_open` or `disabled` was
/// acknowledged, until the next operator action on that provider (or the store is wiped,
/// which loses it), no store write changes that state, and no worker that took it leaves it.
pub fn check_operator_precedence(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    // provider -> (action id, state, version) of the override in force
    let mut held: BTreeMap<&str, (u32, CircuitState, u64)> = BTreeMap::new();
    // (worker, provider) -> whether it has taken the override in force
    let mut holding: BTreeMap<(Actor, &str), bool> = BTreeMap::new();
    for (index, entry) in history.entries.iter().enumerate() {
        match &entry.record {
            Record::OperatorAction { provider, .. } => {
                held.remove(provider.as_str());
                holding.retain(|(_, p), _| p != provider);
            }
            Record::OperatorAck {
                id,
                provider,
                state: state @ (CircuitState::ForcedOpen | CircuitState::Disabled),
                version,
            } => {
                held.insert(provider, (*id, *state, *version));
            }
            Record::StoreWiped => {
                held.clear();
                holding.clear();
            }
            Record::StoreWrite {
                by,
                provider,
                after,
                ..
            } => {
                if let Some((id, state, version)) = held.get(provider.as_str())
                    && after.state != *state
                {
                    out.push(Violation {
                        invariant: "check_operator_precedence",
                        index,
                        provider: Some(provider.clone()),
                        message: format!(
                            "{by} stored {after} while operator action #{id} ({state} v{version}) was in force"
                        ),
                    });
                }
            }
            Record::Transition {
                worker,
                provider,
                to,
                version,
                ..
            } => view_change(
                &held,
                &mut holding,
                &mut out,
                index,
                *worker,
                provider,
                Some(*to),
                *version,
                "a local transition",
            ),
            Record::Seen {
                worker,
                provider,
                version,
                state,
                via,
            } => view_change(
                &held,
                &mut holding,
                &mut out,
                index,
                *worker,
                provider,
                *state,
                *version,
                via,
            ),
            _ => {}
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn view_change<'h>(
    held: &BTreeMap<&str, (u32, CircuitState, u64)>,
    holding: &mut BTreeMap<(Actor, &'h str), bool>,
    out: &mut Vec<Violation>,
    index: usize,
    worker: Actor,
    provider: &'h str,
    state: Option<CircuitState>,
    version: u64,
    via: &str,
) {
    let Some((id, held_state, held_version)) = held.get(provider) else {
        return;
    };
    let Some(state) = state else {
        return;
    };
    let key = (worker, provider);
    if state == *held_state && version >= *held_version {
        holding.insert(key, true);
    } else if holding.get(&key).copied().unwrap_or(false) {
        out.push(Violation {
            invariant: "check_operator_precedence",
            index,
            provider: Some(provider.to_owned()),
            message: format!(
                "{worker} left {held_state} (operator action #{id}, v{held_version}) for {state} v{version} via {via}"
            ),
        });
        holding.insert(key, false);
    }
}

/// **Fleet-wide probe budget**: while synced, at most `half_open_max_calls` trial calls of
/// one half-open period (one version) are in flight across the whole fleet. Only probes
/// admitted by a worker whose manager reported `Synced` count (a degraded worker probes for
/// itself by design), and a store wipe starts the count afresh (the lease went with it).
///
/// The probes of the lease a wipe made the store forget are counted apart, against the same
/// budget: those in flight at the wipe, and those a worker admitted after it with no lock
/// call answered since (so on credits of a lease taken before the wipe) within two thirds
/// of `probe_lease_ttl_ms` (when the driver revokes credits it could not confirm, and the
/// last confirmation preceded the wipe). ARCHITECTURE.md lists them as not guaranteed: no
/// worker can tell they run, and a restart in a provider's first half-open period is not
/// detected, so the next lease grants at once. A probe admitted later on such credits, or
/// after a lock call, counts with the new lease's.
pub fn check_probe_budget(
    history: &History,
    half_open_max_calls: u32,
    probe_lease_ttl_ms: u64,
) -> Vec<Violation> {
    /// A synced probe in flight: its period, its worker, and the store lifetime (wipes
    /// before it) whose lease gave its credit; probes count against one budget only with the
    /// probes of the same lease.
    struct Live<'h> {
        provider: &'h str,
        version: u64,
        worker: Actor,
        lifetime: u64,
        at_ms: u64,
        /// Its lease expired unkept while it ran (case 1): it no longer counts.
        lapsed: bool,
    }
    let mut out = Vec::new();
    // Keyed by the index of the probe's admission record: each settlement names its probe.
    let mut live: BTreeMap<usize, Live<'_>> = BTreeMap::new();
    // The last wipe, and the workers that had a lock call about a provider answered since.
    let mut wiped_at: Option<u64> = None;
    let mut wipes: u64 = 0;
    let mut locked_since: BTreeMap<(Actor, &str), bool> = BTreeMap::new();
    let mut reported: BTreeMap<(&str, u64), bool> = BTreeMap::new();
    // Per provider, the worker the store last granted the probe lock to, until it released
    // it; per worker and provider, when its manager last got its lease confirmed, and
    // whether it has tried to extend the lease since, in time (no confirmation followed).
    // Confirmations count from when their call was sent, as the driver measures them.
    let mut holder: BTreeMap<&str, Actor> = BTreeMap::new();
    let mut confirmed: BTreeMap<(Actor, &str), u64> = BTreeMap::new();
    // Per worker and provider, the store lifetime its lease was last confirmed in.
    let mut confirmed_in: BTreeMap<(Actor, &str), u64> = BTreeMap::new();
    let mut extending: BTreeMap<(Actor, &str), bool> = BTreeMap::new();
    // Per worker and provider, when its last lock call was sent.
    let mut called: BTreeMap<(Actor, &str), u64> = BTreeMap::new();
    for (index, entry) in history.entries.iter().enumerate() {
        match &entry.record {
            Record::LeaseGranted { worker, provider } => {
                // A grant while another lease was unreleased: that lease expired. Its
                // holder's probes admitted while it was kept no longer count if the holder
                // was trying to keep it and could not (case 1); a holder that let it expire
                // with probes running is a defect (seeds 1204, 22637).
                if let Some(old) = holder.insert(provider, *worker)
                    && extending
                        .get(&(old, provider.as_str()))
                        .copied()
                        .unwrap_or(false)
                {
                    let kept_until = confirmed
                        .get(&(old, provider.as_str()))
                        .map_or(0, |at| at + probe_lease_ttl_ms * 2 / 3);
                    for probe in live.values_mut() {
                        if probe.worker == old
                            && probe.provider == provider.as_str()
                            && probe.at_ms < kept_until
                        {
                            probe.lapsed = true;
                        }
                    }
                }
            }
            Record::LeaseReleased { worker, provider }
                if holder.get(provider.as_str()) == Some(worker) =>
            {
                holder.remove(provider.as_str());
            }
            Record::LockCalled {
                worker,
                provider,
                op,
            } => {
                called.insert((*worker, provider), entry.at_ms);
                // Trying to keep the lease: an extension sent while it could still be kept
                // (a late one, after its TTL, is no evidence the holder could not).
                let live = confirmed
                    .get(&(*worker, provider.as_str()))
                    .is_some_and(|at| entry.at_ms < at + probe_lease_ttl_ms);
                if *op == "extend_lock" && live {
                    extending.insert((*worker, provider), true);
                }
            }
            Record::LockAnswered {
                worker,
                provider,
                held,
            } => {
                locked_since.insert((*worker, provider), true);
                if *held {
                    // From when the confirmed call was sent, as the driver measures it.
                    let sent = called
                        .get(&(*worker, provider.as_str()))
                        .copied()
                        .unwrap_or(entry.at_ms);
                    confirmed.insert((*worker, provider), sent);
                    confirmed_in.insert((*worker, provider), wipes);
                    extending.remove(&(*worker, provider.as_str()));
                }
            }
            Record::ProbeAdmitted {
                worker,
                provider,
                version,
                synced: true,
            } => {
                let orphan = wiped_at.is_some_and(|at| {
                    entry.at_ms.saturating_sub(at) < probe_lease_ttl_ms * 2 / 3
                        && !locked_since.contains_key(&(*worker, provider.as_str()))
                });
                // An orphan spends a credit of the lease it last had confirmed, maybe more
                // than one wipe ago (seed 67492: two wipes 150 ms apart).
                let lifetime = if orphan {
                    confirmed_in
                        .get(&(*worker, provider.as_str()))
                        .copied()
                        .unwrap_or(wipes.saturating_sub(1))
                } else {
                    wipes
                };
                live.insert(
                    index,
                    Live {
                        provider,
                        version: *version,
                        worker: *worker,
                        lifetime,
                        at_ms: entry.at_ms,
                        lapsed: false,
                    },
                );
                let mut period: BTreeMap<Actor, u32> = BTreeMap::new();
                for probe in live.values() {
                    if probe.provider == provider.as_str()
                        && probe.version == *version
                        && probe.lifetime == lifetime
                        && !probe.lapsed
                    {
                        *period.entry(probe.worker).or_insert(0) += 1;
                    }
                }
                let total: u32 = period.values().sum();
                if total > half_open_max_calls
                    && !reported.contains_key(&(provider.as_str(), *version))
                {
                    reported.insert((provider, *version), true);
                    let who: Vec<String> = period.iter().map(|(w, n)| format!("{w}x{n}")).collect();
                    let whose = if orphan {
                        " of a lease the store forgot"
                    } else {
                        ""
                    };
                    out.push(Violation {
                        invariant: "check_probe_budget",
                        index,
                        provider: Some(provider.clone()),
                        message: format!(
                            "{total} probes{whose} in flight in half-open period v{version} (max {half_open_max_calls}): {}",
                            who.join(", ")
                        ),
                    });
                }
            }
            Record::ProbeSettled { admitted, .. } => {
                live.remove(admitted);
            }
            Record::Crashed { worker } => {
                live.retain(|_, probe| probe.worker != *worker);
            }
            // A store restarted empty lost the probe lease with everything else: the probes
            // of the old lease are in flight and cannot be recalled, so the count restarts.
            Record::StoreWiped => {
                wipes += 1;
                wiped_at = Some(entry.at_ms);
                locked_since.clear();
                holder.clear();
            }
            _ => {}
        }
    }
    out
}

/// **Outcomes stay in their period, and count once**: an outcome report the store applied
/// under version `v` carries no more failures than the worker counted under `v` and had not
/// reported yet. The store wrapper records only reports the store applied (a resend of a
/// report it had applied is not recorded), so both a later version's failures and a report
/// counted twice break it; the message says which it looks like.
///
/// A store wipe forgets the counts with the report ids: the one report a worker keeps to
/// send again (its last one applied, whose reply may have been lost) is then applied once
/// more, to counts that no longer hold it, so its failures become unreported again. No
/// earlier report can be sent again, and within one store lifetime none counts twice.
pub fn check_outcome_periods(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    // (worker, provider, version) -> (failures not reported yet, failures counted in all)
    let mut unreported: BTreeMap<(Actor, &str, u64), (u64, u64)> = BTreeMap::new();
    // (worker, provider) -> the version and failures of its last report applied since the
    // last wipe
    let mut last: BTreeMap<(Actor, &str), (u64, u64)> = BTreeMap::new();
    for (index, entry) in history.entries.iter().enumerate() {
        match &entry.record {
            Record::StoreWiped => {
                for ((worker, provider), (version, failures)) in std::mem::take(&mut last) {
                    if let Some(counts) = unreported.get_mut(&(worker, provider, version)) {
                        counts.0 += failures;
                    }
                }
            }
            Record::Outcome {
                worker,
                provider,
                version,
                failure: true,
                counted: true,
            } => {
                let counts = unreported.entry((*worker, provider, *version)).or_default();
                counts.0 += 1;
                counts.1 += 1;
            }
            Record::OutcomesPublished {
                worker,
                provider,
                version: Some(version),
                failures,
                ..
            } => {
                let (available, counted) =
                    unreported.entry((*worker, provider, *version)).or_default();
                if failures > available {
                    // Failures already reported, sent again: the report was counted twice.
                    let why = if *failures <= *counted {
                        "failures already reported were counted twice"
                    } else {
                        "failures of another period were reported under this one"
                    };
                    out.push(Violation {
                        invariant: "check_outcome_periods",
                        index,
                        provider: Some(provider.clone()),
                        message: format!(
                            "{worker} reported {failures} failures as v{version}, but counted only {available} unreported ones under v{version} ({counted} in all): {why}"
                        ),
                    });
                }
                *available = available.saturating_sub(*failures);
                last.insert((*worker, provider), (*version, *failures));
            }
            _ => {}
        }
    }
    out
}

/// **A fleet open period is the latest deadline anyone asked for** (issue 12, #5): once a
/// synced worker applied a 429's `Retry-After` (its `open_for` made an open period ending
/// at `until`), no worker's breaker for that provider leaves open (turns half-open) before
/// `until`, within [`DEADLINE_SLACK`](flexiai_sync::DEADLINE_SLACK). Whoever wins the
/// compare-and-set tie between workers that opened the same version with different
/// deadlines, the fleet keeps the latest.
///
/// Judged only while the fleet is in step, as the protocol promises it only then: every
/// live worker synced, no view fault (partition, flaky calls, message faults, a dropped
/// subscription), and no store wipe, crash, restart, operator action or Python event since
/// the request; any of those forgets the requests made before it. After a wipe the fleet is
/// in step again only once every worker running at the wipe has read the store
/// (`get_states` answered): until then such a worker stands on a history the store no longer
/// holds and ignores the refilled one's events as older than its base, so its open period
/// is its own (ARCHITECTURE.md, "Not guaranteed": the history is repaired when a worker
/// that knows more reconciles).
pub fn check_retry_after_deadlines(history: &History) -> Vec<Violation> {
    let slack = u64::try_from(flexiai_sync::DEADLINE_SLACK.as_millis()).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    // provider -> requests still ahead: (until, requester, record index)
    let mut asked: BTreeMap<&str, Vec<(u64, Actor, usize)>> = BTreeMap::new();
    let mut modes: BTreeMap<Actor, SyncState> = BTreeMap::new();
    let mut impaired: BTreeMap<usize, bool> = BTreeMap::new();
    // Workers running at the last wipe that have not read the store since.
    let mut unread: BTreeSet<Actor> = BTreeSet::new();
    let in_step = |modes: &BTreeMap<Actor, SyncState>,
                   impaired: &BTreeMap<usize, bool>,
                   unread: &BTreeSet<Actor>| {
        modes.values().all(|m| *m == SyncState::Synced)
            && !impaired.values().any(|on| *on)
            && unread.is_empty()
    };
    for (index, entry) in history.entries.iter().enumerate() {
        let at = entry.at_ms;
        match &entry.record {
            Record::StoreWiped => {
                asked.clear();
                unread = modes.keys().copied().collect();
            }
            Record::BackendCall {
                worker,
                op: "get_states",
                ok: true,
            } => {
                unread.remove(worker);
            }
            Record::SyncMode { worker, mode, .. } => {
                modes.insert(*worker, *mode);
                if *mode != SyncState::Synced {
                    asked.clear();
                }
            }
            Record::Impaired { slot, on } => {
                impaired.insert(*slot, *on);
                if *on {
                    asked.clear();
                }
            }
            Record::Crashed { worker } => {
                modes.remove(worker);
                unread.remove(worker);
                asked.clear();
            }
            Record::Started { .. } => asked.clear(),
            Record::OperatorAction { provider, .. } | Record::PythonEvent { provider, .. } => {
                asked.remove(provider.as_str());
            }
            Record::RetryAfter {
                worker,
                provider,
                version: Some(_),
                until_ms,
            } if in_step(&modes, &impaired, &unread) => {
                asked
                    .entry(provider)
                    .or_default()
                    .push((*until_ms, *worker, index));
            }
            Record::Transition {
                worker,
                provider,
                from: CircuitState::Open,
                to: CircuitState::HalfOpen,
                ..
            } => {
                let Some(requests) = asked.get_mut(provider.as_str()) else {
                    continue;
                };
                requests.retain(|(until, _, _)| *until > at);
                if let Some((until, by, asked_at)) =
                    requests.iter().max_by_key(|(until, _, _)| *until).copied()
                    && until > at.saturating_add(slack)
                {
                    out.push(Violation {
                        invariant: "check_retry_after_deadlines",
                        index,
                        provider: Some(provider.clone()),
                        message: format!(
                            "{worker} left open at {at} ms, but {by} applied a Retry-After until {until} ms (record #{asked_at}), the fleet in step since"
                        ),
                    });
                    requests.clear();
                }
            }
            _ => {}
        }
    }
    out
}

/// **Degrade on evidence, recover on evidence** (issue 12, #7): a synced worker reports
/// degraded only after [`DEGRADE_AFTER_FAILURES`](flexiai_sync::DEGRADE_AFTER_FAILURES)
/// store calls failed in a row, or its subscription reported its connection lost (at
/// start-up, one failed call of the start-up sync suffices: it never was in step); a
/// degraded worker reports synced again only after
/// [`RECOVER_AFTER_SUCCESSES`](flexiai_sync::RECOVER_AFTER_SUCCESSES) calls succeeded in a row
/// and while its subscription is connected; and every worker is synced at the final sample
/// (everything healed a liveness bound before).
///
/// A call counts as its manager saw it (a hang or a lost reply is the failure its timeout
/// makes of it); `release_lock` does not count: the driver makes it best-effort, no evidence
/// either way.
pub fn check_degrade_on_evidence(history: &History) -> Vec<Violation> {
    #[derive(Default)]
    struct Evidence {
        failures: u64,
        successes: u64,
        /// A failure since the worker started.
        failed: bool,
        /// Its subscription reported `Disconnected` since it was last synced.
        dropped: bool,
        /// Its subscription is disconnected now.
        down: bool,
        /// Where it reported synced while a `Disconnected` was delivered but maybe not yet
        /// read: legal if the next mode it reports is degraded for that disconnection.
        unread_drop: Option<usize>,
        /// `Disconnected`s delivered and not yet answered by a degrade for the subscription
        /// (the manager reads its queue in order, maybe after reporting synced).
        unanswered_drops: u64,
        mode: Option<SyncState>,
    }
    let degrade_after = flexiai_sync::DEGRADE_AFTER_FAILURES;
    let recover_after = flexiai_sync::RECOVER_AFTER_SUCCESSES;
    let mut out = Vec::new();
    let mut workers: BTreeMap<Actor, Evidence> = BTreeMap::new();
    // Judged after the record that settles them, placed where they happened.
    let mut late = Vec::new();
    for (index, entry) in history.entries.iter().enumerate() {
        let mut flag = |worker: Actor, message: String| {
            out.push(Violation {
                invariant: "check_degrade_on_evidence",
                index,
                provider: None,
                message: format!("{worker} {message}"),
            });
        };
        match &entry.record {
            Record::Started { worker } => {
                workers.insert(*worker, Evidence::default());
            }
            Record::BackendCall { worker, op, ok } if *op != "release_lock" => {
                let e = workers.entry(*worker).or_default();
                if *ok {
                    e.failures = 0;
                    e.successes += 1;
                    // A new subscription replaces the dropped one (the simulated store
                    // refuses to subscribe while the view's connection is cut).
                    if *op == "subscribe" {
                        e.down = false;
                    }
                } else {
                    e.successes = 0;
                    e.failures += 1;
                    e.failed = true;
                }
            }
            Record::Subscription { worker, connected } => {
                let e = workers.entry(*worker).or_default();
                e.down = !connected;
                if !connected {
                    e.dropped = true;
                    e.unanswered_drops += 1;
                    e.successes = 0;
                }
            }
            Record::SyncMode {
                worker,
                mode,
                reason,
            } => {
                let e = workers.entry(*worker).or_default();
                let before = e.mode.replace(*mode);
                let answers_a_drop = *mode == SyncState::Degraded
                    && reason.contains("subscription")
                    && e.unanswered_drops > 0;
                if answers_a_drop {
                    e.unanswered_drops -= 1;
                }
                if let Some(at) = e.unread_drop.take()
                    && !(*mode == SyncState::Degraded && reason.contains("subscription"))
                {
                    late.push(unread_drop_violation(*worker, at));
                }
                match (before, mode) {
                    (Some(SyncState::Synced), SyncState::Degraded)
                        if e.failures < degrade_after && !e.dropped && !answers_a_drop =>
                    {
                        flag(
                            *worker,
                            format!(
                                "degraded after {} failed store call(s) in a row (needs {degrade_after}) and no dropped subscription: {reason}",
                                e.failures
                            ),
                        );
                    }
                    (None | Some(SyncState::Stopped), SyncState::Degraded)
                        if !e.failed && !e.dropped =>
                    {
                        flag(
                            *worker,
                            format!("degraded at start-up without a failed call: {reason}"),
                        );
                    }
                    (Some(SyncState::Degraded), SyncState::Synced) => {
                        if e.successes < recover_after {
                            flag(
                                *worker,
                                format!(
                                    "reported synced after {} successful store call(s) in a row (needs {recover_after})",
                                    e.successes
                                ),
                            );
                        } else if e.down {
                            // The notification is queued when recorded; the manager may be
                            // finishing a reconcile for an earlier one.
                            e.unread_drop = Some(index);
                        }
                    }
                    _ => {}
                }
                if *mode == SyncState::Synced && e.unread_drop.is_none() {
                    e.dropped = false;
                }
            }
            Record::FinalMode { worker, mode } => {
                // Still unread at the end: the manager never heard of the disconnection.
                if let Some(at) = workers.get_mut(worker).and_then(|e| e.unread_drop.take()) {
                    late.push(unread_drop_violation(*worker, at));
                }
                if *mode != SyncState::Synced {
                    flag(
                        *worker,
                        format!("is {mode:?} when the liveness bound ends, everything healed"),
                    );
                }
            }
            _ => {}
        }
    }
    for (worker, e) in &workers {
        if let Some(at) = e.unread_drop {
            late.push(unread_drop_violation(*worker, at));
        }
    }
    out.extend(late);
    out.sort_by_key(|v| v.index);
    out
}

fn unread_drop_violation(worker: Actor, index: usize) -> Violation {
    Violation {
        invariant: "check_degrade_on_evidence",
        index,
        provider: None,
        message: format!("{worker} reported synced while its subscription is disconnected"),
    }
}

/// **Liveness**: at the end of the bound after everything healed, every worker is in the
/// expected state (closed, or the operator's last override) and agrees with the store.
pub fn check_liveness(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    for (index, entry) in history.entries.iter().enumerate() {
        let Record::Final {
            worker,
            provider,
            state,
            version,
            stored,
            expected,
        } = &entry.record
        else {
            continue;
        };
        if state != expected {
            out.push(Violation {
                invariant: "check_liveness",
                index,
                provider: Some(provider.clone()),
                message: format!(
                    "{worker} is {state} (v{version}) when the liveness bound ends, expected {expected}"
                ),
            });
        }
        let agrees = stored
            .as_ref()
            .is_some_and(|s| s.version == *version && s.state == *state);
        if !agrees {
            let held = stored
                .as_ref()
                .map_or_else(|| "nothing".to_owned(), ToString::to_string);
            out.push(Violation {
                invariant: "check_liveness",
                index,
                provider: Some(provider.clone()),
                message: format!(
                    "{worker} holds {state} v{version} but the store holds {held} when the liveness bound ends"
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::SnapId;

    fn id(version: u64, state: CircuitState, by: &str) -> SnapId {
        SnapId {
            epoch: 0,
            version,
            state,
            by: by.into(),
        }
    }

    const W: Actor = Actor::Worker {
        slot: 0,
        incarnation: 0,
    };

    /// A second worker.
    const W1: Actor = Actor::Worker {
        slot: 1,
        incarnation: 0,
    };

    /// `worker`'s synced probe of provider `p`'s half-open v2.
    fn probe_of(worker: Actor) -> Record {
        Record::ProbeAdmitted {
            worker,
            provider: "p".into(),
            version: 2,
            synced: true,
        }
    }

    /// `worker`'s manager got `p`'s lease confirmed.
    fn lease_held(worker: Actor) -> Record {
        Record::LockAnswered {
            worker,
            provider: "p".into(),
            held: true,
        }
    }

    #[test]
    fn a_write_over_a_snapshot_the_writer_never_adopted_is_a_lost_update() {
        let write = |before, after, base, path| Record::StoreWrite {
            by: W,
            provider: "openai".into(),
            before,
            after,
            base,
            path,
        };
        let operator = id(1, CircuitState::ForcedOpen, "operator");
        let mine = id(6, CircuitState::Closed, "w0.0");
        let mut h = History::default();
        // Into an empty store (Redis restarted empty): nothing to overwrite.
        h.push(0, write(None, operator.clone(), Base::Fresh, vec![]));
        // A worker at v6 writes over the operator's v1 it never adopted: lost update.
        h.push(
            1,
            write(
                Some(operator),
                mine.clone(),
                Base::Known(mine.clone()),
                vec![],
            ),
        );
        // Two local transitions from what it replaced: a successor.
        h.push(
            2,
            write(
                Some(mine.clone()),
                id(8, CircuitState::Closed, "w0.0"),
                Base::Known(mine.clone()),
                vec![(7, CircuitState::Open), (8, CircuitState::Closed)],
            ),
        );
        // Another worker stored the v7 open this one made too: the same point, one history.
        h.push(
            3,
            write(
                Some(id(7, CircuitState::Open, "w1.0")),
                id(8, CircuitState::HalfOpen, "w0.0"),
                Base::Known(mine.clone()),
                vec![(7, CircuitState::Open), (8, CircuitState::HalfOpen)],
            ),
        );
        // A fresh worker starts at closed v0 like every history.
        h.push(
            4,
            write(
                Some(id(0, CircuitState::Closed, "w1.0")),
                id(1, CircuitState::Open, "w0.1"),
                Base::Fresh,
                vec![(1, CircuitState::Open)],
            ),
        );
        // Its own v7 half-open is not the stored v7 forced_open.
        h.push(
            5,
            write(
                Some(id(7, CircuitState::ForcedOpen, "operator")),
                id(8, CircuitState::Closed, "w0.0"),
                Base::Known(mine),
                vec![(7, CircuitState::HalfOpen), (8, CircuitState::Closed)],
            ),
        );
        let found = check_linear_history(&h);
        let indexes: Vec<usize> = found.iter().map(|v| v.index).collect();
        assert_eq!(indexes, vec![1, 5], "{found:?}");
    }

    #[test]
    fn writing_back_over_an_ancestor_of_the_base_is_a_successor() {
        let write = |by, before, after, base| Record::StoreWrite {
            by,
            provider: "p".into(),
            before,
            after,
            base,
            path: vec![],
        };
        let other = Actor::Worker {
            slot: 1,
            incarnation: 0,
        };
        let v4 = id(4, CircuitState::HalfOpen, "w1.0");
        let v5 = id(5, CircuitState::Closed, "w1.0");
        let mut h = History::default();
        // v5 is stored over v4: v4 is an ancestor of v5.
        h.push(
            0,
            write(W, Some(v4.clone()), v5.clone(), Base::Known(v4.clone())),
        );
        h.push(1, Record::StoreWiped);
        // A lagging worker refills the emptied store with v4 (written by it this time).
        let lagging_v4 = id(4, CircuitState::HalfOpen, "w0.0");
        h.push(2, write(other, None, lagging_v4.clone(), Base::Known(v4)));
        // A worker that adopted v5 writes it back over v4: it grew from v4 too.
        h.push(
            3,
            write(W, Some(lagging_v4), v5.clone(), Base::Known(v5.clone())),
        );
        // Over a v4 open that is no ancestor of v5: a lost update.
        h.push(
            4,
            write(
                W,
                Some(id(4, CircuitState::Open, "w0.0")),
                id(6, CircuitState::Open, "w1.0"),
                Base::Known(v5),
            ),
        );
        let found = check_linear_history(&h);
        let indexes: Vec<usize> = found.iter().map(|v| v.index).collect();
        assert_eq!(indexes, vec![4], "{found:?}");
    }

    fn store_write(by: Actor, before: Option<SnapId>, after: SnapId, base: Base) -> Record {
        let path = match &base {
            Base::Known(id) if id.epoch == after.epoch && id.version < after.version => {
                vec![(after.version, after.state)]
            }
            _ => vec![],
        };
        Record::StoreWrite {
            by,
            provider: "p".into(),
            before,
            after,
            base,
            path,
        }
    }

    fn at(epoch: u64, version: u64, state: CircuitState, by: &str) -> SnapId {
        SnapId {
            epoch,
            ..id(version, state, by)
        }
    }

    const OTHER: Actor = Actor::Worker {
        slot: 1,
        incarnation: 1,
    };

    /// Seeds 2916, 4911 and eight more: an operator's override written back over an earlier
    /// epoch's branch a wipe let into the store.
    #[test]
    fn an_override_written_back_over_an_earlier_epochs_branch_is_a_successor() {
        let v0 = id(0, CircuitState::Closed, "w0.0");
        let disabled = at(100, 1, CircuitState::Disabled, "operator");
        let mine = at(100, 1, CircuitState::Disabled, "w0.0");
        let lagging = id(3, CircuitState::Closed, "w1.1");
        let mut h = History::default();
        h.push(0, store_write(W, None, v0.clone(), Base::Fresh));
        h.push(
            1,
            store_write(Actor::Operator, Some(v0), disabled.clone(), Base::Fresh),
        );
        h.push(2, Record::StoreWiped);
        // A worker partitioned since before the override refills the store with its epoch-0
        // branch (it never heard of the override).
        h.push(3, store_write(OTHER, None, lagging.clone(), Base::Fresh));
        // The override's state is written back over it (P3): legal.
        h.push(
            4,
            store_write(
                W,
                Some(lagging.clone()),
                mine.clone(),
                Base::Known(disabled.clone()),
            ),
        );
        // The epoch-0 branch written over the override (seed 305's class): a lost update.
        h.push(
            5,
            store_write(
                OTHER,
                Some(mine.clone()),
                id(9, CircuitState::Closed, "w1.1"),
                Base::Known(lagging.clone()),
            ),
        );
        let found = check_linear_history(&h);
        let indexes: Vec<usize> = found.iter().map(|v| v.index).collect();
        assert_eq!(indexes, vec![5], "{found:?}");

        // An override whose epoch began before the replaced one (an operator clock behind:
        // epoch 90 written after 100) is not written back over it.
        let later = at(90, 1, CircuitState::Closed, "operator");
        let mut h = History::default();
        h.push(
            0,
            store_write(Actor::Operator, None, disabled.clone(), Base::Fresh),
        );
        h.push(1, Record::StoreWiped);
        h.push(
            2,
            store_write(Actor::Operator, None, later.clone(), Base::Fresh),
        );
        h.push(
            3,
            store_write(W, Some(later), mine.clone(), Base::Known(disabled.clone())),
        );
        let found = check_linear_history(&h);
        assert_eq!(found.len(), 1, "{found:?}");

        // Without a wipe since the override nothing explains an earlier epoch in the store:
        // still a lost update.
        let mut h = History::default();
        h.push(
            0,
            store_write(Actor::Operator, None, disabled.clone(), Base::Fresh),
        );
        h.push(1, store_write(OTHER, None, lagging.clone(), Base::Fresh));
        h.push(
            2,
            store_write(W, Some(lagging), mine, Base::Known(disabled)),
        );
        let found = check_linear_history(&h);
        assert_eq!(found.len(), 1, "{found:?}");
    }

    /// Seeds 29056 and 30748: after a wipe a worker's branch that forked before the writer's
    /// base is stored; the writer's history (from before the wipe) is written back over it.
    #[test]
    fn a_history_written_back_over_a_sibling_a_wipe_let_in_is_a_successor() {
        let third = Actor::Worker {
            slot: 2,
            incarnation: 0,
        };
        let v0 = id(0, CircuitState::Closed, "w0.0");
        let v1 = id(1, CircuitState::Open, "w0.0");
        let base = id(3, CircuitState::Open, "w0.0");
        let sibling = id(3, CircuitState::Closed, "w2.0");
        let mine = id(4, CircuitState::HalfOpen, "w0.0");
        let history = |wiped: bool| {
            let mut h = History::default();
            h.push(0, store_write(W, None, v0.clone(), Base::Fresh));
            h.push(
                1,
                store_write(W, Some(v0.clone()), v1.clone(), Base::Known(v0.clone())),
            );
            h.push(
                2,
                store_write(W, Some(v1.clone()), base.clone(), Base::Known(v1.clone())),
            );
            if wiped {
                h.push(3, Record::StoreWiped);
            }
            // A worker whose branch grew from v0 by itself (it adopted nothing since) stores
            // its v3 closed into the emptied store.
            h.push(
                4,
                store_write(third, None, sibling.clone(), Base::Known(v0.clone())),
            );
            h
        };
        let mut h = history(true);
        // The writer's v3 open is the store's revision with another state: its v4 goes out.
        h.push(
            5,
            store_write(
                W,
                Some(sibling.clone()),
                mine.clone(),
                Base::Known(base.clone()),
            ),
        );
        assert_eq!(check_linear_history(&h), vec![], "{h:#?}");

        // Not above what it replaces: a lost update.
        let mut h = history(true);
        h.push(
            5,
            store_write(
                W,
                Some(id(6, CircuitState::Closed, "w2.0")),
                mine.clone(),
                Base::Known(base.clone()),
            ),
        );
        assert_eq!(check_linear_history(&h).len(), 1);

        // No wipe since the writer's base was stored: nothing let a sibling in.
        let mut h = history(false);
        h.push(
            5,
            store_write(
                W,
                Some(sibling.clone()),
                mine.clone(),
                Base::Known(base.clone()),
            ),
        );
        assert_eq!(check_linear_history(&h).len(), 1);

        // After a wipe, a stored snapshot that descends from the writer's base is a decision
        // it did not see (seed 70's diverged branch, after a wipe): a lost update.
        let mut h = history(true);
        let fleet = id(5, CircuitState::Closed, "w1.0");
        h.push(
            5,
            store_write(OTHER, None, fleet.clone(), Base::Known(base.clone())),
        );
        h.push(
            6,
            store_write(
                W,
                Some(fleet),
                id(6, CircuitState::Open, "w0.0"),
                Base::Known(base),
            ),
        );
        let found = check_linear_history(&h);
        let indexes: Vec<usize> = found.iter().map(|v| v.index).collect();
        assert_eq!(indexes, vec![6], "{found:?}");
    }

    #[test]
    fn leaving_an_acknowledged_override_without_an_operator_is_reported() {
        let mut h = History::default();
        h.push(
            0,
            Record::OperatorAction {
                id: 1,
                provider: "p".into(),
                state: CircuitState::ForcedOpen,
            },
        );
        h.push(
            1,
            Record::OperatorAck {
                id: 1,
                provider: "p".into(),
                state: CircuitState::ForcedOpen,
                version: 3,
            },
        );
        h.push(
            2,
            Record::Seen {
                worker: W,
                provider: "p".into(),
                version: 3,
                state: Some(CircuitState::ForcedOpen),
                via: "operator".into(),
            },
        );
        h.push(
            3,
            Record::Seen {
                worker: W,
                provider: "p".into(),
                version: 4,
                state: Some(CircuitState::Closed),
                via: "python".into(),
            },
        );
        h.push(
            4,
            Record::OperatorAction {
                id: 2,
                provider: "p".into(),
                state: CircuitState::Closed,
            },
        );
        h.push(
            5,
            Record::Seen {
                worker: W,
                provider: "p".into(),
                version: 5,
                state: Some(CircuitState::Closed),
                via: "operator".into(),
            },
        );
        let found = check_operator_precedence(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].index, 3);
    }

    #[test]
    fn concurrent_probes_beyond_the_budget_are_reported_sequential_ones_are_not() {
        let other = Actor::Worker {
            slot: 1,
            incarnation: 0,
        };
        let admit = |w, synced| Record::ProbeAdmitted {
            worker: w,
            provider: "p".into(),
            version: 2,
            synced,
        };
        let settle = |w, admitted| Record::ProbeSettled {
            worker: w,
            provider: "p".into(),
            version: 2,
            admitted,
        };
        let mut h = History::default();
        h.push(0, admit(W, true));
        h.push(1, settle(W, 0));
        h.push(2, admit(other, true));
        h.push(3, admit(W, false));
        assert!(check_probe_budget(&h, 1, 3000).is_empty());
        h.push(4, admit(W, true));
        assert_eq!(check_probe_budget(&h, 1, 3000).len(), 1);
    }

    #[test]
    fn a_settlement_frees_the_probe_it_names_not_the_oldest_of_its_worker() {
        let admit = probe_of(W);
        let settle = |admitted| Record::ProbeSettled {
            worker: W,
            provider: "p".into(),
            version: 2,
            admitted,
        };
        let lock = lease_held(W);
        // A probe of the lease a wipe forgot (#0) still runs while the worker, holding the
        // next lease, probes (#3) and settles that probe: its next probe (#5) is the only one
        // of the new lease in flight (seed 44920 was reported: the checker freed #0 instead).
        let run = |settled: usize| {
            let mut h = History::default();
            h.push(0, admit.clone());
            h.push(100, Record::StoreWiped);
            h.push(150, lock.clone());
            h.push(3000, admit.clone());
            h.push(3100, settle(settled));
            h.push(3200, admit.clone());
            check_probe_budget(&h, 1, 3000)
        };
        assert!(run(3).is_empty(), "{:?}", run(3));
        // Had the old probe settled instead, two of the new lease's would be in flight.
        assert_eq!(run(0).len(), 1);
    }

    #[test]
    fn a_lapsed_lease_frees_its_probes_only_when_its_holder_could_not_keep_it() {
        let (other, admit) = (W1, probe_of);
        let granted = |w| Record::LeaseGranted {
            worker: w,
            provider: "p".into(),
        };
        let confirmed = lease_held(W);
        let extension = Record::LockCalled {
            worker: W,
            provider: "p".into(),
            op: "extend_lock",
        };
        // W holds the lease (TTL 3 s) and probes; then `between` happens; its lease
        // expires unreleased and the other worker takes it and probes the same period.
        let run = |between: &[Record]| {
            let mut h = History::default();
            h.push(0, granted(W));
            h.push(0, confirmed.clone());
            h.push(100, admit(W));
            for record in between {
                h.push(1500, record.clone());
            }
            h.push(3100, granted(other));
            h.push(3150, admit(other));
            check_probe_budget(&h, 1, 3000)
        };
        // Case 1: its extensions failed (unreachable, or timing out): not counted.
        assert!(run(std::slice::from_ref(&extension)).is_empty());
        // A holder that never tried to keep its lease while its probe ran is a defect,
        // whether its period ran (seed 1204) or had ended there, unstored (seed 22637); so is
        // one answered, and one that released a lease its probe ran under.
        let ended = Record::Transition {
            worker: W,
            provider: "p".into(),
            from: CircuitState::HalfOpen,
            to: CircuitState::Open,
            version: 3,
            reason: "ProbeFailed".into(),
        };
        assert_eq!(run(&[ended]).len(), 1);
        assert_eq!(run(&[]).len(), 1);
        assert_eq!(run(&[extension.clone(), confirmed.clone()]).len(), 1);
        let released = Record::LeaseReleased {
            worker: W,
            provider: "p".into(),
        };
        assert_eq!(run(&[extension.clone(), released]).len(), 1);
        // An extension sent only after the lease's TTL ran out is no evidence either.
        let mut h = History::default();
        h.push(0, granted(W));
        h.push(0, confirmed.clone());
        h.push(100, admit(W));
        h.push(3050, extension);
        h.push(3100, granted(other));
        h.push(3150, admit(other));
        assert_eq!(check_probe_budget(&h, 1, 3000).len(), 1);
    }

    #[test]
    fn probes_on_a_forgotten_lease_count_apart_only_until_their_credits_are_void() {
        let (other, admit, lock) = (W1, probe_of, lease_held);
        // TTL 3 s: credits not confirmed since before the wipe are void 2 s after it.
        let wiped = |late: u64, locked: bool| {
            let mut h = History::default();
            h.push(0, lock(W));
            h.push(100, Record::StoreWiped);
            h.push(150, lock(other));
            h.push(200, admit(other));
            if locked {
                h.push(250, lock(W));
            }
            h.push(300 + late, admit(W));
            check_probe_budget(&h, 1, 3000)
        };
        // The old holder spends its credit before it can know of the wipe: not counted
        // with the new lease's probe (seed 3646).
        assert!(wiped(0, false).is_empty());
        // A lock call about another provider tells the worker nothing of this lease (seed
        // 62594 was reported: the checker keyed lock calls by worker alone).
        let mut h = History::default();
        h.push(0, lock(W));
        h.push(100, Record::StoreWiped);
        h.push(150, lock(other));
        h.push(200, admit(other));
        h.push(
            250,
            Record::LockAnswered {
                worker: W,
                provider: "q".into(),
                held: true,
            },
        );
        h.push(300, admit(W));
        assert!(check_probe_budget(&h, 1, 3000).is_empty());
        // Still flagged: a credit spent after it must have been revoked, or one taken after
        // a lock call answered since the wipe.
        assert_eq!(wiped(1800, false).len(), 1);
        assert_eq!(wiped(0, true).len(), 1);
        // Two wipes in a row: a credit of a lease from before the first counts with that
        // lease's probes, not with those of a lease taken between the wipes (seed 67492).
        let mut h = History::default();
        h.push(0, lock(other));
        h.push(50, admit(other));
        h.push(100, Record::StoreWiped);
        h.push(150, lock(W));
        h.push(200, Record::StoreWiped);
        h.push(250, admit(W));
        h.push(300, admit(other));
        let found = check_probe_budget(&h, 1, 3000);
        assert_eq!(found.len(), 1, "{found:?}");
        // The old lease's two probes, not the newer lease's one beside the old lease's last.
        assert!(found[0].message.ends_with(": w1.0x2"), "{found:?}");
        // And the forgotten lease's own budget still holds.
        let mut h = History::default();
        h.push(0, admit(W));
        h.push(100, Record::StoreWiped);
        h.push(200, admit(W));
        let found = check_probe_budget(&h, 1, 3000);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("forgot"), "{found:?}");
    }

    #[test]
    fn failures_reported_under_a_later_version_are_reported() {
        let mut h = History::default();
        h.push(
            0,
            Record::Outcome {
                worker: W,
                provider: "p".into(),
                version: 5,
                failure: true,
                counted: true,
            },
        );
        h.push(
            1,
            Record::OutcomesPublished {
                worker: W,
                provider: "p".into(),
                version: Some(6),
                failures: 1,
                successes: 0,
            },
        );
        assert_eq!(check_outcome_periods(&h).len(), 1);
    }

    #[test]
    fn a_report_counted_twice_is_reported_as_such() {
        let mut h = History::default();
        let failure = Record::Outcome {
            worker: W,
            provider: "p".into(),
            version: 0,
            failure: true,
            counted: true,
        };
        let report = |failures| Record::OutcomesPublished {
            worker: W,
            provider: "p".into(),
            version: Some(0),
            failures,
            successes: 0,
        };
        h.push(0, failure.clone());
        h.push(1, report(1));
        h.push(2, failure);
        // The first report's failure again, with the new one (seed 149's shape).
        h.push(3, report(2));
        let found = check_outcome_periods(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].index, 3);
        assert!(found[0].message.contains("counted twice"), "{found:?}");
    }

    /// Seeds 17686 and 23777: a report applied with its reply lost, then the store wiped (the
    /// counts and report ids with it), then the report sent again: counted once.
    #[test]
    fn a_report_sent_again_after_a_wipe_counts_once() {
        let failure = Record::Outcome {
            worker: W,
            provider: "p".into(),
            version: 0,
            failure: true,
            counted: true,
        };
        let report = |failures| Record::OutcomesPublished {
            worker: W,
            provider: "p".into(),
            version: Some(0),
            failures,
            successes: 0,
        };
        let mut h = History::default();
        h.push(0, failure.clone());
        h.push(1, report(1));
        h.push(2, failure.clone());
        h.push(3, report(1));
        h.push(4, Record::StoreWiped);
        // The last report again: its failure is in no count the store still holds.
        h.push(5, report(1));
        assert_eq!(check_outcome_periods(&h), vec![], "{h:#?}");
        // Sent a third time, in the same store lifetime: counted twice.
        h.push(6, report(1));
        // After another wipe only the last report may come again, not both failures.
        h.push(7, Record::StoreWiped);
        h.push(8, report(2));
        let found = check_outcome_periods(&h);
        let indexes: Vec<usize> = found.iter().map(|v| v.index).collect();
        assert_eq!(indexes, vec![6, 8], "{found:?}");
    }

    fn mode(worker: Actor, mode: SyncState) -> Record {
        Record::SyncMode {
            worker,
            mode,
            reason: String::new(),
        }
    }

    #[test]
    fn leaving_open_before_the_latest_retry_after_is_reported() {
        let other = Actor::Worker {
            slot: 1,
            incarnation: 0,
        };
        let asked = |worker, until_ms| Record::RetryAfter {
            worker,
            provider: "p".into(),
            version: Some(5),
            until_ms,
        };
        let leave = |worker| Record::Transition {
            worker,
            provider: "p".into(),
            from: CircuitState::Open,
            to: CircuitState::HalfOpen,
            version: 6,
            reason: "Timeout".into(),
        };
        let mut h = History::default();
        h.push(0, mode(W, SyncState::Synced));
        h.push(0, mode(other, SyncState::Synced));
        // A tie: W asks until 2 s, the other worker until 30 s.
        h.push(10, asked(W, 2_000));
        h.push(12, asked(other, 30_000));
        // W leaves at its own 2 s deadline, the other worker at 30 s: W's is the violation.
        h.push(2_010, leave(W));
        h.push(30_010, leave(other));
        let found = check_retry_after_deadlines(&h);
        assert_eq!(
            found.iter().map(|v| v.index).collect::<Vec<_>>(),
            vec![4],
            "{found:?}"
        );
        // Within the slack, and after an operator action, nothing is reported.
        let mut h = History::default();
        h.push(0, mode(W, SyncState::Synced));
        h.push(10, asked(other, 30_000));
        h.push(29_900, leave(W));
        h.push(
            29_950,
            Record::OperatorAction {
                id: 1,
                provider: "p".into(),
                state: CircuitState::Closed,
            },
        );
        h.push(30_000, asked(W, 60_000));
        h.push(
            30_001,
            Record::OperatorAction {
                id: 2,
                provider: "p".into(),
                state: CircuitState::Closed,
            },
        );
        h.push(31_000, leave(W));
        assert!(check_retry_after_deadlines(&h).is_empty());
        // Nor when a worker was not in step (a view fault) when the request was made.
        let mut h = History::default();
        h.push(0, mode(W, SyncState::Synced));
        h.push(5, Record::Impaired { slot: 1, on: true });
        h.push(10, asked(other, 30_000));
        h.push(2_010, leave(W));
        assert!(check_retry_after_deadlines(&h).is_empty());
        // Seed 43985: after a wipe, a worker that refilled the store asks until 30 s; W, running
        // at the wipe, has not read the store since and leaves at its own deadline: not judged.
        // Once W has read the store, a request is judged again.
        let reread = Record::BackendCall {
            worker: W,
            op: "get_states",
            ok: true,
        };
        let mut h = History::default();
        h.push(0, mode(W, SyncState::Synced));
        h.push(0, mode(other, SyncState::Synced));
        h.push(5, Record::StoreWiped);
        h.push(
            6,
            Record::BackendCall {
                worker: other,
                op: "get_states",
                ok: true,
            },
        );
        h.push(10, asked(other, 30_000));
        h.push(2_010, leave(W));
        assert!(check_retry_after_deadlines(&h).is_empty());
        h.push(
            2_020,
            Record::BackendCall {
                worker: W,
                op: "get_states",
                ok: false,
            },
        );
        h.push(2_030, asked(other, 40_000));
        h.push(3_000, leave(W));
        assert!(check_retry_after_deadlines(&h).is_empty());
        h.push(3_010, reread);
        h.push(3_020, asked(other, 50_000));
        h.push(4_000, leave(W));
        let found = check_retry_after_deadlines(&h);
        assert_eq!(
            found.iter().map(|v| v.index).collect::<Vec<_>>(),
            vec![h.entries.len() - 1],
            "{found:?}"
        );
    }

    #[test]
    fn degrading_or_recovering_without_the_evidence_is_reported() {
        let call = |ok| Record::BackendCall {
            worker: W,
            op: "heartbeat",
            ok,
        };
        let mut h = History::default();
        h.push(0, Record::Started { worker: W });
        h.push(0, call(true));
        h.push(0, mode(W, SyncState::Synced));
        // Two failures in a row, a best-effort one between: degrading is premature (#3).
        h.push(1, call(false));
        h.push(
            1,
            Record::BackendCall {
                worker: W,
                op: "release_lock",
                ok: false,
            },
        );
        h.push(2, call(false));
        h.push(3, mode(W, SyncState::Degraded));
        // One success: recovering is premature (#6).
        h.push(4, call(true));
        h.push(5, mode(W, SyncState::Synced));
        // Three failures: degrading is right; two successes: so is recovering.
        for at in 6..9 {
            h.push(at, call(false));
        }
        h.push(9, mode(W, SyncState::Degraded));
        h.push(10, call(true));
        h.push(11, call(true));
        h.push(12, mode(W, SyncState::Synced));
        // A dropped subscription degrades at once; synced while still down is wrong (#20).
        h.push(
            13,
            Record::Subscription {
                worker: W,
                connected: false,
            },
        );
        h.push(14, mode(W, SyncState::Degraded));
        h.push(15, call(true));
        h.push(15, call(true));
        h.push(16, mode(W, SyncState::Synced));
        h.push(
            17,
            Record::FinalMode {
                worker: W,
                mode: SyncState::Degraded,
            },
        );
        let found = check_degrade_on_evidence(&h);
        assert_eq!(
            found.iter().map(|v| v.index).collect::<Vec<_>>(),
            vec![6, 8, 20, 21],
            "{found:?}"
        );
    }

    #[test]
    fn a_disconnection_still_queued_or_replaced_by_a_new_subscription_is_not_reported() {
        let call = |op, ok| Record::BackendCall { worker: W, op, ok };
        let dropped = Record::Subscription {
            worker: W,
            connected: false,
        };
        let lost = || Record::SyncMode {
            worker: W,
            mode: SyncState::Degraded,
            reason: "event subscription disconnected".into(),
        };
        let mut h = History::default();
        h.push(0, Record::Started { worker: W });
        h.push(0, call("subscribe", true));
        h.push(0, mode(W, SyncState::Synced));
        h.push(1, dropped.clone());
        h.push(2, lost());
        // A reconcile for an earlier gap ends after the next `Disconnected` was queued
        // (seed 5315): synced, then degraded as soon as the manager reads it.
        h.push(3, dropped.clone());
        h.push(4, call("get_states", true));
        h.push(4, call("get_states", true));
        h.push(5, mode(W, SyncState::Synced));
        h.push(6, lost());
        // Disconnected, Resubscribed, both queued while the manager waits on a hung call:
        // it reports synced before reading either, then degrades for the first (31828).
        h.push(6, dropped.clone());
        h.push(
            6,
            Record::Subscription {
                worker: W,
                connected: true,
            },
        );
        h.push(6, call("get_states", true));
        h.push(6, call("get_states", true));
        h.push(6, mode(W, SyncState::Synced));
        h.push(6, lost());
        // A new subscription replaces the dropped one (seed 5127).
        h.push(7, call("subscribe", true));
        h.push(7, call("get_states", true));
        h.push(8, mode(W, SyncState::Synced));
        let found = check_degrade_on_evidence(&h);
        assert!(found.is_empty(), "{found:?}");
        // Synced while down and never degraded for it: reported, at the synced record.
        h.push(9, dropped);
        h.push(10, call("get_states", true));
        h.push(10, call("get_states", true));
        h.push(11, mode(W, SyncState::Degraded));
        h.push(12, call("get_states", true));
        h.push(12, call("get_states", true));
        h.push(13, mode(W, SyncState::Synced));
        let found = check_degrade_on_evidence(&h);
        assert_eq!(
            found.iter().map(|v| v.index).collect::<Vec<_>>(),
            vec![h.entries.len() - 1],
            "{found:?}"
        );
    }

    /// Seed 31828: a `Disconnected` and the `Resubscribed` after it are both still queued
    /// when a degraded manager recovers on store calls; it reads the disconnection next.
    #[test]
    fn a_disconnection_read_after_the_resubscription_was_delivered_is_evidence() {
        let call = |op, ok| Record::BackendCall { worker: W, op, ok };
        let subscription = |connected| Record::Subscription {
            worker: W,
            connected,
        };
        let lost = || Record::SyncMode {
            worker: W,
            mode: SyncState::Degraded,
            reason: "event subscription disconnected".into(),
        };
        let recover = |h: &mut History, at| {
            h.push(at, call("get_states", true));
            h.push(at, call("get_states", true));
            h.push(at, mode(W, SyncState::Synced));
        };
        let mut h = History::default();
        h.push(0, Record::Started { worker: W });
        h.push(0, call("subscribe", true));
        h.push(0, mode(W, SyncState::Synced));
        for _ in 0..3 {
            h.push(1, call("storming", false));
        }
        h.push(1, mode(W, SyncState::Degraded));
        h.push(2, subscription(false));
        h.push(3, subscription(true));
        recover(&mut h, 4);
        h.push(5, lost());
        assert_eq!(check_degrade_on_evidence(&h), vec![], "{h:#?}");
        // That disconnection was read: degrading for it again is without evidence.
        h.push(6, subscription(true));
        recover(&mut h, 7);
        h.push(8, lost());
        let once = h.entries.len() - 1;
        // A disconnection the manager showed it read (it degraded for it) before it was
        // resubscribed gives no second degrade either.
        h.push(9, subscription(false));
        h.push(10, lost());
        h.push(11, subscription(true));
        recover(&mut h, 12);
        h.push(13, lost());
        let found = check_degrade_on_evidence(&h);
        assert_eq!(
            found.iter().map(|v| v.index).collect::<Vec<_>>(),
            vec![once, h.entries.len() - 1],
            "{found:?}"
        );
    }

    #[test]
    fn a_worker_stuck_half_open_or_apart_from_the_store_fails_liveness() {
        let mut h = History::default();
        h.push(
            0,
            Record::Final {
                worker: W,
                provider: "p".into(),
                state: CircuitState::HalfOpen,
                version: 4,
                stored: Some(id(4, CircuitState::HalfOpen, "w0.0")),
                expected: CircuitState::Closed,
            },
        );
        h.push(
            1,
            Record::Final {
                worker: W,
                provider: "q".into(),
                state: CircuitState::Closed,
                version: 4,
                stored: Some(id(5, CircuitState::Closed, "w1.0")),
                expected: CircuitState::Closed,
            },
        );
        h.push(
            2,
            Record::Final {
                worker: W,
                provider: "r".into(),
                state: CircuitState::Closed,
                version: 4,
                stored: Some(id(4, CircuitState::Closed, "w1.0")),
                expected: CircuitState::Closed,
            },
        );
        let found = check_liveness(&h);
        assert_eq!(
            found.iter().map(|v| v.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
    }
}
