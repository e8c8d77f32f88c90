//! A defensive GGUF reader and an f32 GGUF writer.
//!
//! Format: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>. Every length and count read from the
//! header is checked against the bytes that remain before anything is allocated, and the decoded metadata
//! (where a 1-byte element becomes a 32-byte [`Value`]) is charged against a budget of the file's own size (at
//! least [`MIN_METADATA_BUDGET`]), so a crafted file can make the reader fail but never exhaust memory or panic.
//! Tensor data ranges must be aligned, inside the file and must not overlap. Quantized blocks are dequantized with candle's kernels.
use crate::error::{LmError, Result};
use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType};
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0x4655_4747; // "GGUF" little-endian
const MAX_DIMS: usize = 4;
/// Decoded metadata may always take this many bytes, however small the file.
pub const MIN_METADATA_BUDGET: usize = 1 << 20;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// u8.
    U8(u8),
    /// i8.
    I8(i8),
    /// u16.
    U16(u16),
    /// i16.
    I16(i16),
    /// u32.
    U32(u32),
    /// i32.
    I32(i32),
    /// f32.
    F32(f32),
    /// u64.
    U64(u64),
    /// i64.
    I64(i64),
    /// f64.
    F64(f64),
    /// bool.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
    /// Array of values.
    Array(Vec<Value>),
}

impl Value {
    /// As an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(_) | Value::I16(_) | Value::I32(_) | Value::I64(_) => {
                self.as_i64().and_then(|v| u64::try_from(v).ok())
            }
            _ => None,
        }
    }
    /// As a signed integer, if it is a signed integer type.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v as i64),
            Value::I16(v) => Some(v as i64),
            Value::I32(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }
    /// As a float, if numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self
                .as_u64()
                .map(|v| v as f64)
                .or_else(|| self.as_i64().map(|v| v as f64)),
        }
    }
    /// As a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// As a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    /// As an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One tensor's header entry.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Row-major shape (GGUF stores dims innermost first; this is reversed).
    pub shape: Vec<usize>,
    /// ggml type id.
    pub ggml_type: u32,
    /// Byte offset from the start of the file.
    pub offset: usize,
    /// Size in bytes.
    pub n_bytes: usize,
}

/// Metadata key/value pairs by key.
pub type Metadata = BTreeMap<String, Value>;
/// Tensor entries by name.
pub type Tensors = BTreeMap<String, TensorInfo>;

/// A parsed GGUF file whose bytes stay memory-mapped.
pub struct GgufFile {
    path: PathBuf,
    data: memmap2::Mmap,
    /// Metadata key/value pairs.
    pub metadata: BTreeMap<String, Value>,
    /// Tensor entries by name.
    pub tensors: BTreeMap<String, TensorInfo>,
    /// Format version.
    pub version: u32,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    /// Bytes the decoded metadata may still take.
    budget: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if n > self.b.len() - self.pos {
            return Err(format!(
                "truncated: needs {n} bytes at offset {}, file has {}",
                self.pos,
                self.b.len()
            ));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// Charges `n` decoded bytes against the metadata budget.
    fn charge(&mut self, n: usize) -> std::result::Result<(), String> {
        if n > self.budget {
            return Err(format!(
                "metadata would take more than {} bytes of memory decoded (a file of {} bytes cannot need that)",
                self.budget.max(n),
                self.b.len()
            ));
        }
        self.budget -= n;
        Ok(())
    }
    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// A count that must be coverable by the remaining bytes at `min_size` bytes per item.
    fn count(&mut self, what: &str, min_size: usize) -> std::result::Result<usize, String> {
        let n = self.u64()?;
        let max = (self.remaining() / min_size.max(1)) as u64;
        if n > max {
            return Err(format!(
                "{what} count {n} exceeds what the remaining {} bytes can hold",
                self.remaining()
            ));
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let n = self.count("string length", 1)?;
        self.charge(n)?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("invalid UTF-8 string at offset {}", self.pos - n))
    }
    fn value(&mut self, ty: u32, depth: usize) -> std::result::Result<Value, String> {
        Ok(match ty {
            0 => Value::U8(self.u8()?),
            1 => Value::I8(self.u8()? as i8),
            2 => Value::U16(u16::from_le_bytes(self.take(2)?.try_into().expect("2"))),
            3 => Value::I16(i16::from_le_bytes(self.take(2)?.try_into().expect("2"))),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(self.u32()? as i32),
            6 => Value::F32(f32::from_bits(self.u32()?)),
            7 => Value::Bool(self.u8()? != 0),
            8 => Value::Str(self.string()?),
            9 => {
                if depth > 2 {
                    return Err("arrays nested too deeply".into());
                }
                let ety = self.u32()?;
                let min = match ety {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => return Err(format!("unknown array element type {t}")),
                };
                let n = self.count("array", min)?;
                self.charge(n.saturating_mul(std::mem::size_of::<Value>()))?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(ety, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(self.u64()? as i64),
            12 => Value::F64(f64::from_bits(self.u64()?)),
            t => return Err(format!("unknown metadata value type {t}")),
        })
    }
}

/// ggml type id → candle dtype, for the types the runtime dequantizes.
pub fn ggml_dtype(id: u32) -> Option<GgmlDType> {
    Some(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

fn parse(b: &[u8]) -> std::result::Result<(u32, Metadata, Tensors), String> {
    let mut c = Cursor {
        b,
        pos: 0,
        budget: b.len().max(MIN_METADATA_BUDGET),
    };
    if c.u32()? != MAGIC {
        return Err("not a GGUF file (bad magic)".into());
    }
    let version = c.u32()?;
    if !(2..=3).contains(&version) {
        return Err(format!("unsupported GGUF version {version}"));
    }
    // A tensor entry takes at least 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
    let n_tensors = c.count("tensor", 24)?;
    // A key/value entry takes at least 8 (key len) + 4 (type) + 1 byte.
    let n_kv = c.count("metadata", 13)?;
    c.charge(n_kv.saturating_mul(std::mem::size_of::<(String, Value)>() + 16))?;
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = c.string()?;
        let ty = c.u32()?;
        let v = c
            .value(ty, 0)
            .map_err(|e| format!("metadata `{key}`: {e}"))?;
        metadata.insert(key, v);
    }
    c.charge(n_tensors.saturating_mul(std::mem::size_of::<TensorInfo>() + 64))?;
    let mut raw = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name = c.string()?;
        let nd = c.u32()? as usize;
        if nd == 0 || nd > MAX_DIMS {
            return Err(format!(
                "tensor `{name}` has {nd} dimensions (1..={MAX_DIMS} allowed)"
            ));
        }
        let mut dims = Vec::with_capacity(nd);
        for _ in 0..nd {
            dims.push(c.u64()?);
        }
        let ty = c.u32()?;
        let off = c.u64()?;
        raw.push((name, dims, ty, off));
    }
    let align = metadata
        .get("general.alignment")
        .and_then(Value::as_u64)
        .unwrap_or(32);
    if align == 0 || align > 1 << 20 || !align.is_power_of_two() {
        return Err(format!("invalid general.alignment {align}"));
    }
    let align = align as usize;
    let data_start = c.pos.div_ceil(align) * align;
    let mut tensors = BTreeMap::new();
    for (name, dims, ty, off) in raw {
        let dt = ggml_dtype(ty)
            .ok_or_else(|| format!("tensor `{name}` has unsupported ggml type {ty}"))?;
        let mut elems: u64 = 1;
        for &d in &dims {
            elems = elems
                .checked_mul(d)
                .ok_or_else(|| format!("tensor `{name}` element count overflows"))?;
        }
        let bs = dt.block_size() as u64;
        if !elems.is_multiple_of(bs) {
            return Err(format!(
                "tensor `{name}` has {elems} elements, not a multiple of the block size {bs}"
            ));
        }
        let n_bytes = (elems / bs)
            .checked_mul(dt.type_size() as u64)
            .ok_or_else(|| format!("tensor `{name}` size overflows"))?;
        if !off.is_multiple_of(align as u64) {
            return Err(format!(
                "tensor `{name}` offset {off} is not a multiple of the alignment {align}"
            ));
        }
        let start = (data_start as u64)
            .checked_add(off)
            .ok_or_else(|| format!("tensor `{name}` offset overflows"))?;
        let end = start
            .checked_add(n_bytes)
            .ok_or_else(|| format!("tensor `{name}` offset overflows"))?;
        if end > b.len() as u64 {
            return Err(format!(
                "tensor `{name}` needs bytes {start}..{end} but the file has {} (truncated?)",
                b.len()
            ));
        }
        let shape = dims.iter().rev().map(|&d| d as usize).collect();
        if tensors
            .insert(
                name.clone(),
                TensorInfo {
                    shape,
                    ggml_type: ty,
                    offset: start as usize,
                    n_bytes: n_bytes as usize,
                },
            )
            .is_some()
        {
            return Err(format!("duplicate tensor `{name}`"));
        }
    }
    let mut ranges: Vec<(usize, usize, &str)> = tensors
        .iter()
        .map(|(n, t)| (t.offset, t.offset + t.n_bytes, n.as_str()))
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(format!(
                "tensors `{}` and `{}` overlap (bytes {}..{} and {}..{})",
                w[0].2, w[1].2, w[0].0, w[0].1, w[1].0, w[1].1
            ));
        }
    }
    Ok((version, metadata, tensors))
}

impl GgufFile {
    /// Opens and parses a GGUF file (memory-mapped).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        tessera_core::fsx::ensure_regular_file(&path)?;
        let f = std::fs::File::open(&path).map_err(|e| tessera_core::Error::io(&path, e))?;
        // SAFETY: the map is read-only; a file truncated underneath us is the usual mmap caveat, accepted here
        // as everywhere model files are memory-mapped.
        let data =
            unsafe { memmap2::Mmap::map(&f) }.map_err(|e| tessera_core::Error::io(&path, e))?;
        let (version, metadata, tensors) = parse(&data).map_err(|m| LmError::bad(&path, m))?;
        Ok(GgufFile {
            path,
            data,
            metadata,
            tensors,
            version,
        })
    }

    /// Parses GGUF bytes held in memory (used by tests and fuzzing); tensors cannot be read from the result.
    pub fn parse_bytes(bytes: &[u8]) -> std::result::Result<(Metadata, Tensors), String> {
        parse(bytes).map(|(_, m, t)| (m, t))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// The raw bytes of a tensor, read from the file (not through the map, so they are not counted twice in the
    /// process's resident memory).
    pub fn read_tensor_bytes(&self, name: &str) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt as _;
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| LmError::MissingTensor {
                path: self.path.clone(),
                name: name.into(),
            })?;
        let f =
            std::fs::File::open(&self.path).map_err(|e| tessera_core::Error::io(&self.path, e))?;
        let mut buf = vec![0u8; info.n_bytes];
        f.read_exact_at(&mut buf, info.offset as u64)
            .map_err(|e| tessera_core::Error::io(&self.path, e))?;
        Ok(buf)
    }

    /// Reads a tensor, dequantized to f32, with its row-major shape.
    pub fn tensor_f32(&self, name: &str) -> Result<Tensor> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| LmError::MissingTensor {
                path: self.path.clone(),
                name: name.into(),
            })?;
        let dt = ggml_dtype(info.ggml_type).expect("checked at parse time");
        let bytes = &self.data[info.offset..info.offset + info.n_bytes];
        let dev = Device::Cpu;
        if dt == GgmlDType::F32 {
            let v: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect();
            return Ok(Tensor::from_vec(v, info.shape.as_slice(), &dev)?);
        }
        let q = qtensor_from_ggml(dt, bytes, info.shape.clone(), &dev)
            .map_err(|e| LmError::bad(&self.path, format!("tensor `{name}`: {e}")))?;
        Ok(q.dequantize(&dev)?)
    }
}

/// Writes f32 tensors and metadata as a GGUF (version 3) file, atomically.
pub fn write_f32(
    path: impl AsRef<Path>,
    metadata: &[(String, Value)],
    tensors: &[(String, Tensor)],
) -> Result<()> {
    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    fn type_of(v: &Value) -> u32 {
        match v {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::Array(_) => 9,
        }
    }
    fn put_val(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::U8(x) => out.push(*x),
            Value::I8(x) => out.push(*x as u8),
            Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::Bool(b) => out.push(*b as u8),
            Value::Str(s) => put_str(out, s),
            Value::Array(a) => {
                let et = a.first().map(type_of).unwrap_or(4);
                out.extend_from_slice(&et.to_le_bytes());
                out.extend_from_slice(&(a.len() as u64).to_le_bytes());
                for x in a {
                    put_val(out, x);
                }
            }
        }
    }
    let align = 32usize;
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        out.extend_from_slice(&type_of(v).to_le_bytes());
        put_val(&mut out, v);
    }
    let mut offset = 0usize;
    let mut blobs = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        put_str(&mut out, name);
        let dims = t.dims();
        out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for &d in dims.iter().rev() {
            out.extend_from_slice(&(d as u64).to_le_bytes());
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        let v = t
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        offset += (v.len() * 4).div_ceil(align) * align;
        blobs.push(v);
    }
    out.resize(out.len().div_ceil(align) * align, 0);
    for v in blobs {
        let start = out.len();
        out.reserve(v.len() * 4);
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.resize(start + (out.len() - start).div_ceil(align) * align, 0);
    }
    tessera_core::fsx::write_atomic(path, &out)?;
    Ok(())
}
