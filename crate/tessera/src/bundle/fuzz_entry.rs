//! The entry point of the bundle fuzzer (`crate/tessera/fuzz`, `scripts/fuzz.sh`) and of its bounded
//! replay in `cargo test` (`tests/fuzz_replay.rs`): arbitrary bytes through manifest parsing and
//! bundle loading, exactly as the browser receives them. It must return, never panic, whatever the
//! bytes.
use super::{Bundle, FileEntry, Manifest, sha256_hex};
use burn::prelude::*;

/// Splits `data` into length-prefixed parts: `[u32 le length][bytes]...` (a short last part takes
/// what is left).
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while rest.len() >= 4 && parts.len() < 8 {
        let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        let n = n.min(rest.len());
        parts.push(&rest[..n]);
        rest = &rest[n..];
    }
    parts
}

/// Joins parts as [`split`] reads them (to build seed inputs).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Input: a mode byte, then parts `[manifest, tokenizer file, proposal files..., text tokenizer, text
/// encoder]` (the last two only for a text-to-image manifest, the encoder only for a pretrained one).
/// Mode bit 0 set:
/// the manifest's file entries are rewritten to the sizes and checksums of the given files, so the
/// fuzzer reaches the safetensors parser and the name/shape checks instead of stopping at a
/// checksum. Loads on `device` (the fuzzer uses flex). Returns whether a bundle loaded.
pub fn load_untrusted(data: &[u8], device: &Device) -> bool {
    let Some((&mode, rest)) = data.split_first() else { return false };
    let parts = split(rest);
    let Some((manifest, files)) = parts.split_first() else { return false };
    let Ok(text) = std::str::from_utf8(manifest) else { return false };
    let Ok(mut m) = Manifest::parse(text) else { return false };
    let tokenizer = files.first().copied().unwrap_or_default();
    let names: Vec<String> = m.proposals.keys().cloned().collect();
    let proposals: Vec<(&str, &[u8])> = names.iter().zip(files.iter().skip(1)).map(|(n, b)| (n.as_str(), *b)).collect();
    // a text-to-image bundle's prompt tokenizer (and encoder): the parts after the proposal files
    let text = m.text.as_ref().and_then(|_| files.get(1 + names.len()).copied());
    let encoder = m.text.as_ref().and_then(|_| files.get(2 + names.len()).copied());
    if mode & 1 == 1 {
        let fix = |m: &mut Manifest, role: &str, bytes: &[u8]| {
            if let Some(f) = m.files.get_mut(role) {
                *f = FileEntry { path: f.path.clone(), bytes: bytes.len() as u64, sha256: sha256_hex(bytes) };
            }
        };
        fix(&mut m, "tokenizer", tokenizer);
        for (n, b) in &proposals {
            fix(&mut m, n, b);
        }
        if let Some(t) = text {
            fix(&mut m, super::TEXT_TOKENIZER, t);
        }
        if let Some(e) = encoder {
            fix(&mut m, super::TEXT_ENCODER, e);
        }
    }
    let text = text.map(|tokenizer| super::TextFiles { tokenizer, encoder });
    Bundle::from_bytes(m, tokenizer, &proposals, text, device).is_ok()
}
