//! Fuzzes the frame reader on arbitrary streams: it must never panic, and every body it
//! returns must be decodable or refused by the unpickler without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use snex_core::frame::FrameReader;
use snex_core::pickle;

fuzz_target!(|data: &[u8]| {
    let mut reader = FrameReader::new(data);
    while let Ok(Some(frame)) = reader.read_frame() {
        let _ = pickle::validate(&frame.body);
    }
});
