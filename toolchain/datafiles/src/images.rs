//! Image folders in the usual layout — one subfolder per class, named after it, classes
//! numbered in sorted order (as torchvision's `ImageFolder` and Keras'
//! `image_dataset_from_directory` do) — decoded with the `image` crate (PNG, JPEG),
//! optionally resized (shorter side) and centre-cropped.

use npu_data::{Dataset, Elements, Layout, Targets};
use serde::{Deserialize, Serialize};

use crate::error::{file_err, Result};

/// Colour channels to decode to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Channels {
    /// One channel (luma).
    Gray,
    /// Red, green, blue.
    #[default]
    Rgb,
    /// Blue, green, red (Caffe and OpenCV models).
    Bgr,
}

/// How images become samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageOptions {
    /// Channels and their order; `None`: as the first image is (gray or RGB).
    pub channels: Option<Channels>,
    /// Resize so the shorter side has this many pixels (bilinear), keeping the aspect.
    pub resize: Option<u32>,
    /// Then cut the central `crop × crop` square.
    pub crop: Option<u32>,
}

/// Decodes one image to `(height, width, channels, HWC bytes)`.
pub fn decode(bytes: &[u8], opts: &ImageOptions, origin: &str) -> Result<(usize, usize, usize, Vec<u8>)> {
    let mut img =
        image::load_from_memory(bytes).map_err(|e| file_err(origin, format!("cannot decode the image: {e}")))?;
    if let Some(r) = opts.resize {
        if r == 0 {
            return Err(file_err(origin, "resize must be at least 1 pixel"));
        }
        let (w, h) = (img.width(), img.height());
        let (nw, nh) = if w <= h {
            (r, ((u64::from(h) * u64::from(r) + u64::from(w) / 2) / u64::from(w)).max(1) as u32)
        } else {
            (((u64::from(w) * u64::from(r) + u64::from(h) / 2) / u64::from(h)).max(1) as u32, r)
        };
        img = img.resize_exact(nw, nh, image::imageops::FilterType::Triangle);
    }
    if let Some(c) = opts.crop {
        let (w, h) = (img.width(), img.height());
        if c == 0 || c > w || c > h {
            return Err(file_err(
                origin,
                format!("cannot cut a {c}×{c} centre from a {w}×{h} image (set resize ≥ {c})"),
            ));
        }
        img = img.crop_imm((w - c) / 2, (h - c) / 2, c, c);
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    let channels = opts.channels.unwrap_or(if img.color().has_color() { Channels::Rgb } else { Channels::Gray });
    Ok(match channels {
        Channels::Gray => (h, w, 1, img.to_luma8().into_raw()),
        Channels::Rgb => (h, w, 3, img.to_rgb8().into_raw()),
        Channels::Bgr => {
            let mut v = img.to_rgb8().into_raw();
            for px in v.chunks_mut(3) {
                px.swap(0, 2);
            }
            (h, w, 3, v)
        }
    })
}

/// Whether a file name looks like an image this reader decodes.
pub fn is_image(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg"].iter().any(|e| l.ends_with(e))
}

/// One class of an image folder: its name and its files as (file name, bytes).
pub type Class = (String, Vec<(String, Vec<u8>)>);

/// Builds a labelled data set from classes (name, files as (name, bytes)); classes are
/// numbered in sorted name order, files taken in sorted name order. Every image must
/// come out the same size (use `resize`/`crop` otherwise): the error names the first that
/// does not.
pub fn folder(mut classes: Vec<Class>, opts: &ImageOptions, origin: &str) -> Result<Dataset> {
    classes.sort_by(|a, b| a.0.cmp(&b.0));
    if classes.is_empty() {
        return Err(file_err(origin, "no class subfolders (expected one folder of images per class)"));
    }
    let mut shape: Option<(usize, usize, usize, String)> = None;
    let mut opts = *opts;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (label, (class, files)) in classes.iter_mut().enumerate() {
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, bytes) in files.iter() {
            let here = format!("{origin}/{class}/{name}");
            let (h, w, c, px) = decode(bytes, &opts, &here)?;
            match &shape {
                None => {
                    // Every image decodes to the first one's channels.
                    opts.channels = Some(opts.channels.unwrap_or(if c == 1 { Channels::Gray } else { Channels::Rgb }));
                    shape = Some((h, w, c, here.clone()))
                }
                Some((h0, w0, _, first)) if (*h0, *w0) != (h, w) => {
                    return Err(file_err(
                        &here,
                        format!("is {w}×{h} but {first} is {w0}×{h0}; set `resize` and `crop` to make them one size"),
                    ))
                }
                Some(_) => {}
            }
            pixels.extend_from_slice(&px);
            labels.push(label as u32);
        }
    }
    let Some((h, w, c, _)) = shape else {
        return Err(file_err(origin, "the class folders hold no .png or .jpg images"));
    };
    Ok(Dataset {
        origin: origin.into(),
        shape: vec![h, w, c],
        elements: Elements::U8(pixels),
        dtype: "uint8".into(),
        targets: Targets::Classes(labels),
        classes: Some(classes.len()),
        class_names: classes.into_iter().map(|(n, _)| n).collect(),
        layout: Some(Layout::Nhwc),
    })
}
