//! Typed errors. Everything a user's input or a downloaded file can reach returns one of these;
//! nothing on those paths panics (a panic in wasm kills the module).
use crate::config::ConfigError;
use thiserror::Error;

/// A model bundle (manifest + safetensors files) could not be trusted.
#[derive(Debug, Error)]
pub enum BundleError {
    #[error("missing file '{0}'")]
    MissingFile(String),
    #[error("manifest is not valid JSON: {0}")]
    BadJson(String),
    #[error("unsupported bundle format '{format}' version {version} (this build reads '{expected}' versions {supported})")]
    UnsupportedVersion { format: String, version: u32, expected: &'static str, supported: &'static str },
    #[error("file '{file}' is truncated or has the wrong size: expected {expected} bytes, got {actual}")]
    Truncated { file: String, expected: u64, actual: u64 },
    #[error("checksum mismatch for '{file}': manifest says sha256 {expected}, file has {actual}")]
    ChecksumMismatch { file: String, expected: String, actual: String },
    #[error("'{file}' is not a valid safetensors file: {reason}")]
    BadWeights { file: String, reason: String },
    #[error("tensor '{name}' has shape {actual:?}, the model expects {expected:?}")]
    WrongShape { name: String, expected: Vec<usize>, actual: Vec<usize> },
    #[error("tensor '{name}' is missing from '{file}'")]
    MissingTensor { file: String, name: String },
    #[error("tensor '{name}' has dtype {dtype}, expected F32, F16 or BF16")]
    WrongDtype { name: String, dtype: String },
    #[error("invalid manifest: {0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Errors of the runtime API (generation options, token input, devices).
#[derive(Debug, Error)]
pub enum TesseraError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("invalid tokens: {0}")]
    InvalidTokens(String),
    #[error("device error: {0}")]
    Device(String),
    /// The caller asked to stop (between two sampling steps).
    #[error("cancelled")]
    Cancelled,
}
