//! Fuzzes `shared::cursor::CursorCodec` with two views of each input:
//!
//! 1. the input (lossy UTF-8) as a cursor to `decode`, for the fuzz user and list, and for another
//!    user and another list. The tag is 16 bytes of HMAC-SHA256, so an input the codec did not
//!    mint must never decode: a success is only allowed when the input is exactly the cursor
//!    `encode` makes for the decoded key (a genuine cursor, e.g. the seed, replayed unchanged).
//!    Anything else decoding means a forged or malleable cursor, and panics.
//! 2. round trip: the input split at NUL bytes into a few lossy-UTF-8 chunks, paired into a
//!    `CursorKey`; `encode` then `decode` must give the same key back, and the cursor must not
//!    decode for another user or another list.
//!
//! Never panics otherwise.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::cursor::CursorKey;
use shared_fuzz::{fixture, OTHER_SCOPE, SCOPE};

/// `decode` refuses cursors longer than this (`shared::cursor::MAX_CURSOR_LEN`, private).
const MAX_CURSOR_LEN: usize = 2048;
const MAX_CHUNKS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let text = String::from_utf8_lossy(data);

    for (scope, who) in [(SCOPE, &fx.identity), (OTHER_SCOPE, &fx.identity), (SCOPE, &fx.other)] {
        if let Ok(key) = fx.codec.decode(scope, who, &text) {
            let genuine = fx.codec.encode(scope, who, &key);
            assert!(
                genuine == text,
                "decode accepted a cursor encode never made (forged or malleable HMAC tag): \
                 input {text:?} decoded for ({scope:?}, {:?}) to {key:?}; the genuine cursor is {genuine:?}",
                who.user_id()
            );
        }
    }

    let key = cursor_key(data);
    let cursor = fx.codec.encode(SCOPE, &fx.identity, &key);
    let decoded = fx.codec.decode(SCOPE, &fx.identity, &cursor);
    if cursor.len() > MAX_CURSOR_LEN {
        // A documented limit: the codec refuses what it mints for keys this long.
        assert!(decoded.is_err(), "cursor of {} chars over the {MAX_CURSOR_LEN} limit decoded", cursor.len());
        return;
    }
    match decoded {
        Ok(back) => assert_eq!(back, key, "round trip changed the key; cursor {cursor:?}"),
        Err(e) => panic!("cursor minted by encode does not decode: key {key:?}, cursor {cursor:?}: {e:?}"),
    }
    assert!(fx.codec.decode(OTHER_SCOPE, &fx.identity, &cursor).is_err(), "cursor decoded for another list");
    assert!(fx.codec.decode(SCOPE, &fx.other, &cursor).is_err(), "cursor decoded for another user");
});

/// Up to [`MAX_CHUNKS`] NUL-separated lossy-UTF-8 chunks, paired as key, value (a lone last
/// chunk is a key with an empty value).
fn cursor_key(data: &[u8]) -> CursorKey {
    let mut chunks = data.split(|&b| b == 0).take(MAX_CHUNKS).map(|c| String::from_utf8_lossy(c).into_owned());
    let mut key = CursorKey::new();
    while let Some(name) = chunks.next() {
        key.insert(name, chunks.next().unwrap_or_default());
    }
    key
}
