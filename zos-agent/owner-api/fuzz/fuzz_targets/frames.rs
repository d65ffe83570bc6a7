//! The owner API's frames as a peer sends them: the node reads a `SignedRequest` then
//! `ClientFrame`s from anyone who completes a handshake, and the client reads `ServerFrame`s
//! from whatever answers at a node's endpoint. Arbitrary bytes must give values or an error,
//! never a panic, and never an allocation sized by a length the peer wrote rather than bytes it
//! sent (the frame limit is checked before the body is read).
#![no_main]

use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;
use zos_owner_api::{
    request::now_ms,
    wire::{read_frame, MAX_DATA_FRAME, MAX_REQUEST_FRAME},
    ClientFrame, ServerFrame, SignedRequest,
};

fuzz_target!(|data: &[u8]| {
    // First byte: which side's stream this is.
    let Some((&side, data)) = data.split_first() else {
        return;
    };
    let mut stream = futures::io::Cursor::new(data);
    block_on(async {
        match side % 3 {
            // The node: one request, then the exec input.
            0 => {
                let Ok(request) = read_frame::<_, SignedRequest>(&mut stream, MAX_REQUEST_FRAME).await
                else {
                    return;
                };
                assert!(request.encoded_size() <= MAX_REQUEST_FRAME as usize);
                let _ = request.signature_is_valid();
                let _ = request.is_fresh(now_ms());
                while let Ok(frame) = read_frame::<_, ClientFrame>(&mut stream, MAX_DATA_FRAME).await {
                    assert!(frame.encoded_size() <= MAX_DATA_FRAME as usize);
                }
            }
            1 => while read_frame::<_, ClientFrame>(&mut stream, MAX_DATA_FRAME).await.is_ok() {},
            // The client: a node's answer.
            _ => {
                while let Ok(frame) = read_frame::<_, ServerFrame>(&mut stream, MAX_DATA_FRAME).await {
                    assert!(frame.encoded_size() <= MAX_DATA_FRAME as usize);
                }
            }
        }
    });
});
