//! `X-Hub-Signature-256` checking on hostile input: any header bytes, any body, any
//! secret. `verify` must answer (never panic), a signature made by `sign` must always
//! verify, and an accepted header must be exactly that signature (hex in either case,
//! surrounding whitespace trimmed): nothing else may pass.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stagehand::core::signature::{SignatureError, sign, verify};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secret: &'a [u8],
    header: Option<&'a [u8]>,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let Input {
        secret,
        header,
        body,
    } = input;
    let genuine = sign(secret, body);

    let answer = verify(secret, header, body);
    match header {
        None => assert_eq!(answer, Err(SignatureError::Missing)),
        Some(bytes) if answer.is_ok() => {
            let trimmed = bytes.trim_ascii();
            assert!(
                trimmed.eq_ignore_ascii_case(genuine.as_bytes()),
                "accepted {bytes:?}, the genuine signature is {genuine}"
            );
        }
        Some(_) => {}
    }

    assert_eq!(verify(secret, Some(genuine.as_bytes()), body), Ok(()));
    // Flipping one bit of the body must break the signature.
    if let Some((first, rest)) = body.split_first() {
        let mut tampered = Vec::with_capacity(body.len());
        tampered.push(first ^ 1);
        tampered.extend_from_slice(rest);
        assert_eq!(
            verify(secret, Some(genuine.as_bytes()), &tampered),
            Err(SignatureError::Mismatch)
        );
    }
});
