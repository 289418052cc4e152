//! Data sets from disk, in every form `--data`, `--calib-data`, `--test-data` and
//! `--input` take: an IDX directory (the MNIST file names), an image folder (one
//! subfolder per class), a `.npy` (with `--labels`), an `.npz`, an IDX file, or a RON
//! data-set description; with nothing, the embedded Fashion-MNIST. The decoding is
//! `npu-data`'s and `npu-datafiles`'; this module reads the files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::load;
use npu_data::{Dataset, Overrides, Preprocess};
use npu_datafiles::images::ImageOptions;
use npu_datafiles::spec::Spec;

/// Which files of an IDX directory, and which embedded set, a command wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Evaluation: `t10k-*`, the embedded test set.
    Test,
    /// Training and calibration: `train-*`, the embedded training subset.
    Train,
}

/// A data set as loaded, with the preprocessing its description states.
pub struct Data {
    /// The samples.
    pub ds: Dataset,
    /// Where they came from, for messages.
    pub origin: String,
    /// Preprocessing from a data-set description (or the image folder's layout).
    pub overrides: Overrides,
    /// Whether this is the embedded Fashion-MNIST.
    pub embedded: bool,
}

impl Data {
    /// The preprocessing to run `model_pre`'s model on these data: the command line's
    /// flags, then the data-set description's, then the data's own layout, then the
    /// model's.
    pub fn preprocess(&self, model_pre: &Preprocess, cli: &Overrides) -> Result<Preprocess> {
        let layout = Overrides { layout: self.ds.layout, ..Default::default() };
        let p = cli.or(&self.overrides).or(&layout).apply(model_pre);
        p.validate()?;
        Ok(p)
    }

    /// The first `n` samples; more than there are is an error naming `flag`.
    pub fn limit(self, n: Option<usize>, flag: &str) -> Result<Data> {
        match n {
            Some(n) if n > self.ds.len() => {
                crate::usage!("{flag} {n}: {} has {} samples", self.origin, self.ds.len())
            }
            Some(n) => Ok(Data { ds: self.ds.take(n), ..self }),
            None => Ok(self),
        }
    }
}

fn read(p: &Path) -> Result<Vec<u8>> {
    load::read_file(p)
}

/// Whether `dir` is an IDX directory with the files `purpose` reads.
pub fn has_idx(dir: &Path, purpose: Purpose) -> bool {
    let stem = match purpose {
        Purpose::Test => "t10k",
        Purpose::Train => "train",
    };
    dir.is_dir() && read_either(dir, &format!("{stem}-images-idx3-ubyte")).is_some()
}

fn read_either(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()].into_iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Loads `path` (see the module doc) for `purpose`; `labels` pairs a labels file with a
/// `.npy` or IDX inputs file.
pub fn load(path: Option<&Path>, labels: Option<&Path>, purpose: Purpose) -> Result<Data> {
    let Some(path) = path else {
        if labels.is_some() {
            crate::usage!("--labels needs --data (a .npy or IDX file of inputs)");
        }
        let (ds, origin) = match purpose {
            Purpose::Test => (npu_zoo::fashion_mnist_test()?, "the embedded Fashion-MNIST test set"),
            Purpose::Train => (npu_zoo::fashion_mnist_train_subset()?, "the embedded Fashion-MNIST training subset"),
        };
        return Ok(Data { ds, origin: origin.into(), overrides: Overrides::default(), embedded: true });
    };
    if path.extension().is_some_and(|e| e == "ron") {
        if labels.is_some() {
            crate::usage!("--labels: the data-set description {} names its labels itself", path.display());
        }
        let origin = path.display().to_string();
        let text = load::read_text(path)?;
        let spec = Spec::from_ron(&text, &origin)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let inputs = base.join(&spec.inputs);
        let mut data = load_files(
            &inputs,
            spec.labels.as_deref(),
            Some(base),
            &spec.image_options(),
            spec.inputs_key.as_deref(),
            purpose,
        )?;
        data.overrides = spec.overrides();
        if let Some(l) = spec.layout {
            data.ds.layout = Some(l);
        }
        if let Some(c) = spec.classes {
            data.ds.check_classes(c, &format!("the description {origin}"))?;
            data.ds.classes = Some(c);
        }
        data.origin = format!("{origin} ({} samples)", data.ds.len());
        return Ok(data);
    }
    let labels = labels.map(|l| l.to_string_lossy().into_owned());
    load_files(path, labels.as_deref(), None, &ImageOptions::default(), None, purpose)
}

/// Inputs at `path`; `labels` is a file (relative to `base` when given) or, for an
/// `.npz`, an array name.
fn load_files(
    path: &Path,
    labels: Option<&str>,
    base: Option<&Path>,
    images: &ImageOptions,
    inputs_key: Option<&str>,
    purpose: Purpose,
) -> Result<Data> {
    let origin = path.display().to_string();
    let labels_path = |l: &str| base.map_or_else(|| PathBuf::from(l), |b| b.join(l));
    let none = Overrides::default();
    if path.is_dir() {
        let stem = match purpose {
            Purpose::Test => "t10k",
            Purpose::Train => "train",
        };
        if let Some(ip) = read_either(path, &format!("{stem}-images-idx3-ubyte")) {
            let lp = read_either(path, &format!("{stem}-labels-idx1-ubyte"))
                .with_context(|| format!("{}: {} has no labels file beside it", origin, ip.display()))?;
            let ds = Dataset::from_idx(&read(&ip)?, &read(&lp)?, &ip.display().to_string())?;
            let origin = format!("{} ({} images)", ip.display(), ds.len());
            return Ok(Data { ds, origin, overrides: none, embedded: false });
        }
        return image_folder(path, images);
    }
    if !path.exists() {
        bail!("{origin}: no such file or directory");
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let ds = match ext.as_str() {
        "npz" => {
            let arrays = npu_datafiles::npz::parse(&read(path)?, &origin)?;
            let (x, y) = npu_datafiles::npz::split(arrays, inputs_key, labels, &origin)?;
            Dataset::from_arrays(x, y, &origin)?
        }
        _ => {
            if inputs_key.is_some() {
                bail!("{origin}: `inputs_key` names an array of an .npz; this is not one");
            }
            let x = array_file(path)?;
            let y = labels.map(|l| array_file(&labels_path(l))).transpose()?;
            Dataset::from_arrays(x, y, &origin)?
        }
    };
    let origin = format!("{origin} ({} samples)", ds.len());
    Ok(Data { ds, origin, overrides: none, embedded: false })
}

/// A `.npy` or IDX file as an array.
fn array_file(path: &Path) -> Result<npu_data::Array> {
    let origin = path.display().to_string();
    let bytes = read(path)?;
    if bytes.starts_with(b"\x93NUMPY") {
        return Ok(npu_datafiles::npy::parse(&bytes, &origin)?);
    }
    if path.extension().is_some_and(|e| e == "npy") {
        bail!("{origin}: not a .npy file (missing \\x93NUMPY magic)");
    }
    npu_data::parse_idx(&bytes, &origin).with_context(|| format!("{origin}: expected a .npy or IDX file"))
}

/// An image folder: one subfolder per class.
fn image_folder(dir: &Path, opts: &ImageOptions) -> Result<Data> {
    let origin = dir.display().to_string();
    let mut classes = Vec::new();
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {origin}"))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        for f in std::fs::read_dir(&p).with_context(|| format!("cannot list {}", p.display()))?.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if f.path().is_file() && npu_datafiles::images::is_image(&name) {
                files.push((name, read(&f.path())?));
            }
        }
        classes.push((e.file_name().to_string_lossy().into_owned(), files));
    }
    if classes.is_empty() {
        bail!(
            "{origin}: neither IDX files (t10k-/train-images-idx3-ubyte[.gz]) nor class subfolders of images; \
             see docs/data.md"
        );
    }
    let ds = npu_datafiles::images::folder(classes, opts, &origin)?;
    let origin = format!("{origin} ({} images, {} classes)", ds.len(), ds.classes.unwrap_or(0));
    Ok(Data { ds, origin, overrides: Overrides::default(), embedded: false })
}

/// The command line's preprocessing flags, shared by every command that reads data.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct PreArgs {
    /// Layout of the samples: nchw (channels first, the model's order) or nhwc (channels
    /// last, as TensorFlow, image files and most NumPy image arrays keep them).
    #[arg(long, value_enum)]
    pub layout: Option<crate::LayoutArg>,
    /// Multiplier for raw integer samples (default: the model's, 1/255 for images).
    #[arg(long, value_parser = crate::positive_f32)]
    pub scale: Option<f32>,
    /// Mean subtracted after scaling: one value or one per channel (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = crate::finite_f32, num_args = 1..)]
    pub mean: Option<Vec<f32>>,
    /// Standard deviation divided by: one value or one per channel (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = crate::positive_f32, num_args = 1..)]
    pub std: Option<Vec<f32>>,
}

impl PreArgs {
    /// As overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            scale: self.scale,
            mean: self.mean.clone(),
            std: self.std.clone(),
            layout: self.layout.map(|l| match l {
                crate::LayoutArg::Nhwc => npu_data::Layout::Nhwc,
                crate::LayoutArg::Nchw => npu_data::Layout::Nchw,
            }),
        }
    }
}

/// Training data, the test data beside it, and the preprocessing flags: what `train`,
/// `qat`, `prune` and `mixed` read.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// `--data`.
    pub data: Option<PathBuf>,
    /// `--labels`.
    pub labels: Option<PathBuf>,
    /// `--test-data`.
    pub test_data: Option<PathBuf>,
    /// The preprocessing flags.
    pub pre: Overrides,
}

impl Source {
    /// The training data.
    pub fn train(&self) -> Result<Data> {
        load(self.data.as_deref(), self.labels.as_deref(), Purpose::Train)
    }

    /// The test data: `--test-data`, else an IDX directory's t10k files or the embedded
    /// test set; `None` when the training data is of another form and no test data is given.
    pub fn test(&self) -> Result<Option<Data>> {
        match (&self.test_data, &self.data) {
            (Some(t), _) => load(Some(t), None, Purpose::Test).map(Some),
            (None, None) => load(None, None, Purpose::Test).map(Some),
            (None, Some(d)) if has_idx(d, Purpose::Test) => load(Some(d), None, Purpose::Test).map(Some),
            (None, Some(_)) => Ok(None),
        }
    }

    /// `m` with the preprocessing these data call for (flags ▷ description ▷ model).
    pub fn prepare(&self, m: &mut npu_model::Model, d: &Data) -> Result<()> {
        m.preprocess = d.preprocess(&m.preprocess, &self.pre)?;
        Ok(())
    }
}

/// For a model whose own input is integer (an int8 TFLite) given its own integer
/// samples: the samples as the float values they stand for
/// ([`npu_quant::QModel::dequantize_samples`]). Other data are left as they are.
pub fn dequantize_for(q: &npu_quant::QModel, d: &mut Data) {
    q.dequantize_samples(&mut d.ds);
}
