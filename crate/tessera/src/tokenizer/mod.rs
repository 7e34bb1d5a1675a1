//! Stage 1: the **tokenizer** = encoder x quantizer x pixel decoder (the paper's Fig. 2, left).
//! An encoder maps an image `[b, c, s, s]` in [-1, 1] to one feature row per cell of a
//! `grid x grid` map; a quantizer replaces each row by the index of a code (the token); the shared
//! pixel decoder maps code vectors back to pixels. The four tokenizers of the paper are four
//! compositions of these parts, on its two axes:
//!
//! | tokenizer | encoder                         | quantizer           | codes learned from        |
//! |-----------|---------------------------------|---------------------|---------------------------|
//! | VQGAN     | conv [`encoder::Encoder`]       | L2 codebook         | pixels (L1/perceptual/GAN)|
//! | FSQ       | conv                            | FSQ implicit grid   | pixels                    |
//! | VQ-KD     | conv                            | cosine codebook     | an IU teacher's features  |
//! | Cluster   | the IU teacher itself (ViT)     | cosine (k-means)    | an IU teacher's features  |
//!
//! Adding a tokenizer is adding a composition: a config (`vqgan.rs`, ...) that builds a
//! [`Tokenizer`] from an encoder and a quantizer, and one arm in [`TokenizerSpec`].
pub mod cluster;
pub mod composition;
pub mod decoder;
pub mod encoder;
pub mod fsq;
pub mod quantizer;
pub mod spec;
pub mod vqgan;
pub mod vqkd;

pub use composition::{Tokenizer, TokenizerConfig, TokenizerOps};
pub use spec::{AnyTokenizer, TokenizerKind, TokenizerSpec};
