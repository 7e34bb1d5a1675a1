//! From tokens to pixels: token grids checked before they reach a tensor, decoding with an async
//! read-back (WebGPU has no synchronous one), and RGBA conversion for canvases and PNGs.
use super::MAX_COUNT;
use crate::error::TesseraError;
use crate::tokenizer::AnyTokenizer;
use burn::prelude::*;

/// Checks tokens for decoding: `n` rows of exactly `grid * grid` codes below `codebook_size`.
pub fn tokens_tensor(tokens: &[Vec<u32>], per_image: usize, codebook_size: usize, device: &Device) -> Result<Tensor<2, Int>, TesseraError> {
    if tokens.is_empty() || tokens.len() > MAX_COUNT {
        return Err(TesseraError::InvalidTokens(format!("need 1..={MAX_COUNT} token grids, got {}", tokens.len())));
    }
    let mut flat = Vec::with_capacity(tokens.len() * per_image);
    for (i, row) in tokens.iter().enumerate() {
        if row.len() != per_image {
            return Err(TesseraError::InvalidTokens(format!("grid {i} has {} tokens, expected {per_image}", row.len())));
        }
        if let Some(&t) = row.iter().find(|&&t| t as usize >= codebook_size) {
            return Err(TesseraError::InvalidTokens(format!("token {t} in grid {i} is outside the codebook (size {codebook_size})")));
        }
        flat.extend(row.iter().map(|&t| t as i64));
    }
    Ok(Tensor::from_data(TensorData::new(flat, [tokens.len(), per_image]), device))
}

/// Decodes token grids to images and reads them back: `[n, c, s, s]` values in [-1, 1].
pub async fn decode(tokenizer: &AnyTokenizer, tokens: Tensor<2, Int>) -> Result<(Vec<f32>, [usize; 4]), TesseraError> {
    let images = tokenizer.decode(tokens);
    let shape = images.dims();
    Ok((read_f32(images).await?, shape))
}

/// Reads a tensor back to the host as f32 values. Always async: WebGPU has no synchronous read-back.
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, TesseraError> {
    let data = t.into_data_async().await.map_err(|e| TesseraError::Device(format!("{e:?}")))?;
    data.convert::<f32>().try_to_vec().map_err(|e| TesseraError::Device(format!("{e:?}")))
}

/// `[n, c, s, s]` values in [-1, 1] -> n RGBA images (s * s * 4 bytes each), grey or RGB(A).
pub fn to_rgba(pixels: &[f32], shape: [usize; 4]) -> Vec<Vec<u8>> {
    let [n, c, h, w] = shape;
    let q = |v: f32| ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
    (0..n)
        .map(|i| {
            let img = &pixels[i * c * h * w..(i + 1) * c * h * w];
            let mut out = Vec::with_capacity(h * w * 4);
            for p in 0..h * w {
                let ch = |k: usize| q(img[k.min(c - 1) * h * w + p]);
                let (r, g, b) = if c >= 3 { (ch(0), ch(1), ch(2)) } else { (ch(0), ch(0), ch(0)) };
                out.extend_from_slice(&[r, g, b, if c == 4 { ch(3) } else { 255 }]);
            }
            out
        })
        .collect()
}
