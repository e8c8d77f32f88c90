//! A minimal reader for NumPy `.npz` archives: a zip of `.npy` files stored without compression (what
//! `np.savez` writes). Only the dtypes the graph datasets use are supported (`<f4`, `<i4`, `<i8`, `|i1`).
use crate::error::{GraphError, Result};
use std::collections::HashMap;
use std::path::Path;

/// One numeric array from an `.npy` member, widened to `f64` or `i64`.
#[derive(Debug, Clone)]
pub enum NpyArray {
    /// Floating-point data.
    F(Vec<f64>),
    /// Integer data.
    I(Vec<i64>),
}

impl NpyArray {
    /// The values as `i64` (floats are truncated).
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            NpyArray::F(v) => v.iter().map(|&x| x as i64).collect(),
            NpyArray::I(v) => v.clone(),
        }
    }
    /// The values as `f32`.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            NpyArray::F(v) => v.iter().map(|&x| x as f32).collect(),
            NpyArray::I(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

fn err(path: &Path, msg: impl Into<String>) -> GraphError {
    GraphError::Npz {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads every numeric member of an `.npz` archive (members with other dtypes, e.g. strings, are skipped).
pub fn read_npz(path: &Path) -> Result<HashMap<String, NpyArray>> {
    let bytes = std::fs::read(path).map_err(|e| tessera_core::Error::io(path, e))?;
    let mut out = HashMap::new();
    let mut off = 0usize;
    // Walk local file headers (signature PK\x03\x04) until the central directory starts.
    while u32_at(&bytes, off) == Some(0x0403_4b50) {
        let bad = || err(path, format!("truncated zip header at byte {off}"));
        let flags = u16_at(&bytes, off + 6).ok_or_else(bad)?;
        let method = u16_at(&bytes, off + 8).ok_or_else(bad)?;
        let mut csize = u32_at(&bytes, off + 18).ok_or_else(bad)? as usize;
        let name_len = u16_at(&bytes, off + 26).ok_or_else(bad)? as usize;
        let extra_len = u16_at(&bytes, off + 28).ok_or_else(bad)? as usize;
        let name =
            String::from_utf8_lossy(bytes.get(off + 30..off + 30 + name_len).ok_or_else(bad)?)
                .to_string();
        let data_start = off + 30 + name_len + extra_len;
        if method != 0 {
            return Err(err(path, format!("member {name} is compressed (method {method}); only stored members are supported")));
        }
        if csize == 0xFFFF_FFFF {
            // zip64: the real size is in the extra field (id 0x0001: usize, csize as u64).
            let extra = bytes.get(off + 30 + name_len..data_start).ok_or_else(bad)?;
            let mut p = 0;
            while p + 4 <= extra.len() {
                let id = u16::from_le_bytes([extra[p], extra[p + 1]]);
                let len = u16::from_le_bytes([extra[p + 2], extra[p + 3]]) as usize;
                if id == 1 && len >= 16 {
                    let s = &extra[p + 12..p + 20];
                    csize = u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
                        as usize;
                }
                p += 4 + len;
            }
        }
        if flags & 0x8 != 0 && csize == 0 {
            return Err(err(
                path,
                format!("member {name} uses a data descriptor without sizes"),
            ));
        }
        let data = bytes.get(data_start..data_start + csize).ok_or_else(bad)?;
        let key = name.trim_end_matches(".npy").to_string();
        if let Some(arr) = parse_npy(data).map_err(|m| err(path, format!("{name}: {m}")))? {
            out.insert(key, arr);
        }
        off = data_start + csize;
    }
    if out.is_empty() {
        return Err(err(path, "no numeric .npy members found"));
    }
    Ok(out)
}

/// Parses one `.npy` buffer; `Ok(None)` for dtypes this reader skips (strings, objects).
pub fn parse_npy(data: &[u8]) -> std::result::Result<Option<NpyArray>, String> {
    if data.len() < 10 || &data[..6] != b"\x93NUMPY" {
        return Err("not an .npy buffer".into());
    }
    let major = data[6];
    let (hlen, hstart) = if major == 1 {
        (u16::from_le_bytes([data[8], data[9]]) as usize, 10)
    } else {
        let s = data.get(8..12).ok_or("truncated header")?;
        (u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize, 12)
    };
    let header = std::str::from_utf8(data.get(hstart..hstart + hlen).ok_or("truncated header")?)
        .map_err(|_| "header is not UTF-8")?;
    let descr = dict_value(header, "descr").ok_or("no descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("fortran_order arrays are not supported".into());
    }
    let shape = dict_value(header, "shape").ok_or("no shape")?;
    let dims: Vec<usize> = shape
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad shape {shape}"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let count: usize = dims.iter().product();
    let body = &data[hstart + hlen..];
    let need = |w: usize| -> std::result::Result<&[u8], String> {
        body.get(..count * w)
            .ok_or_else(|| format!("body has {} bytes, need {}", body.len(), count * w))
    };
    let arr = match descr {
        "<f4" => NpyArray::F(
            need(4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
        ),
        "<f8" => NpyArray::F(
            need(8)?
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        "<i4" => NpyArray::I(
            need(4)?
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
        ),
        "<i8" => NpyArray::I(
            need(8)?
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        "|i1" => NpyArray::I(need(1)?.iter().map(|&b| b as i8 as i64).collect()),
        "|u1" => NpyArray::I(need(1)?.iter().map(|&b| b as i64).collect()),
        _ => return Ok(None),
    };
    Ok(Some(arr))
}

/// The raw text of `'key': value` in a Python dict literal (up to the next top-level comma).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("'{key}':");
    let start = header.find(&pat)? + pat.len();
    let rest = header[start..].trim_start();
    if rest.starts_with('(') {
        let end = rest.find(')')?;
        return Some(&rest[..=end]);
    }
    let end = rest.find(',').unwrap_or(rest.len());
    Some(rest[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_header() {
        let header = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }";
        let mut h = header.to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for v in [1i32, -2, 7] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        match parse_npy(&b).unwrap() {
            Some(NpyArray::I(v)) => assert_eq!(v, vec![1, -2, 7]),
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse_npy(b"garbage!!!!!").is_err());
    }
}
