//! Decoded splits cached on disk (`$TESSERA_CACHE`, else `~/.cache/tessera-data`): decoding SVGs
//! and resizing thousands of images runs once. One file per (source, split, shape): a header line,
//! a JSON block (info, labels, texts, the pixels' sha256), then the pixels as bytes. Written to a
//! temporary file and renamed, so a killed run never leaves a half-written cache; a file that does
//! not check out is rebuilt.
use super::{DataInfo, Dataset, Split};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const MAGIC: &[u8] = b"TESSERA-DATA 1\n";

/// A decoded split before conversion to floats: pixels `[n, c, s, s]` as bytes.
pub struct Decoded {
    pub info: DataInfo,
    pub labels: Vec<u16>,
    pub texts: Vec<String>,
    pub pixels: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    info: DataInfo,
    labels: Vec<u16>,
    texts: Vec<String>,
    pixels_sha256: String,
}

pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TESSERA_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    home.unwrap_or_else(std::env::temp_dir).join("tessera-data")
}

/// The cached split for `key` (a description of the source that changes when its files do), built
/// by `build` when missing or damaged.
pub fn load_or_build(name: &str, key: &str, split: Split, build: impl FnOnce() -> Result<Decoded>) -> Result<Dataset> {
    let digest = &tessera::bundle::sha256_hex(format!("v1\n{key}").as_bytes())[..16];
    let path = cache_dir().join(format!("{name}-{}-{digest}.bin", split.name()));
    match read(&path) {
        Ok(Some(d)) => return Ok(to_dataset(d)),
        Ok(None) => {}
        Err(e) => eprintln!("data: rebuilding {} ({e:#})", path.display()),
    }
    let d = build()?;
    if d.pixels.len() != d.labels.len() * d.info.shape.pixels() {
        bail!("internal: decoded pixels do not match the image count");
    }
    write(&path, &d).with_context(|| format!("writing the data cache {}", path.display()))?;
    Ok(to_dataset(d))
}

fn to_dataset(d: Decoded) -> Dataset {
    let images = d.pixels.iter().map(|&p| p as f32 / 127.5 - 1.0).collect();
    Dataset { info: d.info, images, labels: d.labels, texts: d.texts }
}

fn read(path: &std::path::Path) -> Result<Option<Decoded>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let rest = bytes.strip_prefix(MAGIC).context("not a Tessera data cache")?;
    if rest.len() < 8 {
        bail!("truncated");
    }
    let n = u64::from_le_bytes(rest[..8].try_into()?) as usize;
    let json = rest.get(8..8usize.saturating_add(n)).context("truncated header")?;
    let h: Header = serde_json::from_slice(json)?;
    let pixels = rest[8 + n..].to_vec();
    if pixels.len() != h.labels.len() * h.info.shape.pixels() || tessera::bundle::sha256_hex(&pixels) != h.pixels_sha256 {
        bail!("pixels do not match the header");
    }
    Ok(Some(Decoded { info: h.info, labels: h.labels, texts: h.texts, pixels }))
}

fn write(path: &std::path::Path, d: &Decoded) -> Result<()> {
    let dir = path.parent().context("cache path")?;
    std::fs::create_dir_all(dir)?;
    let header = Header { info: d.info.clone(), labels: d.labels.clone(), texts: d.texts.clone(), pixels_sha256: tessera::bundle::sha256_hex(&d.pixels) };
    let json = serde_json::to_vec(&header)?;
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + json.len() + d.pixels.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&d.pixels);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, out)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
