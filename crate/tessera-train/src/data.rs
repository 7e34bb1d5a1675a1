//! Fashion-MNIST from Debian's `dataset-fashion-mnist` (IDX files, gzip), padded 28 -> 32 and
//! scaled to [-1, 1] (background -1).
use anyhow::{Context, Result, bail};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const CLASSES: [&str; 10] = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";
pub const SIZE: usize = 32;

/// Images `[n, 1, 32, 32]` flattened, and labels.
pub struct Dataset {
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * SIZE * SIZE..(i + 1) * SIZE * SIZE]
    }
    /// Gathers the images at `idx` into one batch buffer.
    pub fn batch(&self, idx: &[usize]) -> (Vec<f32>, Vec<i64>) {
        let mut x = Vec::with_capacity(idx.len() * SIZE * SIZE);
        for &i in idx {
            x.extend_from_slice(self.image(i));
        }
        (x, idx.iter().map(|&i| self.labels[i] as i64).collect())
    }
    /// First `n` items (for quick runs and tests).
    pub fn truncate(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.images.truncate(n * SIZE * SIZE);
        self.labels.truncate(n);
        self
    }
}

fn read_gz(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {} (install Debian's dataset-fashion-mnist: scripts/setup.sh)", path.display()))?;
    let mut out = Vec::new();
    GzDecoder::new(f).read_to_end(&mut out).with_context(|| format!("decompressing {}", path.display()))?;
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Loads the `train` or `test` split from `dir`.
pub fn load(dir: &Path, split: &str) -> Result<Dataset> {
    let prefix = match split {
        "train" => "train",
        "test" => "t10k",
        s => bail!("unknown split {s}"),
    };
    let img = read_gz(&PathBuf::from(dir).join(format!("{prefix}-images-idx3-ubyte.gz")))?;
    let lab = read_gz(&PathBuf::from(dir).join(format!("{prefix}-labels-idx1-ubyte.gz")))?;
    if img.len() < 16 || be32(&img, 0) != 2051 || lab.len() < 8 || be32(&lab, 0) != 2049 {
        bail!("not IDX image/label files in {}", dir.display());
    }
    let (n, h, w) = (be32(&img, 4), be32(&img, 8), be32(&img, 12));
    if h != 28 || w != 28 || be32(&lab, 4) != n || img.len() != 16 + n * 784 || lab.len() != 8 + n {
        bail!("unexpected IDX sizes in {}", dir.display());
    }
    let mut images = vec![-1.0f32; n * SIZE * SIZE];
    for i in 0..n {
        for y in 0..28 {
            for x in 0..28 {
                images[i * SIZE * SIZE + (y + 2) * SIZE + x + 2] = img[16 + i * 784 + y * 28 + x] as f32 / 127.5 - 1.0;
            }
        }
    }
    Ok(Dataset { images, labels: lab[8..].to_vec() })
}
