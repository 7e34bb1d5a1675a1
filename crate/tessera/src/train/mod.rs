//! Training-only parts (cargo feature `train`; the wasm build leaves them out): VQGAN's losses, the
//! k-means of Cluster and of VQ-KD's codebook initialisation, and the small CNN behind VQGAN's
//! perceptual loss and the in-project evaluator, and the tiny CLIP that scores text-image agreement. The training loops themselves are in
//! `tessera-train`.
pub mod classifier;
pub mod clip;
pub mod kmeans;
pub mod vqgan_loss;
