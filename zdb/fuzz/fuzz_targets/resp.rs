//! RESP request parser (`zdb::resp::RequestParser`): arbitrary bytes from a client, fed in
//! arbitrary pieces, must give requests, "need more" or a `ProtocolError`, never a panic, and
//! memory bounded by the limits.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zdb::resp::{Limits, Request, RequestParser};

fuzz_target!(|data: &[u8]| {
    // First byte: how the stream is cut into reads (1..=64 bytes each, or all at once) and
    // whether to use the server's default limits or tiny ones (to reach `TooLarge` paths).
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let limits = if control & 0x80 == 0 {
        Limits::default()
    } else {
        Limits {
            max_args: 4,
            max_arg_len: 8,
            max_request_len: 16,
            max_inline_len: 16,
        }
    };
    let piece = match usize::from(control & 0x3f) {
        0 => data.len().max(1),
        n => n,
    };
    let mut parser = RequestParser::new(limits);
    let mut buf = BytesMut::new();
    for chunk in data.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let _ = parser.in_progress(&buf);
            assert!(parser.bulk_bytes_missing(&buf) <= zdb::resp::HARD_BULK_CAP + 2);
            match parser.next(&mut buf) {
                Ok(Some(Request::Command(args))) => {
                    assert!(args.len() <= limits.max_args.max(1));
                    let total: usize = args.iter().map(|a| a.len()).sum();
                    assert!(total <= limits.max_request_len.max(limits.max_inline_len));
                }
                Ok(Some(Request::TooLarge | Request::Empty)) => {}
                Ok(None) => break,
                Err(_) => return, // the server closes the connection
            }
        }
    }
});
