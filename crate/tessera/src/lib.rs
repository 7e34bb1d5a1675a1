//! Tessera: the model definitions shared by native training (`tessera-train`) and the browser
//! (`tessera-wasm`). Stage 1 is a **tokenizer** (encoder, codebook, decoder) that maps an image to a
//! grid of discrete codes; stage 2 is a **proposal network** that models those code sequences.
//! See `shared/PAPER.md` ("Image Understanding Makes for A Good Tokenizer for Image Generation").
//!
//! Nothing here reads tensors back synchronously on the generation path, so the same code runs on
//! WebGPU in the browser (where every read-back is async) and on burn's flex CPU backend.

pub mod bundle;
pub mod classifier;
pub mod cluster;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod fsq;
pub mod generate;
pub mod gpt;
pub mod import;
pub mod kmeans;
pub mod maskgit;
pub mod mim;
pub mod quantizer;
pub mod sampler;
pub mod tokenizer;
pub mod transformer;
pub mod vit;
pub mod vq;
pub mod vqgan;
pub mod vqkd;
pub mod weights;

pub use error::{BundleError, TesseraError};

/// Image side length the models work at (Fashion-MNIST's 28x28 is padded to 32x32).
pub const IMAGE_SIZE: usize = 32;
