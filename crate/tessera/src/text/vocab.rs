//! Text tokenisation: a `tokenizer.json` (Hugging Face `tokenizers` format: the pretrained encoder's
//! WordPiece, or the BPE Tessera learns from captions) turned into token ids. The library runs the
//! same Rust code natively and in wasm, so a prompt has the same ids everywhere (pinned by
//! `tests/minilm.rs` against an independent Python implementation of BERT's tokenisation).
use crate::error::{BundleError, TesseraError};

/// The longest prompt accepted, in characters (a prompt is a phrase, not a document; bounds the
/// work a page can ask for).
pub const MAX_PROMPT_CHARS: usize = 1000;
/// The largest vocabulary a `tokenizer.json` may declare.
pub const MAX_VOCAB: usize = 1 << 17;

/// A prompt as token ids, with what the vocabulary could not represent.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Ids including the special tokens the tokenizer adds (`[CLS]` ... `[SEP]` for WordPiece).
    pub ids: Vec<u32>,
    /// Words of the prompt that became the unknown token (shown to the user, never dropped silently).
    pub unknown: Vec<String>,
    /// Ids were cut to the encoder's maximum length.
    pub truncated: bool,
}

/// A tokenizer with its maximum sequence length.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    max_len: usize,
    unk: Option<u32>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer").field("vocab", &self.vocab_size()).field("max_len", &self.max_len).finish()
    }
}

impl TextTokenizer {
    /// Parses `tokenizer.json` bytes (untrusted: a typed error, never a panic) and fixes the
    /// sequence length: no padding (one prompt at a time), truncation at `max_len` ids.
    pub fn from_json(file: &str, bytes: &[u8], max_len: usize) -> Result<Self, BundleError> {
        let bad = |reason: String| BundleError::BadWeights { file: file.into(), reason };
        if !(3..=512).contains(&max_len) {
            return Err(BundleError::Invalid(format!("text max_len must be in 3..=512, got {max_len}")));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        let mut inner: tokenizers::Tokenizer = text.parse().map_err(|e| bad(format!("not a tokenizer.json: {e}")))?;
        let vocab = inner.get_vocab_size(true);
        if vocab == 0 || vocab > MAX_VOCAB {
            return Err(bad(format!("vocabulary of {vocab} tokens (1..={MAX_VOCAB})")));
        }
        inner.with_padding(None);
        inner
            .with_truncation(Some(tokenizers::TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| bad(format!("truncation: {e}")))?;
        let unk = ["[UNK]", "<unk>"].iter().find_map(|t| inner.token_to_id(t));
        Ok(Self { inner, max_len, unk })
    }

    /// Tokens in the vocabulary, special ones included: the encoder's embedding rows.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The id of `token`, if the vocabulary has it.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Ids of `prompt` (special tokens added). Over [`MAX_PROMPT_CHARS`] characters is an error;
    /// ids beyond `max_len` are cut and say so.
    pub fn encode(&self, prompt: &str) -> Result<Encoded, TesseraError> {
        let chars = prompt.chars().count();
        if chars > MAX_PROMPT_CHARS {
            return Err(TesseraError::InvalidOption(format!("the prompt has {chars} characters; at most {MAX_PROMPT_CHARS}")));
        }
        let full = self.inner.encode(prompt, true).map_err(|e| TesseraError::InvalidOption(format!("cannot tokenise the prompt: {e}")))?;
        let truncated = !full.get_overflowing().is_empty();
        let mut unknown = Vec::new();
        if let Some(unk) = self.unk {
            for (id, &(a, b)) in full.get_ids().iter().zip(full.get_offsets()) {
                // offsets are byte offsets into the prompt; `get` cannot panic on a bad boundary
                if *id == unk && let Some(w) = prompt.get(a..b) && !unknown.iter().any(|u| u == w) {
                    unknown.push(w.to_string());
                }
            }
        }
        Ok(Encoded { ids: full.get_ids().to_vec(), unknown, truncated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-level vocabulary written by hand in the `tokenizer.json` format.
    fn tiny() -> TextTokenizer {
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
          "normalizer":{"type":"Lowercase"},"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
          "model":{"type":"WordLevel","vocab":{"[UNK]":0,"red":1,"apple":2,"cat":3},"unk_token":"[UNK]"}}"#;
        TextTokenizer::from_json("tiny.json", json.as_bytes(), 4).unwrap()
    }

    #[test]
    fn unknown_words_are_reported_and_long_prompts_cut() {
        let t = tiny();
        let e = t.encode("Red apple").unwrap();
        assert_eq!((e.ids.as_slice(), e.unknown.len(), e.truncated), (&[1, 2][..], 0, false));
        let e = t.encode("red kumquat cat kumquat dog").unwrap();
        assert_eq!(e.ids, vec![1, 0, 3, 0]);
        assert_eq!(e.unknown, vec!["kumquat".to_string()]);
        assert!(e.truncated);
        assert!(t.encode("").unwrap().ids.is_empty());
        assert!(matches!(t.encode(&"a".repeat(MAX_PROMPT_CHARS + 1)), Err(TesseraError::InvalidOption(_))));
    }

    #[test]
    fn bad_files_are_typed_errors() {
        for bytes in [&b"\xff\xfe"[..], b"{}", b"not json", b"{\"model\":{\"type\":\"BPE\"}}", b""] {
            assert!(TextTokenizer::from_json("x.json", bytes, 16).is_err(), "{bytes:?}");
        }
        let json = r#"{"model":{"type":"WordLevel","vocab":{"a":0},"unk_token":"a"}}"#;
        assert!(matches!(TextTokenizer::from_json("x.json", json.as_bytes(), 1000), Err(BundleError::Invalid(_))));
    }
}
