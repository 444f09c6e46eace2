//! Header parsing never panics; whatever parses re-encodes to the same bytes.
#![no_main]
use kmseal::{Header, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, len)) = Header::parse(data, &Limits::default()) {
        assert_eq!(header.to_bytes(), &data[..len]);
        let mut reader = data;
        let streamed = Header::read_from(&mut reader, &Limits::default()).unwrap();
        assert_eq!(streamed, header);
    }
});
