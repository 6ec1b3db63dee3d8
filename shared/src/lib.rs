//! The tenancy core every function uses. Identity comes only from a verified JWT
//! ([`auth`]); every DynamoDB key is built here from that identity ([`store`]); lists page
//! with user-bound cursors ([`cursor`]); errors map to HTTP in one place ([`error`]); and the
//! request pipeline ([`http`]) ties them together so handlers stay thin.

pub mod access;
pub mod api_keys;
pub mod auth;
pub mod budget;
pub mod children;
pub mod config;
pub mod credentials;
pub mod cursor;
pub mod error;
pub mod http;
#[cfg(feature = "cognito")]
pub mod identity_provider;
pub mod item;
#[cfg(feature = "s3")]
pub mod objects;
pub mod openapi;
pub mod owned;
pub mod partition;
#[cfg(feature = "realtime")]
pub mod realtime;
pub mod resource;
pub mod runtime;
pub mod store;
pub mod teams;

pub use auth::{AuthConfig, Identity, TokenMinter, Verifier};
pub use config::{ConfigError, Env};
pub use error::ApiError;
pub use runtime::{Area, EventFunction, Platform};

/// The version of this build: the crate version and the git commit it was built from.
pub const BUILD_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("BUILD_COMMIT"));
