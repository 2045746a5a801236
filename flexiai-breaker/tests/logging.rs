//! The hot path never logs (issue 12 defect 9): admission, settling and the transitions they
//! make write nothing to `tracing` on the caller's thread.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod common;

use std::time::Duration;

use common::{SEC, config, fail, rig, succeed};
use flexiai_breaker::CircuitState;
use flexiai_testkit::LogCapture;

#[test]
fn breaker_made_transitions_log_nothing_on_the_callers_thread() {
    let r = rig(config(2, 10));
    let b = &r.breaker;
    let logs = LogCapture::start();
    // Every kind of transition the hot path and the controls make, on this thread.
    fail(b, 2); // closed -> open (failure threshold)
    assert!(b.try_acquire().is_err());
    r.clock.advance(10 * SEC);
    b.try_acquire().unwrap().failure(); // open -> half-open (admission), half-open -> open
    r.clock.advance(20 * SEC);
    assert_eq!(b.poll(), CircuitState::HalfOpen); // open -> half-open (poll)
    succeed(b, 1); // half-open -> closed
    b.open_for(Duration::from_secs(5)); // closed -> open (Retry-After)
    b.force_open();
    b.disable();
    b.reset();
    assert!(b.absorb_remote_outcomes(2, 0)); // closed -> open (remote failures)
    assert_eq!(b.version(), 10);
    assert_eq!(r.rec.transitions().len(), 10, "every transition was made");
    // The capture works: a line logged here shows up, and it is the only one.
    tracing::info!("marker after the transitions");
    let text = logs.text();
    assert_eq!(
        text.lines().count(),
        1,
        "the breaker logged on the caller's thread:\n{text}"
    );
    assert!(text.contains("marker after the transitions"), "{text}");
}
