//! Tessera: the model definitions shared by native training (`tessera-train`) and the browser
//! (`tessera-wasm`), laid out as the method of "Image Understanding Makes for A Good Tokenizer for
//! Image Generation" (`shared/PAPER.md`):
//!
//! - [`tokenizer`] — stage 1: encoder x quantizer x pixel decoder, four compositions (VQGAN, FSQ,
//!   VQ-KD, Cluster) that map an image to a grid of discrete codes and back;
//! - [`teacher`] — the image-understanding (IU) encoder whose features VQ-KD and Cluster learn from;
//! - [`proposal`] — stage 2: the AR (GPT) and NAR (MaskGIT) networks over code sequences;
//! - [`sampling`] — turning a proposal network into tokens (AR/NAR loops, inpainting, guidance) and
//!   tokens into pixels;
//! - [`text`] — the prompt side of text-to-image: text tokenisation and the text encoders whose
//!   outputs condition the proposal network;
//! - [`bundle`] — the shipped file format (manifest + safetensors), checked before it is trusted;
//! - [`config`] — the limits and checks every model config applies before allocating;
//! - [`ops`], [`rng`] — the helpers several stages share;
//! - `train` (cargo feature `train`, native only) — losses, k-means and the evaluator's classifier.
//!
//! Nothing here reads tensors back synchronously on the generation path, so the same code runs on
//! WebGPU in the browser (where every read-back is async) and on burn's flex CPU backend.

pub mod bundle;
pub mod config;
pub mod error;
pub mod ops;
pub mod proposal;
pub mod rng;
pub mod sampling;
pub mod teacher;
pub mod text;
pub mod tokenizer;
#[cfg(feature = "train")]
pub mod train;

pub use config::ConfigError;
pub use error::{BundleError, TesseraError};
