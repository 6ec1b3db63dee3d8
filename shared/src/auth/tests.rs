//! The verifier against the attacks of RFC 8725 and CRAFT.md, HS256 and JWKS (RS256/ES256).

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use aws_lc_rs::encoding::AsDer;
use base64::{engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";
const ISS: &str = "https://issuer.test";
const AUD: &str = "api.test";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn hs_config() -> AuthConfig {
    AuthConfig {
        secret: Some(SECRET.to_vec()),
        jwks_url: None,
        algorithms: vec![Algorithm::HS256],
        issuer: Some(ISS.into()),
        audience: Some(AUD.into()),
        leeway: Duration::from_secs(5),
        jwks_min_refresh: Duration::from_secs(30),
        jwks_max_age: Duration::from_secs(3600),
        jwks_timeout: Duration::from_secs(2),
    }
}

fn good_claims() -> Value {
    json!({"sub": "alice", "iss": ISS, "aud": AUD, "exp": now() + 600, "iat": now()})
}

fn hs_token(claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

async fn hs_verify(token: &str) -> Result<Identity, AuthError> {
    Verifier::new(hs_config()).unwrap().verify(token).await
}

fn with_claim(name: &str, value: Value) -> Value {
    let mut c = good_claims();
    c[name] = value;
    c
}

fn without_claim(name: &str) -> Value {
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove(name);
    c
}

#[tokio::test]
async fn accepts_a_good_token_and_takes_sub_as_user_id() {
    let id = hs_verify(&hs_token(&good_claims())).await.unwrap();
    assert_eq!(id.user_id(), "alice");
}

#[tokio::test]
async fn identity_carries_the_verified_iat_and_0_without_one() {
    let id = hs_verify(&hs_token(&with_claim("iat", json!(1_700_000_000)))).await.unwrap();
    assert_eq!(id.issued_at(), 1_700_000_000);
    let id = hs_verify(&hs_token(&with_claim("iat", json!(1_700_000_000.75)))).await.unwrap();
    assert_eq!(id.issued_at(), 1_700_000_000, "a fractional NumericDate counts its whole seconds");
    assert_eq!(hs_verify(&hs_token(&without_claim("iat"))).await.unwrap().issued_at(), 0);
    assert_eq!(hs_verify(&hs_token(&with_claim("iat", json!(-5)))).await.unwrap().issued_at(), 0);
    assert!(matches!(hs_verify(&hs_token(&with_claim("iat", json!("soon")))).await, Err(AuthError::Invalid(_))));
}

#[tokio::test]
async fn bearer_header_parsing() {
    let v = Verifier::new(hs_config()).unwrap();
    let token = hs_token(&good_claims());
    assert!(v.verify_bearer(Some(&format!("Bearer {token}"))).await.is_ok());
    assert!(v.verify_bearer(Some(&format!("bearer {token}"))).await.is_ok());
    assert!(matches!(v.verify_bearer(None).await, Err(AuthError::MissingToken)));
    assert!(matches!(v.verify_bearer(Some(&format!("Basic {token}"))).await, Err(AuthError::NotBearer)));
    assert!(matches!(v.verify_bearer(Some(&token)).await, Err(AuthError::NotBearer)));
}

#[tokio::test]
async fn refuses_alg_none() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(good_claims().to_string());
    for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
        assert!(hs_verify(&token).await.is_err(), "alg none accepted: {token}");
    }
}

#[tokio::test]
async fn refuses_expired_beyond_leeway_but_accepts_within() {
    assert!(matches!(hs_verify(&hs_token(&with_claim("exp", json!(now() - 60)))).await, Err(AuthError::Invalid(_))));
    assert!(hs_verify(&hs_token(&with_claim("exp", json!(now() - 2)))).await.is_ok());
}

#[tokio::test]
async fn refuses_not_yet_valid() {
    assert!(hs_verify(&hs_token(&with_claim("nbf", json!(now() + 120)))).await.is_err());
    assert!(hs_verify(&hs_token(&with_claim("nbf", json!(now() - 1)))).await.is_ok());
}

#[tokio::test]
async fn refuses_wrong_or_missing_issuer() {
    assert!(hs_verify(&hs_token(&with_claim("iss", json!("https://evil.test")))).await.is_err());
    assert!(hs_verify(&hs_token(&without_claim("iss"))).await.is_err());
}

#[tokio::test]
async fn refuses_wrong_or_missing_audience() {
    assert!(hs_verify(&hs_token(&with_claim("aud", json!("other-api")))).await.is_err());
    assert!(hs_verify(&hs_token(&without_claim("aud"))).await.is_err());
    assert!(hs_verify(&hs_token(&with_claim("aud", json!([AUD, "other"])))).await.is_ok());
}

/// Cognito's shapes ("Verifying a JSON web token"): an access token has `token_use: access`
/// and the app client in `client_id`, no `aud`; an ID token has `token_use: id` and `aud`.
fn cognito_access(client_id: Value) -> Value {
    let mut c = without_claim("aud");
    c["token_use"] = json!("access");
    c["client_id"] = client_id;
    c
}

#[tokio::test]
async fn cognito_access_tokens_are_checked_by_client_id_and_id_tokens_by_aud() {
    assert!(hs_verify(&hs_token(&cognito_access(json!(AUD)))).await.is_ok());
    assert!(matches!(
        hs_verify(&hs_token(&cognito_access(json!("other-client")))).await,
        Err(AuthError::WrongAudience)
    ));
    assert!(matches!(hs_verify(&hs_token(&cognito_access(json!(null)))).await, Err(AuthError::WrongAudience)));
    // An access token's `aud` does not stand in for its `client_id`.
    let mut with_aud = cognito_access(json!("other-client"));
    with_aud["aud"] = json!(AUD);
    assert!(matches!(hs_verify(&hs_token(&with_aud)).await, Err(AuthError::WrongAudience)));
    // An ID token is checked by `aud`, whatever `client_id` says.
    let id = with_claim("token_use", json!("id"));
    assert!(hs_verify(&hs_token(&id)).await.is_ok());
    let mut id_by_client = cognito_access(json!(AUD));
    id_by_client["token_use"] = json!("id");
    assert!(matches!(hs_verify(&hs_token(&id_by_client)).await, Err(AuthError::WrongAudience)));
}

#[tokio::test]
async fn token_use_other_than_access_or_id_is_refused() {
    for token_use in [json!("refresh"), json!("ACCESS"), json!(""), json!(1), json!(["access"])] {
        let mut c = cognito_access(json!(AUD));
        c["token_use"] = token_use.clone();
        assert!(matches!(hs_verify(&hs_token(&c)).await, Err(AuthError::WrongTokenUse(_))), "{token_use}");
    }
    // Also without a configured audience.
    let mut config = hs_config();
    config.audience = None;
    let v = Verifier::new(config).unwrap();
    assert!(v.verify(&hs_token(&with_claim("token_use", json!("refresh")))).await.is_err());
    assert!(v.verify(&hs_token(&with_claim("token_use", json!("access")))).await.is_ok());
}

#[tokio::test]
async fn refuses_missing_exp_and_missing_or_bad_sub() {
    assert!(hs_verify(&hs_token(&without_claim("exp"))).await.is_err());
    assert!(hs_verify(&hs_token(&without_claim("sub"))).await.is_err());
    assert!(matches!(hs_verify(&hs_token(&with_claim("sub", json!("")))).await, Err(AuthError::BadSubject)));
    assert!(matches!(hs_verify(&hs_token(&with_claim("sub", json!("a\nb")))).await, Err(AuthError::BadSubject)));
    assert!(hs_verify(&hs_token(&with_claim("sub", json!(42)))).await.is_err());
}

#[tokio::test]
async fn refuses_tampered_payload() {
    let token = hs_token(&good_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(with_claim("sub", json!("bob")).to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    assert!(matches!(hs_verify(&tampered).await, Err(AuthError::Invalid(_))));
}

#[tokio::test]
async fn refuses_truncated_or_missing_signature() {
    let token = hs_token(&good_claims());
    assert!(hs_verify(&token[..token.len() - 4]).await.is_err());
    let unsigned = &token[..token.rfind('.').unwrap() + 1];
    assert!(hs_verify(unsigned).await.is_err());
    assert!(hs_verify("not-a-jwt").await.is_err());
    assert!(hs_verify("").await.is_err());
}

#[tokio::test]
async fn refuses_wrong_secret() {
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good_claims(),
        &EncodingKey::from_secret(b"another-secret-another-secret-0123456789"),
    )
    .unwrap();
    assert!(hs_verify(&token).await.is_err());
}

#[tokio::test]
async fn refuses_algorithms_outside_the_allow_list() {
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &good_claims(), &EncodingKey::from_secret(SECRET))
        .unwrap();
    assert!(matches!(hs_verify(&token).await, Err(AuthError::AlgorithmNotAllowed(Algorithm::HS512))));
}

#[tokio::test]
async fn refuses_key_bearing_headers() {
    for (name, value) in [
        ("jku", json!("https://evil.test/jwks.json")),
        ("x5u", json!("https://evil.test/cert.pem")),
        ("jwk", json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET)})),
    ] {
        let mut header = json!({"alg": "HS256", "typ": "JWT"});
        header[name] = value;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(good_claims().to_string())
        );
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET),
            signing_input.as_bytes(),
        );
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert!(hs_verify(&token).await.is_err(), "{name} header accepted");
    }
}

#[test]
fn config_refuses_weak_secret_and_unusable_algorithms() {
    let mut c = hs_config();
    c.secret = Some(b"short".to_vec());
    assert!(Verifier::new(c).is_err());
    let mut c = hs_config();
    c.algorithms = vec![Algorithm::RS256];
    assert!(Verifier::new(c).is_err(), "RS256 without JWKS_URL must be refused");
}

#[test]
fn config_from_env_names_what_is_missing() {
    let env = Env::from_map(Default::default());
    let err = AuthConfig::from_env(&env).unwrap_err();
    assert!(err.to_string().contains("JWT_SECRET or JWKS_URL"), "{err}");
}

#[tokio::test]
async fn minted_dev_tokens_verify() {
    let minter = TokenMinter::from_config(&hs_config()).unwrap();
    let id = hs_verify(&minter.mint("carol", Duration::from_secs(60))).await.unwrap();
    assert_eq!(id.user_id(), "carol");
    assert_eq!(id.verified_email(), None);
    let token = minter.mint_with_email("carol", Some((" Carol@Example.com", true)), Duration::from_secs(60));
    assert_eq!(hs_verify(&token).await.unwrap().verified_email(), Some("carol@example.com"));
}

#[tokio::test]
async fn an_email_counts_only_when_verified_and_odd_email_claims_never_refuse_the_token() {
    let email = |verified: Value| {
        let mut c = with_claim("email", json!("  Alice@Example.COM "));
        c["email_verified"] = verified;
        c
    };
    let id = hs_verify(&hs_token(&email(json!(true)))).await.unwrap();
    assert_eq!(id.verified_email(), Some("alice@example.com"), "trimmed and lowercased");
    assert!(!id.has_unverified_email());
    let id = hs_verify(&hs_token(&email(json!("true")))).await.unwrap();
    assert_eq!(id.verified_email(), Some("alice@example.com"), "Cognito's string form");
    for unverified in [json!(false), json!("false"), json!(1), Value::Null] {
        let id = hs_verify(&hs_token(&email(unverified.clone()))).await.unwrap();
        assert_eq!(id.verified_email(), None, "{unverified}");
        assert!(id.has_unverified_email(), "{unverified}");
    }
    let id = hs_verify(&hs_token(&with_claim("email", json!("alice@example.com")))).await.unwrap();
    assert_eq!(id.verified_email(), None, "no email_verified claim: unverified");
    for odd in [json!(42), json!(["a@b.c"]), json!("no-at-sign"), json!("a b@c.d"), json!("@example.com")] {
        let mut claims = with_claim("email", odd.clone());
        claims["email_verified"] = json!(true);
        let id = hs_verify(&hs_token(&claims)).await.unwrap();
        assert_eq!(id.verified_email(), None, "{odd}");
        assert_eq!(id.user_id(), "alice");
    }
}

// ---------- JWKS (RS256 / ES256) ----------

struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

fn pem(label: &str, der: &[u8]) -> String {
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", STANDARD.encode(der))
}

fn rsa_signer(kid: &str) -> Signer {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
    let key = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes()).unwrap();
    signer(kid, Algorithm::RS256, key)
}

fn ec_signer(kid: &str) -> Signer {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let key = EncodingKey::from_ec_pem(pem("PRIVATE KEY", doc.as_ref()).as_bytes()).unwrap();
    signer(kid, Algorithm::ES256, key)
}

fn signer(kid: &str, alg: Algorithm, key: EncodingKey) -> Signer {
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    Signer { kid: kid.into(), alg, key, jwk }
}

impl Signer {
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// A real HTTP JWKS endpoint on localhost that counts how often it is fetched.
async fn serve_jwks(keys: Vec<Value>) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let body = json!({ "keys": keys });
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { axum::Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/.well-known/jwks.json"), hits)
}

fn jwks_config(url: String, algorithms: Vec<Algorithm>) -> AuthConfig {
    AuthConfig { secret: None, jwks_url: Some(url), algorithms, ..hs_config() }
}

#[tokio::test]
async fn jwks_rs256_and_es256_accepted_and_keys_cached() {
    let (rsa, ec) = (rsa_signer("rsa-1"), ec_signer("ec-1"));
    let (url, hits) = serve_jwks(vec![rsa.jwk.clone(), ec.jwk.clone()]).await;
    let v = Verifier::new(jwks_config(url, vec![Algorithm::RS256, Algorithm::ES256])).unwrap();
    for _ in 0..3 {
        assert_eq!(v.verify(&rsa.sign(&good_claims())).await.unwrap().user_id(), "alice");
        assert_eq!(v.verify(&ec.sign(&good_claims())).await.unwrap().user_id(), "alice");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "keys are fetched once and cached by kid");
}

#[tokio::test]
async fn jwks_unknown_kid_refetches_at_a_bounded_rate() {
    let rsa = rsa_signer("rsa-1");
    let (url, hits) = serve_jwks(vec![rsa.jwk.clone()]).await;
    let v = Verifier::new(jwks_config(url, vec![Algorithm::RS256])).unwrap();
    v.verify(&rsa.sign(&good_claims())).await.unwrap();
    let stranger = rsa_signer("rsa-unknown");
    for _ in 0..20 {
        assert!(matches!(v.verify(&stranger.sign(&good_claims())).await, Err(AuthError::UnknownKey(_))));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "20 unknown kids within the refresh interval fetch nothing");

    let (url, hits) = serve_jwks(vec![rsa.jwk.clone()]).await;
    let mut config = jwks_config(url, vec![Algorithm::RS256]);
    config.jwks_min_refresh = Duration::ZERO;
    let v = Verifier::new(config).unwrap();
    v.verify(&rsa.sign(&good_claims())).await.unwrap();
    assert!(v.verify(&stranger.sign(&good_claims())).await.is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 2, "an unknown kid refetches once the interval has passed");
}

#[tokio::test]
async fn jwks_refuses_hs_rs_confusion() {
    // The attacker signs HS256 with the RSA *public* key as the HMAC secret.
    let rsa = rsa_signer("rsa-1");
    let (url, _) = serve_jwks(vec![rsa.jwk.clone()]).await;
    let public_n = rsa.jwk["n"].as_str().unwrap().to_owned();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let forged = jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(public_n.as_bytes())).unwrap();

    let v = Verifier::new(jwks_config(url.clone(), vec![Algorithm::RS256])).unwrap();
    assert!(matches!(v.verify(&forged).await, Err(AuthError::AlgorithmNotAllowed(Algorithm::HS256))));

    // Even with both families allowed, an HS token is checked only against the shared secret.
    let mut both = jwks_config(url, vec![Algorithm::RS256, Algorithm::HS256]);
    both.secret = Some(SECRET.to_vec());
    let v = Verifier::new(both).unwrap();
    assert!(matches!(v.verify(&forged).await, Err(AuthError::Invalid(_))));
}

#[tokio::test]
async fn jwks_refuses_key_of_another_algorithm_and_missing_kid() {
    let (rsa, ec) = (rsa_signer("rsa-1"), ec_signer("ec-1"));
    let (url, _) = serve_jwks(vec![rsa.jwk.clone(), ec.jwk.clone()]).await;
    let v = Verifier::new(jwks_config(url, vec![Algorithm::RS256, Algorithm::ES256])).unwrap();
    // ES256 token that claims the RSA key's kid.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("rsa-1".into());
    let token = jsonwebtoken::encode(&header, &good_claims(), &ec.key).unwrap();
    assert!(matches!(v.verify(&token).await, Err(AuthError::KeyMismatch(..))));
    let no_kid = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &good_claims(), &rsa.key).unwrap();
    assert!(matches!(v.verify(&no_kid).await, Err(AuthError::MissingKid)));
}

#[tokio::test]
async fn jwks_claims_are_checked_like_hs256() {
    let rsa = rsa_signer("rsa-1");
    let (url, _) = serve_jwks(vec![rsa.jwk.clone()]).await;
    let v = Verifier::new(jwks_config(url, vec![Algorithm::RS256])).unwrap();
    assert!(v.verify(&rsa.sign(&with_claim("exp", json!(now() - 120)))).await.is_err());
    assert!(v.verify(&rsa.sign(&with_claim("aud", json!("other")))).await.is_err());
    assert!(v.verify(&rsa.sign(&with_claim("iss", json!("other")))).await.is_err());
    let token = rsa.sign(&good_claims());
    let mut bytes = token.into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    assert!(v.verify(std::str::from_utf8(&bytes).unwrap()).await.is_err(), "flipped signature accepted");
}

#[tokio::test]
async fn jwks_fetch_has_a_timeout() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            held.push(sock);
        }
    });
    let mut config = jwks_config(format!("http://{addr}/jwks"), vec![Algorithm::RS256]);
    config.jwks_timeout = Duration::from_millis(200);
    let v = Verifier::new(config).unwrap();
    let started = std::time::Instant::now();
    let result = v.verify(&rsa_signer("rsa-1").sign(&good_claims())).await;
    assert!(matches!(result, Err(AuthError::UnknownKey(_))));
    assert!(started.elapsed() < Duration::from_secs(5), "fetch did not time out");
}
