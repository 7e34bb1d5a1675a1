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
    /// The same without truncation: tells whether a prompt was cut.
    whole: tokenizers::Tokenizer,
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
        let mut whole = inner.clone();
        whole.with_truncation(None).map_err(|e| bad(format!("truncation: {e}")))?;
        inner
            .with_truncation(Some(tokenizers::TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| bad(format!("truncation: {e}")))?;
        let unk = ["[UNK]", "<unk>"].iter().find_map(|t| inner.token_to_id(t));
        Ok(Self { inner, whole, max_len, unk })
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
        let truncated = full.len() >= self.max_len && self.whole.encode(prompt, true).map_or(false, |w| w.len() > full.len());
        let mut unknown = Vec::new();
        if let Some(unk) = self.unk {
            for (id, &(a, b)) in full.get_ids().iter().zip(full.get_offsets()) {
                if *id == unk && let Some(w) = word_around(prompt, a, b) && !unknown.iter().any(|u| u == w) {
                    unknown.push(w.to_string());
                }
            }
        }
        Ok(Encoded { ids: full.get_ids().to_vec(), unknown, truncated })
    }
}

/// The whitespace-delimited word of `text` that holds the byte range `a..b` (a token's offsets): a
/// BPE marks one piece of a word unknown, the user wants to see the word. `None` on a range that is
/// not on character boundaries (never panics).
fn word_around(text: &str, a: usize, b: usize) -> Option<&str> {
    if a > b || text.get(a..b).is_none() {
        return None;
    }
    let start = text[..a].rfind(char::is_whitespace).map_or(0, |i| i + text[i..].chars().next().map_or(1, char::len_utf8));
    let end = text[b..].find(char::is_whitespace).map_or(text.len(), |i| b + i);
    text.get(start..end).filter(|w| !w.is_empty())
}

/// Special tokens of an in-project vocabulary, ids 0..=3: padding, unknown, start and end of a
/// prompt (every prompt, the empty one too, is `[CLS] ... [SEP]`, as for the pretrained encoder).
#[cfg(feature = "train")]
pub const SPECIALS: [&str; 4] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];

/// Learns a BPE vocabulary of at most `vocab_size` tokens from `texts` (the training captions):
/// BERT's normaliser (clean, lower-case, strip accents) and pre-tokeniser (whitespace and
/// punctuation) from the `tokenizers` library, then merges learned here: the most frequent adjacent
/// pair first, ties broken by the pair's text (the library's trainer breaks ties by hash order, so
/// two runs gave two vocabularies); merges never cross a word (`</w>` ends a word, as in CLIP's BPE);
/// characters seen fewer than twice stay `[UNK]`. Returns the `tokenizer.json` text, identical for
/// identical captions.
#[cfg(feature = "train")]
pub fn train_bpe<'a>(texts: impl Iterator<Item = &'a str>, vocab_size: usize) -> Result<String, BundleError> {
    use std::collections::BTreeMap;
    use tokenizers::models::bpe::{BPE, Vocab};
    use tokenizers::{Normalizer, OffsetReferential, OffsetType, PreTokenizer, Tokenizer};
    let bad = |e: tokenizers::Error| BundleError::Invalid(format!("BPE training: {e}"));
    if !(SPECIALS.len() + 1..=MAX_VOCAB).contains(&vocab_size) {
        return Err(BundleError::Invalid(format!("text vocabulary size must be in {}..={MAX_VOCAB}, got {vocab_size}", SPECIALS.len() + 1)));
    }
    let normalizer = tokenizers::normalizers::BertNormalizer::new(true, true, None, true);
    let pre = tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    // word -> count, over every caption
    let mut words: BTreeMap<String, u64> = BTreeMap::new();
    for text in texts {
        let mut n = tokenizers::NormalizedString::from(text);
        normalizer.normalize(&mut n).map_err(bad)?;
        let mut p = tokenizers::PreTokenizedString::from(n);
        pre.pre_tokenize(&mut p).map_err(bad)?;
        for (w, _, _) in p.get_splits(OffsetReferential::Normalized, OffsetType::Byte) {
            *words.entry(w.to_string()).or_default() += 1;
        }
    }
    // each word as symbols: its characters, the last one marked `</w>`
    let mut seqs: Vec<(Vec<String>, u64)> = words
        .iter()
        .map(|(w, &c)| {
            let chars: Vec<char> = w.chars().collect();
            let syms = chars.iter().enumerate().map(|(i, ch)| if i + 1 == chars.len() { format!("{ch}</w>") } else { ch.to_string() }).collect();
            (syms, c)
        })
        .collect();
    let mut symbol_count: BTreeMap<String, u64> = BTreeMap::new();
    for (syms, c) in &seqs {
        for s in syms {
            *symbol_count.entry(s.clone()).or_default() += c;
        }
    }
    let mut vocab: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    vocab.extend(symbol_count.iter().filter(|(_, c)| **c >= 2).map(|(s, _)| s.clone()));
    let mut in_vocab: std::collections::BTreeSet<String> = vocab.iter().cloned().collect();
    let mut merges: Vec<(String, String)> = Vec::new();
    while vocab.len() < vocab_size {
        let mut pairs: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for (syms, c) in &seqs {
            for w in syms.windows(2) {
                if in_vocab.contains(&w[0]) && in_vocab.contains(&w[1]) {
                    *pairs.entry((w[0].as_str(), w[1].as_str())).or_default() += c;
                }
            }
        }
        // most frequent, then the smallest text: a total order, so the result is reproducible
        let Some(((a, b), c)) = pairs.into_iter().max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(&x.0))) else { break };
        if c < 2 {
            break;
        }
        let (a, b) = (a.to_string(), b.to_string());
        let merged = format!("{a}{b}");
        for (syms, _) in seqs.iter_mut() {
            let mut i = 0;
            while i + 1 < syms.len() {
                if syms[i] == a && syms[i + 1] == b {
                    syms[i] = merged.clone();
                    syms.remove(i + 1);
                }
                i += 1;
            }
        }
        if in_vocab.insert(merged.clone()) {
            vocab.push(merged);
        }
        merges.push((a, b));
    }
    let mut v = Vocab::default();
    for (i, t) in vocab.iter().enumerate() {
        v.insert(t.clone(), i as u32);
    }
    let model = BPE::builder().vocab_and_merges(v, merges).unk_token(SPECIALS[1].into()).end_of_word_suffix("</w>".into()).build().map_err(bad)?;
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(normalizer)).map_err(bad)?;
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(tokenizers::decoders::bpe::BPEDecoder::new("</w>".into())));
    let post = tokenizers::processors::template::TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .map_err(|e| BundleError::Invalid(format!("template: {e}")))?
        .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
        .build()
        .map_err(|e| BundleError::Invalid(format!("template: {e}")))?;
    tok.with_post_processor(Some(post));
    tok.to_string(false).map_err(bad)
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

    #[cfg(feature = "train")]
    #[test]
    fn a_bpe_learned_from_captions_encodes_them_and_reports_unknown_characters() {
        let captions = ["red apple", "green apple, fruit", "grinning face", "cat face with heart eyes", "smiling cat", "red heart"].repeat(3);
        let json = train_bpe(captions.iter().map(|s| *s), 60).unwrap();
        assert_eq!(json, train_bpe(captions.iter().map(|s| *s), 60).unwrap(), "deterministic");
        let t = TextTokenizer::from_json("bpe.json", json.as_bytes(), 32).unwrap();
        assert!(t.vocab_size() <= 60);
        let e = t.encode("Red APPLE").unwrap();
        assert_eq!((e.ids.first(), e.ids.last()), (Some(&2), Some(&3)), "[CLS] ... [SEP]");
        assert!(e.unknown.is_empty() && e.ids.len() >= 3);
        assert_eq!(t.encode("").unwrap().ids, vec![2, 3]);
        // 'z' and the emoji never occur in the captions: [UNK], reported
        let e = t.encode("zebra 🍎").unwrap();
        assert!(e.ids.contains(&1));
        assert_eq!(e.unknown, vec!["zebra".to_string(), "🍎".to_string()]);
        assert!(train_bpe(captions.iter().map(|s| *s), 2).is_err());
    }

    #[test]
    fn words_around_token_offsets() {
        let t = "a zébra\tcrossing 🍎 x";
        assert_eq!(word_around(t, 5, 6), Some("zébra"));
        assert_eq!(word_around(t, 0, 1), Some("a"));
        assert_eq!(word_around(t, 18, 22), Some("🍎"));
        assert_eq!(word_around(t, 23, 24), Some("x"));
        assert_eq!(word_around(t, 5, 100), None);
        assert_eq!(word_around(t, 4, 5), None, "inside é");
        assert_eq!(word_around(t, 20, 21), None, "inside a character");
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
