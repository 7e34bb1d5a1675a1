//! The table's rendering: from the evaluated (row, seed) runs to `table.json`, `table.md` and the
//! figures (sample grids, codebook t-SNE). `table.rs` runs the trainings and evaluations; nothing
//! here trains.
use crate::checkpoint::Checkpoint;
use crate::eval::{EvalReport, Metric, ProposalReport};
use crate::metrics::mean_std;
use crate::table::{Budget, Row, TableArgs, done, run_dir};
use crate::{SampleArgs, eval, plots};
use anyhow::{Result, bail};
use burn::prelude::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;

/// The metrics of the table, in column order: (key in the row JSON, Markdown header, decimals).
pub const COLUMNS: [(&str, &str, usize); 16] = [
    ("usage", "usage %", 1),
    ("code_purity", "purity %", 1),
    ("rfid", "rFID_eval", 2),
    ("rfid_lite2", "rFID_lite2", 2),
    ("ppl_ar", "PPL AR", 2),
    ("fid_ar", "FID_eval AR", 2),
    ("fid_lite2_ar", "FID_lite2 AR", 2),
    ("is_ar", "IS_eval AR", 2),
    ("cons_ar", "class cons. AR %", 1),
    ("ppl_nar", "PPL NAR", 2),
    ("fid_nar", "FID_eval NAR", 2),
    ("fid_lite2_nar", "FID_lite2 NAR", 2),
    ("is_nar", "IS_eval NAR", 2),
    ("cons_nar", "class cons. NAR %", 1),
    ("clip_ar", "CLIPScore_tiny AR", 2),
    ("clip_nar", "CLIPScore_tiny NAR", 2),
];

/// The metrics of a (row, seed), in the order `row_metrics` gives them.
pub(crate) const METRICS: [&str; 19] = [
    "usage", "code_purity", "rfid", "psnr", "ppl_ar", "fid_ar", "is_ar", "cons_ar", "ppl_nar", "fid_nar", "is_nar", "cons_nar", "rfid_lite2", "fid_lite2_ar", "fid_lite2_nar",
    "clip_ar", "clip_nar", "clip_mismatched_ar", "clip_mismatched_nar",
];

/// The table's figures of one (row, seed) from its evaluation (`null` where undefined).
pub(crate) fn row_metrics(e: &EvalReport) -> Value {
    fn pct(m: Metric) -> Metric {
        Metric(100.0 * m.0)
    }
    let p = |k: &str, f: fn(&ProposalReport) -> Metric| e.proposals.get(k).map(f);
    let values: [Option<Metric>; 19] = [
        Some(pct(e.codebook_usage)),
        Some(pct(e.code_purity)),
        Some(e.rfid_eval),
        Some(e.reconstruction_psnr_db),
        p("ar", |r| r.ppl),
        p("ar", |r| r.fid_eval),
        p("ar", |r| r.is_eval),
        p("ar", |r| pct(r.class_consistency_mean)),
        p("nar", |r| r.ppl),
        p("nar", |r| r.fid_eval),
        p("nar", |r| r.is_eval),
        p("nar", |r| pct(r.class_consistency_mean)),
        // FID on a pretrained network that is no teacher (absent from Fashion-MNIST runs: null)
        Some(e.rfid_lite2),
        p("ar", |r| r.fid_lite2),
        p("nar", |r| r.fid_lite2),
        // text to image: the tiny CLIP's agreement with the prompt, and with another class's caption
        p("ar", |r| r.clip_score),
        p("nar", |r| r.clip_score),
        p("ar", |r| r.clip_score_mismatched),
        p("nar", |r| r.clip_score_mismatched),
    ];
    Value::Object(METRICS.iter().zip(values).map(|(k, v)| (k.to_string(), json!(v))).collect())
}

/// Mean and std of every column over the seeds of a row.
pub(crate) fn aggregate(per_seed: &[(u64, Value)]) -> (Value, Value) {
    let (mut mean, mut std) = (json!({}), json!({}));
    for k in METRICS {
        let v: Vec<f64> = per_seed.iter().filter_map(|(_, m)| m[k].as_f64()).filter(|x| x.is_finite()).collect();
        if v.len() == per_seed.len() && !v.is_empty() {
            let (m, s) = mean_std(&v);
            mean[k] = json!(m);
            std[k] = json!(s);
        } else {
            mean[k] = Value::Null;
            std[k] = Value::Null;
        }
    }
    (mean, std)
}

pub(crate) fn cell(mean: &Value, std: &Value, key: &str, decimals: usize, n: usize) -> String {
    match mean[key].as_f64() {
        Some(m) if n > 1 => format!("{m:.decimals$} ± {:.decimals$}", std[key].as_f64().unwrap_or(0.0)),
        Some(m) => format!("{m:.decimals$}"),
        None => "–".into(),
    }
}

/// The Markdown rendering of `table.json`.
pub fn markdown(t: &Value) -> String {
    let mut s = String::new();
    let data = match t["data"].as_str() {
        Some("emoji") => "emoji, 4 art styles",
        Some(d) if d.starts_with("fashion-mnist") => "Fashion-MNIST",
        Some(d) => d,
        None => "Fashion-MNIST",
    };
    let t2i = t["text_encoder"].as_str().is_some_and(|e| e != "none");
    s.push_str(&format!("# {} in miniature ({data}, in-project evaluator)\n\n", if t2i { "Text to image" } else { "Table 1" }));
    if t2i {
        s.push_str(&format!(
            "**Text to image**: the proposal networks are conditioned on the captions (text encoder: {}, unless the row names one) and \
             evaluated on held-out captions (the test split's emoji, which no network saw; every phrasing, 10 samples each); class \
             consistency = the evaluator's class equals the class of the emoji the caption describes. CLIPScore_tiny: cosine x 100 of \
             image and prompt in the in-project tiny CLIP (trained on the training captions apart from every generator; not OpenAI's CLIP); \
             with a caption of another class the same samples score `clip_mismatched` (in table.json).\n\n",
            t["text_encoder"].as_str().unwrap_or("")
        ));
    }
    if t["complete"] == false {
        s.push_str("**In progress:** the rows below are those finished so far; `scripts/reproduce.sh` resumes the rest.\n\n");
    }
    s.push_str(&format!(
        "Generated by `tessera-train table` ({}), preset `{}`; mean ± std over seeds. FID_eval / IS_eval / rFID_eval use \
         the in-project evaluator's features and class probabilities (**not Inception**); FID_eval compares {} class-balanced \
         samples with {} test images (real-vs-real floor at that sample count: {}). PPL: perplexity of the \
         proposal network on the test tokens. Purity: share of test tokens whose code's majority class is their image's \
         class. Class cons.: share of the class-conditional samples the evaluator assigns to the class they were \
         asked for. Compute: {:.1} h on {}.\n\n",
        t["git_commit"].as_str().unwrap_or(""),
        t["preset"].as_str().unwrap_or(""),
        t["samples"].as_u64().unwrap_or(0),
        t["test_images"].as_u64().unwrap_or(0),
        t["fid_eval_real_floor"].as_f64().map_or("–".into(), |v| format!("{v:.2}")),
        t["compute"]["total_s"].as_f64().unwrap_or(0.0) / 3600.0,
        t["compute"]["machine"].as_str().unwrap_or(""),
    ));
    let b = &t["budget"];
    s.push_str(&format!(
        "Budgets and losses, equal for every row: {} tokenizer steps per trained stage, pixels always learnt with L1 + perceptual + \
         PatchGAN (discriminator from step {}): VQGAN and FSQ end to end; VQ-KD distillation, then its pixel decoder on the frozen \
         tokens; Cluster: k-means on the teacher's features, then its pixel decoder{}. AR and NAR proposal networks of {} layers x {} wide trained {} steps, \
         batch {}. Teachers (supervised and MIM ViT, {} steps) are trained once and shared by every seed; \
         the pretrained EfficientNet-Lite0 is imported, not trained. FID_lite2: FID on the pooled features of \
         EfficientNet-Lite2 pretrained on ImageNet (a network that is no teacher; not Inception), where measured. \
         Each finished run's loss curves (every stage it trained): `runs/<row>/s<seed>/curves.png`.\n\n",
        b["tokenizer_steps"], b["disc_start"],
        b["grad_clip"].as_f64().map_or(String::new(), |c| format!(" (tokenizer stages: each parameter's gradient clipped to L2 norm {c})")),
        b["n_layer"], b["n_embd"], b["proposal_steps"], b["batch_size"], b["teacher_steps"],
    ));
    for (group, title) in [("main", "Main table"), ("teacher", "Ablation: teacher"), ("codebook", "Ablation: codebook size"), ("text", "Ablation: text encoder")] {
        let rows: Vec<&Value> = t["rows"].as_array().into_iter().flatten().filter(|r| r["group"] == group).collect();
        if rows.is_empty() {
            continue;
        }
        // a column no row has (FID_lite2 before it existed) is left out
        let columns: Vec<_> = COLUMNS.iter().filter(|(k, _, _)| rows.iter().any(|r| !r["mean"][*k].is_null())).collect();
        s.push_str(&format!("## {title}\n\n| tokenizer | seeds |"));
        for (_, h, _) in &columns {
            s.push_str(&format!(" {h} |"));
        }
        s.push_str("\n|---|---|");
        s.push_str(&"---|".repeat(columns.len()));
        s.push('\n');
        for r in rows {
            let n = r["seeds"].as_array().map_or(0, |a| a.len());
            s.push_str(&format!("| {} | {n} |", r["label"].as_str().unwrap_or("")));
            for &&(k, _, d) in &columns {
                s.push_str(&format!(" {} |", cell(&r["mean"], &r["std"], k, d, n)));
            }
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

/// One row of the table from its finished seeds: mean and std of the metrics, per-seed values and
/// figures from the first seed's bundle (sample grids; a codebook t-SNE except for the codebook-size
/// ablation), drawn once.
pub(crate) fn row_json(args: &TableArgs, row: &Row, group: &str, evals: &[(u64, EvalReport)], device: &Device) -> Result<Value> {
    let per_seed: Vec<(u64, Value)> = evals.iter().map(|(s, e)| (*s, row_metrics(e))).collect();
    let (mean, std) = aggregate(&per_seed);
    let bundle = run_dir(&args.work, row, evals[0].0).join("bundle");
    let mut figures = json!({});
    for p in args.proposals.iter().map(String::as_str) {
        let path = args.out.join("samples").join(format!("{}-{p}.png", row.name));
        if !path.exists() && !bundle.exists() {
            // evaluated on another machine (restored from the results folder) and its figure was not kept
            eprintln!("table: no {} for {} (its bundle is on the machine that trained it)", path.display(), row.name);
        } else if !path.exists() {
            // at most 20 classes (Fashion-MNIST: all 10; emoji: 20 of 95) x 8 samples; text to
            // image: 8 of the bundle's example prompts x 8
            eval::generate_grid(&bundle, p, None, &[], Some(20), 8, &SampleArgs::default(), &path, Default::default(), device)?;
        }
        if path.exists() {
            figures[p] = json!(format!("samples/{}-{p}.png", row.name));
        }
    }
    if group != "codebook" && group != "text" {
        let path = args.out.join(format!("tsne-{}.png", row.name));
        if !path.exists() && bundle.exists() {
            codebook_figure(&bundle, &evals[0].1, &row.label(), &path, device)?;
        }
        if path.exists() {
            figures["tsne"] = json!(format!("tsne-{}.png", row.name));
        }
    }
    Ok(json!({
        "row": row.name, "label": row.label(), "group": group, "tokenizer": row.tokenizer,
        "teacher": row.teacher.map_or("none", |t| t.label()),
        "codebook_size": row.codebook_size,
        "seeds": per_seed.iter().map(|(s, _)| *s).collect::<Vec<_>>(), "mean": mean, "std": std,
        "per_seed": per_seed.iter().map(|(s, m)| json!({"seed": s, "metrics": m})).collect::<Vec<_>>(),
        "figures": figures,
    }))
}

/// Adds to each ablation group the main rows it varies (same tokenizer; same codebook size for the
/// teacher ablation, same teacher for the codebook-size one) at the ablation's seeds only, marked
/// `reference`: an ablation run at seed 0 is compared with seed 0 of its main row, not with the mean
/// over every seed. Groups are ordered by tokenizer, then reference first (teacher) or by K (codebook).
pub(crate) fn with_references(rows: Vec<Value>) -> Vec<Value> {
    let main: Vec<&Value> = rows.iter().filter(|r| r["group"] == "main").collect();
    let mut out: Vec<Value> = main.iter().map(|r| (*r).clone()).collect();
    for group in ["teacher", "codebook", "text"] {
        let mut members: Vec<Value> = rows.iter().filter(|r| r["group"] == group).cloned().collect();
        for a in rows.iter().filter(|r| r["group"] == group) {
            let same = |m: &&&Value| m["tokenizer"] == a["tokenizer"]
                && match group {
                    "teacher" => m["codebook_size"] == a["codebook_size"],
                    "codebook" => m["teacher"] == a["teacher"],
                    _ => m["teacher"] == a["teacher"] && m["codebook_size"] == a["codebook_size"],
                };
            let Some(base) = main.iter().find(same) else { continue };
            if members.iter().any(|r| r["reference"] == true && r["row"] == base["row"]) {
                continue;
            }
            let seeds: Vec<&Value> = a["seeds"].as_array().into_iter().flatten().collect();
            let per_seed: Vec<(u64, Value)> = base["per_seed"].as_array().into_iter().flatten()
                .filter(|p| seeds.contains(&&p["seed"]))
                .filter_map(|p| Some((p["seed"].as_u64()?, p["metrics"].clone()))).collect();
            if per_seed.is_empty() {
                continue;
            }
            let (mean, std) = aggregate(&per_seed);
            let k = if group == "codebook" { format!(", K={}", base["codebook_size"]) } else { String::new() };
            let seed_list = per_seed.iter().map(|(s, _)| s.to_string()).collect::<Vec<_>>().join(", ");
            let mut r = (*base).clone();
            r["label"] = json!(format!("{}{k} (main row, seed {seed_list})", base["label"].as_str().unwrap_or("")));
            r["group"] = json!(group);
            r["reference"] = json!(true);
            r["seeds"] = json!(per_seed.iter().map(|(s, _)| *s).collect::<Vec<_>>());
            r["per_seed"] = json!(per_seed.iter().map(|(s, m)| json!({"seed": s, "metrics": m})).collect::<Vec<_>>());
            (r["mean"], r["std"], r["figures"]) = (mean, std, json!({}));
            members.push(r);
        }
        let tokenizer_rank = |r: &Value| main.iter().position(|m| m["tokenizer"] == r["tokenizer"]).unwrap_or(usize::MAX);
        members.sort_by_key(|r| {
            let within = if group == "codebook" { r["codebook_size"].as_u64().unwrap_or(0) } else { u64::from(r["reference"] != true) };
            (tokenizer_rank(r), within)
        });
        out.extend(members);
    }
    out
}

/// Writes `table.json` and `table.md` from the rows finished so far (`complete`: all of them).
#[allow(clippy::too_many_arguments)]
pub(crate) fn summary(args: &TableArgs, budget: &Budget, ablation_seeds: &[u64], out_rows: &[Value], reference: &Value, (total_train, total_eval): (f64, f64), t0: Instant, (commands, device_name): (&[String], &str), complete: bool) -> Result<Value> {
    let shared = ["classifier", "teacher-vit", "teacher-vit-mim"].iter().map(|d| args.work.join(d)).filter(|d| done(d))
        .filter_map(|d| Checkpoint::new(&d).ok()?.state().ok()).map(|s| s.elapsed_s).sum::<f64>();
    let t = json!({
        "format": "tessera-table",
        "preset": format!("{:?}", args.preset).to_lowercase(),
        "text_encoder": format!("{:?}", args.text_encoder).to_lowercase(),
        "proposals": args.proposals,
        "budget": budget,
        "seeds": args.seeds,
        "ablation_seeds": ablation_seeds,
        "data": reference["data"],
        "samples": reference["samples"],
        "fid_eval_real_floor": reference["floor"],
        "test_images": reference["test_images"],
        "evaluator": reference["evaluator"],
        "columns": COLUMNS.iter().map(|(k, h, d)| json!({"key": k, "header": h, "decimals": d})).collect::<Vec<_>>(),
        "rows": out_rows,
        "complete": complete,
        "compute": {
            "machine": format!("{} CPU threads, burn {device_name}", std::thread::available_parallelism().map_or(0, |n| n.get())),
            "shared_training_s": shared, "train_s": total_train, "eval_s": total_eval, "total_s": shared + total_train + total_eval,
            "this_invocation_s": t0.elapsed().as_secs_f64(),
        },
        "git_commit": eval::git_commit(),
        "commands": commands,
    });
    std::fs::write(args.out.join("table.json"), serde_json::to_string_pretty(&t)? + "\n")?;
    std::fs::write(args.out.join("table.md"), markdown(&t))?;
    Ok(t)
}

/// t-SNE of a bundle's codebook, codes coloured by their majority class on the test set.
pub(crate) fn codebook_figure(bundle: &Path, e: &EvalReport, label: &str, path: &Path, device: &Device) -> Result<()> {
    let b = tessera::bundle::Bundle::load_dir(bundle, device)?;
    let (codes, dim) = b.tokenizer.codebook();
    let cosine = b.manifest.tokenizer.kind().uses_teacher();
    let classes = &e.code_majority_class;
    if classes.len() * dim != codes.len() {
        bail!("codebook of {} codes vs {} majority classes", codes.len() / dim.max(1), classes.len());
    }
    let points = plots::tsne(&codes, dim, cosine, 0);
    let purity = e.code_purity.0;
    plots::scatter_png(&points, classes, &b.manifest.dataset.classes, &format!("{label}: codebook t-SNE (purity {:.0}%)", 100.0 * purity), path)
}

