//! Configuration, read once at cold start. A missing or invalid variable stops the function
//! with an error naming it, instead of failing later on a request.

use std::{collections::HashMap, str::FromStr, sync::Arc};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(String),
    #[error("invalid environment variable {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("DEVELOPMENT_MODE=true is refused in a deployed function: it is for the local gateway only")]
    DevelopmentModeDeployed,
}

impl ConfigError {
    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        Self::Invalid { name: name.to_owned(), reason: reason.into() }
    }
}

/// Where configuration comes from: the process environment in Lambda, a per-function map in
/// the local gateway (which hosts every function in one process) and in tests.
type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

#[derive(Clone)]
pub struct Env {
    lookup: Lookup,
}

impl Env {
    pub fn process() -> Self {
        Self { lookup: Arc::new(|name| std::env::var(name).ok()) }
    }

    pub fn from_map(map: HashMap<String, String>) -> Self {
        Self { lookup: Arc::new(move |name| map.get(name).cloned()) }
    }

    /// A set, non-empty value.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name).ok_or_else(|| ConfigError::Missing(name.to_owned()))
    }

    pub fn parse_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::invalid(name, e.to_string())),
        }
    }

    pub fn flag(&self, name: &str) -> Result<bool, ConfigError> {
        match self.optional(name).as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some(other) => Err(ConfigError::invalid(name, format!("expected true or false, got {other:?}"))),
        }
    }
}

/// Development mode lets the local gateway mint tokens. It must never be on in AWS: a deployed
/// function (Lambda sets `AWS_LAMBDA_FUNCTION_NAME`; `sam local` also sets `AWS_SAM_LOCAL`)
/// refuses to start with it.
pub fn development_mode(env: &Env) -> Result<bool, ConfigError> {
    let on = env.flag("DEVELOPMENT_MODE")?;
    let in_lambda = env.optional("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let sam_local = env.flag("AWS_SAM_LOCAL").unwrap_or(false);
    if on && in_lambda && !sam_local {
        return Err(ConfigError::DevelopmentModeDeployed);
    }
    Ok(on)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_map(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn missing_variable_is_named() {
        let err = env(&[]).required("CANVASES_TABLE").unwrap_err();
        assert_eq!(err.to_string(), "missing environment variable CANVASES_TABLE");
    }

    #[test]
    fn blank_counts_as_missing() {
        assert!(env(&[("X", "  ")]).required("X").is_err());
    }

    #[test]
    fn invalid_number_is_named() {
        let err = env(&[("JWT_LEEWAY_SECONDS", "soon")]).parse_or("JWT_LEEWAY_SECONDS", 30u64).unwrap_err();
        assert!(err.to_string().contains("JWT_LEEWAY_SECONDS"), "{err}");
    }

    #[test]
    fn development_mode_is_refused_when_deployed() {
        let deployed = env(&[("DEVELOPMENT_MODE", "true"), ("AWS_LAMBDA_FUNCTION_NAME", "fn")]);
        assert_eq!(development_mode(&deployed), Err(ConfigError::DevelopmentModeDeployed));
        let sam_local =
            env(&[("DEVELOPMENT_MODE", "true"), ("AWS_LAMBDA_FUNCTION_NAME", "fn"), ("AWS_SAM_LOCAL", "true")]);
        assert_eq!(development_mode(&sam_local), Ok(true));
        assert_eq!(development_mode(&env(&[("DEVELOPMENT_MODE", "true")])), Ok(true));
        assert_eq!(development_mode(&env(&[])), Ok(false));
        assert!(development_mode(&env(&[("DEVELOPMENT_MODE", "maybe")])).is_err());
    }
}
