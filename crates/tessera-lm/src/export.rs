//! Re-writing a GGUF file with every tensor dequantized to f32 (same names, layout and metadata), for same-work
//! comparisons with llama.cpp.
use crate::error::Result;
use crate::gguf::{self, GgufFile, Value};
use std::path::Path;

/// Writes `dst`, an f32 copy of the GGUF file `src`. `general.file_type` becomes 0 (all f32).
pub fn gguf_to_f32(src: &Path, dst: &Path) -> Result<()> {
    let g = GgufFile::open(src)?;
    let mut meta: Vec<(String, Value)> = g
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.file_type" && k.as_str() != "general.alignment")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.push(("general.file_type".into(), Value::U32(0)));
    // Keep the original tensor order (by offset) so the file mirrors the source.
    let mut names: Vec<(&String, usize)> = g.tensors.iter().map(|(n, i)| (n, i.offset)).collect();
    names.sort_by_key(|x| x.1);
    let tensors = names
        .into_iter()
        .map(|(n, _)| Ok((n.clone(), g.tensor_f32(n)?)))
        .collect::<Result<Vec<_>>>()?;
    gguf::write_f32(dst, &meta, &tensors)
}
