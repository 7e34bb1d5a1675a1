//! Fashion-MNIST from Debian's `dataset-fashion-mnist` (IDX files, gzip), padded 28 -> 32 on its
//! black background; other shapes (`--image-size`, `--image-channels 3`) are resized from that and
//! cached.
use super::{DataInfo, DataSpec, Dataset, Shape, Split, cache, decode};
use anyhow::{Context, Result, bail};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

pub const CLASSES: [&str; 10] = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";
const NATIVE: Shape = Shape { size: 32, channels: 1 };

pub fn info(dir: &Path, shape: Shape) -> DataInfo {
    DataInfo {
        name: "fashion-mnist".into(),
        spec: DataSpec::FashionMnist(dir.to_path_buf()).to_string(),
        shape,
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        background: 0,
        credits: vec!["Fashion-MNIST (Zalando Research, MIT licence), Debian package dataset-fashion-mnist".into()],
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

/// The split as 32x32 gray bytes (28x28 centred on black) and labels.
fn read_split(dir: &Path, split: Split) -> Result<(Vec<u8>, Vec<u16>)> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let img = read_gz(&dir.join(format!("{prefix}-images-idx3-ubyte.gz")))?;
    let lab = read_gz(&dir.join(format!("{prefix}-labels-idx1-ubyte.gz")))?;
    if img.len() < 16 || be32(&img, 0) != 2051 || lab.len() < 8 || be32(&lab, 0) != 2049 {
        bail!("not IDX image/label files in {}", dir.display());
    }
    let (n, h, w) = (be32(&img, 4), be32(&img, 8), be32(&img, 12));
    if h != 28 || w != 28 || be32(&lab, 4) != n || img.len() != 16 + n * 784 || lab.len() != 8 + n {
        bail!("unexpected IDX sizes in {}", dir.display());
    }
    if let Some(&l) = lab[8..].iter().find(|&&l| l as usize >= CLASSES.len()) {
        bail!("label {l} out of range in {}", dir.display());
    }
    let mut images = vec![0u8; n * 32 * 32];
    for i in 0..n {
        for y in 0..28 {
            images[i * 1024 + (y + 2) * 32 + 2..i * 1024 + (y + 2) * 32 + 30].copy_from_slice(&img[16 + i * 784 + y * 28..16 + i * 784 + (y + 1) * 28]);
        }
    }
    Ok((images, lab[8..].iter().map(|&l| l as u16).collect()))
}

/// Loads the `train` or `test` split from `dir` at `shape`.
pub fn load(dir: &Path, split: Split, shape: Shape) -> Result<Dataset> {
    let info = info(dir, shape);
    let build = || -> Result<cache::Decoded> {
        let (bytes, labels) = read_split(dir, split)?;
        let pixels = if shape == NATIVE {
            bytes
        } else {
            bytes
                .chunks(1024)
                .flat_map(|g| {
                    let gray = image::GrayImage::from_fn(32, 32, |x, y| image::Luma([g[(y * 32 + x) as usize]]));
                    decode::to_planes(&image::DynamicImage::ImageLuma8(gray).to_rgba8(), shape, 0)
                })
                .collect()
        };
        Ok(cache::Decoded { info: info.clone(), labels, texts: vec![], pixels })
    };
    if shape == NATIVE {
        let d = build()?;
        return Ok(Dataset { images: d.pixels.iter().map(|&p| p as f32 / 127.5 - 1.0).collect(), info: d.info, labels: d.labels, texts: d.texts });
    }
    cache::load_or_build("fashion-mnist", &format!("{} {shape:?}", dir.display()), split, build)
}
