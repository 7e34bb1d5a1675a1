//! The image-understanding (IU) **teacher**: a ViT whose patch features VQ-KD distils and Cluster
//! clusters (the paper's pretrained IU encoder). Trained in-project supervised (a classifier) or
//! self-supervised (masked image modelling, `mim.rs`), or imported from a pretrained CLIP-vision /
//! DINOv2 checkpoint (`import.rs`); the last two are training-side only.
#[cfg(feature = "train")]
pub mod import;
#[cfg(feature = "train")]
pub mod mim;
pub mod vit;
