//! One image file -> `[channels, size, size]` bytes: raster formats decoded by the `image` crate,
//! SVG rasterised by `resvg`; alpha composited on the background; padded to a square (centred)
//! and resized with a Lanczos filter (antialiased when shrinking); gray is Rec. 601 luma. Files are
//! decoded in parallel with a progress bar; a file that fails is reported with its path and
//! skipped.
use super::Shape;
use anyhow::{Context, Result, anyhow, bail};
use image::{RgbaImage, imageops::FilterType};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The largest source image accepted (pixels per side): a bigger one is refused, not decoded.
const MAX_SIDE: u32 = 8192;

/// Decodes one file to RGBA (straight alpha).
pub fn decode_rgba(path: &Path, svg_size: u32) -> Result<RgbaImage> {
    let bytes = std::fs::read(path)?;
    let is_svg = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if is_svg {
        return rasterise_svg(&bytes, svg_size);
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes)).with_guessed_format()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    let mut reader = reader;
    reader.limits(limits);
    Ok(reader.decode()?.to_rgba8())
}

/// Renders an SVG so that its longer side is `size` pixels.
fn rasterise_svg(bytes: &[u8], size: u32) -> Result<RgbaImage> {
    let tree = resvg::usvg::Tree::from_data(bytes, &resvg::usvg::Options::default())?;
    let s = tree.size();
    let scale = size as f32 / s.width().max(s.height());
    if !scale.is_finite() || scale <= 0.0 {
        bail!("SVG has no size");
    }
    let (w, h) = (((s.width() * scale).round() as u32).max(1), ((s.height() * scale).round() as u32).max(1));
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w, h).context("SVG size")?;
    resvg::render(&tree, resvg::tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    let mut img = RgbaImage::new(w, h);
    for (dst, src) in img.pixels_mut().zip(pixmap.pixels()) {
        let c = src.demultiply();
        *dst = image::Rgba([c.red(), c.green(), c.blue(), c.alpha()]);
    }
    Ok(img)
}

/// Composites on `background`, pads to a centred square, resizes to `shape.size` and writes the
/// planes (`[c, s, s]`).
pub fn to_planes(img: &RgbaImage, shape: Shape, background: u8) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let side = w.max(h);
    let bg = background as f32;
    let mut square = image::RgbImage::from_pixel(side, side, image::Rgb([background; 3]));
    let (ox, oy) = ((side - w) / 2, (side - h) / 2);
    for (x, y, p) in img.enumerate_pixels() {
        let a = p[3] as f32 / 255.0;
        let mix = |c: u8| (c as f32 * a + bg * (1.0 - a)).round() as u8;
        square.put_pixel(ox + x, oy + y, image::Rgb([mix(p[0]), mix(p[1]), mix(p[2])]));
    }
    let s = shape.size as u32;
    let small = if side == s { square } else { image::imageops::resize(&square, s, s, FilterType::Lanczos3) };
    let n = shape.size * shape.size;
    let mut out = vec![0u8; shape.pixels()];
    for (i, p) in small.pixels().enumerate() {
        if shape.channels == 1 {
            out[i] = (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).round().clamp(0.0, 255.0) as u8;
        } else {
            for c in 0..3 {
                out[c * n + i] = p[c];
            }
        }
    }
    out
}

/// One file to planes; a panic inside a decoder is caught and reported like any other failure.
pub fn decode_file(path: &Path, shape: Shape, background: u8) -> Result<Vec<u8>> {
    let svg_size = (shape.size as u32 * 4).max(128);
    std::panic::catch_unwind(|| decode_rgba(path, svg_size).map(|img| to_planes(&img, shape, background)))
        .map_err(|_| anyhow!("the decoder panicked"))?
}

/// Decodes `files` in parallel (a progress bar on a terminal); returns the planes of the files that
/// decoded and the indices of those that did, after printing each failure with its path.
pub fn decode_all(what: &str, files: &[PathBuf], shape: Shape, background: u8) -> (Vec<u8>, Vec<usize>) {
    let pb = ProgressBar::new(files.len() as u64);
    pb.set_style(ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} ({eta})").unwrap_or_else(|_| ProgressStyle::default_bar()));
    pb.set_message(format!("decoding {what}"));
    let results: Vec<Result<Vec<u8>>> = files
        .par_iter()
        .map(|f| {
            let r = decode_file(f, shape, background);
            pb.inc(1);
            r
        })
        .collect();
    pb.finish_and_clear();
    let (mut pixels, mut kept, mut failed) = (Vec::new(), Vec::new(), 0);
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(p) => {
                pixels.extend(p);
                kept.push(i);
            }
            Err(e) => {
                failed += 1;
                eprintln!("data: skipping {}: {e:#}", files[i].display());
            }
        }
    }
    eprintln!("data: decoded {} of {} {what} images at {}x{}x{}{}", kept.len(), files.len(), shape.channels, shape.size, shape.size, if failed > 0 { format!(" ({failed} skipped)") } else { String::new() });
    (pixels, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_pixels_take_the_background_and_gray_is_luma() {
        let mut img = RgbaImage::from_pixel(8, 4, image::Rgba([255, 0, 0, 255]));
        img.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        let rgb = to_planes(&img, Shape { size: 8, channels: 3 }, 255);
        // 8x4 is padded to 8x8 (rows 2..6), so row 0 is background (white) and row 2 red.
        assert_eq!((rgb[0], rgb[64], rgb[128]), (255, 255, 255));
        assert_eq!((rgb[2 * 8 + 1], rgb[64 + 2 * 8 + 1], rgb[128 + 2 * 8 + 1]), (255, 0, 0));
        assert_eq!(rgb[2 * 8], 255, "the transparent pixel became the white background");
        let gray = to_planes(&img, Shape { size: 8, channels: 1 }, 0);
        assert_eq!(gray[2 * 8 + 1], 76); // 0.299 * 255
        assert_eq!(gray[0], 0);
    }

    #[test]
    fn broken_and_svg_files_are_handled() {
        let dir = std::env::temp_dir().join(format!("tessera-decode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("a.svg");
        std::fs::write(&svg, r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="5" fill="blue"/></svg>"#).unwrap();
        let bad = dir.join("b.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let shape = Shape { size: 8, channels: 3 };
        let (pixels, kept) = decode_all("test", &[svg, bad, dir.join("missing.png")], shape, 255);
        assert_eq!(kept, vec![0]);
        assert_eq!(pixels.len(), shape.pixels());
        assert_eq!((pixels[0], pixels[64], pixels[128]), (0, 0, 255), "top half blue");
        assert_eq!((pixels[63], pixels[127], pixels[191]), (255, 255, 255), "bottom half white");
        std::fs::remove_dir_all(&dir).ok();
    }
}
