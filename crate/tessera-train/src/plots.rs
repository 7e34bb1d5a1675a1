//! Codebook figures: a t-SNE (bhtsne, exact) of a tokenizer's code vectors, each code coloured by
//! the majority class of the test patches assigned to it — the paper's codebook visualisation in
//! miniature — drawn with plotters.
use anyhow::{Context, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;
use tessera::rng::Rng;

/// Matplotlib's tab10, one colour per class; unused codes are light grey.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
];
const UNUSED: RGBColor = RGBColor(190, 190, 190);

/// Labels need a font: plotters' ab_glyph backend takes the bytes of a TrueType file. DejaVu Sans
/// comes with Debian's fonts-dejavu-core (scripts/setup.sh); without it the figure has no text.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"]
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .map(|bytes| plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice())).is_ok())
            .unwrap_or(false)
    })
}

/// 2-D t-SNE of the `k` code vectors (`dim` each, row-major). Cosine codebooks (VQ-KD, Cluster) use
/// the cosine distance, the others squared Euclidean. Deterministic: the initial layout comes from
/// `seed` instead of bhtsne's thread RNG, and the fit runs on a one-thread rayon pool because
/// bhtsne's parallel float reductions change order with work-stealing (1000 epochs amplify that).
pub fn tsne(codes: &[f32], dim: usize, cosine: bool, seed: u64) -> Vec<(f32, f32)> {
    let rows: Vec<&[f32]> = codes.chunks(dim).collect();
    let k = rows.len();
    if k < 8 {
        return rows.iter().map(|r| (r[0], r.get(1).copied().unwrap_or(0.0))).collect();
    }
    let mut rng = Rng::new(seed, 0x75e);
    let init: Vec<f32> = (0..k * 2).map(|_| (rng.uniform() as f32 - 0.5) * 1e-2).collect();
    // bhtsne requires n - 1 >= 3 * perplexity.
    let perplexity = 15f32.min((k as f32 - 1.0) / 3.0 - 0.01);
    let dist = move |a: &&[f32], b: &&[f32]| -> f32 {
        if cosine {
            let dot: f32 = a.iter().zip(b.iter()).map(|(x, y)| x * y).sum();
            let n = (a.iter().map(|x| x * x).sum::<f32>() * b.iter().map(|x| x * x).sum::<f32>()).sqrt().max(1e-12);
            (1.0 - dot / n).max(0.0)
        } else {
            a.iter().zip(b.iter()).map(|(x, y)| (x - y).powi(2)).sum()
        }
    };
    let fit = || bhtsne::tSNE::<f32, &[f32]>::new(&rows).perplexity(perplexity).epochs(1000).initial_embedding(init).exact(dist).embedding();
    let emb = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(fit),
        Err(_) => fit(), // could not start a thread: still a valid layout, just not bit-reproducible
    };
    emb.chunks(2).map(|p| (p[0], p[1])).collect()
}

/// A scatter of `points` coloured by `classes` (`None`: unused code) with a class legend, as PNG.
pub fn scatter_png(points: &[(f32, f32)], classes: &[Option<usize>], class_names: &[String], title: &str, path: &Path) -> Result<()> {
    let (w, h) = (660u32, 500u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let text = font_ready();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_horizontally(500);
        let span = |f: fn(&(f32, f32)) -> f32| {
            let (lo, hi) = points.iter().map(f).fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(v), h.max(v)));
            let pad = ((hi - lo) * 0.05).max(1e-3);
            (lo - pad)..(hi + pad)
        };
        let mut builder = ChartBuilder::on(&plot);
        builder.margin(12);
        if text {
            builder.caption(title, ("sans-serif", 18));
        }
        let mut chart = builder.build_cartesian_2d(span(|p| p.0), span(|p| p.1))?;
        chart.plotting_area().fill(&RGBColor(250, 250, 250))?;
        // unused codes first, so the coloured ones stay on top
        let colour = |c: &Option<usize>| c.map_or(UNUSED, |i| { let (r, g, b) = PALETTE[i % 10]; RGBColor(r, g, b) });
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by_key(|&i| classes[i].is_some());
        // unused codes as small rings, so they never read as a class colour
        chart.draw_series(order.iter().map(|&i| match classes[i] {
            Some(_) => Circle::new(points[i], 4, colour(&classes[i]).filled()),
            None => Circle::new(points[i], 3, UNUSED.stroke_width(1)),
        }))?;
        let used = classes.iter().filter(|c| c.is_some()).count();
        let mut rows: Vec<(String, RGBColor)> = class_names.iter().enumerate().map(|(i, n)| (n.clone(), colour(&Some(i)))).collect();
        rows.push((format!("unused ({})", points.len() - used), UNUSED));
        for (i, (name, c)) in rows.iter().enumerate() {
            let y = 40 + 24 * i as i32;
            if i < class_names.len() {
                legend.draw(&Rectangle::new([(8, y), (22, y + 14)], c.filled()))?;
            } else {
                legend.draw(&Circle::new((15, y + 7), 3, c.stroke_width(1)))?;
            }
            if text {
                legend.draw(&Text::new(name.as_str(), (28, y), ("sans-serif", 14)))?;
            }
        }
        root.present()?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    image::RgbImage::from_raw(w, h, buf).context("plot buffer")?.save(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Training curves: one panel per stage (its logged losses against the step, a moving average
/// drawn over the raw points), so a reader sees whether a loss has flattened.
pub fn loss_png(stages: &[(String, Vec<(usize, f32)>)], title: &str, path: &Path) -> Result<()> {
    let panels = stages.len().max(1) as u32;
    let (w, h) = (360 * panels.min(3), 280 * panels.div_ceil(3));
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let text = font_ready();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = if text { root.titled(title, ("sans-serif", 16))? } else { root };
        let areas = root.split_evenly((panels.div_ceil(3) as usize, panels.min(3) as usize));
        for ((name, losses), area) in stages.iter().zip(areas) {
            let finite: Vec<(usize, f32)> = losses.iter().copied().filter(|l| l.1.is_finite()).collect();
            if finite.is_empty() {
                continue;
            }
            let last = finite.last().map_or(1, |l| l.0).max(1);
            let (lo, hi) = finite.iter().fold((f32::MAX, f32::MIN), |(a, b), l| (a.min(l.1), b.max(l.1)));
            let pad = ((hi - lo) * 0.05).max(1e-4);
            let mut builder = ChartBuilder::on(&area);
            builder.margin(10).x_label_area_size(if text { 22 } else { 0 }).y_label_area_size(if text { 44 } else { 0 });
            if text {
                builder.caption(name.as_str(), ("sans-serif", 14));
            }
            let mut chart = builder.build_cartesian_2d(0usize..last, (lo - pad)..(hi + pad))?;
            if text {
                chart.configure_mesh().x_labels(4).y_labels(4).label_style(("sans-serif", 11)).draw()?;
            }
            chart.draw_series(finite.iter().map(|&(s, l)| Circle::new((s, l), 1, RGBColor(170, 190, 230).filled())))?;
            let k = (finite.len() / 20).max(1);
            let smooth: Vec<(usize, f32)> = (0..finite.len())
                .map(|i| {
                    let w = &finite[i.saturating_sub(k)..(i + k + 1).min(finite.len())];
                    (finite[i].0, w.iter().map(|l| l.1).sum::<f32>() / w.len() as f32)
                })
                .collect();
            chart.draw_series(LineSeries::new(smooth, RGBColor(31, 119, 180).stroke_width(2)))?;
        }
        root.present()?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    image::RgbImage::from_raw(w, h, buf).context("plot buffer")?.save(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsne_keeps_separated_blobs_apart() {
        // two tight blobs far apart in 8-D: their 2-D images must stay separated
        let mut rng = Rng::new(3, 0);
        let mut codes = Vec::new();
        for i in 0..40 {
            let centre = if i < 20 { 5.0 } else { -5.0 };
            codes.extend((0..8).map(|_| centre + (rng.uniform() as f32 - 0.5) * 0.1));
        }
        let p = tsne(&codes, 8, false, 0);
        assert_eq!(p, tsne(&codes, 8, false, 0), "t-SNE must be deterministic given its seed");
        let centroid = |r: std::ops::Range<usize>| {
            let n = r.len() as f32;
            r.fold((0.0, 0.0), |a, i| (a.0 + p[i].0 / n, a.1 + p[i].1 / n))
        };
        let (a, b) = (centroid(0..20), centroid(20..40));
        let between = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
        let within = (0..20).map(|i| ((p[i].0 - a.0).powi(2) + (p[i].1 - a.1).powi(2)).sqrt()).fold(0f32, f32::max);
        assert!(between > 2.0 * within, "blobs overlap: between {between}, within {within}");
        let curves = std::env::temp_dir().join(format!("tessera-curves-{}.png", std::process::id()));
        let series = vec![("tokenizer".to_string(), (0..50).map(|s| (s * 10, 1.0 / (1.0 + s as f32))).collect()), ("ar".to_string(), vec![(0, f32::NAN), (10, 2.0)])];
        loss_png(&series, "curves", &curves).unwrap();
        assert_eq!(image::open(&curves).unwrap().to_rgb8().dimensions(), (720, 280));
        std::fs::remove_file(&curves).ok();
        let path = std::env::temp_dir().join(format!("tessera-tsne-{}.png", std::process::id()));
        let classes: Vec<Option<usize>> = (0..40).map(|i| if i == 0 { None } else { Some(i / 20) }).collect();
        scatter_png(&p, &classes, &["a".into(), "b".into()], "test", &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (660, 500));
        std::fs::remove_file(&path).ok();
    }
}
