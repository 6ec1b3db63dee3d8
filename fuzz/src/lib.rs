//! What both fuzz targets share: one verifier, one cursor codec and the identities they act
//! for, built once per process. An [`Identity`] can only come from [`Verifier::verify`], so the
//! fixture mints a real token for [`USER`] and verifies it.

use std::{sync::OnceLock, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, EncodingKey};
use shared::{cursor::CursorCodec, AuthConfig, Identity, TokenMinter, Verifier};
use tokio::runtime::Runtime;

/// The HS256 secret of the fuzz verifier (40 bytes). The seeds under `fuzz/seeds/` are signed with it.
pub const SECRET: &[u8] = b"fuzz-secret-0123456789-0123456789-abcdef";
/// The cursor codec's key. The genuine cursor seed under `fuzz/seeds/decode_cursor/` is tagged with it.
pub const CURSOR_SECRET: &[u8] = b"fuzz-cursor-secret-0123456789-0123456789";
pub const ISSUER: &str = "fuzz-issuer";
pub const AUDIENCE: &str = "fuzz-audience";
pub const USER: &str = "fuzz-user";
pub const OTHER_USER: &str = "fuzz-other-user";
pub const SCOPE: &str = "canvases";
pub const OTHER_SCOPE: &str = "sessions";

pub struct Fixture {
    /// Current-thread runtime that drives the async verifier.
    pub rt: Runtime,
    pub verifier: Verifier,
    /// Signs structured tokens with [`SECRET`], so the fuzzer gets past the signature check.
    pub signing_key: EncodingKey,
    pub codec: CursorCodec,
    pub identity: Identity,
    pub other: Identity,
}

pub fn config() -> AuthConfig {
    assert_eq!(SECRET.len(), 40);
    AuthConfig {
        secret: Some(SECRET.to_vec()),
        jwks_url: None,
        algorithms: vec![Algorithm::HS256],
        issuer: Some(ISSUER.to_owned()),
        audience: Some(AUDIENCE.to_owned()),
        leeway: Duration::from_secs(30),
        jwks_min_refresh: Duration::from_secs(30),
        jwks_max_age: Duration::from_secs(3600),
        jwks_timeout: Duration::from_secs(3),
    }
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = config();
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio runtime");
        let minter = TokenMinter::from_config(&config).expect("config has a secret");
        let verifier = Verifier::new(config).expect("fuzz auth config is valid");
        let identify = |user: &str| {
            let token = minter.mint(user, Duration::from_secs(24 * 3600));
            rt.block_on(verifier.verify(&token)).expect("a freshly minted token verifies")
        };
        let identity = identify(USER);
        let other = identify(OTHER_USER);
        assert_eq!(identity.user_id(), USER);
        assert_eq!(other.user_id(), OTHER_USER);
        Fixture {
            signing_key: EncodingKey::from_secret(SECRET),
            codec: CursorCodec::new(CURSOR_SECRET),
            rt,
            verifier,
            identity,
            other,
        }
    })
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
