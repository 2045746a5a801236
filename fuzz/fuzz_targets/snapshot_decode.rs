//! Stored-snapshot decoding, both formats: any bytes give `Ok` or a typed error.
#![no_main]

use flexiai_serde::{Codec, JsonCodec, MessagePackCodec, StateSerializer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = StateSerializer::default().deserialize_state(data) {
        let _ = StateSerializer::default().serialize_state(&snapshot);
    }
    let _ = JsonCodec.decode_snapshot(data);
    let _ = MessagePackCodec.decode_snapshot(data);
});
