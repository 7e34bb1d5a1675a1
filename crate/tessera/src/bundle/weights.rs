//! Module parameters <-> named f32 tensors (safetensors). Names are the module paths
//! (`blocks.0.attn.qkv.weight`). Loading checks every name and shape before a tensor reaches burn.
use crate::error::BundleError;
use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;

/// A host-side tensor: shape + row-major f32 values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

pub type NamedTensors = BTreeMap<String, HostTensor>;

/// A module's path segment: the field name, or nothing for the variant of an enum module (a
/// `Teacher::Vit` keeps the ViT's own names, so a file does not depend on which enum holds it).
fn segment(name: &str, kind: &str) -> String {
    if kind.starts_with("Enum:") { String::new() } else { name.to_string() }
}

/// The dotted name of a parameter from its path.
fn joined(path: &[String]) -> String {
    path.iter().filter(|s| !s.is_empty()).map(String::as_str).collect::<Vec<_>>().join(".")
}

/// Reads every float parameter of `module` (synchronous read-back: native export only).
pub fn module_to_tensors<M: Module>(module: &M) -> NamedTensors {
    struct Collect {
        path: Vec<String>,
        out: NamedTensors,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, kind: &str) {
            self.path.push(segment(name, kind));
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            let shape = t.dims().to_vec();
            let values = t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 parameter");
            self.out.insert(joined(&self.path), HostTensor { shape, values });
        }
    }
    let mut v = Collect { path: vec![], out: BTreeMap::new() };
    module.visit(&mut v);
    v.out
}

/// Storage precision of a safetensors file. Checkpoints keep f32 (training resumes bit-exactly);
/// shipped bundles use f16, which halves the download and changes no sampled token measurably at
/// these sizes (the bundle is evaluated after the conversion, so its figures are the f16 ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
}

/// Serialises named tensors as a safetensors file (F32, little endian).
pub fn to_safetensors(tensors: &NamedTensors) -> Vec<u8> {
    to_safetensors_as(tensors, Precision::F32)
}

/// Serialises named tensors as a safetensors file in the given precision (little endian).
pub fn to_safetensors_as(tensors: &NamedTensors, precision: Precision) -> Vec<u8> {
    let dtype = match precision {
        Precision::F32 => Dtype::F32,
        Precision::F16 => Dtype::F16,
    };
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| {
            let b = match precision {
                Precision::F32 => t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                Precision::F16 => t.values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
            };
            (n.clone(), b, t.shape.clone())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, b, s)| (n.clone(), safetensors::tensor::TensorView::new(dtype, s.clone(), b).expect("consistent view")))
        .collect();
    safetensors::serialize(views, None).expect("serialise safetensors")
}

/// Parses a safetensors file into named f32 tensors (stored as F32, F16 or BF16 — pretrained
/// checkpoints are often half precision); any malformation is a typed error.
pub fn from_safetensors(file: &str, bytes: &[u8]) -> Result<NamedTensors, BundleError> {
    read_safetensors(file, bytes, false)
}

/// [`from_safetensors`] for pretrained checkpoints, which also hold integer buffers (BERT's
/// `position_ids`): those are skipped, not an error.
pub fn float_tensors_of_checkpoint(file: &str, bytes: &[u8]) -> Result<NamedTensors, BundleError> {
    read_safetensors(file, bytes, true)
}

fn read_safetensors(file: &str, bytes: &[u8], skip_integers: bool) -> Result<NamedTensors, BundleError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| BundleError::BadWeights { file: file.into(), reason: e.to_string() })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let d = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::I64 | Dtype::I32 | Dtype::U8 | Dtype::BOOL if skip_integers => continue,
            Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => d.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => d.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => return Err(BundleError::WrongDtype { name, dtype: format!("{other:?}") }),
        };
        if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
            return Err(BundleError::BadWeights { file: file.into(), reason: format!("tensor '{name}' has a non-finite value at index {bad}") });
        }
        out.insert(name, HostTensor { shape: view.shape().to_vec(), values });
    }
    Ok(out)
}

/// Replaces every float parameter of `module` by the tensor of the same name in `tensors`.
/// Names and shapes are checked first (parameters are lazy, so nothing random is materialised);
/// missing, mis-shaped and unexpected tensors are errors. `trainable` marks the loaded tensors as
/// requiring gradients (resuming training on an autodiff device).
pub fn load_module<M: Module>(module: M, tensors: NamedTensors, file: &str, device: &Device, trainable: bool) -> Result<M, BundleError> {
    load_module_with_ids(module, tensors, file, device, trainable, None)
}

/// Parameter ids by name (training checkpoints keep them so the optimizer state can be resumed).
pub fn module_param_ids<M: Module>(module: &M) -> BTreeMap<String, u64> {
    struct Ids(Vec<String>, BTreeMap<String, u64>);
    impl ModuleVisitor for Ids {
        fn enter_module(&mut self, name: &str, kind: &str) {
            self.0.push(segment(name, kind));
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.1.insert(joined(&self.0), p.id.val());
        }
    }
    let mut v = Ids(vec![], BTreeMap::new());
    module.visit(&mut v);
    v.1
}

/// [`load_module`], optionally restoring saved parameter ids.
pub fn load_module_with_ids<M: Module>(
    module: M,
    mut tensors: NamedTensors,
    file: &str,
    device: &Device,
    trainable: bool,
    ids: Option<&BTreeMap<String, u64>>,
) -> Result<M, BundleError> {
    struct Check<'a> {
        path: Vec<String>,
        tensors: &'a NamedTensors,
        file: &'a str,
        error: Option<BundleError>,
    }
    impl ModuleVisitor for Check<'_> {
        fn enter_module(&mut self, name: &str, kind: &str) {
            self.path.push(segment(name, kind));
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.error.is_some() {
                return;
            }
            let name = joined(&self.path);
            let expected = param.lazy_shape().dims::<D>().to_vec();
            self.error = match self.tensors.get(&name) {
                None => Some(BundleError::MissingTensor { file: self.file.into(), name }),
                Some(t) if t.shape != expected || t.values.len() != expected.iter().product::<usize>() => {
                    Some(BundleError::WrongShape { name, expected, actual: t.shape.clone() })
                }
                Some(_) => None,
            };
        }
    }
    let mut check = Check { path: vec![], tensors: &tensors, file, error: None };
    module.visit(&mut check);
    if let Some(e) = check.error {
        return Err(e);
    }
    let expected_names = module_param_ids(&module);
    if let Some(extra) = tensors.keys().find(|k| !expected_names.contains_key(*k)) {
        return Err(BundleError::BadWeights { file: file.into(), reason: format!("unexpected tensor '{extra}'") });
    }

    struct Load<'a> {
        path: Vec<String>,
        tensors: &'a mut NamedTensors,
        device: &'a Device,
        trainable: bool,
        ids: Option<&'a BTreeMap<String, u64>>,
    }
    impl ModuleMapper for Load<'_> {
        fn enter_module(&mut self, name: &str, kind: &str) {
            self.path.push(segment(name, kind));
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            // Presence and shape were checked above.
            let name = joined(&self.path);
            let t = self.tensors.remove(&name).expect("checked tensor");
            let tensor = Tensor::<D>::from_data(TensorData::new(t.values, t.shape), self.device);
            let id = self.ids.and_then(|ids| ids.get(&name)).map_or(param.id, |&v| burn::module::ParamId::from(v));
            Param::initialized(id, if self.trainable { tensor.require_grad() } else { tensor })
        }
    }
    Ok(module.map(&mut Load { path: vec![], tensors: &mut tensors, device, trainable, ids }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::ProposalConfig;

    #[test]
    fn round_trip_and_shape_errors() {
        let d = Device::flex();
        let cfg = ProposalConfig { vocab_size: 7, num_classes: 2, block_size: 4, n_layer: 1, n_head: 2, n_embd: 8, text: None };
        let gpt = cfg.init_gpt(&d).unwrap();
        let named = module_to_tensors(&gpt);
        assert!(named.contains_key("blocks.0.attn.qkv.weight"), "{:?}", named.keys().collect::<Vec<_>>());
        let bytes = to_safetensors(&named);
        let back = from_safetensors("p", &bytes).unwrap();
        assert_eq!(back, named);
        let loaded = load_module(cfg.init_gpt(&d).unwrap(), back.clone(), "p", &d, false).unwrap();
        assert_eq!(module_to_tensors(&loaded), named);

        let mut bad = back.clone();
        bad.get_mut("head.weight").unwrap().shape = vec![7, 8];
        assert!(matches!(load_module(cfg.init_gpt(&d).unwrap(), bad, "p", &d, false), Err(BundleError::WrongShape { .. })));
        let mut missing = back.clone();
        missing.remove("ln_f.gamma");
        assert!(matches!(load_module(cfg.init_gpt(&d).unwrap(), missing, "p", &d, false), Err(BundleError::MissingTensor { .. })));
        let mut extra = back;
        extra.insert("zzz".into(), HostTensor { shape: vec![1], values: vec![0.0] });
        assert!(matches!(load_module(cfg.init_gpt(&d).unwrap(), extra, "p", &d, false), Err(BundleError::BadWeights { .. })));
    }

    #[test]
    fn half_precision_round_trip() {
        let named = NamedTensors::from([("w".to_string(), HostTensor { shape: vec![2, 3], values: vec![0.0, 1.0, -2.5, 0.1, 1e-3, 65504.0] })]);
        let bytes = to_safetensors_as(&named, Precision::F16);
        assert!(bytes.len() < to_safetensors(&named).len(), "f16 is smaller than f32");
        let back = &from_safetensors("h", &bytes).unwrap()["w"];
        assert_eq!(back.shape, vec![2, 3]);
        for (a, b) in back.values.iter().zip(&named["w"].values) {
            // f16 keeps 11 significant bits: relative error at most 2^-11.
            assert!((a - b).abs() <= b.abs() / 2048.0, "{a} vs {b}");
        }
        assert_eq!(back.values[0..3], [0.0, 1.0, -2.5], "exactly representable values survive");
        // A value beyond f16's range becomes infinite and is refused when loading.
        let big = NamedTensors::from([("w".to_string(), HostTensor { shape: vec![1], values: vec![1e6] })]);
        let err = from_safetensors("h", &to_safetensors_as(&big, Precision::F16)).unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
        // Integer tensors are not weights.
        let view = safetensors::tensor::TensorView::new(Dtype::I32, vec![1], &[0, 0, 0, 0]).unwrap();
        let ints = safetensors::serialize(vec![("w".to_string(), view)], None).unwrap();
        assert!(matches!(from_safetensors("i", &ints), Err(BundleError::WrongDtype { .. })));
    }
}
