//! Signing keys for tests of RS256/ES256 verification, and a real JWKS endpoint serving them.

use aws_lc_rs::encoding::AsDer;
use base64::{engine::general_purpose::STANDARD, Engine};
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub struct Signer {
    pub kid: String,
    pub alg: Algorithm,
    pub key: EncodingKey,
    /// The public JWK, as an identity provider publishes it.
    pub jwk: Value,
}

fn pem(der: &[u8]) -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(der))
}

impl Signer {
    pub fn rsa(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        Self::new(kid, Algorithm::RS256, EncodingKey::from_rsa_pem(pem(der.as_ref()).as_bytes()).unwrap())
    }

    pub fn ec(kid: &str) -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Self::new(kid, Algorithm::ES256, EncodingKey::from_ec_pem(pem(doc.as_ref()).as_bytes()).unwrap())
    }

    fn new(kid: &str, alg: Algorithm, key: EncodingKey) -> Self {
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self { kid: kid.into(), alg, key, jwk }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// Serves `{"keys": [...]}` on localhost, as Cognito, Auth0 or Clerk do. Returns its URL.
pub async fn serve_jwks(keys: Vec<Value>) -> String {
    let body = json!({ "keys": keys });
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let body = body.clone();
            async move { axum::Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/.well-known/jwks.json")
}
