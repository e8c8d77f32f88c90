//! The two datasets, both real and fetched by the asset step:
//!
//! - **easy-vqa** (PyPI `easy-vqa==1.0`, MIT): 4,000 train / 1,000 test 64×64 RGB PNGs of one coloured shape
//!   each, 38,575 / 9,673 questions, 13 answers. The question files and the wheel's `RECORD` are pinned by sha256
//!   in the asset list; every PNG is checked against its sha256 in that `RECORD` when it is loaded.
//! - **Fashion-MNIST** (Debian `dataset-fashion-mnist`, IDX gz): 60,000 / 10,000 grayscale 28×28 images in 10
//!   classes, upsampled bilinearly to the encoder's size and repeated over the colour channels; used as
//!   image–caption pairs ("a photo of a sneaker") and for zero-shot classification by caption likelihood.
//!
//! Pixels are scaled to [−1, 1]. Images are kept as bytes and turned into flattened patches on demand
//! ([`patchify`]).
use crate::error::{io, Result, VisionError};
use crate::vit::VitConfig;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// An RGB image as `side × side × 3` bytes (row-major, interleaved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Side in pixels.
    pub side: usize,
    /// `side · side · 3` bytes.
    pub bytes: Vec<u8>,
}

/// Decodes an image file (PNG), converts it to RGB and resizes it (bilinear) to `side × side` when needed.
/// A missing, unreadable or undecodable file is [`VisionError::Image`].
pub fn load_image(path: &Path, side: usize) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| VisionError::Image {
        path: path.into(),
        msg: e.to_string(),
    })?;
    decode_image(&bytes, path, side)
}

/// [`load_image`] on bytes already read (`path` only names the source in errors).
pub fn decode_image(bytes: &[u8], path: &Path, side: usize) -> Result<RgbImage> {
    let img = image::load_from_memory(bytes).map_err(|e| VisionError::Image {
        path: path.into(),
        msg: format!("not a decodable image ({e})"),
    })?;
    let mut rgb = img.to_rgb8();
    if rgb.width() as usize != side || rgb.height() as usize != side {
        rgb = image::imageops::resize(
            &rgb,
            side as u32,
            side as u32,
            image::imageops::FilterType::Triangle,
        );
    }
    Ok(RgbImage {
        side,
        bytes: rgb.into_raw(),
    })
}

/// Writes an image as an RGB PNG (e.g. a Fashion-MNIST image for `tessera vlm ask`).
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let buf = image::RgbImage::from_raw(img.side as u32, img.side as u32, img.bytes.clone())
        .ok_or_else(|| VisionError::Invalid("image bytes do not match its side".into()))?;
    buf.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| VisionError::Image {
            path: path.into(),
            msg: e.to_string(),
        })
}

/// Flattened patches `[patches · patch_dim]` of an image, each patch channel-major then row then column, pixels
/// scaled to [−1, 1]. The image must have the encoder's size and 3 channels.
pub fn patchify(img: &RgbImage, cfg: &VitConfig) -> Result<Vec<f32>> {
    if img.side != cfg.image_size || cfg.channels != 3 || img.bytes.len() != img.side * img.side * 3
    {
        return Err(VisionError::Invalid(format!(
            "image of side {} for an encoder of side {} and {} channels",
            img.side, cfg.image_size, cfg.channels
        )));
    }
    let (p, g, s) = (cfg.patch, cfg.grid(), img.side);
    let mut out = Vec::with_capacity(cfg.patches() * cfg.patch_dim());
    for py in 0..g {
        for px in 0..g {
            for c in 0..3 {
                for y in 0..p {
                    for x in 0..p {
                        let (yy, xx) = (py * p + y, px * p + x);
                        let v = img.bytes[(yy * s + xx) * 3 + c] as f32;
                        out.push(v / 127.5 - 1.0);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One question about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The question text.
    pub text: String,
    /// Index into [`EasyVqa::answers`].
    pub answer: usize,
    /// Index of the image in its split.
    pub image: usize,
}

/// One split of easy-vqa.
#[derive(Debug, Clone)]
pub struct VqaSplit {
    /// Images, by id.
    pub images: Vec<RgbImage>,
    /// Questions.
    pub questions: Vec<Question>,
}

/// easy-vqa.
#[derive(Debug, Clone)]
pub struct EasyVqa {
    /// The 13 answers, in `answers.txt` order.
    pub answers: Vec<String>,
    /// Training split.
    pub train: VqaSplit,
    /// Test split.
    pub test: VqaSplit,
}

/// The data folder of the cached easy-vqa package (`.../easy_vqa/data`), fetched unless `offline`.
pub fn easy_vqa_root(offline: bool) -> Result<PathBuf> {
    let a = tessera_core::assets::data_package("easy-vqa", offline)?;
    Ok(a.dir().join("easy_vqa").join("data"))
}

fn data_err(name: &str, msg: impl Into<String>) -> VisionError {
    VisionError::Data {
        name: name.into(),
        msg: msg.into(),
    }
}

/// Decodes RFC 4648 base64url without padding (the wheel `RECORD` hash format).
fn base64url(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// `path → sha256` (hex) of every file the wheel's `RECORD` lists.
fn read_record(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut f = line.split(',');
        let (Some(name), Some(hash)) = (f.next(), f.next()) else {
            continue;
        };
        if let Some(h) = hash.strip_prefix("sha256=").and_then(base64url) {
            out.insert(
                name.to_string(),
                h.iter().map(|b| format!("{b:02x}")).collect(),
            );
        }
    }
    Ok(out)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Deserialize)]
struct RawQuestion(String, String, usize);

fn load_split(
    root: &Path,
    split: &str,
    answers: &[String],
    record: &HashMap<String, String>,
    side: usize,
    image_limit: Option<usize>,
) -> Result<VqaSplit> {
    let qpath = root.join(split).join("questions.json");
    let text = std::fs::read_to_string(&qpath).map_err(|e| io(&qpath, e))?;
    let raw: Vec<RawQuestion> = serde_json::from_str(&text)
        .map_err(|e| data_err("easy-vqa", format!("{}: {e}", qpath.display())))?;
    let n_images = raw.iter().map(|q| q.2 + 1).max().unwrap_or(0);
    let n_images = image_limit.map_or(n_images, |l| l.min(n_images));
    let mut images = Vec::with_capacity(n_images);
    for id in 0..n_images {
        let rel = format!("easy_vqa/data/{split}/images/{id}.png");
        let path = root.join(split).join("images").join(format!("{id}.png"));
        let bytes = std::fs::read(&path).map_err(|e| VisionError::Image {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        match record.get(&rel) {
            Some(h) if *h == sha256_hex(&bytes) => {}
            Some(_) => {
                return Err(VisionError::Image {
                    path,
                    msg: "sha256 differs from the wheel's RECORD".into(),
                })
            }
            None => return Err(data_err("easy-vqa", format!("{rel} is not in RECORD"))),
        }
        images.push(decode_image(&bytes, &path, side)?);
    }
    let mut questions = Vec::new();
    for RawQuestion(text, ans, image) in raw {
        if image >= n_images {
            continue;
        }
        let answer = answers
            .iter()
            .position(|a| *a == ans)
            .ok_or_else(|| data_err("easy-vqa", format!("answer `{ans}` is not in answers.txt")))?;
        questions.push(Question {
            text,
            answer,
            image,
        });
    }
    Ok(VqaSplit { images, questions })
}

impl EasyVqa {
    /// Loads both splits from the package's data folder `root` (see [`easy_vqa_root`]), images resized to
    /// `side`; `image_limit` keeps only the first images of each split (and their questions).
    pub fn load(root: &Path, side: usize, image_limit: Option<usize>) -> Result<Self> {
        let apath = root.join("answers.txt");
        let answers: Vec<String> = std::fs::read_to_string(&apath)
            .map_err(|e| io(&apath, e))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if answers.len() != 13 {
            return Err(data_err(
                "easy-vqa",
                format!("{} answers, expected 13", answers.len()),
            ));
        }
        let record_path = root
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("easy_vqa-1.0.dist-info").join("RECORD"))
            .ok_or_else(|| data_err("easy-vqa", "no package folder above the data folder"))?;
        let record = read_record(&record_path)?;
        Ok(EasyVqa {
            train: load_split(root, "train", &answers, &record, side, image_limit)?,
            test: load_split(root, "test", &answers, &record, side, image_limit)?,
            answers,
        })
    }
}

/// The ten Fashion-MNIST classes as caption words, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// The caption of a Fashion-MNIST class.
pub fn caption(class: usize) -> String {
    format!("a photo of a {}", FASHION_CLASSES[class % 10])
}

/// One Fashion-MNIST split.
#[derive(Debug, Clone)]
pub struct FashionSplit {
    /// `n · 28 · 28` grayscale bytes.
    pub pixels: Vec<u8>,
    /// `n` labels in 0..10.
    pub labels: Vec<u8>,
}

impl FashionSplit {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Image `i` upsampled (bilinear, half-pixel centres) to `side × side` and repeated over RGB.
    pub fn image(&self, i: usize, side: usize) -> RgbImage {
        let src = &self.pixels[i * 784..(i + 1) * 784];
        let mut bytes = Vec::with_capacity(side * side * 3);
        let scale = 28.0 / side as f32;
        for y in 0..side {
            let fy = ((y as f32 + 0.5) * scale - 0.5).clamp(0.0, 27.0);
            let (y0, wy) = (fy.floor() as usize, fy - fy.floor());
            let y1 = (y0 + 1).min(27);
            for x in 0..side {
                let fx = ((x as f32 + 0.5) * scale - 0.5).clamp(0.0, 27.0);
                let (x0, wx) = (fx.floor() as usize, fx - fx.floor());
                let x1 = (x0 + 1).min(27);
                let p = |yy: usize, xx: usize| src[yy * 28 + xx] as f32;
                let v = (1.0 - wy) * ((1.0 - wx) * p(y0, x0) + wx * p(y0, x1))
                    + wy * ((1.0 - wx) * p(y1, x0) + wx * p(y1, x1));
                let b = v.round().clamp(0.0, 255.0) as u8;
                bytes.extend_from_slice(&[b, b, b]);
            }
        }
        RgbImage { side, bytes }
    }
}

fn read_idx_gz(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>)> {
    let f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut raw)
        .map_err(|e| data_err("fashion-mnist", format!("{}: {e}", path.display())))?;
    let be = |i: usize| -> Option<u32> {
        raw.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    if be(0) != Some(magic) {
        return Err(data_err(
            "fashion-mnist",
            format!("{}: bad IDX magic (expected {magic:#x})", path.display()),
        ));
    }
    let nd = (magic & 0xff) as usize;
    let dims: Vec<usize> = (0..nd)
        .map(|k| be(4 + 4 * k).map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| data_err("fashion-mnist", "truncated IDX header"))?;
    let start = 4 + 4 * nd;
    let n: usize = dims.iter().product();
    if raw.len() != start + n {
        return Err(data_err(
            "fashion-mnist",
            format!(
                "{}: {} data bytes, header says {n}",
                path.display(),
                raw.len() - start.min(raw.len())
            ),
        ));
    }
    Ok((dims, raw[start..].to_vec()))
}

/// Fashion-MNIST.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    /// 60,000 training images.
    pub train: FashionSplit,
    /// 10,000 test images (t10k).
    pub test: FashionSplit,
}

impl FashionMnist {
    /// The folder of the cached Debian package's IDX files, fetched unless `offline`.
    pub fn root(offline: bool) -> Result<PathBuf> {
        let a = tessera_core::assets::data_package("fashion-mnist", offline)?;
        Ok(a.main_dir())
    }
    /// Reads the four IDX gz files of `root`.
    pub fn load(root: &Path) -> Result<Self> {
        let split = |img: &str, lab: &str| -> Result<FashionSplit> {
            let (d, pixels) = read_idx_gz(&root.join(img), 0x0803)?;
            let (dl, labels) = read_idx_gz(&root.join(lab), 0x0801)?;
            if d.len() != 3
                || d[1] != 28
                || d[2] != 28
                || dl[0] != d[0]
                || labels.iter().any(|&l| l > 9)
            {
                return Err(data_err(
                    "fashion-mnist",
                    format!("{img}: unexpected shape {d:?} / labels {dl:?}"),
                ));
            }
            Ok(FashionSplit { pixels, labels })
        };
        Ok(FashionMnist {
            train: split("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")?,
            test: split("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_and_base64url_match_known_values() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(base64url("YWJj").unwrap(), b"abc");
        assert_eq!(base64url("YWI").unwrap(), b"ab");
    }

    #[test]
    fn patchify_orders_channels_then_rows() {
        let cfg = VitConfig {
            image_size: 4,
            patch: 2,
            pool: 1,
            ..VitConfig::default()
        };
        let mut bytes = vec![0u8; 4 * 4 * 3];
        let (y, x) = (1, 2); // pixel (1, 2), green
        bytes[(y * 4 + x) * 3 + 1] = 255;
        let p = patchify(&RgbImage { side: 4, bytes }, &cfg).unwrap();
        assert_eq!(p.len(), 4 * 12);
        // Patch (0, 1) is the second patch; green channel block starts at 4; (y=1, x=0) inside it is index 2.
        assert_eq!(p[12 + 4 + 2], 1.0);
        assert_eq!(p.iter().filter(|&&v| v > 0.0).count(), 1);
    }
}
