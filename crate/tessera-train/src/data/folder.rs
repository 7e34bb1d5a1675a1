//! Your own images: `folder:DIR` (one subfolder per class, files found at any depth below it) and
//! `captions:FILE.jsonl` (one `{"image", "text", "class"}` object per line). Split per class by a
//! hash of each file's path: about one file in ten is test, at least one when a class has two.
use super::{DataInfo, DataSpec, Dataset, Shape, Split, cache, decode};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "webp", "gif", "bmp", "svg"];

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// One item before decoding.
struct Item {
    path: PathBuf,
    class: usize,
    text: String,
}

/// Keeps the items of `split`: within each class, files ordered by the hash of their path, the
/// first tenth (at least one of two or more) are test.
fn split_items(items: Vec<Item>, classes: usize, root: &Path, split: Split) -> Vec<Item> {
    let key = |i: &Item| tessera::bundle::sha256_hex(i.path.strip_prefix(root).unwrap_or(&i.path).to_string_lossy().as_bytes());
    let mut by_class: Vec<Vec<(String, Item)>> = (0..classes).map(|_| Vec::new()).collect();
    for i in items {
        by_class[i.class].push((key(&i), i));
    }
    let mut out = Vec::new();
    for mut v in by_class {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let n_test = if v.len() >= 2 { (v.len() / 10).max(1) } else { 0 };
        out.extend(v.into_iter().enumerate().filter(|(j, _)| (*j < n_test) == (split == Split::Test)).map(|(_, (_, i))| i));
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The cache key of a list of files: their paths, sizes and modification times.
fn files_key(files: &[PathBuf]) -> String {
    let mut s = String::new();
    for f in files {
        let m = std::fs::metadata(f).ok();
        let mtime = m.as_ref().and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        s += &format!("{}\t{}\t{mtime}\n", f.display(), m.map_or(0, |m| m.len()));
    }
    s
}

fn decode_items(name: &str, spec: &DataSpec, shape: Shape, classes: Vec<String>, items: Vec<Item>, split: Split, credits: Vec<String>) -> Result<Dataset> {
    if items.is_empty() {
        bail!("{spec} has no {} images", split.name());
    }
    let files: Vec<PathBuf> = items.iter().map(|i| i.path.clone()).collect();
    let key = format!("{spec}\n{shape:?}\n{}\n{}", classes.join("\n"), files_key(&files));
    let info = DataInfo { name: name.into(), spec: spec.to_string(), shape, classes, background: spec.background(), credits };
    cache::load_or_build(name, &key, split, || {
        let (pixels, kept) = decode::decode_all(split.name(), &files, shape, info.background);
        if kept.is_empty() {
            bail!("no image of {spec} ({}) could be decoded", split.name());
        }
        Ok(cache::Decoded {
            info: info.clone(),
            labels: kept.iter().map(|&i| items[i].class as u16).collect(),
            texts: if items.iter().all(|i| i.text.is_empty()) { vec![] } else { kept.iter().map(|&i| items[i].text.clone()).collect() },
            pixels,
        })
    })
}

fn check_classes(n: usize, spec: &DataSpec) -> Result<()> {
    if n == 0 {
        bail!("{spec} has no classes");
    }
    if n > u16::MAX as usize {
        bail!("{spec} has {n} classes, more than {}", u16::MAX);
    }
    Ok(())
}

/// `folder:DIR`: every subfolder of `DIR` is a class (sorted by name).
pub fn load_folder(dir: &Path, split: Split, shape: Shape, spec: &DataSpec) -> Result<Dataset> {
    if !dir.is_dir() {
        bail!("--data {spec}: {} is not a folder", dir.display());
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    subdirs.sort();
    let (mut classes, mut items) = (Vec::new(), Vec::new());
    for d in subdirs {
        let mut files = Vec::new();
        walk(&d, &mut files)?;
        if files.is_empty() {
            continue;
        }
        let class = classes.len();
        classes.push(d.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default());
        items.extend(files.into_iter().map(|path| Item { path, class, text: String::new() }));
    }
    check_classes(classes.len(), spec).with_context(|| format!("expected one subfolder of images per class in {}", dir.display()))?;
    let n = classes.len();
    decode_items(&spec.name(), spec, shape, classes, split_items(items, n, dir, split), split, vec![format!("images from {}", dir.display())])
}

#[derive(serde::Deserialize, Default)]
#[serde(untagged)]
enum Texts {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Texts {
    /// One caption per line (newlines inside a caption become spaces).
    fn joined(self) -> String {
        let flat = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match self {
            Texts::None => String::new(),
            Texts::One(s) => flat(s),
            Texts::Many(v) => v.into_iter().map(flat).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("\n"),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptionLine {
    image: String,
    /// One caption, or several phrasings of the same image (training samples one per step).
    #[serde(default)]
    text: Texts,
    #[serde(default)]
    class: Option<String>,
}

/// `captions:FILE.jsonl`: image paths relative to the file's folder; classes sorted by name (one
/// class, `image`, when no line names one).
pub fn load_captions(file: &Path, split: Split, shape: Shape, spec: &DataSpec) -> Result<Dataset> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let root = file.parent().unwrap_or(Path::new("."));
    let mut lines = Vec::new();
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let c: CaptionLine = serde_json::from_str(l).with_context(|| format!("{}:{}: expected {{\"image\": ..., \"text\": ..., \"class\": ...}}", file.display(), i + 1))?;
        lines.push(c);
    }
    let mut classes: Vec<String> = lines.iter().map(|c| c.class.clone().unwrap_or_else(|| "image".into())).collect();
    classes.sort();
    classes.dedup();
    check_classes(classes.len(), spec)?;
    let items: Vec<Item> = lines
        .into_iter()
        .map(|c| {
            let class = classes.binary_search(&c.class.unwrap_or_else(|| "image".into())).unwrap_or(0);
            Item { path: root.join(&c.image), class, text: c.text.joined() }
        })
        .collect();
    let n = classes.len();
    decode_items(&spec.name(), spec, shape, classes, split_items(items, n, root, split), split, vec![format!("images listed in {}", file.display())])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of two colour classes (red and blue squares of several sizes and formats, one
    /// broken file) and a captions file over the same images.
    pub fn colour_folder(dir: &Path) {
        for (class, colour) in [("blue", [20u8, 40, 220]), ("red", [220u8, 30, 30])] {
            std::fs::create_dir_all(dir.join(class).join("more")).unwrap();
            for i in 0..6u32 {
                let side = 20 + 7 * i;
                let img = image::RgbaImage::from_fn(side, side, |x, y| if x > side / 4 && y > side / 4 && x < 3 * side / 4 && y < 3 * side / 4 { image::Rgba([colour[0], colour[1], colour[2], 255]) } else { image::Rgba([0, 0, 0, 0]) });
                let sub = if i % 2 == 0 { "" } else { "more" };
                img.save(dir.join(class).join(sub).join(format!("{class}{i}.png"))).unwrap();
            }
        }
        std::fs::write(dir.join("red").join("broken.png"), b"not a png").unwrap();
        std::fs::create_dir_all(dir.join("empty")).unwrap();
    }

    #[test]
    fn a_folder_of_colour_images_loads_split_by_file() {
        let dir = std::env::temp_dir().join(format!("tessera-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        colour_folder(&dir.join("imgs"));
        unsafe { std::env::set_var("TESSERA_CACHE", dir.join("cache")) };
        let spec: DataSpec = format!("folder:{}", dir.join("imgs").display()).parse().unwrap();
        let shape = Shape { size: 16, channels: 3 };
        let train = super::super::load(&spec, Split::Train, Some(shape)).unwrap();
        let test = super::super::load(&spec, Split::Test, Some(shape)).unwrap();
        assert_eq!(train.info.classes, vec!["blue", "red"], "the empty folder is no class");
        assert_eq!(train.len() + test.len(), 12, "13 files, the broken one skipped");
        assert_eq!(test.labels.iter().filter(|&&l| l == 0).count(), 1);
        // centre pixel: blue is blue, corner: the white background
        let i = train.labels.iter().position(|&l| l == 0).unwrap();
        let img = train.image(i);
        let px = |c: usize, y: usize, x: usize| img[c * 256 + y * 16 + x];
        assert!(px(2, 8, 8) > 0.5 && px(0, 8, 8) < -0.5, "blue centre");
        assert!(px(0, 0, 0) > 0.99 && px(1, 0, 0) > 0.99, "white corner");
        // the second load comes from the cache, identical
        let again = super::super::load(&spec, Split::Train, Some(shape)).unwrap();
        assert_eq!(again.images, train.images);
        assert!(std::fs::read_dir(dir.join("cache")).unwrap().count() >= 2);
        // captions over the same files
        let mut lines = String::new();
        for (c, n) in [("blue", 0), ("red", 2)] {
            lines += &format!("{{\"image\": \"imgs/{c}/{c}{n}.png\", \"text\": \"a {c} square\", \"class\": \"{c}\"}}\n");
            lines += &format!("{{\"image\": \"imgs/{c}/{c}4.png\", \"text\": [\"another {c} square\", \"a {c}\\nsquare\"], \"class\": \"{c}\"}}\n");
        }
        std::fs::write(dir.join("c.jsonl"), lines).unwrap();
        let spec: DataSpec = format!("captions:{}", dir.join("c.jsonl").display()).parse().unwrap();
        let tr = super::super::load(&spec, Split::Train, Some(Shape { size: 8, channels: 1 })).unwrap();
        assert_eq!(tr.len(), 2);
        assert!(tr.texts.iter().all(|t| t.contains("square")));
        // a list of phrasings is several captions; a newline inside one is a space
        let te = super::super::load(&spec, Split::Test, Some(Shape { size: 8, channels: 1 })).unwrap();
        let all: Vec<Vec<&str>> = (0..tr.len()).map(|i| tr.captions(i).collect()).chain((0..te.len()).map(|i| te.captions(i).collect())).collect();
        assert!(all.iter().any(|c| c.len() == 2), "{all:?}");
        for c in all.iter().filter(|c| c.len() == 2) {
            assert!(c[0].starts_with("another ") && c[1].starts_with("a ") && c[1].ends_with(" square"), "{c:?}");
        }
        std::fs::write(dir.join("bad.jsonl"), "{\"img\": 1}\n").unwrap();
        let spec: DataSpec = format!("captions:{}", dir.join("bad.jsonl").display()).parse().unwrap();
        let e = super::super::load(&spec, Split::Train, None).err().unwrap();
        assert!(format!("{e:#}").contains("bad.jsonl:1"), "{e:#}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
