//! CLIPScore_tiny: text-image agreement of text-to-image samples, measured by the in-project tiny
//! CLIP (`tessera::train::clip`, trained by `train --stage clip` on the training captions, apart from
//! every generator; exported by `export-clip` with its own prompt tokenizer). A score is the cosine of
//! the image and prompt embeddings x 100. It is NOT OpenAI's CLIP: the figures are named for it.
use crate::checkpoint::Checkpoint;
use crate::data::{self, DataSpec, Dataset, Split, images_tensor};
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use tessera::bundle::weights::{Precision, from_safetensors, load_module, to_safetensors_as};
use tessera::bundle::{FileEntry, Provenance, sha256_hex};
use tessera::proposal::condition::TextInput;
use tessera::text::vocab::TextTokenizer;
use tessera::train::clip::{TinyClip, TinyClipConfig};

pub const FORMAT: &str = "tessera-tiny-clip";

/// `clip.json`: what the scorer is, its files, and how well it matches captions to images it never
/// saw (the test split), so that its scores can be trusted as far as that goes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClipCard {
    pub format: String,
    pub name: String,
    pub config: TinyClipConfig,
    pub file: FileEntry,
    pub tokenizer: FileEntry,
    /// Caption -> image retrieval on the test split in pools of `pool` images: the top image shows
    /// the caption's emoji (any art style); `chance` is the same for a random pick.
    pub retrieval_r1: f64,
    pub retrieval_chance: f64,
    pub pool: usize,
    /// Mean CLIPScore_tiny of test images with their own first caption, and with another image's.
    pub score_matched_test: f64,
    pub score_mismatched_test: f64,
    pub data: Option<crate::data::DataInfo>,
    pub provenance: Provenance,
}

pub struct ClipScorer {
    pub card: ClipCard,
    model: TinyClip,
    tokenizer: TextTokenizer,
}

impl ClipScorer {
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let path = dir.join("clip.json");
        let card: ClipCard = serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("reading {} (export one with `tessera-train export-clip`)", path.display()))?)
            .with_context(|| format!("parsing {}", path.display()))?;
        if card.format != FORMAT {
            bail!("{} is not a tiny-CLIP card (format '{}')", path.display(), card.format);
        }
        let read = |f: &FileEntry| -> Result<Vec<u8>> {
            f.validate()?;
            let b = std::fs::read(dir.join(&f.path))?;
            f.verify(&b)?;
            Ok(b)
        };
        let w = read(&card.file)?;
        let model = load_module(card.config.init(device)?, from_safetensors(&card.file.path, &w)?, &card.file.path, device, false)?;
        let tokenizer = TextTokenizer::from_json(&card.tokenizer.path, &read(&card.tokenizer)?, card.config.n_ctx)?;
        Ok(Self { card, model, tokenizer })
    }

    fn text(&self, prompts: &[&str], device: &Device) -> Result<Tensor<2>> {
        let ids: Vec<Vec<u32>> = prompts.iter().map(|p| self.tokenizer.encode(p).map(|e| e.ids)).collect::<Result<_, _>>()?;
        let rows: Vec<(&[u32], Option<&[f32]>)> = ids.iter().map(|r| (r.as_slice(), None)).collect();
        Ok(self.model.embed_text(&TextInput::padded(&rows, self.card.config.n_ctx, None, device)?))
    }

    /// CLIPScore_tiny of each image `[n, c, s, s]` with the prompt of its row (`prompts[i]`).
    pub fn scores(&self, images: Tensor<4>, prompts: &[&str], device: &Device) -> Result<Vec<f64>> {
        let i = self.model.embed_images(images);
        let t = self.text(prompts, device)?;
        let cos: Vec<f32> = (i * t).sum_dim(1).into_data().convert::<f32>().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(cos.into_iter().map(|c| 100.0 * c as f64).collect())
    }

    /// Retrieval and matched / mismatched scores on a test split (see [`ClipCard`]).
    fn measure(&self, test: &Dataset, device: &Device) -> Result<(f64, f64, f64, f64)> {
        const POOL: usize = 100;
        let shape = test.shape();
        let names: Vec<&str> = (0..test.len()).map(|i| test.captions(i).next().unwrap_or("")).collect();
        let (mut hits, mut chance, mut queries, mut matched, mut mismatched) = (0usize, 0f64, 0usize, 0f64, 0f64);
        for start in (0..test.len()).step_by(POOL) {
            let idx: Vec<usize> = (start..(start + POOL).min(test.len())).collect();
            if idx.len() < 2 {
                continue;
            }
            let (x, _) = test.batch(&idx);
            let img = self.model.embed_images(images_tensor(x, idx.len(), shape, device));
            let pool_names: Vec<&str> = idx.iter().map(|&i| names[i]).collect();
            let txt = self.text(&pool_names, device)?;
            let sim: Vec<f32> = txt.matmul(img.transpose()).into_data().convert::<f32>().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let n = idx.len();
            for q in 0..n {
                let row = &sim[q * n..(q + 1) * n];
                let top = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(j, _)| j);
                hits += (pool_names[top] == pool_names[q]) as usize;
                chance += pool_names.iter().filter(|&&p| p == pool_names[q]).count() as f64 / n as f64;
                matched += 100.0 * row[q] as f64;
                mismatched += 100.0 * row[(q + n / 2) % n] as f64;
                queries += 1;
            }
        }
        let q = queries.max(1) as f64;
        Ok((hits as f64 / q, chance / q, matched / q, mismatched / q))
    }
}

/// Writes the tiny CLIP trained in `run` to `out`: weights (f16), its prompt tokenizer, and a card
/// with retrieval and matched/mismatched scores measured on the test split of `data` (default:
/// what it was trained on).
pub fn export_clip(run: &Path, out: &Path, device: &Device) -> Result<()> {
    let ck = Checkpoint::new(run)?;
    let st = ck.finished("tiny CLIP", "run `tessera-train train --stage clip`")?;
    let config: TinyClipConfig = serde_json::from_value(st.config.clone())?;
    let f32_bytes = std::fs::read(ck.weights_path())?;
    let bytes = to_safetensors_as(&from_safetensors("clip", &f32_bytes)?, Precision::F16);
    let tok = std::fs::read(run.join("text").join("tokenizer.json")).with_context(|| format!("{}/text/tokenizer.json", run.display()))?;
    let info = data::run_info(run)?;
    let spec: DataSpec = info.spec.parse().map_err(|e: String| anyhow::anyhow!("{e} (the data {} recorded)", run.display()))?;
    let mut details = BTreeMap::new();
    details.insert("training".to_string(), json!({"steps": st.step, "batch_size": st.batch_size, "seed": st.seed, "train_seconds": st.elapsed_s.round(), "final_loss": st.losses.last().map(|l| l.1), "command": st.command}));
    let mut card = ClipCard {
        format: FORMAT.into(),
        name: format!("tessera tiny CLIP (in-project contrastive text-image model on {} captions; not OpenAI's CLIP)", info.name),
        config,
        file: FileEntry { path: "clip.safetensors".into(), bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) },
        tokenizer: FileEntry { path: "tokenizer.json".into(), bytes: tok.len() as u64, sha256: sha256_hex(&tok) },
        retrieval_r1: f64::NAN,
        retrieval_chance: f64::NAN,
        pool: 100,
        score_matched_test: f64::NAN,
        score_mismatched_test: f64::NAN,
        data: Some(info.clone()),
        provenance: crate::export::provenance(details),
    };
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join(&card.file.path), &bytes)?;
    std::fs::write(out.join(&card.tokenizer.path), &tok)?;
    let test = data::load(&spec, Split::Test, Some(info.shape))?;
    if test.texts.is_empty() {
        bail!("{spec} has no captions to measure the tiny CLIP on");
    }
    let scorer = ClipScorer { model: load_module(card.config.init(device)?, from_safetensors("clip", &bytes)?, "clip", device, false)?, tokenizer: TextTokenizer::from_json("tokenizer.json", &tok, card.config.n_ctx)?, card: card.clone() };
    let (r1, chance, matched, mismatched) = scorer.measure(&test, device)?;
    (card.retrieval_r1, card.retrieval_chance, card.score_matched_test, card.score_mismatched_test) = (r1, chance, matched, mismatched);
    std::fs::write(out.join("clip.json"), serde_json::to_string_pretty(&card)? + "\n")?;
    eprintln!("exported the tiny CLIP to {}: caption -> image R@1 {:.1}% (chance {:.1}%), CLIPScore_tiny matched {matched:.1} vs mismatched {mismatched:.1} on the test split", out.display(), 100.0 * r1, 100.0 * chance);
    Ok(())
}
