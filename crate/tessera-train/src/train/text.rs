//! The prompt side of text-to-image training: the vocabulary (a BPE learned from the training
//! captions, or the pretrained encoder's WordPiece), every caption as ids, and — for the pretrained
//! encoder, which is frozen — its per-token states, computed once before training. A batch picks one
//! caption per image (a seeded draw) and, with the condition-dropout probability, the empty prompt
//! instead (classifier-free guidance's unconditional branch).
use crate::data::Dataset;
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use std::path::{Path, PathBuf};
use tessera::proposal::condition::{TextConditionConfig, TextEncoderSpec, TextInput};
use tessera::rng::Rng;
use tessera::text::minilm::MiniLm;
use tessera::text::vocab::TextTokenizer;

/// Name of the pretrained text encoder in manifests.
pub const MINILM: &str = "all-MiniLM-L6-v2";

/// Which text encoder a text-to-image run trains with (`--text-encoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum TextEncoderKind {
    /// Class-conditional (no text).
    #[default]
    None,
    /// A small transformer over a BPE vocabulary learned from the captions, trained jointly.
    Learned,
    /// all-MiniLM-L6-v2, pretrained and frozen (`$TESSERA_WEIGHTS/all-minilm-l6-v2`).
    Minilm,
}

/// The text flags of a run.
#[derive(Debug, Clone)]
pub struct TextOptions {
    pub encoder: TextEncoderKind,
    pub vocab_size: usize,
    pub n_ctx: usize,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
}

/// `run/text/words.json`: the training captions' words and example prompts, for the bundle.
pub const WORDS_FILE: &str = "words.json";

/// The words of the training captions (most frequent first, ties alphabetical) and example prompts
/// (the first caption, the emoji's name, of the first image of each class).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct WordList {
    pub words: Vec<String>,
    pub examples: Vec<String>,
}

pub fn word_list(data: &Dataset) -> WordList {
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for i in 0..data.len() {
        for c in data.captions(i) {
            for w in tessera::text::lower_words(c) {
                if w.chars().count() <= tessera::bundle::manifest::MAX_WORD_CHARS {
                    *counts.entry(w).or_default() += 1;
                }
            }
        }
    }
    let mut words: Vec<(String, usize)> = counts.into_iter().collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    words.truncate(tessera::bundle::manifest::MAX_WORDS);
    let mut examples: Vec<String> = Vec::new();
    for class in 0..data.info.classes.len() {
        if let Some(i) = data.labels.iter().position(|&l| l as usize == class)
            && let Some(c) = data.captions(i).next()
            && !examples.iter().any(|e| e == c)
        {
            examples.push(c.to_string());
        }
    }
    WordList { words: words.into_iter().map(|w| w.0).collect(), examples }
}

/// Where `scripts/setup.sh` unpacks all-MiniLM-L6-v2.
pub fn minilm_dir() -> PathBuf {
    crate::fid_lite::weights_dir().join("all-minilm-l6-v2")
}

/// The training captions of a run, ready to batch.
pub struct Captions {
    /// The prompt tokenizer (training reads the ids made in `prepare`).
    pub tokenizer: TextTokenizer,
    pub config: TextConditionConfig,
    /// Ids of each distinct caption (index 0: the empty prompt), cut to `n_ctx`.
    ids: Vec<Vec<u32>>,
    /// Caption indices of each training image.
    per_image: Vec<Vec<u32>>,
    /// Pretrained encoder: the states of each caption, `ids[i].len() x width`, row-major.
    states: Option<(usize, Vec<Vec<half::f16>>)>,
}

impl Captions {
    /// Reads or learns the vocabulary (`run/text/tokenizer.json`, written once so that AR, NAR
    /// and a resumed run share it) and encodes every caption of `data`.
    pub fn prepare(run: &Path, data: &Dataset, o: &TextOptions, device: &Device) -> Result<Self> {
        if data.texts.is_empty() {
            bail!("--text-encoder needs captions: {} has no text (use --data emoji or captions:FILE.jsonl)", data.info.spec);
        }
        let dir = run.join("text");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("tokenizer.json");
        let json = match o.encoder {
            TextEncoderKind::None => bail!("no text encoder chosen"),
            TextEncoderKind::Minilm => {
                let p = minilm_dir().join("tokenizer.json");
                let json = std::fs::read_to_string(&p).with_context(|| format!("reading {} (scripts/setup.sh unpacks all-MiniLM-L6-v2)", p.display()))?;
                // the run keeps its own copy (once): `export` ships the run's tokenizer.json whatever the encoder
                if !path.exists() {
                    let tmp = path.with_extension("json.tmp");
                    std::fs::write(&tmp, &json)?;
                    std::fs::rename(&tmp, &path)?;
                }
                json
            }
            TextEncoderKind::Learned if path.exists() => std::fs::read_to_string(&path)?,
            TextEncoderKind::Learned => {
                let all: Vec<&str> = (0..data.len()).flat_map(|i| data.captions(i)).collect();
                let json = tessera::text::vocab::train_bpe(all.into_iter(), o.vocab_size)?;
                let tmp = path.with_extension("json.tmp");
                std::fs::write(&tmp, &json)?;
                std::fs::rename(&tmp, &path)?;
                json
            }
        };
        let tokenizer = TextTokenizer::from_json("tokenizer.json", json.as_bytes(), o.n_ctx)?;
        let words_path = dir.join(WORDS_FILE);
        if !words_path.exists() {
            let tmp = words_path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_string_pretty(&word_list(data))? + "\n")?;
            std::fs::rename(&tmp, &words_path)?;
        }
        let mut index: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let mut texts: Vec<String> = vec![String::new()];
        index.insert(String::new(), 0);
        let per_image: Vec<Vec<u32>> = (0..data.len())
            .map(|i| {
                data.captions(i)
                    .map(|c| {
                        *index.entry(c.to_string()).or_insert_with(|| {
                            texts.push(c.to_string());
                            (texts.len() - 1) as u32
                        })
                    })
                    .collect()
            })
            .collect();
        if per_image.iter().any(Vec::is_empty) {
            bail!("{} of {} training images have no caption", per_image.iter().filter(|c| c.is_empty()).count(), data.len());
        }
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t).map(|e| e.ids)).collect::<Result<_, _>>()?;
        let encoder = match o.encoder {
            TextEncoderKind::Learned => TextEncoderSpec::Learned { vocab_size: tokenizer.vocab_size(), n_embd: o.n_embd, n_layer: o.n_layer, n_head: o.n_head },
            _ => TextEncoderSpec::Pretrained { name: MINILM.into(), width: 384 },
        };
        let config = TextConditionConfig { n_ctx: o.n_ctx, encoder };
        let states = if o.encoder == TextEncoderKind::Minilm {
            let (_, model) = tessera::text::minilm_import::import(&minilm_dir(), device)?;
            Some((384, encode_all(&model, &ids, device)?))
        } else {
            None
        };
        eprintln!("text: {} captions ({} distinct) of {} images, vocabulary {} ({:?}), {} positions", per_image.iter().map(Vec::len).sum::<usize>(), texts.len(), data.len(), tokenizer.vocab_size(), o.encoder, o.n_ctx);
        Ok(Self { tokenizer, config, ids, per_image, states })
    }

    /// The prompt input of a batch of images `idx`: one caption each, drawn with `rng`; the empty
    /// prompt with probability `dropout`.
    pub fn batch(&self, idx: &[usize], rng: &mut Rng, dropout: f64, device: &Device) -> TextInput {
        let chosen: Vec<usize> = idx
            .iter()
            .map(|&i| {
                let caps = &self.per_image[i];
                let pick = caps[(rng.next_u64() % caps.len() as u64) as usize] as usize;
                if rng.uniform() < dropout { 0 } else { pick }
            })
            .collect();
        self.input(&chosen, device)
    }

    /// The pretrained encoder's states of caption `text` as training reads them (stored in f16), if
    /// it is a training caption.
    #[cfg(test)]
    pub fn trained_states(&self, text: &str) -> Option<Vec<f32>> {
        let ids = self.tokenizer.encode(text).ok()?.ids;
        let i = self.ids.iter().position(|r| *r == ids)?;
        self.states.as_ref().map(|(_, s)| s[i].iter().map(|x| x.to_f32()).collect())
    }

    /// Prompts by caption index, padded to `n_ctx`.
    fn input(&self, captions: &[usize], device: &Device) -> TextInput {
        let states: Vec<Option<Vec<f32>>> = captions.iter().map(|&c| self.states.as_ref().map(|(_, s)| s[c].iter().map(|x| x.to_f32()).collect())).collect();
        let rows: Vec<(&[u32], Option<&[f32]>)> = captions.iter().zip(&states).map(|(&c, s)| (self.ids[c].as_slice(), s.as_deref())).collect();
        // every caption was encoded (and cut) to n_ctx with its states in `prepare`
        TextInput::padded(&rows, self.config.n_ctx, self.states.as_ref().map(|s| s.0), device).expect("captions fit the text positions")
    }
}

/// The pretrained encoder's per-token states of every caption (batches of 64, padding masked).
fn encode_all(model: &MiniLm, ids: &[Vec<u32>], device: &Device) -> Result<Vec<Vec<half::f16>>> {
    let pb = indicatif::ProgressBar::new(ids.len() as u64);
    pb.set_style(indicatif::ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} captions").expect("valid template"));
    pb.set_prefix("minilm");
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(64) {
        let len = chunk.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let b = chunk.len();
        let flat: Vec<i64> = chunk.iter().flat_map(|r| r.iter().map(|&v| v as i64).chain(std::iter::repeat(0).take(len - r.len()))).collect();
        let pad: Vec<bool> = chunk.iter().flat_map(|r| (0..len).map(move |j| j >= r.len())).collect();
        let x = Tensor::<2, Int>::from_data(TensorData::new(flat, [b, len]), device);
        let m = Tensor::<2, Bool>::from_data(TensorData::new(pad, [b, len]), device);
        let h: Vec<f32> = model.forward(x, Some(m))?.into_data().convert::<f32>().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let w = h.len() / (b * len);
        for (r, row) in chunk.iter().enumerate() {
            out.push(h[r * len * w..(r * len + row.len()) * w].iter().map(|&v| half::f16::from_f32(v)).collect());
        }
        pb.inc(b as u64);
    }
    pb.finish_and_clear();
    Ok(out)
}
