//! `--data emoji`: four art styles of the Unicode emoji from npm (installed by `scripts/setup.sh`
//! into `scripts/data/node_modules`):
//! - `emoji-datasource-google` and `emoji-datasource-twitter` 16.0.0: 64 px PNGs, and the metadata
//!   (name, short names, Unicode category and subcategory) of every emoji;
//! - `openmoji` 17.0.0: SVGs, CLDR annotation and tags;
//! - `fluentui-emoji` 1.3.0: SVGs (the `flat` style), named by the emoji's CLDR name.
//!
//! One emoji = one Unicode sequence (FE0F dropped). Its class is its Unicode subgroup
//! (`face-smiling`, `animal-mammal`, ...); its text its name, style and keywords. Choices: only the
//! default skin tone (the tone variants are near-copies that would weigh people emoji five times);
//! no flags (rectangles of stripes, 14% of the set, one class) and no components (skin-tone
//! swatches, hair parts). The split is by emoji: every rendering of one emoji is on the same side.
use super::{DataInfo, DataSpec, Dataset, Shape, Split, cache, decode, is_test};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const PACKAGES: [(&str, &str); 4] = [
    ("emoji-datasource-google", "Google Noto emoji art (emoji-datasource-google 16.0.0, Apache-2.0)"),
    ("emoji-datasource-twitter", "Twitter Twemoji art (emoji-datasource-twitter 16.0.0, CC-BY-4.0, (c) Twitter, Inc. and other contributors)"),
    ("openmoji", "OpenMoji art (openmoji 17.0.0, CC-BY-SA-4.0, (c) the OpenMoji project, openmoji.org)"),
    ("fluentui-emoji", "Microsoft Fluent UI emoji, flat style (fluentui-emoji 1.3.0, MIT)"),
];

/// `$TESSERA_EMOJI_DIR`, else `scripts/data/node_modules` under the working directory (the repository
/// root, where every script runs), else the one beside the sources this binary was built from. Looked up
/// at run time: a binary built in one checkout (CI's) must still find the packages of another.
pub fn default_dir() -> String {
    if let Ok(dir) = std::env::var("TESSERA_EMOJI_DIR") {
        return dir;
    }
    let here = Path::new("scripts/data/node_modules");
    let p = if here.is_dir() {
        here.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/data/node_modules")
    };
    p.canonicalize().unwrap_or(p).display().to_string()
}

/// One emoji with its metadata (kept for text-to-image).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Emoji {
    pub code: String,
    pub name: String,
    pub keywords: Vec<String>,
    pub group: String,
    pub subgroup: String,
    /// Unicode order (sorts the classes).
    pub order: u32,
}

/// One image of an emoji in one style.
#[derive(Debug, Clone)]
pub struct Rendering {
    pub emoji: usize,
    pub style: &'static str,
    pub path: PathBuf,
}

#[derive(Deserialize)]
struct DatasourceEntry {
    name: Option<String>,
    unified: String,
    image: String,
    short_names: Vec<String>,
    category: String,
    subcategory: String,
    sort_order: u32,
    #[serde(default)]
    has_img_google: bool,
    #[serde(default)]
    has_img_twitter: bool,
}

#[derive(Deserialize)]
struct OpenmojiEntry {
    hexcode: String,
    group: String,
    subgroups: String,
    annotation: String,
    tags: String,
    #[serde(default)]
    openmoji_tags: String,
    /// "" for the default tone, else a number (or a string of numbers)
    #[serde(default)]
    skintone: serde_json::Value,
    #[serde(default)]
    order: serde_json::Value,
}

/// A Unicode sequence without variation selectors, upper case: the key that joins the sets.
fn normalise(code: &str) -> String {
    code.split('-').filter(|c| !c.eq_ignore_ascii_case("FE0F")).map(|c| c.to_ascii_uppercase()).collect::<Vec<_>>().join("-")
}

/// `A button (blood type)` -> `a-button-blood-type` (Fluent UI's file names; subgroup names).
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn skipped_group(g: &str) -> bool {
    matches!(slug(g).as_str(), "flags" | "component" | "extras-openmoji" | "extras-unicode")
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {} (install the emoji packages: scripts/setup.sh)", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

/// Every emoji and every rendering found under `root` (the npm `node_modules`).
pub fn index(root: &Path) -> Result<(Vec<Emoji>, Vec<Rendering>)> {
    let mut emoji: Vec<Emoji> = Vec::new();
    let mut by_code: HashMap<String, usize> = HashMap::new();
    let mut renderings = Vec::new();
    let ds: Vec<DatasourceEntry> = read_json(&root.join("emoji-datasource-google/emoji.json"))?;
    for e in ds {
        if skipped_group(&e.category) {
            continue;
        }
        let code = normalise(&e.unified);
        let i = emoji.len();
        by_code.insert(code.clone(), i);
        emoji.push(Emoji {
            code,
            name: e.name.clone().unwrap_or_default().to_lowercase(),
            keywords: e.short_names.iter().map(|s| s.replace('_', " ")).collect(),
            group: slug(&e.category),
            subgroup: slug(&e.subcategory),
            order: e.sort_order,
        });
        for (style, has) in [("google", e.has_img_google), ("twitter", e.has_img_twitter)] {
            let path = root.join(format!("emoji-datasource-{style}/img/{style}/64/{}", e.image));
            if has && path.exists() {
                renderings.push(Rendering { emoji: i, style, path });
            }
        }
    }
    let om: Vec<OpenmojiEntry> = read_json(&root.join("openmoji/data/openmoji.json"))?;
    let mut by_slug: HashMap<String, usize> = HashMap::new();
    for e in om {
        let default_tone = e.skintone.is_null() || e.skintone.as_str() == Some("");
        if !default_tone || skipped_group(&e.group) {
            continue;
        }
        let code = normalise(&e.hexcode);
        let i = match by_code.get(&code) {
            Some(&i) => i,
            None => {
                let i = emoji.len();
                by_code.insert(code.clone(), i);
                emoji.push(Emoji { code, name: String::new(), keywords: vec![], group: slug(&e.group), subgroup: slug(&e.subgroups), order: 100_000 + e.order.as_u64().unwrap_or(0) as u32 });
                i
            }
        };
        // the CLDR annotation is the emoji's name; tags are keywords
        let m = &mut emoji[i];
        m.name = e.annotation.clone();
        for t in e.tags.split(',').chain(e.openmoji_tags.split(',')).map(str::trim).filter(|t| !t.is_empty()) {
            if !m.keywords.iter().any(|k| k == t) {
                m.keywords.push(t.to_string());
            }
        }
        by_slug.insert(slug(&e.annotation), i);
        let path = root.join(format!("openmoji/color/svg/{}.svg", e.hexcode));
        if path.exists() {
            renderings.push(Rendering { emoji: i, style: "openmoji", path });
        }
    }
    let fluent = root.join("fluentui-emoji/icons/flat");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&fluent).with_context(|| format!("reading {} (scripts/setup.sh)", fluent.display()))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    for path in files {
        let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().to_string()) else { continue };
        // `man-dancing-default.svg` is the default tone of `man-dancing-dark.svg` etc.
        let base = match stem.strip_suffix("-default") {
            Some(b) => b.to_string(),
            None if ["-light", "-medium-light", "-medium", "-medium-dark", "-dark"].iter().any(|t| stem.strip_suffix(t).is_some_and(|b| fluent.join(format!("{b}-default.svg")).exists())) => continue,
            None => stem,
        };
        if let Some(&i) = by_slug.get(&base) {
            renderings.push(Rendering { emoji: i, style: "fluent", path });
        }
    }
    Ok((emoji, renderings))
}

/// Classes (subgroups in Unicode order) and the class of each emoji.
fn classes(emoji: &[Emoji]) -> (Vec<String>, Vec<usize>) {
    let mut first: BTreeMap<String, u32> = BTreeMap::new();
    for e in emoji {
        let o = first.entry(e.subgroup.clone()).or_insert(e.order);
        *o = (*o).min(e.order);
    }
    let mut names: Vec<(u32, String)> = first.into_iter().map(|(s, o)| (o, s)).collect();
    names.sort();
    let names: Vec<String> = names.into_iter().map(|(_, s)| s).collect();
    let class = emoji.iter().map(|e| names.iter().position(|n| *n == e.subgroup).unwrap_or(0)).collect();
    (names, class)
}

/// The captions of one rendering, one per line (`Dataset::captions`), for text-to-image: training
/// samples one per step. Templates: the name ("grinning face"); name and art style ("grinning face,
/// google style"); the keywords ("face, grin"); all of it ("grinning face, google style: face,
/// grin"). Single keywords and other phrasings are left to evaluation (held-out phrasings).
pub fn captions(e: &Emoji, style: &str) -> String {
    let clean = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let name = clean(&e.name);
    let keywords = e.keywords.iter().map(|k| clean(k)).filter(|k| !k.is_empty() && *k != name).collect::<Vec<_>>().join(", ");
    let mut out: Vec<String> = vec![name.clone(), format!("{name}, {style} style")];
    if !keywords.is_empty() {
        out.push(keywords.clone());
        out.push(format!("{name}, {style} style: {keywords}"));
    }
    out.retain(|c| !c.trim().is_empty());
    out.dedup();
    out.join("\n")
}

fn package_versions(root: &Path) -> Result<String> {
    let mut s = String::new();
    for (p, _) in PACKAGES {
        #[derive(Deserialize)]
        struct Pkg {
            version: String,
        }
        let v: Pkg = read_json(&root.join(p).join("package.json"))?;
        s += &format!("{p}@{}\n", v.version);
    }
    Ok(s)
}

pub fn load(root: &Path, split: Split, shape: Shape, spec: &DataSpec) -> Result<Dataset> {
    let key = format!("emoji-v2\n{}\n{shape:?}\n{}", root.display(), package_versions(root)?);
    let (emoji, renderings) = index(root)?;
    let (class_names, class) = classes(&emoji);
    if class_names.is_empty() {
        bail!("no emoji found under {}", root.display());
    }
    let info = DataInfo {
        name: "emoji".into(),
        spec: spec.to_string(),
        shape,
        classes: class_names,
        background: spec.background(),
        credits: PACKAGES.iter().map(|(_, c)| c.to_string()).collect(),
    };
    let mine: Vec<&Rendering> = renderings.iter().filter(|r| is_test(&emoji[r.emoji].code) == (split == Split::Test)).collect();
    cache::load_or_build("emoji", &key, split, || {
        let files: Vec<PathBuf> = mine.iter().map(|r| r.path.clone()).collect();
        let (pixels, kept) = decode::decode_all(&format!("emoji ({})", split.name()), &files, shape, info.background);
        Ok(cache::Decoded {
            info: info.clone(),
            labels: kept.iter().map(|&i| class[mine[i].emoji] as u16).collect(),
            texts: kept.iter().map(|&i| captions(&emoji[mine[i].emoji], mine[i].style)).collect(),
            pixels,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_normalise() {
        assert_eq!(normalise("0023-fe0f-20E3"), "0023-20E3");
        assert_eq!(slug("A button (blood type)"), "a-button-blood-type");
        assert_eq!(slug("arts & crafts"), "arts-crafts");
        assert!(skipped_group("Flags") && skipped_group("extras-openmoji") && !skipped_group("Smileys & Emotion"));
    }

    /// The real packages, when installed (scripts/setup.sh): four styles, ~100 classes, a split
    /// that keeps every emoji on one side.
    #[test]
    fn the_installed_emoji_sets_join() {
        let root = PathBuf::from(default_dir());
        if !root.join("openmoji").exists() {
            eprintln!("skipped: no emoji packages in {} (scripts/setup.sh installs them)", root.display());
            return;
        }
        let (emoji, renderings) = index(&root).unwrap();
        let (names, _) = classes(&emoji);
        assert!(emoji.len() > 1500, "{}", emoji.len());
        assert!((80..=120).contains(&names.len()), "{} classes", names.len());
        for style in ["google", "twitter", "openmoji", "fluent"] {
            let n = renderings.iter().filter(|r| r.style == style).count();
            assert!(n > 1000, "{style}: {n}");
        }
        let grin = emoji.iter().position(|e| e.code == "1F600").unwrap();
        assert_eq!(emoji[grin].subgroup, "face-smiling");
        assert_eq!(renderings.iter().filter(|r| r.emoji == grin).count(), 4, "grinning face in four styles");
        let c = captions(&emoji[grin], "google");
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines[..2], ["grinning face", "grinning face, google style"], "{c}");
        assert!(lines.len() == 4 && lines[2].contains("grin") && lines[3].starts_with("grinning face, google style: "), "{c}");
        // every emoji has at least its name
        assert!(emoji.iter().all(|e| !captions(e, "fluent").lines().next().unwrap_or("").is_empty()));
    }
}
