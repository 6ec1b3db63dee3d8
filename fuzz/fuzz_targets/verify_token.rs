//! Fuzzes `shared::Verifier` (HS256, issuer and audience required) with three views of each input:
//!
//! 1. the input as a token string (lossy UTF-8) to `verify`;
//! 2. the same as an `Authorization: Bearer <input>` header to `verify_bearer`;
//! 3. structured: the input split at NUL bytes into `header \0 payload [\0 signature]`, each part
//!    base64url-encoded into `header.payload.signature`, so the fuzzer reaches the JSON parsing of
//!    the header and claims. Without a third part the token is signed with the verifier's own
//!    secret, so claim validation (exp, nbf, iss, aud, sub) is fuzzed behind a good signature.
//!
//! Never panics; whenever verification succeeds, the identity's user id must be the `sub` inside
//! the token's payload, and the payload must name the configured issuer and audience.

#![no_main]

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::{auth::AuthError, Identity};
use shared_fuzz::{b64, fixture, AUDIENCE, ISSUER};

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let text = String::from_utf8_lossy(data);

    let raw = fx.rt.block_on(fx.verifier.verify(&text));
    check(&text, raw);

    // `verify_bearer` trims the header and then the token, so `text.trim()` is what it verifies.
    let header = format!("Bearer {text}");
    let bearer = fx.rt.block_on(fx.verifier.verify_bearer(Some(&header)));
    check(text.trim(), bearer);

    let token = structured(data);
    let result = fx.rt.block_on(fx.verifier.verify(&token));
    check(&token, result);
});

/// `header \0 payload [\0 signature]` -> `b64(header).b64(payload).signature`.
fn structured(data: &[u8]) -> String {
    let mut parts = data.splitn(3, |&b| b == 0);
    let header = parts.next().unwrap_or_default();
    let payload = parts.next().unwrap_or_default();
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature = match parts.next() {
        Some(signature) => b64(signature),
        None => jsonwebtoken::crypto::sign(message.as_bytes(), &fixture().signing_key, jsonwebtoken::Algorithm::HS256)
            .expect("HS256 signing with a byte secret cannot fail"),
    };
    format!("{message}.{signature}")
}

fn check(token: &str, result: Result<Identity, AuthError>) {
    let Ok(identity) = result else { return };
    // jsonwebtoken splits from the right: signature after the last '.', payload before it.
    let claims = token
        .rsplitn(3, '.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok());
    let Some(Value::Object(claims)) = claims else {
        panic!("verified a token whose payload is not a base64url JSON object: {token:?} -> {identity:?}");
    };
    let sub = claims.get("sub").and_then(Value::as_str);
    assert_eq!(
        Some(identity.user_id()),
        sub,
        "verified identity is not the payload's sub: token {token:?}, claims {claims:?}"
    );
    for (claim, expected) in [("iss", ISSUER), ("aud", AUDIENCE)] {
        let names_it = match claims.get(claim) {
            Some(Value::String(s)) => s == expected,
            Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(expected)),
            _ => false,
        };
        assert!(names_it, "verified a token whose {claim} is not {expected:?}: token {token:?}, claims {claims:?}");
    }
}
