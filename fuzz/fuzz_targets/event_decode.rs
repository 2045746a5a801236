//! Event decoding, both formats, unsigned reader: any bytes give `Ok` or a typed error.
#![no_main]

use flexiai_serde::{Codec, JsonCodec, MessagePackCodec, StateSerializer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = StateSerializer::default().deserialize_event(data) {
        // Whatever decodes is valid and re-encodes.
        assert!(event.validate().is_ok());
        let _ = StateSerializer::default().serialize_event(&event);
    }
    // The raw codecs, without the size check or format detection in front.
    let _ = JsonCodec.decode_event(data);
    let _ = MessagePackCodec.decode_event(data);
});
