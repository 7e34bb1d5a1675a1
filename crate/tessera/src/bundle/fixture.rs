//! Tiny, valid bundles of a few kilobytes built in memory (random weights): the one fixture the
//! tests of every crate share (`tests/bundle.rs`, the fuzz replay's seeds, the wasm-bindgen tests),
//! so that a format change is made once. Class-conditional, or text-to-image over the in-project
//! text encoder or over a (tiny, random) pretrained one in MiniLM's shape.
use super::manifest::{DatasetInfo, FORMAT, FORMAT_VERSION, FORMAT_VERSION_TEXT, FileEntry, Manifest, ProposalEntry, Provenance, TEXT_ENCODER, TEXT_TOKENIZER, TextInfo, sha256_hex};
use super::weights::{module_to_tensors, to_safetensors};
use super::{Bundle, TextFiles};
use crate::error::BundleError;
use crate::proposal::condition::{TextConditionConfig, TextEncoderSpec};
use crate::proposal::{ProposalConfig, ProposalSpec};
use crate::sampling::sampler::SamplingOptions;
use crate::text::minilm::MiniLmConfig;
use crate::tokenizer::TokenizerSpec;
use crate::tokenizer::vqgan::VqganConfig;
use burn::prelude::*;
use std::collections::BTreeMap;

/// A word-level prompt tokenizer (`[CLS] ... [SEP]`, lower case) in `tokenizers`' JSON, as a
/// text-to-image bundle ships its tokenizer: 7 tokens, `red`=4, `apple`=5, `green`=6.
pub const TINY_TEXT_TOKENIZER: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":{"type":"Lowercase"},"pre_tokenizer":{"type":"Whitespace"},"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}}],"pair":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{"[CLS]":{"id":"[CLS]","ids":[2],"tokens":["[CLS]"]},"[SEP]":{"id":"[SEP]","ids":[3],"tokens":["[SEP]"]}}},"decoder":null,"model":{"type":"WordLevel","vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"red":4,"apple":5,"green":6},"unk_token":"[UNK]"}}"#;

/// What conditions the tiny bundle's proposal networks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TinyCondition {
    /// `classes` class labels.
    Class { classes: usize },
    /// Prompts through the in-project text encoder.
    Learned,
    /// Prompts through a pretrained encoder's states (a random 1-layer BERT in MiniLM's code).
    Pretrained,
}

/// A bundle's manifest and the bytes of each of its files, by role.
#[derive(Debug, Clone)]
pub struct TinyBundle {
    pub manifest: Manifest,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl TinyBundle {
    /// A VQGAN tokenizer (32 px, 1 channel, 8x8 grid, `codebook` codes) with AR and NAR networks of
    /// width `n_embd`, drawn from `seed`.
    pub fn new(condition: TinyCondition, codebook: usize, n_embd: usize, seed: u64, device: &Device) -> Self {
        device.seed(seed);
        let n_ctx = 6;
        let tok = VqganConfig { channels: 4, codebook_size: codebook, code_dim: 4, ..Default::default() };
        let minilm = MiniLmConfig { vocab_size: 7, n_embd: 8, n_layer: 1, n_head: 2, mlp: 16, max_positions: 8, norm_eps: 1e-12 };
        let (classes, text) = match condition {
            TinyCondition::Class { classes } => (classes, None),
            TinyCondition::Learned => (2, Some(TextConditionConfig { n_ctx, encoder: TextEncoderSpec::Learned { vocab_size: 7, n_embd, n_layer: 1, n_head: 2 } })),
            TinyCondition::Pretrained => (2, Some(TextConditionConfig { n_ctx, encoder: TextEncoderSpec::Pretrained { name: "tiny-bert".into(), width: minilm.n_embd } })),
        };
        let p = ProposalConfig { vocab_size: codebook, num_classes: classes, block_size: 64, n_layer: 1, n_head: 2, n_embd, text: text.clone() };
        let mut files = BTreeMap::new();
        files.insert("tokenizer".to_string(), to_safetensors(&module_to_tensors(&tok.init(device).expect("valid tiny tokenizer"))));
        files.insert("ar".to_string(), to_safetensors(&module_to_tensors(&p.init_gpt(device).expect("valid tiny GPT"))));
        files.insert("nar".to_string(), to_safetensors(&module_to_tensors(&p.init_maskgit(device).expect("valid tiny MaskGIT"))));
        let mut info = None;
        if let Some(t) = &text {
            files.insert(TEXT_TOKENIZER.to_string(), TINY_TEXT_TOKENIZER.as_bytes().to_vec());
            let encoder_model = match t.encoder {
                TextEncoderSpec::Pretrained { .. } => {
                    files.insert(TEXT_ENCODER.to_string(), to_safetensors(&module_to_tensors(&minilm.init(device).expect("valid tiny BERT"))));
                    Some(minilm.clone())
                }
                TextEncoderSpec::Learned { .. } => None,
            };
            info = Some(TextInfo { n_ctx, encoder: t.encoder.clone(), words: vec!["red".into(), "apple".into()], examples: vec!["red apple".into()], encoder_model });
        }
        let path = |role: &str| match role {
            TEXT_TOKENIZER => "text_tokenizer.json".to_string(),
            r => format!("{r}.safetensors"),
        };
        let entries = files.iter().map(|(r, b)| (r.clone(), FileEntry { path: path(r), bytes: b.len() as u64, sha256: sha256_hex(b) })).collect();
        let manifest = Manifest {
            format: FORMAT.into(),
            format_version: if text.is_some() { FORMAT_VERSION_TEXT } else { FORMAT_VERSION },
            name: "tiny".into(),
            dataset: DatasetInfo { name: "synthetic".into(), image_size: 32, channels: 1, background: 0, credits: vec![], classes: (0..classes).map(|i| ((b'a' + i as u8) as char).to_string()).collect() },
            grid: [8, 8],
            tokenizer: TokenizerSpec::Vqgan(tok),
            proposals: BTreeMap::from([
                ("ar".to_string(), ProposalEntry { model: ProposalSpec::Ar(p.clone()), sampling: SamplingOptions::default() }),
                ("nar".to_string(), ProposalEntry { model: ProposalSpec::Nar(p), sampling: SamplingOptions { steps: 4, ..Default::default() } }),
            ]),
            blank_token: 0,
            files: entries,
            provenance: Provenance::default(),
            text: info,
        };
        Self { manifest, files }
    }

    /// The text files as `Bundle::from_bytes` takes them.
    pub fn text_files(&self) -> Option<TextFiles<'_>> {
        self.files.get(TEXT_TOKENIZER).map(|t| TextFiles { tokenizer: t, encoder: self.files.get(TEXT_ENCODER).map(Vec::as_slice) })
    }

    /// The proposal files (`ar`, `nar`) as `Bundle::from_bytes` takes them.
    pub fn proposals(&self) -> Vec<(&str, &[u8])> {
        self.manifest.proposals.keys().map(|k| (k.as_str(), self.files[k].as_slice())).collect()
    }

    pub fn load(&self, device: &Device) -> Result<Bundle, BundleError> {
        Bundle::from_bytes(self.manifest.clone(), &self.files["tokenizer"], &self.proposals(), self.text_files(), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tiny_bundle_loads_and_a_pretrained_encoder_gives_states() {
        let d = Device::flex();
        for c in [TinyCondition::Class { classes: 3 }, TinyCondition::Learned, TinyCondition::Pretrained] {
            let t = TinyBundle::new(c, 16, 8, 1, &d);
            Manifest::parse(&serde_json::to_string(&t.manifest).unwrap()).unwrap();
            let b = t.load(&d).unwrap();
            if c != (TinyCondition::Class { classes: 3 }) {
                let (p, r) = pollster::block_on(b.encode_prompt("Red apple")).unwrap();
                assert_eq!(r.ids, [2, 4, 5, 3]);
                assert_eq!(p.prompt.states.map(|s| s.len()), (c == TinyCondition::Pretrained).then_some(4 * 8));
                assert_eq!(p.empty.states.map(|s| s.len()), (c == TinyCondition::Pretrained).then_some(2 * 8));
            }
        }
        // the pretrained encoder's weights are part of the bundle: without them, a typed error
        let t = TinyBundle::new(TinyCondition::Pretrained, 16, 8, 1, &d);
        let files = TextFiles { tokenizer: &t.files[TEXT_TOKENIZER], encoder: None };
        assert!(matches!(Bundle::from_bytes(t.manifest.clone(), &t.files["tokenizer"], &t.proposals(), Some(files), &d), Err(BundleError::MissingFile(_))));
        let mut m = t.manifest.clone();
        m.text.as_mut().unwrap().encoder_model = None;
        assert!(matches!(m.validate(), Err(BundleError::Invalid(_))));
    }
}
