//! `eval-phrasings`: how text-to-image bundles follow prompts phrased unlike any training caption —
//! paraphrases, keyword-only prompts, compositions of two seen concepts (a colour and an object) —
//! the comparison of the in-project and the pretrained (all-MiniLM-L6-v2) text encoder.
//! Prompts come from a JSONL file (`{"set", "prompt", "class"}`, the class the prompt should give);
//! every bundle samples the same prompts with the same seeds. Per set: CLIPScore_tiny with the
//! prompt and with another prompt of the set (of another class), and class consistency (the
//! in-project evaluator's class = the prompt's class).
use crate::clip_score::ClipScorer;
use crate::data::images_tensor;
use crate::SampleArgs;
use crate::eval::{encode_prompt, load_evaluator, manifest_shape, sample_request, sampling};
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera::bundle::Bundle;
use tessera::sampling::Request;
use tessera::sampling::sampler::SamplingOptions;

/// One prompt of the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Phrasing {
    /// The kind of phrasing: `paraphrase`, `keyword`, `composition`, ...
    pub set: String,
    pub prompt: String,
    /// The class (emoji subgroup) a sample should be of.
    pub class: String,
}

/// A set's figures for one bundle.
#[derive(Debug, Clone, Serialize)]
pub struct SetScore {
    pub prompts: usize,
    pub samples: usize,
    pub clip_score: f64,
    pub clip_score_mismatched: f64,
    pub class_consistency: f64,
    /// Prompts with a word the bundle's training captions never contained.
    pub prompts_with_unseen_words: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhrasingsReport {
    pub prompts_file: String,
    pub proposal: String,
    pub samples_per_prompt: usize,
    pub clip_scorer: String,
    pub evaluator: String,
    /// bundle name -> set -> figures
    pub bundles: BTreeMap<String, BTreeMap<String, SetScore>>,
    pub text_encoders: BTreeMap<String, String>,
    /// Training steps of each bundle's proposal network (a comparison is fair at equal budgets).
    pub steps: BTreeMap<String, u64>,
}

pub fn read_prompts(path: &Path) -> Result<Vec<Phrasing>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        out.push(serde_json::from_str::<Phrasing>(line).with_context(|| format!("{}:{}: expected {{\"set\", \"prompt\", \"class\"}}", path.display(), i + 1))?);
    }
    if out.is_empty() {
        bail!("{} lists no prompt", path.display());
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub fn evaluate(bundles: &[PathBuf], prompts_file: &Path, clip: &Path, evaluator: &Path, proposal: &str, per_prompt: usize, a: &SampleArgs, out: &Path, device: &Device) -> Result<()> {
    if bundles.is_empty() || per_prompt == 0 {
        bail!("give at least one --bundle and --samples-per-prompt >= 1");
    }
    let prompts = read_prompts(prompts_file)?;
    let scorer = ClipScorer::load(clip, device)?;
    let ev = load_evaluator(evaluator, device)?;
    let mut report = PhrasingsReport {
        prompts_file: prompts_file.display().to_string(),
        proposal: proposal.into(),
        samples_per_prompt: per_prompt,
        clip_scorer: scorer.card.name.clone(),
        evaluator: ev.card.name.clone(),
        bundles: BTreeMap::new(),
        text_encoders: BTreeMap::new(),
        steps: BTreeMap::new(),
    };
    for dir in bundles {
        let b = Bundle::load_dir(dir, device).with_context(|| format!("loading {}", dir.display()))?;
        let Some(text) = &b.manifest.text else { bail!("{} is not a text-to-image bundle", dir.display()) };
        let classes = &b.manifest.dataset.classes;
        let class_of = |p: &Phrasing| classes.iter().position(|c| c == &p.class).with_context(|| format!("prompt {:?}: class '{}' is not one of the bundle's", p.prompt, p.class));
        let opts = sampling(&b.defaults(proposal)?, a);
        let shape = manifest_shape(&b.manifest);
        let mut sets: BTreeMap<String, (Vec<f64>, Vec<f64>, usize, usize, usize)> = BTreeMap::new();
        for (i, p) in prompts.iter().enumerate() {
            let c = class_of(p)?;
            // the mismatched prompt: the next one of the same set with another class
            let other = (1..prompts.len()).map(|k| &prompts[(i + k) % prompts.len()]).find(|q| q.set == p.set && q.class != p.class).unwrap_or(p);
            let (encoded, r) = encode_prompt(&b, &p.prompt)?;
            let o = SamplingOptions { seed: opts.seed.wrapping_add(i as u64 * 1000), ..opts.clone() };
            let px = sample_request(&b, proposal, Request { class: c, count: per_prompt, options: o, prompt: Some(encoded) }, device)?.1;
            let x = images_tensor(px, per_prompt, shape, device);
            let own = scorer.scores(x.clone(), &vec![p.prompt.as_str(); per_prompt], device)?;
            let wrong = scorer.scores(x.clone(), &vec![other.prompt.as_str(); per_prompt], device)?;
            let probs = burn::tensor::activation::softmax(ev.model.logits(ev.model.features(x)), 1).argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let ok = probs.iter().filter(|&&k| k as usize == c).count();
            let e = sets.entry(p.set.clone()).or_default();
            e.0.extend(own);
            e.1.extend(wrong);
            e.2 += ok;
            e.3 += 1;
            e.4 += usize::from(!r.unseen.is_empty());
            eprintln!("{}: {:<12} {:?} -> {ok}/{per_prompt} of {}", b.manifest.name, p.set, p.prompt, p.class);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let scores = sets
            .into_iter()
            .map(|(k, (own, wrong, ok, n, unseen))| (k, SetScore { prompts: n, samples: n * per_prompt, clip_score: mean(&own), clip_score_mismatched: mean(&wrong), class_consistency: ok as f64 / (n * per_prompt) as f64, prompts_with_unseen_words: unseen }))
            .collect();
        let enc = match &text.encoder {
            tessera::proposal::condition::TextEncoderSpec::Learned { .. } => "in-project (BPE + transformer trained jointly)".to_string(),
            tessera::proposal::condition::TextEncoderSpec::Pretrained { name, .. } => format!("{name} (pretrained, frozen)"),
        };
        report.text_encoders.insert(b.manifest.name.clone(), enc);
        report.steps.insert(b.manifest.name.clone(), b.manifest.provenance.details.get(proposal).and_then(|d| d["steps"].as_u64()).unwrap_or(0));
        report.bundles.insert(b.manifest.name.clone(), scores);
    }
    std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")?;
    let md = out.with_extension("md");
    std::fs::write(&md, markdown(&report))?;
    eprintln!("wrote {} and {}", out.display(), md.display());
    Ok(())
}

/// The report as a markdown table: one row per (bundle, set).
pub fn markdown(r: &PhrasingsReport) -> String {
    let mut s = format!(
        "# Held-out phrasings: in-project vs pretrained text encoder\n\nWritten by `tessera-train eval-phrasings` from `{}` ({} proposal network, {} samples per prompt, \
         the same seeds for every bundle). CLIPScore_tiny: {} (x 100 cosine; \"other\" = the samples scored against another prompt of the \
         same set, of another class). Class consistency: the in-project evaluator ({}) gives the prompt's class.\n\n\
         | bundle | text encoder | steps | phrasing | prompts | CLIPScore_tiny own / other | class consistency | prompts with unseen words |\n|---|---|---|---|---|---|---|---|\n",
        r.prompts_file, r.proposal.to_uppercase(), r.samples_per_prompt, r.clip_scorer, r.evaluator
    );
    for (b, sets) in &r.bundles {
        for (set, v) in sets {
            s += &format!(
                "| {b} | {} | {} | {set} | {} | {:.1} / {:.1} | {:.1}% | {} |\n",
                r.text_encoders.get(b).map_or("", String::as_str),
                r.steps.get(b).copied().unwrap_or(0),
                v.prompts,
                v.clip_score,
                v.clip_score_mismatched,
                100.0 * v.class_consistency,
                v.prompts_with_unseen_words
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_files_are_checked_line_by_line() {
        let dir = std::env::temp_dir().join(format!("tessera-phrasings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.jsonl");
        std::fs::write(&f, "{\"set\": \"keyword\", \"prompt\": \"fruit\", \"class\": \"food-fruit\"}\n\n").unwrap();
        assert_eq!(read_prompts(&f).unwrap()[0].class, "food-fruit");
        std::fs::write(&f, "{\"set\": \"keyword\", \"prompt\": \"fruit\"}\n").unwrap();
        assert!(read_prompts(&f).unwrap_err().to_string().contains(":1:"));
        std::fs::write(&f, "\n").unwrap();
        assert!(read_prompts(&f).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
