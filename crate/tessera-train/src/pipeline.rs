//! `train`: the pipeline of one run, stage by stage (classifier, evaluator, teacher, tokenizer, AR,
//! NAR), each resumable; and `import-teacher`.
use crate::cli::{PixelLoss, Stage, TeacherKind, TrainArgs};
use crate::data::{self, Shape, Split};
use crate::{assemble, checkpoint, eval, train};
use crate::train::proposal::Conditioning;
use crate::train::text::TextEncoderKind;
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use tessera::proposal::ProposalConfig;
use tessera::teacher::vit::VitConfig;
use tessera::teacher::{Teacher, TeacherConfig};
use tessera::tokenizer::TokenizerKind;
use tessera::tokenizer::cluster::ClusterConfig;
use tessera::tokenizer::fsq::FsqConfig;
use tessera::tokenizer::vqgan::VqganConfig;
use tessera::tokenizer::vqkd::VqKdConfig;
use tessera::tokenizer::AnyTokenizer;
use tessera::tokenizer::TokenizerConfig;
use tessera::tokenizer::decoder::DecoderOutput;
use tessera::train::classifier::ClassifierConfig;

pub fn import_teacher(file: &std::path::Path, heads: usize, out: &std::path::Path, dev: &Device, command: &str) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let tensors = tessera::bundle::weights::from_safetensors(&name, &bytes)?;
    let layout = tessera::teacher::import::HfLayout::detect(&tensors);
    let (cfg, vit) = tessera::teacher::import::import_vit(&tensors, &name, heads, dev)?;
    let state = checkpoint::TrainState { stage: "teacher".into(), command: command.into(), config: serde_json::to_value(&cfg)?, done: true, ..Default::default() };
    checkpoint::Checkpoint::new(out)?.save(&vit, None, &state)?;
    eprintln!("imported {layout:?}: {} layers, width {}, patch {}, {}x{} input, {} channels -> {}", cfg.n_layer, cfg.n_embd, cfg.patch, cfg.image_size, cfg.image_size, cfg.image_channels, out.display());
    Ok(())
}

/// `import-teacher` of an EfficientNet-Lite `.pth`: the stages a teacher keeps, batch norm folded,
/// as a teacher checkpoint (f32).
pub fn import_efficientnet(file: &std::path::Path, image_size: usize, image_channels: usize, blocks: usize, out: &std::path::Path, dev: &Device, command: &str) -> Result<()> {
    use tessera::teacher::efficientnet::EfficientNetConfig;
    let tensors = tessera::teacher::efficientnet_import::read_pth(file)?;
    // Lite0 and Lite2 differ in width: the last block's output (320 vs 352) tells them apart.
    let name = match tensors.get("_conv_head.weight").map(|t| t.shape.get(1).copied()) {
        Some(Some(320)) => "efficientnet-lite0",
        Some(Some(352)) => "efficientnet-lite2",
        _ => bail!("{} is not an EfficientNet-Lite0 or -Lite2 state dict", file.display()),
    };
    let (width, depth) = if name.ends_with("lite2") { (1.1, 1.2) } else { (1.0, 1.0) };
    let cfg = EfficientNetConfig { name: name.into(), width, depth, blocks, ..EfficientNetConfig::lite0_teacher(image_size, image_channels) };
    let folded = tessera::teacher::efficientnet_import::fold(&tensors, &file.display().to_string(), &cfg)?;
    let tcfg = TeacherConfig::EfficientNet(cfg.clone());
    let net = tessera::bundle::weights::load_module(tcfg.init(dev)?, folded, &file.display().to_string(), dev, false)?;
    let state = checkpoint::TrainState { stage: "teacher".into(), command: command.into(), config: serde_json::to_value(&tcfg)?, done: true, ..Default::default() };
    checkpoint::Checkpoint::new(out)?.save(&net, None, &state)?;
    eprintln!("imported {}: {} -> {}", file.display(), tcfg.describe(), out.display());
    Ok(())
}

/// The pixel decoder's output layer: L1 (the VQGAN losses) needs a linear one (see `DecoderOutput`);
/// MSE keeps tanh.
pub fn decoder_output(a: &TrainArgs) -> DecoderOutput {
    if a.pixel_loss == PixelLoss::Vqgan { DecoderOutput::Linear } else { DecoderOutput::Tanh }
}

/// The configs a run builds from its flags (also validated by `TrainArgs::validate` up front).
pub fn vqgan_config(a: &TrainArgs, decoder_output: DecoderOutput) -> VqganConfig {
    let s = a.shape();
    VqganConfig { image_channels: s.channels, image_size: s.size, grid: s.size / 4, channels: a.channels, codebook_size: a.codebook_size, code_dim: a.code_dim, decoder_output, ..Default::default() }
}
pub fn fsq_config(a: &TrainArgs, decoder_output: DecoderOutput) -> FsqConfig {
    let s = a.shape();
    FsqConfig { image_channels: s.channels, image_size: s.size, grid: s.size / 4, channels: a.channels, levels: a.fsq_levels.clone(), decoder_output }
}
/// The in-project ViT teacher for images of `shape` (patch 4: one feature per token).
pub fn default_teacher(shape: Shape, num_classes: usize) -> VitConfig {
    VitConfig { image_channels: shape.channels, image_size: shape.size, num_classes, ..Default::default() }
}
pub fn vqkd_config(a: &TrainArgs, teacher: &TeacherConfig, decoder_output: DecoderOutput) -> VqKdConfig {
    VqKdConfig {
        image_channels: teacher.image_channels(), image_size: teacher.image_size(), grid: teacher.grid(), channels: a.channels, codebook_size: a.codebook_size,
        code_dim: a.code_dim, teacher_dim: teacher.feature_dim(), teacher_name: teacher_name(a), decay: 0.99, commitment: 0.25, decoder_output,
    }
}
pub fn cluster_config(a: &TrainArgs, teacher: &TeacherConfig, decoder_output: DecoderOutput) -> ClusterConfig {
    ClusterConfig { teacher: teacher.clone(), teacher_name: teacher_name(a), codebook_size: a.codebook_size, channels: a.channels, decoder_output }
}
pub fn proposal_config(a: &TrainArgs, vocab_size: usize, block_size: usize, num_classes: usize) -> ProposalConfig {
    ProposalConfig { vocab_size, num_classes, block_size, n_layer: a.n_layer, n_head: a.n_head, n_embd: a.n_embd, text: None }
}
fn teacher_name(a: &TrainArgs) -> String {
    a.teacher.file_name().map(|s| s.to_string_lossy().replace("teacher-", "")).unwrap_or_default()
}

pub fn run_train(a: &TrainArgs, dev: &Device, command: &str) -> Result<()> {
    run_train_on(a, &train::parallel::Devices::single(dev), command)
}

/// `run_train` with the AR and NAR stages data-parallel over `devices` (the first runs everything else).
pub fn run_train_on(a: &TrainArgs, devices: &train::parallel::Devices, command: &str) -> Result<()> {
    let dev = devices.main();
    a.validate()?;
    let shape = a.shape();
    let mut train = data::load(&a.data, Split::Train, Some(shape))?;
    if let Some(n) = a.limit {
        train = train.truncate(n);
    }
    // Every directory this run trains into records its data; a second run on other data is refused.
    let record = |dir: &std::path::Path| data::record(dir, &train.info);
    let sched = |steps: usize, lr: f64, warmup: usize| train::Schedule {
        steps,
        batch_size: a.batch_size,
        lr,
        warmup: warmup.min(steps / 2).max(1),
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        resume: a.resume,
        command: command.to_string(),
        grad_clip: None,
    };
    let n_classes = train.info.classes.len();
    let cls_cfg = ClassifierConfig { in_channels: shape.channels, channels: 32, num_classes: n_classes };
    let vit_cfg = default_teacher(shape, n_classes);
    let stage = |s: Stage| a.stage == s || (a.stage == Stage::All && matches!(s, Stage::Tokenizer | Stage::Ar | Stage::Nar));
    if stage(Stage::Classifier) {
        record(&a.classifier)?;
        let s = train::train_classifier(&a.classifier, &cls_cfg, &train, &sched(a.classifier_steps, 2e-3, 50), dev)?;
        eprintln!("classifier: {} steps in {:.0}s", s.step, s.elapsed_s);
    }
    if stage(Stage::Evaluator) {
        record(&a.evaluator)?;
        // Another seed and width than the perceptual-loss classifier: an independent yardstick.
        let cfg = ClassifierConfig { channels: 40, ..cls_cfg.clone() };
        let s = train::train_classifier(&a.evaluator, &cfg, &train, &train::Schedule { seed: a.seed + 1, ..sched(a.classifier_steps + 100, 2e-3, 50) }, dev)?;
        eprintln!("evaluator: {} steps in {:.0}s", s.step, s.elapsed_s);
    }
    if stage(Stage::Clip) {
        record(&a.clip)?;
        // its own vocabulary file and weights: trained apart from every generator it scores
        let o = train::text::TextOptions { encoder: TextEncoderKind::Learned, vocab_size: a.text_vocab, n_ctx: a.text_ctx, n_layer: 2, n_embd: 128, n_head: 4 };
        let captions = train::text::Captions::prepare(&a.clip, &train, &o, dev)?;
        let cfg = tessera::train::clip::TinyClipConfig {
            image: ClassifierConfig { channels: 32, num_classes: 1, ..cls_cfg.clone() },
            vocab_size: captions.tokenizer.vocab_size(),
            n_ctx: a.text_ctx,
            n_embd: 128,
            n_layer: 2,
            n_head: 4,
            embed_dim: 128,
            logit_scale: 1.0 / 0.07,
        };
        let s = train::train_clip(&a.clip, &cfg, &train, &captions, &train::Schedule { seed: a.seed + 2, ..sched(a.clip_steps, 1e-3, 100) }, dev)?;
        eprintln!("clip: {} steps in {:.0}s", s.step, s.elapsed_s);
    }
    if stage(Stage::Teacher) {
        record(&a.teacher)?;
        let s = match a.teacher_kind {
            TeacherKind::Supervised => train::train_teacher(&a.teacher, &vit_cfg, &train, &sched(a.teacher_steps, 1e-3, 50), dev)?,
            TeacherKind::Mim => {
                let cfg = tessera::teacher::mim::MimConfig { vit: VitConfig { num_classes: 0, ..vit_cfg.clone() }, mask_ratio: 0.6 };
                train::train_teacher_mim(&a.teacher, &cfg, &train, &sched(a.teacher_steps, 1e-3, 50), dev)?
            }
        };
        eprintln!("teacher: {} steps in {:.0}s", s.step, s.elapsed_s);
    }
    let load_teacher = || -> Result<(TeacherConfig, Teacher)> {
        let ck = checkpoint::Checkpoint::new(&a.teacher)?;
        let cfg: TeacherConfig = serde_json::from_value(ck.finished("teacher", "run --stage teacher first")?.config).with_context(|| format!("the teacher config in {}", a.teacher.display()))?;
        if cfg.image_channels() != shape.channels || cfg.image_size() != shape.size || cfg.grid() != shape.size / 4 {
            bail!(
                "the teacher in {} takes {}x{}x{} images with a {}x{} feature grid; this run needs {}x{}x{} and {}x{}",
                a.teacher.display(), cfg.image_channels(), cfg.image_size(), cfg.image_size(), cfg.grid(), cfg.grid(),
                shape.channels, shape.size, shape.size, shape.size / 4, shape.size / 4
            );
        }
        let vit = ck.load(cfg.init(dev)?, None, dev, false)?.0;
        Ok((cfg, vit))
    };
    if stage(Stage::Tokenizer) || stage(Stage::Ar) || stage(Stage::Nar) {
        record(&a.run)?;
    }
    if stage(Stage::Tokenizer) {
        // clipping (opt-in) for the tokenizer stages only: their L1 + perceptual + GAN losses spike
        let tsched = train::Schedule { grad_clip: a.grad_clip, ..sched(a.tokenizer_steps, 2e-3, 50) };
        let dir = a.run.join("tokenizer");
        let t0 = std::time::Instant::now();
        let vqgan = a.pixel_loss == PixelLoss::Vqgan;
        let decoder_output = decoder_output(a);
        let losses = tessera::train::vqgan_loss::VqganLossConfig { disc_start: a.disc_start, perceptual_weight: a.perceptual_weight, ..Default::default() };
        // VQGAN's losses train on an autodiff device with the frozen classifier's features.
        let vqgan_setup = || -> Result<(Device, tessera::train::classifier::Classifier)> {
            let ad = dev.clone().autodiff();
            ad.seed(a.seed);
            let ck = checkpoint::Checkpoint::new(&a.classifier)?;
            if !ck.exists() {
                bail!("VQGAN's perceptual loss uses the classifier: train it first (--stage classifier)");
            }
            let (cls, _) = ck.load(cls_cfg.init(&ad)?, None, &ad, false)?;
            Ok((ad, cls))
        };
        // The pixel decoder of VQ-KD and Cluster, on their frozen tokens.
        let train_decoder = |cfg: &tessera::tokenizer::decoder::DecoderConfig, codebook: &[f32], grid: usize, tokens: &[u16]| -> Result<()> {
            let dir = a.run.join("decoder");
            if vqgan {
                let (ad, cls) = vqgan_setup()?;
                train::train_decoder_vqgan(&dir, cfg, codebook, grid, tokens, &losses, &cls, &train, &tsched, &ad)?;
            } else {
                train::train_decoder(&dir, cfg, codebook, grid, tokens, &train, &tsched, dev)?;
            }
            Ok(())
        };
        match a.tokenizer {
            TokenizerKind::Vqgan | TokenizerKind::Fsq if vqgan => {
                let (ad, cls) = vqgan_setup()?;
                if a.tokenizer == TokenizerKind::Vqgan {
                    let cfg = vqgan_config(a, decoder_output);
                    let spec = serde_json::to_value(tessera::tokenizer::TokenizerSpec::Vqgan(cfg.clone()))?;
                    train::train_vqgan(&dir, cfg.init(&ad)?, spec, &losses, &cls, &train, &tsched, &ad)?;
                } else {
                    let cfg = fsq_config(a, decoder_output);
                    let spec = serde_json::to_value(tessera::tokenizer::TokenizerSpec::Fsq(cfg.clone()))?;
                    train::train_vqgan(&dir, cfg.init(&ad)?, spec, &losses, &cls, &train, &tsched, &ad)?;
                }
            }
            TokenizerKind::Vqgan => train::train_tokenizer(&dir, &vqgan_config(a, decoder_output), &train, &tsched, dev).map(|_| ())?,
            TokenizerKind::Fsq => train::train_fsq(&dir, &fsq_config(a, decoder_output), &train, &tsched, dev).map(|_| ())?,
            TokenizerKind::Vqkd => {
                let (tcfg, teacher) = load_teacher()?;
                let cfg = vqkd_config(a, &tcfg, decoder_output);
                train::train_vqkd(&a.run.join("vqkd"), &cfg, &teacher, &train, &tsched, dev)?;
                let (distill, _) = checkpoint::Checkpoint::new(&a.run.join("vqkd"))?.load(cfg.init_distill(dev)?, None, dev, false)?;
                let encoder_only = distill.tokenizer(&cfg, dev)?;
                let codebook: Vec<f32> = encoder_only.quantizer.codebook.val().into_data().convert::<f32>().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
                let tokens = train::tokenize(&AnyTokenizer::Vqkd(encoder_only), &train, dev);
                train_decoder(&cfg.decoder(), &codebook, cfg.grid, &tokens)?;
                assemble::vqkd(&a.run, &cfg, command, t0.elapsed().as_secs_f64())?;
            }
            TokenizerKind::Cluster => {
                let (tcfg, teacher) = load_teacher()?;
                let cfg = cluster_config(a, &tcfg, decoder_output);
                cfg.validate()?;
                let dim = tcfg.feature_dim();
                let codebook = assemble::cluster_codebook(&a.run, &teacher, dim, &train, a.cluster_images, a.codebook_size, a.seed, dev)?;
                let mut feats = train::teacher_features(&teacher, &train, train.len(), dev);
                tessera::train::kmeans::normalize_rows(&mut feats, dim);
                let tokens: Vec<u16> = tessera::train::kmeans::assign(&feats, &codebook, dim).into_iter().map(|t| t as u16).collect();
                train_decoder(&cfg.decoder(), &codebook, tcfg.grid(), &tokens)?;
                assemble::cluster(&a.run, &a.teacher, &cfg, &codebook, command, t0.elapsed().as_secs_f64())?;
            }
        }
        eprintln!("tokenizer: done in {:.0}s", t0.elapsed().as_secs_f64());
    }
    // a resumed run whose proposal networks are finished at this budget: nothing to tokenize or
    // encode (a pretrained text encoder's pass over every caption takes minutes)
    let finished = |name: &str| checkpoint::Checkpoint::new(&a.run.join(name)).ok().filter(|c| c.exists()).and_then(|c| c.state().ok()).is_some_and(|s| s.done && s.steps == a.proposal_steps);
    let wanted: Vec<&str> = [(Stage::Ar, "ar"), (Stage::Nar, "nar")].into_iter().filter(|(s, _)| stage(*s)).map(|(_, n)| n).collect();
    if a.resume && !wanted.is_empty() && wanted.iter().all(|n| finished(n)) {
        eprintln!("{}: already finished ({} steps) in {}", wanted.join(" and "), a.proposal_steps, a.run.display());
        return Ok(());
    }
    if stage(Stage::Ar) || stage(Stage::Nar) {
        let ck = checkpoint::Checkpoint::new(&a.run.join("tokenizer"))?;
        if !ck.exists() || !ck.state()?.done {
            bail!("no finished tokenizer in {} (run --stage tokenizer first)", a.run.display());
        }
        let spec = eval::tokenizer_spec(&ck.state()?.config)?;
        let bytes = std::fs::read(ck.weights_path())?;
        let tokenizer = spec.load(tessera::bundle::weights::from_safetensors("tokenizer", &bytes)?, "tokenizer", dev).context("loading the tokenizer")?;
        let tokens = assemble::cached_tokens(&a.run, &bytes, || train::tokenize(&tokenizer, &train, dev))?;
        let (vocab, block) = (spec.codebook_size(), spec.tokens_per_image());
        // text-to-image: the captions' vocabulary and (pretrained encoder) states, once for both
        let captions = match a.text_encoder {
            TextEncoderKind::None => None,
            _ => Some(train::text::Captions::prepare(&a.run, &train, &a.text_options(), dev)?),
        };
        let cond = match &captions {
            Some(c) => Conditioning::Text(c),
            None => Conditioning::Classes(&train.labels),
        };
        let cfg = ProposalConfig { text: captions.as_ref().map(|c| c.config.clone()), ..proposal_config(a, vocab, block, n_classes) };
        if stage(Stage::Ar) {
            let s = train::train_proposal(&a.run.join("ar"), &cfg, &tokens, &cond, a.class_dropout, &sched(a.proposal_steps, 1e-3, 100), devices)?;
            eprintln!("ar: {} steps in {:.0}s", s.step, s.elapsed_s);
        }
        if stage(Stage::Nar) {
            let s = train::train_nar(&a.run.join("nar"), &cfg, &tokens, &cond, a.class_dropout, &sched(a.proposal_steps, 1e-3, 100), devices)?;
            eprintln!("nar: {} steps in {:.0}s", s.step, s.elapsed_s);
        }
    }
    Ok(())
}
