//! Signed-frame decoding with a key configured: nothing the fuzzer makes without the key
//! may decode (it would be a forgery), and nothing may panic. The input is also tried with
//! the fleet's key id spliced in, so the MAC check itself is exercised.
#![no_main]

use std::sync::LazyLock;

use flexiai_serde::{EventAuth, MacKey, SIGNED_FRAME_MARKER, StateSerializer};
use libfuzzer_sys::fuzz_target;

static SIGNED: LazyLock<StateSerializer> = LazyLock::new(|| {
    let key = MacKey::new("fuzzing key, never a real secret").expect("valid key");
    StateSerializer::default().with_auth(EventAuth::new(key))
});

fuzz_target!(|data: &[u8]| {
    let serializer = &*SIGNED;
    assert!(
        serializer
            .deserialize_event_on("flexiai:events", data)
            .is_err()
    );
    assert!(
        serializer
            .deserialize_state_for("flexiai:state:p", data)
            .is_err()
    );
    let key_id = serializer.auth().expect("auth").current_key_id().as_bytes();
    let mut framed = vec![SIGNED_FRAME_MARKER, 1];
    framed.extend_from_slice(key_id);
    framed.extend_from_slice(data);
    assert!(
        serializer
            .deserialize_event_on("flexiai:events", &framed)
            .is_err()
    );
    // The unkeyed reader must refuse signed frames without panicking.
    let _ = StateSerializer::default().deserialize_event(&framed);
});
