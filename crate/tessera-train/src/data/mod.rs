//! The data set of a run, whatever its source (`--data`): Fashion-MNIST, a folder of class
//! subfolders, a captions file, or the emoji of four npm art sets. Every source becomes the same
//! [`Dataset`]: images `[n, channels, size, size]` in [-1, 1] on a fixed background, a class per
//! image, and (captions, emoji) a text per image. Decoding runs once and is cached (`cache.rs`).
pub mod cache;
pub mod decode;
pub mod emoji;
pub mod fmnist;
pub mod folder;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the images come from (`--data`).
#[derive(Debug, Clone, PartialEq)]
pub enum DataSpec {
    /// Debian's `dataset-fashion-mnist` (IDX files in this folder).
    FashionMnist(PathBuf),
    /// One subfolder per class; PNG, JPEG, WebP, GIF, BMP or SVG files of any size.
    Folder(PathBuf),
    /// JSON lines `{"image": path, "text": "...", "class": "..."}`; paths relative to the file.
    Captions(PathBuf),
    /// The emoji art of `scripts/data` (npm): Google, Twitter, OpenMoji and Fluent UI.
    Emoji(PathBuf),
}

impl std::str::FromStr for DataSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, arg) = s.split_once(':').map_or((s, None), |(k, a)| (k, Some(a)));
        let path = |default: &str| PathBuf::from(arg.filter(|a| !a.is_empty()).unwrap_or(default));
        let needs = |what: &str| match arg {
            Some(a) if !a.is_empty() => Ok(PathBuf::from(a)),
            _ => Err(format!("--data {kind}:{what} needs a path after the colon")),
        };
        match kind {
            "fashion-mnist" => Ok(DataSpec::FashionMnist(path(fmnist::DEFAULT_DIR))),
            "folder" => needs("DIR").map(DataSpec::Folder),
            "captions" => needs("FILE.jsonl").map(DataSpec::Captions),
            "emoji" => Ok(DataSpec::Emoji(path(&emoji::default_dir()))),
            // a bare folder: the IDX files of Fashion-MNIST (what `--data` meant before)
            _ if arg.is_none() && Path::new(s).join("train-images-idx3-ubyte.gz").exists() => Ok(DataSpec::FashionMnist(PathBuf::from(s))),
            _ => Err(format!("unknown data set '{s}': use fashion-mnist, folder:DIR, captions:FILE.jsonl or emoji")),
        }
    }
}

impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSpec::FashionMnist(p) if p == Path::new(fmnist::DEFAULT_DIR) => write!(f, "fashion-mnist"),
            DataSpec::FashionMnist(p) => write!(f, "fashion-mnist:{}", p.display()),
            DataSpec::Folder(p) => write!(f, "folder:{}", p.display()),
            DataSpec::Captions(p) => write!(f, "captions:{}", p.display()),
            DataSpec::Emoji(p) if p.display().to_string() == emoji::default_dir() => write!(f, "emoji"),
            DataSpec::Emoji(p) => write!(f, "emoji:{}", p.display()),
        }
    }
}

impl DataSpec {
    /// The data set's name in manifests and tables.
    pub fn name(&self) -> String {
        match self {
            DataSpec::FashionMnist(_) => "fashion-mnist".into(),
            DataSpec::Emoji(_) => "emoji".into(),
            DataSpec::Folder(p) | DataSpec::Captions(p) => {
                let stem = p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
                if stem.is_empty() { "images".into() } else { stem }
            }
        }
    }

    /// The image size and channels a source has when `--image-size` / `--image-channels` are not
    /// given: Fashion-MNIST 32 px gray (28 padded), everything else 32 px colour.
    pub fn default_shape(&self) -> Shape {
        match self {
            DataSpec::FashionMnist(_) => Shape { size: 32, channels: 1 },
            _ => Shape { size: 32, channels: 3 },
        }
    }

    /// The shape a run uses: `--image-size` / `--image-channels` when given, else the default.
    pub fn shape(&self, size: Option<usize>, channels: Option<usize>) -> Shape {
        let d = self.default_shape();
        Shape { size: size.unwrap_or(d.size), channels: channels.unwrap_or(d.channels) }
    }

    /// The background images are composited on: black for Fashion-MNIST (as IDX stores it), white
    /// for everything else (emoji and photos with transparency are drawn on white).
    pub fn background(&self) -> u8 {
        match self {
            DataSpec::FashionMnist(_) => 0,
            _ => 255,
        }
    }
}

/// Image size (pixels per side) and channels (1 gray, 3 RGB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub size: usize,
    pub channels: usize,
}

impl Shape {
    pub fn pixels(&self) -> usize {
        self.channels * self.size * self.size
    }
    pub fn validate(&self) -> Result<()> {
        if ![1, 3].contains(&self.channels) {
            bail!("--image-channels must be 1 (gray) or 3 (RGB), got {}", self.channels);
        }
        if !(8..=256).contains(&self.size) || self.size % 4 != 0 {
            bail!("--image-size must be a multiple of 4 in 8..=256 (the tokenizers downsample by 4), got {}", self.size);
        }
        Ok(())
    }
}

/// What a run (and its bundle's manifest) records of its data: written to `run/data.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    pub name: String,
    /// The `--data` value it was read from.
    pub spec: String,
    pub shape: Shape,
    pub classes: Vec<String>,
    /// Gray level (0..=255) of the background every image was composited on.
    pub background: u8,
    /// Licences and sources of the images (model cards and the site credit them).
    #[serde(default)]
    pub credits: Vec<String>,
}

impl DataInfo {
    /// The background in the models' [-1, 1] range.
    pub fn background_value(&self) -> f32 {
        self.background as f32 / 127.5 - 1.0
    }
}

/// One split of a data set, decoded: images `[n, c, s, s]` in [-1, 1], labels, optional texts.
pub struct Dataset {
    pub info: DataInfo,
    pub images: Vec<f32>,
    pub labels: Vec<u16>,
    /// The captions of each image, one per line (a captions file: one; emoji: several phrasings),
    /// or empty when the source has none.
    pub texts: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn shape(&self) -> Shape {
        self.info.shape
    }
    pub fn image(&self, i: usize) -> &[f32] {
        let p = self.shape().pixels();
        &self.images[i * p..(i + 1) * p]
    }
    /// The captions of image `i` (none when the source has no text).
    pub fn captions(&self, i: usize) -> impl Iterator<Item = &str> {
        self.texts.get(i).map(String::as_str).unwrap_or("").lines().filter(|l| !l.trim().is_empty())
    }
    /// Gathers the images at `idx` into one batch buffer.
    pub fn batch(&self, idx: &[usize]) -> (Vec<f32>, Vec<i64>) {
        let mut x = Vec::with_capacity(idx.len() * self.shape().pixels());
        for &i in idx {
            x.extend_from_slice(self.image(i));
        }
        (x, idx.iter().map(|&i| self.labels[i] as i64).collect())
    }
    /// A batch buffer of `n` images as a tensor.
    pub fn tensor(&self, x: Vec<f32>, n: usize, device: &Device) -> Tensor<4> {
        images_tensor(x, n, self.shape(), device)
    }
    /// First `n` items (for quick runs and tests).
    pub fn truncate(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.images.truncate(n * self.shape().pixels());
        self.labels.truncate(n);
        self.texts.truncate(n);
        self
    }
}

pub fn images_tensor(x: Vec<f32>, n: usize, s: Shape, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(x, [n, s.channels, s.size, s.size]), device)
}

/// Train or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// Loads one split of `spec` at `shape` (the source's default when `None`), decoding and caching
/// it on first use.
pub fn load(spec: &DataSpec, split: Split, shape: Option<Shape>) -> Result<Dataset> {
    let shape = shape.unwrap_or_else(|| spec.default_shape());
    shape.validate()?;
    match spec {
        DataSpec::FashionMnist(dir) => fmnist::load(dir, split, shape),
        DataSpec::Folder(dir) => folder::load_folder(dir, split, shape, spec),
        DataSpec::Captions(file) => folder::load_captions(file, split, shape, spec),
        DataSpec::Emoji(dir) => emoji::load(dir, split, shape, spec),
    }
}

/// Which side of the split an item falls on, decided by a hash of its group key (an emoji, a file
/// path), so that every image of one group lands on the same side, run after run. About one group
/// in ten is test.
pub fn is_test(group_key: &str) -> bool {
    let h = tessera::bundle::sha256_hex(group_key.as_bytes());
    u8::from_str_radix(&h[..2], 16).unwrap_or(0) % 10 == 0
}

/// Writes `dir/data.json` (what a run was trained on), or checks that it says the same: stages of
/// one run trained on different data (or at another size) would not fit together.
pub fn record(dir: &Path, info: &DataInfo) -> Result<()> {
    let p = dir.join("data.json");
    if p.exists() {
        let had = run_info(dir)?;
        if had.name != info.name || had.shape != info.shape || had.classes != info.classes {
            bail!(
                "{} was trained on {} ({}x{}x{}, {} classes); this run uses {} ({}x{}x{}, {} classes): use another directory",
                dir.display(), had.spec, had.shape.channels, had.shape.size, had.shape.size, had.classes.len(),
                info.spec, info.shape.channels, info.shape.size, info.shape.size, info.classes.len()
            );
        }
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(info)? + "\n")?;
    std::fs::rename(&tmp, &p)?;
    Ok(())
}

/// Reads `run/data.json` (what `train` recorded), or Fashion-MNIST for runs made before it existed.
pub fn run_info(run: &Path) -> Result<DataInfo> {
    let p = run.join("data.json");
    if !p.exists() {
        return Ok(fmnist::info(fmnist::DEFAULT_DIR.as_ref(), Shape { size: 32, channels: 1 }));
    }
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

/// `tessera-train data`: loads both splits (decoding and caching them), prints their sizes and
/// classes, and writes a preview grid of training images.
pub fn summary(spec: &DataSpec, size: Option<usize>, channels: Option<usize>, preview: Option<&Path>) -> Result<()> {
    let shape = spec.shape(size, channels);
    let train = load(spec, Split::Train, Some(shape))?;
    let test = load(spec, Split::Test, Some(shape))?;
    let mut per_class = vec![(0usize, 0usize); train.info.classes.len()];
    train.labels.iter().for_each(|&l| per_class[l as usize].0 += 1);
    test.labels.iter().for_each(|&l| per_class[l as usize].1 += 1);
    println!("{}: {} train + {} test images, {}x{}x{}, {} classes", spec, train.len(), test.len(), shape.channels, shape.size, shape.size, per_class.len());
    for (c, (a, b)) in train.info.classes.iter().zip(&per_class) {
        println!("  {c:<28} {a:>6} {b:>5}");
    }
    for c in &train.info.credits {
        println!("credit: {c}");
    }
    if let Some(p) = preview {
        let n = train.len().min(256);
        let step = (train.len() / n.max(1)).max(1);
        let idx: Vec<usize> = (0..n).map(|i| i * step).collect();
        crate::eval::write_grid(&train.batch(&idx).0, shape, n, 16, p)?;
        println!("preview: {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_specs_parse_and_print_back() {
        for s in ["fashion-mnist", "folder:/tmp/x", "captions:/tmp/c.jsonl", "emoji", "emoji:/tmp/e", "fashion-mnist:/tmp/f"] {
            let d: DataSpec = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        for bad in ["folder", "folder:", "captions", "cifar", "/no/such/dir"] {
            assert!(bad.parse::<DataSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shapes_are_checked() {
        assert!(Shape { size: 32, channels: 3 }.validate().is_ok());
        assert!(Shape { size: 64, channels: 1 }.validate().is_ok());
        for (size, channels) in [(32, 2), (32, 4), (30, 3), (4, 1), (512, 3)] {
            assert!(Shape { size, channels }.validate().is_err(), "{size} {channels}");
        }
    }

    #[test]
    fn the_split_is_stable_and_about_one_in_ten() {
        let test = (0..2000).filter(|i| is_test(&format!("key{i}"))).count();
        assert!((120..280).contains(&test), "{test}");
        assert_eq!(is_test("1F600"), is_test("1F600"));
    }
}
