//! What every model `Config` checks before anything is allocated. Each config's `validate()` is
//! called by its `init` and by manifest validation, so a manifest or a CLI flag can never reach a
//! division by zero, a shape mismatch inside burn or an allocation the machine cannot make: sizes are
//! bounded one by one, then as a parameter budget.
use thiserror::Error;

/// A model configuration that cannot be built.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("invalid {model} config: {reason}")]
pub struct ConfigError {
    /// The model the config describes (`tokenizer`, `ar proposal`, `teacher`, ...).
    pub model: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(model: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { model: model.into(), reason: reason.into() }
    }
}

/// Upper bounds of every size a config may ask for. Generous for this project's models (the
/// largest shipped one has 1.7 M parameters) and far below what would exhaust a browser tab.
pub mod limits {
    /// Image side in pixels.
    pub const IMAGE_SIZE: usize = 512;
    /// Image channels (grey, grey + alpha, RGB, RGBA).
    pub const IMAGE_CHANNELS: usize = 4;
    /// Any width: conv channels, embedding widths, latent/code dimensions, MLP widths.
    pub const WIDTH: usize = 4096;
    /// Transformer depth.
    pub const LAYERS: usize = 64;
    /// Codebook size: training caches tokens as u16.
    pub const CODEBOOK: usize = 1 << 16;
    /// Tokens per image (a 64 x 64 grid).
    pub const BLOCK: usize = 4096;
    pub const CLASSES: usize = 100_000;
    /// Parameters of one model (400 MB in f32).
    pub const PARAMS: u64 = 100_000_000;
    /// Images per request (generation, reconstruction, decoding).
    pub const BATCH: usize = 64;
    /// Floats of the largest intermediate tensor of a full batch (1 GiB in f32): a model must be
    /// able to serve `BATCH` images without exhausting a browser tab.
    pub const ACTIVATIONS: u64 = 1 << 28;
}

/// Collects the checks of one config.
pub struct Check {
    model: String,
}

impl Check {
    pub fn new(model: impl Into<String>) -> Self {
        Self { model: model.into() }
    }
    pub fn fail<T>(&self, reason: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError::new(self.model.clone(), reason))
    }
    /// `cond` must hold, else `reason`.
    pub fn that(&self, cond: bool, reason: impl FnOnce() -> String) -> Result<(), ConfigError> {
        if cond { Ok(()) } else { self.fail(reason()) }
    }
    /// `lo <= value <= hi`.
    pub fn range(&self, name: &str, value: usize, lo: usize, hi: usize) -> Result<(), ConfigError> {
        self.that((lo..=hi).contains(&value), || format!("{name} must be in {lo}..={hi}, got {value}"))
    }
    /// A finite float in `[lo, hi]`.
    pub fn float(&self, name: &str, value: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
        self.that(value.is_finite() && (lo..=hi).contains(&value), || format!("{name} must be in [{lo}, {hi}], got {value}"))
    }
    /// The largest intermediate tensor of one image, in floats (an estimate from bounded sizes), small
    /// enough for a batch of [`limits::BATCH`] within [`limits::ACTIVATIONS`].
    pub fn activations(&self, per_image: u128) -> Result<(), ConfigError> {
        let batch = per_image.saturating_mul(limits::BATCH as u128);
        self.that(batch <= limits::ACTIVATIONS as u128, || format!("a batch of {} images needs intermediate tensors of {batch} floats, over the budget of {}", limits::BATCH, limits::ACTIVATIONS))
    }
    /// A parameter count (computed in u128 from bounded sizes) within [`limits::PARAMS`].
    pub fn params(&self, count: u128) -> Result<(), ConfigError> {
        self.that(count <= limits::PARAMS as u128, || format!("{count} parameters exceed the budget of {}", limits::PARAMS))
    }
}

/// Parameters of a `k x k` conv from `i` to `o` channels with bias.
pub fn conv_params(k: usize, i: usize, o: usize) -> u128 {
    (k * k) as u128 * i as u128 * o as u128 + o as u128
}

/// Parameters of a linear layer with bias.
pub fn linear_params(i: usize, o: usize) -> u128 {
    i as u128 * o as u128 + o as u128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_model_and_the_value() {
        let c = Check::new("ar proposal");
        let e = c.range("n_layer", 0, 1, limits::LAYERS).unwrap_err();
        assert_eq!(e.to_string(), "invalid ar proposal config: n_layer must be in 1..=64, got 0");
        assert!(c.float("decay", f64::NAN, 0.0, 1.0).is_err());
        assert!(c.params(limits::PARAMS as u128 + 1).is_err());
        assert!(c.params(10).is_ok());
    }
}
