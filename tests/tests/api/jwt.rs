//! The JWT attacks of RFC 8725, end to end: each token goes through API Gateway's event, the
//! real handler and the shared verifier, under both configurations a deployment can choose
//! (HS256 shared secret; RS256/ES256 keys from a JWKS URL). Every attack is a 401 that writes
//! nothing.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use integration_tests::{
    keys::{serve_jwks, Signer},
    Harness, User,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A token with a hand-made header, signed (or not) with `sign`.
fn handmade(header: Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(&header), b64(claims));
    let signature = URL_SAFE_NO_PAD.encode(sign(input.as_bytes()));
    format!("{input}.{signature}")
}

fn hmac(secret: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |input| {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        aws_lc_rs::hmac::sign(&key, input).as_ref().to_vec()
    }
}

fn tamper_sub(token: &str, sub: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!(sub);
    format!("{}.{}.{}", parts[0], b64(&claims), parts[2])
}

/// Sends each token to a read and a write route: all must be 401, and nothing written.
async fn assert_refused(h: &Harness, victims: &[&User], attacks: Vec<(&str, String)>) -> usize {
    let mut cases = 0;
    for (name, token) in attacks {
        let auth = vec![
            ("authorization".to_owned(), format!("Bearer {token}")),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        let read = h.send("GET", "/canvases", auth.clone(), None).await;
        let write = h.send("POST", "/canvases", auth, Some(br#"{"name": "forged"}"#)).await;
        for reply in [read, write] {
            assert_eq!(reply.status, 401, "{name}: {}", reply.text());
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{name}");
            cases += 1;
        }
    }
    for victim in victims {
        assert!(h.list_all(victim, "/canvases", 100).await.0.is_empty(), "an attack wrote for {}", victim.id);
    }
    cases
}

fn claims(h: &Harness, sub: &str) -> Value {
    let s = &h.stack.settings;
    json!({"sub": sub, "iss": s.issuer, "aud": s.audience, "exp": now() + 600, "iat": now()})
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(name);
    } else {
        claims[name] = value;
    }
    claims
}

#[tokio::test]
async fn hs256_deployment_refuses_every_attack() {
    let h = Harness::new().await;
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let secret = h.stack.settings.jwt_secret.clone().into_bytes();
    let good = claims(&h, &alice.id);
    let hs = |c: &Value| {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), c, &EncodingKey::from_secret(&secret)).unwrap()
    };
    // The real thing works, so a 401 below is the attack being refused, not a broken setup.
    assert_eq!(
        h.call(Some(&User { id: alice.id.clone(), token: hs(&good) }), "GET", "/canvases", None).await.status,
        200
    );

    let typ = |alg: &str| json!({"alg": alg, "typ": "JWT"});
    let attacks = vec![
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&good))),
        ("alg none, no signature part", format!("{}.{}", b64(&json!({"alg": "none"})), b64(&good))),
        (
            "HS512 not allowed",
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &good, &EncodingKey::from_secret(&secret)).unwrap(),
        ),
        (
            "wrong secret",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &good,
                &EncodingKey::from_secret(b"guessed-secret-guessed-secret-000"),
            )
            .unwrap(),
        ),
        ("expired", hs(&with(good.clone(), "exp", json!(now() - 3600)))),
        ("not yet valid", hs(&with(good.clone(), "nbf", json!(now() + 3600)))),
        ("wrong issuer", hs(&with(good.clone(), "iss", json!("https://evil.example")))),
        ("no issuer", hs(&with(good.clone(), "iss", Value::Null))),
        ("wrong audience", hs(&with(good.clone(), "aud", json!("another-api")))),
        ("no audience", hs(&with(good.clone(), "aud", Value::Null))),
        ("no expiry", hs(&with(good.clone(), "exp", Value::Null))),
        ("no subject", hs(&with(good.clone(), "sub", Value::Null))),
        ("empty subject", hs(&with(good.clone(), "sub", json!("")))),
        ("subject not a string", hs(&with(good.clone(), "sub", json!(42)))),
        ("tampered payload (sub swapped to bob)", tamper_sub(&hs(&good), &bob.id)),
        ("truncated signature", {
            let t = hs(&good);
            t[..t.len() - 6].to_owned()
        }),
        ("signature stripped", {
            let t = hs(&good);
            t[..t.rfind('.').unwrap() + 1].to_owned()
        }),
        (
            "jku header",
            handmade(json!({"alg": "HS256", "jku": "https://evil.example/jwks.json"}), &good, hmac(&secret)),
        ),
        ("x5u header", handmade(json!({"alg": "HS256", "x5u": "https://evil.example/cert.pem"}), &good, hmac(&secret))),
        (
            "embedded jwk",
            handmade(
                json!({"alg": "HS256", "jwk": {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(b"attacker-key")}}),
                &good,
                hmac(b"attacker-key"),
            ),
        ),
        ("crit header", handmade(json!({"alg": "HS256", "crit": ["exp"]}), &good, hmac(&secret))),
        ("RS256 token to an HS256 deployment", Signer::rsa("k1").sign(&good)),
        ("garbage", "a.b.c".to_owned()),
        ("header only", b64(&typ("HS256"))),
    ];
    let cases = assert_refused(&h, &[&alice, &bob], attacks).await;
    println!("JWT suite (HS256): {cases} refused requests");
}

#[tokio::test]
async fn jwks_deployment_refuses_every_attack() {
    let (rsa, ec) = (Signer::rsa("rsa-2026"), Signer::ec("ec-2026"));
    let url = serve_jwks(vec![rsa.jwk.clone(), ec.jwk.clone()]).await;
    let h = Harness::with(|s| s.jwks_url = Some(url)).await;
    let (alice_id, bob_id) = (format!("alice-{}", uuid::Uuid::now_v7()), format!("bob-{}", uuid::Uuid::now_v7()));
    let good = claims(&h, &alice_id);
    let alice = User { id: alice_id.clone(), token: rsa.sign(&good) };
    let bob = User { id: bob_id.clone(), token: ec.sign(&claims(&h, &bob_id)) };
    assert_eq!(h.call(Some(&alice), "GET", "/canvases", None).await.status, 200, "RS256 from the JWKS works");
    assert_eq!(h.call(Some(&bob), "GET", "/canvases", None).await.status, 200, "ES256 from the JWKS works");

    let public_n = rsa.jwk["n"].as_str().unwrap().as_bytes().to_vec();
    let confusion = |kid: &str| handmade(json!({"alg": "HS256", "kid": kid}), &good, hmac(&public_n));
    let mut es_with_rsa_kid = Header::new(Algorithm::ES256);
    es_with_rsa_kid.kid = Some(rsa.kid.clone());
    let stranger = Signer::rsa("rsa-2026");
    let attacks = vec![
        ("HS/RS confusion: HS256 keyed with the RSA public key", confusion("rsa-2026")),
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "kid": "rsa-2026"})), b64(&good))),
        ("unknown kid", Signer::rsa("rsa-unknown").sign(&good)),
        ("right kid, wrong key", stranger.sign(&good)),
        ("ES256 token naming the RSA key", jsonwebtoken::encode(&es_with_rsa_kid, &good, &ec.key).unwrap()),
        ("no kid", jsonwebtoken::encode(&Header::new(Algorithm::RS256), &good, &rsa.key).unwrap()),
        ("expired", rsa.sign(&with(good.clone(), "exp", json!(now() - 3600)))),
        ("not yet valid", rsa.sign(&with(good.clone(), "nbf", json!(now() + 3600)))),
        ("wrong issuer", rsa.sign(&with(good.clone(), "iss", json!("https://evil.example")))),
        ("wrong audience", rsa.sign(&with(good.clone(), "aud", json!("another-api")))),
        ("no audience", rsa.sign(&with(good.clone(), "aud", Value::Null))),
        ("no subject", rsa.sign(&with(good.clone(), "sub", Value::Null))),
        ("tampered payload (sub swapped to bob)", tamper_sub(&rsa.sign(&good), &bob_id)),
        ("truncated signature", {
            let t = rsa.sign(&good);
            t[..t.len() - 6].to_owned()
        }),
        ("jku header", {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(stranger.kid.clone());
            header.jku = Some("https://evil.example/jwks.json".into());
            jsonwebtoken::encode(&header, &good, &stranger.key).unwrap()
        }),
        ("embedded jwk of the attacker", {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("attacker".into());
            header.jwk = Some(serde_json::from_value(stranger.jwk.clone()).unwrap());
            jsonwebtoken::encode(&header, &good, &stranger.key).unwrap()
        }),
    ];
    let cases = assert_refused(&h, &[&alice, &bob], attacks).await;
    println!("JWT suite (RS256/ES256 via JWKS): {cases} refused requests");
}
