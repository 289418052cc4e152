//! `npu` for Python: the application library's pipeline with NumPy arrays in and out.
//!
//! ```text
//!  load_model(path | bytes | "zoo:NAME") ─▶ Model
//!  quantize(Model, scheme, calib=array | iterable | CalibrationDataReader) ─▶ QuantizedModel
//!  load_quantized(.npuq | int8 .tflite) ─▶ QuantizedModel ──run(x)──▶ integer reference outputs
//!  compile(QuantizedModel, hw=preset | RON | dict) ─▶ Deployment
//!     Deployment.report() ─▶ Report (cycles, frames/s, energy, per-layer rows; HTML)
//!     Deployment.simulate(x) ─▶ ndarray (the simulator's outputs, bit-exact)
//!     Deployment.evaluate(x, labels) ─▶ dict (metric, outputs, predictions)
//!  compare(Model, x, labels) ─▶ Comparison (rows as dicts, HTML, SVG plots, pandas)
//!  sweep(Model, x, labels, schemes, hw, params) ─▶ list of dicts
//! ```
//!
//! A front end like the command line: it reads the files it is given and turns
//! Python values into the library's types; every computation is `npu-app`'s. Long calls
//! release the GIL and report progress to an optional callback `(label, done, total)`.
//! Every error of npu's is raised as `npu.NpuError` with npu's own message.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use numpy::{PyArray, PyArrayMethods, PyReadonlyArrayDyn};
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use npu_data::{Array, Dataset, Elements, Layout, Overrides};
use npu_present::{Axis, Present};

pyo3::create_exception!(
    npu,
    NpuError,
    PyException,
    "An error of npu's: a model, data set, hardware description or request it cannot use, \
     or a simulator trap. The message is npu's own (the command line prints the same)."
);

/// Any npu error as a Python `NpuError`, its advice in this front end's words (the
/// libraries name the command line's flags).
fn npu_err(e: impl std::fmt::Display) -> PyErr {
    NpuError::new_err(pythonic(&e.to_string()))
}

/// `message` with the command line's advice said as keyword arguments.
fn pythonic(message: &str) -> String {
    const SAID: [(&str, &str); 6] = [
        (" (or `layout: Nhwc` in the data set description)", ""),
        ("pass --layout nhwc", "pass layout=\"nhwc\""),
        ("pass --layout nchw", "pass layout=\"nchw\""),
        ("try --metric agreement or sqnr", "try metric=\"agreement\" or \"sqnr\""),
        ("choose another --metric", "choose another metric="),
        ("(not --calib none)", "(calib=)"),
    ];
    SAID.iter().fold(message.to_string(), |m, (cli, py)| m.replace(cli, py))
}

/// A value serialized by serde as plain Python data (dicts, lists, numbers, strings).
fn to_py<'py>(py: Python<'py>, v: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).map_err(npu_err)?;
    py.import("json")?.call_method1("loads", (text,))
}

// ---------------------------------------------------------------------------------------
// Arrays.

/// A NumPy array (or anything `numpy.asarray` takes) as the library's [`Array`]: every
/// integer and float type, any memory layout (C, Fortran, strided views) and byte order;
/// values are checked as files' are (integers must fit `int32`, floats be finite).
fn to_array(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Array> {
    let np = py.import("numpy")?;
    let mut arr = np.call_method1("asarray", (obj,))?;
    let dtype = arr.getattr("dtype")?;
    let name: String = dtype.getattr("name")?.extract()?;
    // Non-native byte order, and half floats (exact in float32), become native arrays.
    let byteorder: String = dtype.getattr("byteorder")?.extract()?;
    if byteorder == ">" || byteorder == "<" && cfg!(target_endian = "big") {
        arr = arr.call_method1("astype", (dtype.call_method1("newbyteorder", ("=",))?,))?;
    }
    if name == "float16" {
        arr = arr.call_method1("astype", ("float32",))?;
    }
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    let origin = format!("{what} ({} {name})", npu_data::dims(&shape));
    // Row-major values: a C-contiguous array's memory as it is, any other layout in its
    // logical order. (ndarray's `as_slice` is for row-major memory only; numpy's own
    // `as_slice` would also give a Fortran-ordered array's memory, column by column.)
    fn values<T: numpy::Element + Copy>(arr: &Bound<'_, PyAny>) -> PyResult<Vec<T>> {
        let a: PyReadonlyArrayDyn<'_, T> = arr.extract()?;
        let v = a.as_array();
        Ok(match v.as_slice() {
            Some(s) => s.to_vec(),
            None => v.iter().copied().collect(),
        })
    }
    fn ints<T: numpy::Element + Copy + TryInto<i32> + std::fmt::Display>(
        arr: &Bound<'_, PyAny>,
        origin: &str,
    ) -> PyResult<Elements> {
        let all = values::<T>(arr)?;
        let mut out = Vec::with_capacity(all.len());
        for (i, v) in all.iter().enumerate() {
            out.push((*v).try_into().map_err(|_| {
                npu_err(format!("{origin}: value {i} is {v}; integer data must fit int32 (-2147483648..=2147483647)"))
            })?);
        }
        Ok(Elements::I32(out))
    }
    let values = match name.as_str() {
        "uint8" => Elements::U8(values::<u8>(&arr)?),
        "int8" => Elements::I8(values::<i8>(&arr)?),
        "int16" => ints::<i16>(&arr, &origin)?,
        "uint16" => ints::<u16>(&arr, &origin)?,
        "int32" => ints::<i32>(&arr, &origin)?,
        "uint32" => ints::<u32>(&arr, &origin)?,
        "int64" => ints::<i64>(&arr, &origin)?,
        "uint64" => ints::<u64>(&arr, &origin)?,
        "float16" | "float32" => {
            Elements::F32(npu_data::finite(values::<f32>(&arr)?.into_iter(), &origin).map_err(npu_err)?)
        }
        "float64" => Elements::F32(npu_data::narrow(values::<f64>(&arr)?.into_iter(), &origin).map_err(npu_err)?),
        other => {
            return Err(PyTypeError::new_err(format!(
                "{what}: arrays of {other} are not supported (expected uint8, int8, int16, uint16, int32, uint32, \
                 int64, uint64, float16, float32 or float64)"
            )))
        }
    };
    Ok(Array { shape, values, dtype: name })
}

/// Samples `x` (`[N, …]`) with optional `labels` (`[N]` classes, or float targets).
fn dataset(py: Python<'_>, x: &Bound<'_, PyAny>, labels: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Dataset> {
    let xa = to_array(py, x, what)?;
    let origin = format!("{what} ({} {})", npu_data::dims(&xa.shape), xa.dtype);
    let ya = labels.map(|l| to_array(py, l, "labels")).transpose()?;
    Dataset::from_arrays(xa, ya, &origin).map_err(npu_err)
}

/// Calibration samples: an array, an ONNX Runtime `CalibrationDataReader` (`get_next()`
/// returning `{input name: batch}` until `None`), or any iterable of batches (arrays
/// `[n, …]`, or such dicts), concatenated along the first axis.
fn calibration(py: Python<'_>, calib: &Bound<'_, PyAny>) -> PyResult<Dataset> {
    let np = py.import("numpy")?;
    if calib.is_instance(&np.getattr("ndarray")?)? {
        return dataset(py, calib, None, "calibration data");
    }
    fn batch(item: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyAny>> {
        if let Ok(d) = item.cast::<PyDict>() {
            if d.len() != 1 {
                return Err(PyValueError::new_err(format!(
                    "calibration data: a batch names {} inputs; npu's models take one",
                    d.len()
                )));
            }
            return d.values().get_item(0);
        }
        Ok(item)
    }
    let mut batches = Vec::new();
    if calib.hasattr("get_next")? {
        loop {
            let item = calib.call_method0("get_next")?;
            if item.is_none() {
                break;
            }
            batches.push(batch(item)?);
        }
    } else {
        for item in calib.try_iter()? {
            batches.push(batch(item?)?);
        }
    }
    if batches.is_empty() {
        return Err(PyValueError::new_err("calibration data: the iterable gave no batches"));
    }
    let all = np.call_method1("concatenate", (PyList::new(py, batches)?,))?;
    dataset(py, &all, None, "calibration data")
}

/// A metric by name.
fn metric_arg(name: &str) -> PyResult<npu_data::metrics::Metric> {
    use npu_data::metrics::Metric;
    Metric::from_name(name).ok_or_else(|| {
        let all: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        PyValueError::new_err(format!("metric `{name}`: expected one of {}", all.join(", ")))
    })
}

/// Whether calibration data were given (`calib=` not `None`).
fn ds_given(calib: Option<&Bound<'_, PyAny>>) -> bool {
    calib.is_some_and(|c| !c.is_none())
}

/// Preprocessing given as keywords, on top of a model's own.
fn overrides(
    layout: Option<&str>,
    scale: Option<f32>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
) -> PyResult<Overrides> {
    let layout = match layout.map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("nchw") => Some(Layout::Nchw),
        Some("nhwc") => Some(Layout::Nhwc),
        Some(other) => {
            return Err(PyValueError::new_err(format!("layout `{other}`: expected \"nchw\" or \"nhwc\"")));
        }
    };
    Ok(Overrides { scale, mean, std, layout })
}

/// `p` under `o`, checked.
fn preprocess(p: &npu_data::Preprocess, o: &Overrides) -> PyResult<npu_data::Preprocess> {
    let p = o.apply(p);
    p.validate().map_err(npu_err)?;
    Ok(p)
}

/// `values` (`n` samples of `shape`) as an array `[n, …shape]`.
fn out_array<'py, T: numpy::Element>(
    py: Python<'py>,
    values: Vec<T>,
    n: usize,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let full: Vec<usize> = std::iter::once(n).chain(shape.iter().copied()).collect();
    Ok(PyArray::from_vec(py, values).reshape(full)?.into_any())
}

// ---------------------------------------------------------------------------------------
// Progress.

/// Progress reported to a Python callable `(label, done, total)` from worker threads
/// (each call takes the GIL). An exception it raises is kept and raised when the call
/// it watches returns.
struct Callback {
    f: Option<Py<PyAny>>,
    totals: Mutex<HashMap<String, usize>>,
    error: Mutex<Option<PyErr>>,
}

impl Callback {
    fn new(f: Option<Bound<'_, PyAny>>) -> PyResult<Callback> {
        if let Some(f) = &f {
            if !f.is_callable() {
                return Err(PyTypeError::new_err("progress must be callable as progress(label, done, total)"));
            }
        }
        Ok(Callback { f: f.map(Bound::unbind), totals: Mutex::new(HashMap::new()), error: Mutex::new(None) })
    }

    fn call(&self, label: &str, done: usize) {
        let Some(f) = &self.f else { return };
        let total = self.totals.lock().map_or(0, |t| t.get(label).copied().unwrap_or(0));
        Python::attach(|py| {
            if let Err(e) = f.call1(py, (label, done, total)) {
                if let Ok(mut slot) = self.error.lock() {
                    slot.get_or_insert(e);
                }
            }
        });
    }

    /// `r`, unless the callback raised (its exception first).
    fn finish<T>(self, r: PyResult<T>) -> PyResult<T> {
        if let Some(e) = self.error.into_inner().ok().flatten() {
            return Err(e);
        }
        r
    }
}

impl npu_app::Progress for Callback {
    fn begin(&self, label: &str, total: usize) {
        if let Ok(mut t) = self.totals.lock() {
            t.insert(label.to_string(), total);
        }
        self.call(label, 0);
    }
    fn advance(&self, label: &str, done: usize) {
        self.call(label, done);
    }
    fn end(&self, label: &str) {
        let total = self.totals.lock().map_or(0, |t| t.get(label).copied().unwrap_or(0));
        self.call(label, total);
    }
}

// ---------------------------------------------------------------------------------------
// Models.

/// Bytes of a file, or the bytes given.
enum Source {
    File(std::path::PathBuf),
    Bytes(Vec<u8>),
    Zoo(String),
}

fn source_of(obj: &Bound<'_, PyAny>) -> PyResult<Source> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Source::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let s: String = s.extract()?;
        if let Some(name) = s.strip_prefix("zoo:") {
            return Ok(Source::Zoo(name.to_string()));
        }
        return Ok(Source::File(std::path::PathBuf::from(s)));
    }
    if let Ok(p) = obj.extract::<std::path::PathBuf>() {
        return Ok(Source::File(p));
    }
    Err(PyTypeError::new_err("expected a path (str or os.PathLike), bytes, or \"zoo:NAME\""))
}

/// A file's bytes, held to npu's file size limit.
fn read(path: &std::path::Path) -> PyResult<Vec<u8>> {
    let limit = npu_data::limits::current().file_bytes;
    let meta = std::fs::metadata(path).map_err(|e| npu_err(format!("cannot read {}: {e}", path.display())))?;
    if meta.len() > limit {
        return Err(npu_err(format!(
            "cannot read {}: {} bytes, more than {}",
            path.display(),
            meta.len(),
            npu_data::limits::named("file_bytes", limit)
        )));
    }
    std::fs::read(path).map_err(|e| npu_err(format!("cannot read {}: {e}", path.display())))
}

/// The format of model bytes: from `format`, the file's extension, or the bytes.
fn model_format(bytes: &[u8], ext: Option<&str>, format: Option<&str>) -> String {
    if let Some(f) = format.or(ext) {
        return f.trim_start_matches('.').to_ascii_lowercase();
    }
    if bytes.len() >= 8 && &bytes[4..8] == b"TFL3" {
        "tflite".into()
    } else if bytes.starts_with(npu_quant::npuq::MAGIC) {
        "npuq".into()
    } else if bytes.starts_with(npu_model::modelfile::MAGIC) {
        "npum".into()
    } else {
        "onnx".into()
    }
}

/// The bytes, a name for messages (the path, or `name` for bytes; importers name models
/// after it) and the file's extension.
fn bytes_of(src: &Source, name: Option<&str>) -> PyResult<(Vec<u8>, String, Option<String>)> {
    match src {
        Source::File(p) => {
            let ext = p.extension().and_then(|e| e.to_str()).map(str::to_string);
            Ok((read(p)?, p.display().to_string(), ext))
        }
        Source::Bytes(b) => Ok((b.clone(), name.unwrap_or("model").into(), None)),
        Source::Zoo(name) => Err(npu_err(format!("zoo:{name} is a zoo model, not a file"))),
    }
}

/// A float model (FP32 graph, preprocessing), as imported.
#[pyclass(module = "npu", frozen)]
struct Model {
    m: npu_model::Model,
    /// An int8 TFLite's own quantization.
    shipped: Option<npu_quant::QModel>,
}

#[pymethods]
impl Model {
    /// The model's name.
    #[getter]
    fn name(&self) -> String {
        self.m.name.clone()
    }
    /// Per-sample input shape (channels first).
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.m.input_shape().to_vec()
    }
    /// Per-sample output shape.
    #[getter]
    fn output_shape(&self) -> Vec<usize> {
        self.m.graph.values[self.m.graph.outputs[0]].shape.clone()
    }
    /// How raw samples become inputs: `{"scale", "mean", "std", "layout"}`.
    #[getter]
    fn preprocess<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.m.preprocess)
    }
    /// Whether the model is an int8 TFLite carrying its own quantization.
    #[getter]
    fn quantized(&self) -> bool {
        self.shipped.is_some()
    }
    /// Per layer: name, op, output shape, parameters, MACs.
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.m.layers())
    }
    /// The float model's outputs for samples `x` (the FP32 reference executor).
    #[pyo3(signature = (x, *, layout=None, scale=None, mean=None, std=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        layout: Option<&str>,
        scale: Option<f32>,
        mean: Option<Vec<f32>>,
        std: Option<Vec<f32>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ds = dataset(py, x, None, "inputs")?;
        let mut m = self.m.clone();
        m.preprocess = preprocess(&m.preprocess, &overrides(layout, scale, mean, std)?)?;
        let n = ds.len();
        let out = py.detach(|| m.logits(&ds, 0, n)).map_err(npu_err)?;
        out_array(py, out, n, &self.output_shape())
    }
    fn __repr__(&self) -> String {
        format!(
            "Model({:?}, input {}, {} layers{})",
            self.m.name,
            npu_data::dims(self.m.input_shape()),
            self.m.layers().len(),
            if self.shipped.is_some() { ", int8 TFLite" } else { "" }
        )
    }
}

/// Loads a float model: an ONNX, TFLite or npu model (`.npum`) file, its bytes, or
/// `"zoo:NAME"`. `format` ("onnx", "tflite", "npum") is needed only for bytes whose
/// format cannot be told from them; `name` names a model given as bytes (default
/// `model`; a file's model is named after the file or its graph).
///
///     >>> m = npu.load_model("resnet18.onnx")
///     >>> m.input_shape
///     [3, 224, 224]
#[pyfunction]
#[pyo3(signature = (source, *, format=None, name=None))]
fn load_model(source: &Bound<'_, PyAny>, format: Option<&str>, name: Option<&str>) -> PyResult<Model> {
    let src = source_of(source)?;
    if let Source::Zoo(name) = &src {
        return Ok(Model { m: npu_zoo::trained(name).map_err(npu_err)?, shipped: None });
    }
    let (bytes, origin, ext) = bytes_of(&src, name)?;
    match model_format(&bytes, ext.as_deref(), format).as_str() {
        "onnx" => Ok(Model { m: npu_onnx::import(&bytes, &origin).map_err(npu_err)?, shipped: None }),
        "tflite" => {
            let t = npu_tflite::import(&bytes, &origin).map_err(npu_err)?;
            Ok(Model { m: t.model, shipped: t.quantized })
        }
        "npum" => Ok(Model { m: npu_model::modelfile::decode(&bytes, &origin).map_err(npu_err)?, shipped: None }),
        "npuq" => Err(npu_err(format!("{origin}: a quantized model; load it with load_quantized"))),
        other => Err(npu_err(format!("{origin}: unknown model format `{other}` (expected onnx, tflite or npum)"))),
    }
}

/// A quantized model: integer weights, scales and zero points for every layer.
#[pyclass(module = "npu", frozen)]
#[derive(Clone)]
struct QuantizedModel {
    q: npu_quant::QModel,
}

#[pymethods]
impl QuantizedModel {
    /// The model's name.
    #[getter]
    fn name(&self) -> String {
        self.q.name.clone()
    }
    /// The scheme's name.
    #[getter]
    fn scheme(&self) -> String {
        self.q.scheme.name.clone()
    }
    /// Per-sample input shape (channels first).
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.q.input_shape().to_vec()
    }
    /// Per-sample output shape.
    #[getter]
    fn output_shape(&self) -> Vec<usize> {
        self.q.values[self.q.output].shape.clone()
    }
    /// How raw samples become inputs: `{"scale", "mean", "std", "layout"}`.
    #[getter]
    fn preprocess<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.q.preprocess)
    }
    /// Per layer: name, the FP32 and integer outputs' agreement on no data (widths,
    /// scales) — the report `npu quantize` prints, as dicts.
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &npu_quant::report::layers_without_data(&self.q))
    }
    /// The model as an `.npuq` file's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &npu_quant::npuq::encode(&self.q).map_err(npu_err)?))
    }
    /// Writes the model as an `.npuq` file (what `npu simulate`/`npu compile` take).
    fn save(&self, path: std::path::PathBuf) -> PyResult<()> {
        let bytes = npu_quant::npuq::encode(&self.q).map_err(npu_err)?;
        std::fs::write(&path, bytes).map_err(|e| npu_err(format!("cannot write {}: {e}", path.display())))
    }
    /// The integer reference executor's outputs for samples `x` (`npu infer --engine int`):
    /// dequantized floats, or the output integers with `dequantize=False`.
    #[pyo3(signature = (x, *, dequantize=true, layout=None, scale=None, mean=None, std=None))]
    #[allow(clippy::too_many_arguments)]
    fn run<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        dequantize: bool,
        layout: Option<&str>,
        scale: Option<f32>,
        mean: Option<Vec<f32>>,
        std: Option<Vec<f32>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ds = dataset(py, x, None, "inputs")?;
        let mut q = self.q.clone();
        q.preprocess = preprocess(&q.preprocess, &overrides(layout, scale, mean, std)?)?;
        let n = ds.len();
        let ints = py.detach(|| q.outputs_int(&ds, 0, n)).map_err(npu_err)?;
        let shape = self.output_shape();
        if dequantize {
            let oq = q.values[q.output].q;
            out_array(py, ints.iter().map(|v| oq.dequantize(*v)).collect(), n, &shape)
        } else {
            out_array(py, ints, n, &shape)
        }
    }
    fn __repr__(&self) -> String {
        format!(
            "QuantizedModel({:?}, {}, input {}, {} integer layers)",
            self.q.name,
            self.q.scheme.name,
            npu_data::dims(self.q.input_shape()),
            self.q.layers.len()
        )
    }
}

/// Loads a quantized model: an `.npuq` file (from `npu quantize`, `npu qat`, or
/// `QuantizedModel.save`), an int8 TFLite as shipped, or their bytes (`name` names a
/// model given as bytes, as for `load_model`).
#[pyfunction]
#[pyo3(signature = (source, *, format=None, name=None))]
fn load_quantized(source: &Bound<'_, PyAny>, format: Option<&str>, name: Option<&str>) -> PyResult<QuantizedModel> {
    let src = source_of(source)?;
    if let Source::Zoo(name) = &src {
        return Err(npu_err(format!("zoo:{name} is a float model; load it with load_model and quantize it")));
    }
    let (bytes, origin, ext) = bytes_of(&src, name)?;
    match model_format(&bytes, ext.as_deref(), format).as_str() {
        "npuq" => Ok(QuantizedModel { q: npu_quant::npuq::decode(&bytes, &origin).map_err(npu_err)? }),
        "tflite" => {
            let t = npu_tflite::import(&bytes, &origin).map_err(npu_err)?;
            let q = t.quantized.ok_or_else(|| {
                npu_err(format!("{origin}: a float32 TFLite model has no quantization of its own; quantize it"))
            })?;
            Ok(QuantizedModel { q })
        }
        other => {
            Err(npu_err(format!("{origin}: not a quantized model (`{other}`; expected an .npuq or int8 .tflite)")))
        }
    }
}

/// The model argument of a call: a `Model`, or anything `load_model` takes.
fn model_arg(model: &Bound<'_, PyAny>) -> PyResult<(npu_model::Model, Option<npu_quant::QModel>)> {
    if let Ok(m) = model.cast::<Model>() {
        let m = m.get();
        return Ok((m.m.clone(), m.shipped.clone()));
    }
    let m = load_model(model, None, None)?;
    Ok((m.m, m.shipped))
}

/// Quantizes a float model.
///
/// `scheme`: a name (`npu.schemes()`), a composite recipe of `npu compare`'s rows
/// (`int8-per-channel-dfq`, `w4a8-adaround`, pruned ones), or a scheme in RON (per-layer
/// widths). `calib`: calibration samples (an array `[N, …]`, an iterable of batches or an
/// ONNX Runtime `CalibrationDataReader`); without it, ranges are data-free (BatchNorm
/// statistics, else inputs synthesised from the network). `samples`: how many of the
/// calibration samples (default 500); `method`: "minmax" (default), "percentile", "mse",
/// "kl"; both only with `calib`;
/// `cle`, `bias_correction` ("analytical", "empirical"), `adaround`, `clip_sigma`,
/// `pin_first_last` and `layer_bits` (layer name to 8, 4, 2 or 1) as `npu quantize`'s
/// flags.
///
///     >>> q = npu.quantize(m, "w4a8-per-channel", calib=x_train[:500], cle=True)
///     >>> q.save("m.npuq")
#[pyfunction]
#[pyo3(signature = (model, scheme="int8-per-channel", calib=None, *, samples=None, method=None,
                    cle=false, bias_correction=None, adaround=false, clip_sigma=None, pin_first_last=false,
                    layer_bits=None, layout=None, scale=None, mean=None, std=None))]
#[allow(clippy::too_many_arguments)]
fn quantize(
    py: Python<'_>,
    model: &Bound<'_, PyAny>,
    scheme: &str,
    calib: Option<&Bound<'_, PyAny>>,
    samples: Option<usize>,
    method: Option<&str>,
    cle: bool,
    bias_correction: Option<&str>,
    adaround: bool,
    clip_sigma: Option<f32>,
    pin_first_last: bool,
    layer_bits: Option<HashMap<String, u8>>,
    layout: Option<&str>,
    scale: Option<f32>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
) -> PyResult<QuantizedModel> {
    use npu_quant::{calib::Method, BiasCorrection, Fixes, RangeSource};
    let (mut m, _) = model_arg(model)?;
    m.preprocess = preprocess(&m.preprocess, &overrides(layout, scale, mean, std)?)?;
    let ds = match calib {
        Some(c) => Some(calibration(py, c)?),
        None => None,
    };
    // What applies only with calibration data, or only to a plain scheme, is refused
    // where it would be ignored.
    if !ds_given(calib) {
        if let Some(n) = samples {
            return Err(npu_err(format!("samples={n}: there are no calibration data (give calib=)")));
        }
        if let Some(m) = method {
            return Err(npu_err(format!(
                "method=\"{m}\": there are no calibration data (give calib=); without them ranges come without data"
            )));
        }
    }
    let composite = npu_app::RECIPES.iter().any(|(k, _)| *k == scheme) && npu_quant::Scheme::named(scheme).is_err();
    let plain_only = [
        ("method", method.is_some()),
        ("cle", cle),
        ("bias_correction", bias_correction.is_some()),
        ("adaround", adaround),
        ("clip_sigma", clip_sigma.is_some()),
        ("pin_first_last", pin_first_last),
        ("layer_bits", layer_bits.is_some()),
    ];
    if let Some((arg, _)) = plain_only.iter().find(|(_, given)| composite && *given) {
        return Err(npu_err(format!(
            "{arg}=: `{scheme}` is a recipe with its own ranges and fixes; {arg}= applies to a plain scheme \
             (e.g. \"int8-per-channel\")"
        )));
    }
    let method = match method.unwrap_or("minmax") {
        "minmax" => Method::MinMax,
        "percentile" => Method::Percentile(99.99),
        "mse" => Method::Mse,
        "kl" => Method::Kl,
        other => {
            return Err(PyValueError::new_err(format!(
                "method `{other}`: expected \"minmax\", \"percentile\", \"mse\" or \"kl\""
            )))
        }
    };
    let bias_correction = match bias_correction {
        None => None,
        Some("analytical") => Some(BiasCorrection::Analytical),
        Some("empirical") => Some(BiasCorrection::Empirical),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "bias_correction `{other}`: expected \"analytical\" or \"empirical\""
            )))
        }
    };
    let none = empty(&m);
    let data = ds.as_ref().unwrap_or(&none);
    if ds.is_some() {
        m.check_io().map_err(npu_err)?;
        data.fit(m.input_shape(), &m.preprocess).map_err(npu_err)?;
    }
    let images = match (samples, &ds) {
        (_, None) => 0,
        (Some(n), Some(d)) if n == 0 || n > d.len() => {
            return Err(npu_err(format!("samples={n}: the calibration data have {} samples", d.len())))
        }
        (Some(n), Some(_)) => n,
        (None, Some(d)) => npu_app::DEFAULT_CALIB.min(d.len()),
    };
    let q = if composite {
        let recipe = npu_app::Recipe::named(scheme, images.max(1)).map_err(npu_err)?;
        if ds.is_none() && recipe.ranges != RangeSource::DataFree {
            return Err(npu_err(format!("recipe `{scheme}` calibrates: give calib= samples")));
        }
        py.detach(|| recipe.quantize(&m, data)).map_err(npu_err)?
    } else {
        let mut s = if scheme.trim_start().starts_with('(') {
            ron::from_str::<npu_quant::Scheme>(scheme).map_err(|e| npu_err(format!("not a valid scheme: {e}")))?
        } else {
            npu_quant::Scheme::named(scheme).map_err(npu_err)?
        };
        if clip_sigma.is_some() {
            s.weights.clip_sigma = clip_sigma;
        }
        s.pin_first_last |= pin_first_last;
        let names: Vec<&str> = m.graph.nodes.iter().map(|n| n.name.as_str()).collect();
        let mut layer_bits: Vec<(String, u8)> = layer_bits.unwrap_or_default().into_iter().collect();
        layer_bits.sort();
        for (name, bits) in layer_bits {
            if !names.contains(&name.as_str()) {
                return Err(npu_err(format!("layer_bits: no layer `{name}` in {} (see Model.layers())", m.name)));
            }
            let bits = match bits {
                8 => npu_quant::WeightBits::B8,
                4 => npu_quant::WeightBits::B4,
                2 => npu_quant::WeightBits::Ternary,
                1 => npu_quant::WeightBits::Binary,
                other => {
                    return Err(npu_err(format!(
                        "layer_bits[{name:?}] = {other}: weights have 8, 4, 2 (ternary) or 1 (binary) bits"
                    )))
                }
            };
            let w = npu_quant::WeightScheme {
                kind: npu_quant::Kind::Symmetric,
                bits,
                per_channel: true,
                clip_sigma: s.weights.clip_sigma,
            };
            s.overrides.push((name, w));
        }
        if let Some((bad, _)) = s.overrides.iter().find(|(n, _)| !names.contains(&n.as_str())) {
            return Err(npu_err(format!("no layer `{bad}` in {} (see Model.layers())", m.name)));
        }
        let source = if ds.is_some() { RangeSource::Calibration { images, method } } else { RangeSource::DataFree };
        if ds.is_none() && bias_correction == Some(BiasCorrection::Empirical) {
            return Err(npu_err(
                "bias_correction=\"empirical\" needs calibration samples (calib=); \"analytical\" needs none",
            ));
        }
        let fixes = Fixes { cle, bias_correction, adaround: adaround.then(npu_quant::adaround::AdaRound::default) };
        py.detach(|| npu_app::quantize(&m, &s, data, source, fixes)).map_err(npu_err)?.0
    };
    Ok(QuantizedModel { q })
}

// ---------------------------------------------------------------------------------------
// Hardware, compilation, simulation.

/// A hardware description: a preset name, a `.ron` file, RON text, or a dict (as
/// `npu.hardware` returns).
fn hardware_arg(py: Python<'_>, hw: Option<&Bound<'_, PyAny>>) -> PyResult<npu_hw::HwConfig> {
    let Some(hw) = hw else {
        return npu_hw::preset(npu_app::DEFAULT_HW).map_err(npu_err);
    };
    if let Ok(d) = hw.cast::<PyDict>() {
        let text: String = py.import("json")?.call_method1("dumps", (d,))?.extract()?;
        let c: npu_hw::HwConfig = serde_json::from_str(&text).map_err(|e| npu_err(format!("hardware dict: {e}")))?;
        c.validate("hardware dict").map_err(npu_err)?;
        return Ok(c);
    }
    let spec: String = match hw.extract::<std::path::PathBuf>() {
        Ok(p) if !hw.is_instance_of::<PyString>() => p.display().to_string(),
        _ => hw
            .extract()
            .map_err(|_| PyTypeError::new_err("hw: expected a preset name, a .ron path, RON text or a dict"))?,
    };
    if npu_hw::PRESETS.iter().any(|(n, _)| *n == spec) {
        return npu_hw::preset(&spec).map_err(npu_err);
    }
    if spec.trim_start().starts_with('(') {
        return npu_hw::HwConfig::from_ron(&spec, "hardware RON").map_err(npu_err);
    }
    let path = std::path::Path::new(&spec);
    if spec.ends_with(".ron") || path.is_file() {
        let bytes = read(path)?;
        let text = String::from_utf8(bytes).map_err(|_| npu_err(format!("{spec}: not UTF-8 text")))?;
        return npu_hw::HwConfig::from_ron(&text, &spec).map_err(npu_err);
    }
    npu_hw::preset(&spec).map_err(npu_err)
}

/// A hardware preset (or description) as a dict, to change and pass to `compile`.
#[pyfunction]
#[pyo3(signature = (hw=None))]
fn hardware<'py>(py: Python<'py>, hw: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, &hardware_arg(py, hw)?)
}

/// The hardware presets' names.
#[pyfunction]
fn presets() -> Vec<&'static str> {
    npu_hw::PRESETS.iter().map(|(n, _)| *n).collect()
}

/// The comparison rows' keys and descriptions: `fp32`, then every named recipe.
#[pyfunction]
fn schemes() -> Vec<(&'static str, &'static str)> {
    std::iter::once(("fp32", "FP32 reference")).chain(npu_app::RECIPES.iter().copied()).collect()
}

/// What a compiled model costs on its hardware, per frame, from one simulated run.
#[pyclass(module = "npu", frozen)]
struct Report {
    model: String,
    hw: String,
    clock_mhz: f64,
    figures: npu_app::HwFigures,
    layers: Vec<npu_app::LayerRow>,
    total: npu_app::LayerRow,
    report: npu_sim::Report,
    text: String,
}

#[pymethods]
impl Report {
    /// Simulated cycles of one inference.
    #[getter]
    fn cycles(&self) -> u64 {
        self.figures.cycles
    }
    /// Inferences per second at the clock.
    #[getter]
    fn fps(&self) -> f64 {
        self.figures.fps
    }
    /// Latency of one inference, µs.
    #[getter]
    fn latency_us(&self) -> f64 {
        self.figures.latency_us
    }
    /// Energy of one inference, µJ.
    #[getter]
    fn energy_uj(&self) -> f64 {
        self.figures.energy_uj
    }
    /// Average power, mW.
    #[getter]
    fn power_mw(&self) -> f64 {
        self.figures.power_mw
    }
    /// Per layer: cycles, span, MAC utilisation, what bounds it, traffic, energy.
    #[getter]
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.layers)
    }
    /// Everything: figures, per-layer rows, the whole run's row, the simulator's counters.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::json!({
            "model": self.model, "hw": self.hw, "clock_mhz": self.clock_mhz,
            "figures": self.figures, "layers": self.layers, "total": self.total, "report": self.report,
        });
        to_py(py, &v)
    }
    fn __repr__(&self) -> String {
        self.text.clone()
    }
    fn _repr_html_(&self) -> String {
        report_html(self)
    }
}

/// A report as HTML: the figures, then a row per layer.
fn report_html(r: &Report) -> String {
    use npu_present::escape_html as esc;
    let f = &r.figures;
    let mut out = format!(
        "<div class=\"npu-report\"><p><b>{} on {} ({} MHz)</b>: {} cycles/frame, {:.0} frames/s, {:.1} µs, \
         {:.2} µJ/frame, {:.1} mW; {} weight bytes, {} off-chip bytes/frame; {:.3}× the roofline floor</p>\n",
        esc(&r.model),
        esc(&r.hw),
        r.clock_mhz,
        f.cycles,
        f.fps,
        f.latency_us,
        f.energy_uj,
        f.power_mw,
        f.weight_bytes,
        f.offchip_bytes,
        f.roofline_ratio
    );
    let rows = serde_json::to_value(&r.layers).unwrap_or_default();
    let total = serde_json::to_value(&r.total).unwrap_or_default();
    let Some(first) = rows.as_array().and_then(|a| a.first()).and_then(|v| v.as_object()) else {
        return out + "</div>";
    };
    let keys: Vec<&String> = first.keys().collect();
    out.push_str("<table>\n<thead><tr>");
    for k in &keys {
        let align = if first.get(k.as_str()).is_some_and(serde_json::Value::is_string) { "left" } else { "right" };
        out.push_str(&format!("<th style=\"text-align:{align}\">{}</th>", esc(k)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => format!("<td style=\"text-align:left\">{}</td>", esc(s)),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("<td style=\"text-align:right\">{x:.3}</td>"),
            _ => format!("<td style=\"text-align:right\">{n}</td>"),
        },
        serde_json::Value::Null => "<td></td>".into(),
        other => format!("<td>{}</td>", esc(&other.to_string())),
    };
    for row in rows.as_array().into_iter().flatten().chain(std::iter::once(&total)) {
        out.push_str("<tr>");
        for k in &keys {
            out.push_str(&cell(row.get(k.as_str()).unwrap_or(&serde_json::Value::Null)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");
    out
}

/// A quantized model compiled for a hardware description: its program, ready to run on
/// the simulator.
#[pyclass(module = "npu", frozen)]
struct Deployment {
    d: npu_app::Deployment,
    timing: OnceLock<npu_app::Timing>,
}

impl Deployment {
    fn timing(&self, py: Python<'_>) -> PyResult<&npu_app::Timing> {
        if let Some(t) = self.timing.get() {
            return Ok(t);
        }
        let t = py.detach(|| self.d.timing()).map_err(npu_err)?;
        Ok(self.timing.get_or_init(|| t))
    }

    /// The deployment with the call's preprocessing (itself when the call sets none; a
    /// copy of model and program otherwise).
    fn with_preprocess(&self, o: &Overrides) -> PyResult<std::borrow::Cow<'_, npu_app::Deployment>> {
        if o.is_empty() {
            return Ok(std::borrow::Cow::Borrowed(&self.d));
        }
        let mut d = self.d.clone();
        d.model.preprocess = preprocess(&d.model.preprocess, o)?;
        Ok(std::borrow::Cow::Owned(d))
    }
}

#[pymethods]
impl Deployment {
    /// The hardware's name.
    #[getter]
    fn hw<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.d.hw)
    }
    /// The quantized model it runs.
    #[getter]
    fn model(&self) -> QuantizedModel {
        QuantizedModel { q: self.d.model.clone() }
    }
    /// Per-sample input shape.
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.d.model.input_shape().to_vec()
    }
    /// Per-sample output shape.
    #[getter]
    fn output_shape(&self) -> Vec<usize> {
        self.d.model.values[self.d.model.output].shape.clone()
    }
    /// The program, disassembled (what `npu disasm` prints).
    fn assembly(&self) -> String {
        npu_isa::disassemble(&self.d.compiled.program)
    }
    /// Cycles, frames/s, latency, energy and per-layer rows from one simulated run
    /// (timing does not depend on the inputs; computed once).
    fn report(&self, py: Python<'_>) -> PyResult<Report> {
        let t = self.timing(py)?;
        let q = &self.d.model;
        let text = format!("{} ({}) on {}\n{}", q.name, q.scheme.name, self.d.hw.name, t.report.render());
        Ok(Report {
            model: q.name.clone(),
            hw: self.d.hw.name.clone(),
            clock_mhz: self.d.hw.clock_mhz,
            figures: t.figures.clone(),
            layers: t.layers.clone(),
            total: t.total.clone(),
            report: t.report.clone(),
            text,
        })
    }
    /// The simulator's outputs for samples `x` (`[N, …]`), every one replayed bit-exactly
    /// on `jobs` threads (0: all cores): dequantized floats, or the output integers with
    /// `dequantize=False` (what `npu simulate -o` writes). `progress(label, done, total)` is
    /// called from worker threads.
    ///
    ///     >>> y = d.simulate(x, progress=npu.TqdmProgress())
    ///     >>> (d.simulate(x, dequantize=False) == q.run(x, dequantize=False)).all()
    ///     True
    #[pyo3(signature = (x, *, dequantize=true, jobs=0, progress=None, layout=None, scale=None, mean=None, std=None))]
    #[allow(clippy::too_many_arguments)]
    fn simulate<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        dequantize: bool,
        jobs: usize,
        progress: Option<Bound<'py, PyAny>>,
        layout: Option<&str>,
        scale: Option<f32>,
        mean: Option<Vec<f32>>,
        std: Option<Vec<f32>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ds = dataset(py, x, None, "inputs")?;
        let d = self.with_preprocess(&overrides(layout, scale, mean, std)?)?;
        let timing = self.timing(py)?;
        let cb = Callback::new(progress)?;
        let n = ds.len();
        let r = py.detach(|| d.outputs_of(timing, &ds, jobs, "simulating", &cb));
        let outputs = cb.finish(r.map_err(npu_err))?;
        let shape = self.output_shape();
        let flat: Vec<i32> = outputs.into_iter().flatten().collect();
        if dequantize {
            let oq = d.model.values[d.model.output].q;
            out_array(py, flat.iter().map(|v| oq.dequantize(*v)).collect(), n, &shape)
        } else {
            out_array(py, flat, n, &shape)
        }
    }
    /// Runs samples `x` through the simulator and scores its outputs: `metric` ("top1",
    /// "top5", "agreement", "sqnr", "cosine", "mse"; default: top-1 with class labels,
    /// agreement with the FP32 model without). Returns a dict with the metric, its value,
    /// the outputs and (for class scores) the predictions.
    #[pyo3(signature = (x, labels=None, *, metric=None, jobs=0, progress=None, layout=None, scale=None, mean=None, std=None))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        labels: Option<&Bound<'py, PyAny>>,
        metric: Option<&str>,
        jobs: usize,
        progress: Option<Bound<'py, PyAny>>,
        layout: Option<&str>,
        scale: Option<f32>,
        mean: Option<Vec<f32>>,
        std: Option<Vec<f32>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        use npu_data::metrics::{score, Against, Metric};
        let ds = dataset(py, x, labels, "inputs")?;
        let d = self.with_preprocess(&overrides(layout, scale, mean, std)?)?;
        let metric = match metric {
            None => Metric::default_for(&ds),
            Some(name) => metric_arg(name)?,
        };
        let timing = self.timing(py)?;
        let cb = Callback::new(progress)?;
        let n = ds.len();
        let r = py.detach(|| -> npu_app::Result<(npu_app::Evaluation, f64)> {
            let e = d.evaluate(timing, &ds, jobs, &cb)?;
            let q = &d.model;
            let reference = if metric.needs_reference() {
                let x = q.float_inputs(&ds, 0..n)?;
                Some(npu_model::fp32::run(&q.graph, &[&x], n)?.swap_remove(0))
            } else {
                None
            };
            let inputs = (metric == Metric::Mse).then(|| q.float_inputs(&ds, 0..n)).transpose()?;
            let against = Against { reference: reference.as_deref(), inputs: inputs.as_deref() };
            let v = score(metric, &e.outputs, n, &ds, against)?;
            Ok((e, v))
        });
        let (e, value) = cb.finish(r.map_err(npu_err))?;
        let out = PyDict::new(py);
        out.set_item("metric", metric.name())?;
        out.set_item("value", value)?;
        out.set_item("images", e.images)?;
        out.set_item("correct", ds.labels().map(|_| e.correct))?;
        out.set_item("seconds", e.host_seconds)?;
        out.set_item("outputs", out_array(py, e.outputs, n, &self.output_shape())?)?;
        let predictions: Vec<i64> = e.predictions.iter().map(|p| *p as i64).collect();
        out.set_item("predictions", PyArray::from_vec(py, predictions))?;
        Ok(out.into_any())
    }
    fn __repr__(&self) -> String {
        format!(
            "Deployment({:?} ({}) on {}, {} instructions)",
            self.d.model.name,
            self.d.model.scheme.name,
            self.d.hw.name,
            self.d.compiled.program.code.len()
        )
    }
}

/// Compiles a quantized model for hardware: a preset name (`npu.presets()`), a `.ron`
/// file, RON text or a dict. `cpu`: layers to run on the host CPU although the NPU could;
/// `cpu_fallback=False` makes a layer the NPU cannot run an error instead; `schedule`:
/// `"overlapped"` (npu's) or `"per-layer"` (one layer at a time, as Vela's model).
///
///     >>> d = npu.compile(q, "edge-256")
///     >>> d.report().fps
///     >>> d800 = npu.compile(q, {**npu.hardware("edge-256"), "clock_mhz": 800.0})
#[pyfunction]
#[pyo3(signature = (model, hw=None, *, cpu=None, cpu_fallback=true, schedule="overlapped"))]
fn compile(
    py: Python<'_>,
    model: &Bound<'_, PyAny>,
    hw: Option<&Bound<'_, PyAny>>,
    cpu: Option<Vec<String>>,
    cpu_fallback: bool,
    schedule: &str,
) -> PyResult<Deployment> {
    let schedule = npu_compile::Schedule::from_name(schedule).ok_or_else(|| {
        PyValueError::new_err(format!("schedule `{schedule}`: expected \"overlapped\" or \"per-layer\""))
    })?;
    let q = match model.cast::<QuantizedModel>() {
        Ok(q) => q.get().q.clone(),
        Err(_) => load_quantized(model, None, None)?.q,
    };
    let hw = hardware_arg(py, hw)?;
    let opts = npu_compile::Options {
        on_cpu: cpu.unwrap_or_default(),
        fallback: if cpu_fallback { npu_compile::Fallback::Cpu } else { npu_compile::Fallback::Refuse },
        schedule,
        ..Default::default()
    };
    let d = py.detach(|| npu_app::Deployment::with_options(q, hw, &opts)).map_err(npu_err)?;
    Ok(Deployment { d, timing: OnceLock::new() })
}

// ---------------------------------------------------------------------------------------
// Comparisons and sweeps.

/// An image, as SVG text (notebooks draw it).
#[pyclass(module = "npu", frozen)]
struct Svg {
    text: String,
}

#[pymethods]
impl Svg {
    fn _repr_svg_(&self) -> String {
        self.text.clone()
    }
    fn __str__(&self) -> String {
        self.text.clone()
    }
    /// Writes the SVG to `path`.
    fn save(&self, path: std::path::PathBuf) -> PyResult<()> {
        std::fs::write(&path, &self.text).map_err(|e| npu_err(format!("cannot write {}: {e}", path.display())))
    }
}

/// Quantization schemes side by side on modeled hardware.
#[pyclass(module = "npu", frozen)]
struct Comparison {
    c: npu_app::compare::Comparison,
}

#[pymethods]
impl Comparison {
    /// The heading: model, hardware, metric, samples.
    #[getter]
    fn title(&self) -> String {
        self.c.title()
    }
    /// The metric's name.
    #[getter]
    fn metric(&self) -> &'static str {
        self.c.metric.name()
    }
    /// One dict per row, flat (the hardware figures beside the score): what
    /// `pandas.DataFrame(rows)` takes.
    #[getter]
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows: Vec<serde_json::Value> = self
            .c
            .rows
            .iter()
            .map(|r| {
                let mut o = serde_json::json!({
                    "key": r.key, "label": r.label, "images": r.images, "correct": r.correct,
                    "score": if r.score.is_finite() { serde_json::json!(r.score) } else { serde_json::Value::Null },
                    "delta": r.delta.filter(|d| d.is_finite()),
                    "pareto_fps": r.pareto_fps, "pareto_energy": r.pareto_energy, "error": r.error,
                });
                if let (Some(h), Some(map)) = (serde_json::to_value(&r.hw).ok(), o.as_object_mut()) {
                    let figures = [
                        "cycles",
                        "fps",
                        "latency_us",
                        "energy_uj",
                        "power_mw",
                        "weight_bytes",
                        "onchip_act_bytes",
                        "sram_act_bytes",
                        "offchip_bytes",
                        "roofline_ratio",
                        "cpu_layers",
                    ];
                    for k in figures {
                        map.insert(k.into(), h.get(k).cloned().unwrap_or(serde_json::Value::Null));
                    }
                }
                o
            })
            .collect();
        to_py(py, &rows)
    }
    /// The terminal table `npu compare` prints.
    fn table(&self) -> String {
        self.c.table()
    }
    /// The table in Markdown.
    fn markdown(&self) -> String {
        self.c.markdown()
    }
    /// The rows as CSV text (the columns of `npu compare`'s compare.csv).
    fn csv(&self) -> PyResult<String> {
        String::from_utf8(self.c.csv().map_err(npu_err)?).map_err(npu_err)
    }
    /// Accuracy against frames/s (`axis="fps"`) or energy per frame (`"energy"`), with the
    /// Pareto front, as SVG.
    #[pyo3(signature = (axis="fps"))]
    fn plot(&self, axis: &str) -> PyResult<Svg> {
        let axis = match axis {
            "fps" => Axis::Fps,
            "energy" => Axis::Energy,
            other => return Err(PyValueError::new_err(format!("axis `{other}`: expected \"fps\" or \"energy\""))),
        };
        Ok(Svg { text: npu_present::plot(&self.c, axis).map_err(npu_err)? })
    }
    /// The rows as a pandas DataFrame (pandas must be installed).
    fn to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("pandas")?.call_method1("DataFrame", (self.rows(py)?,))
    }
    /// The whole comparison as `npu compare --json` writes it.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.c)
    }
    fn __repr__(&self) -> String {
        self.c.table()
    }
    fn _repr_html_(&self) -> String {
        self.c.html()
    }
}

/// Quantizes `model` every way `schemes` names (default: all; `npu.schemes()`),
/// compiles each for `hw`, and runs every sample of `x` through the simulator: the
/// metric from its outputs, cycles, frames/s, energy and traffic from the same program.
/// `calib`: calibration samples (default: `x` itself); `extra`: further rows, a dict of
/// row label to `QuantizedModel`.
///
///     >>> c = npu.compare(m, x_test, y_test, schemes=["fp32", "int8-per-channel", "w4a8-per-channel"])
///     >>> c.to_pandas()[["label", "score", "fps", "energy_uj"]]
///     >>> c.plot("energy").save("accuracy_vs_energy.svg")
#[pyfunction]
#[pyo3(signature = (model, x, labels=None, *, schemes=None, hw=None, calib=None, samples=None,
                    metric=None, extra=None, jobs=0, progress=None, layout=None, scale=None, mean=None, std=None))]
#[allow(clippy::too_many_arguments)]
fn compare(
    py: Python<'_>,
    model: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    labels: Option<&Bound<'_, PyAny>>,
    schemes: Option<Vec<String>>,
    hw: Option<&Bound<'_, PyAny>>,
    calib: Option<&Bound<'_, PyAny>>,
    samples: Option<usize>,
    metric: Option<&str>,
    extra: Option<&Bound<'_, PyDict>>,
    jobs: usize,
    progress: Option<Bound<'_, PyAny>>,
    layout: Option<&str>,
    scale: Option<f32>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
) -> PyResult<Comparison> {
    use npu_app::compare::RowSpec;
    use npu_data::metrics::Metric;
    let (mut m, shipped) = model_arg(model)?;
    m.preprocess = preprocess(&m.preprocess, &overrides(layout, scale, mean, std)?)?;
    let hw = hardware_arg(py, hw)?;
    let mut test = dataset(py, x, labels, "test data")?;
    // An int8 TFLite given its own int8 samples: every row, the float ones too, sees the
    // values they stand for (as `npu compare` does).
    if let Some(q) = &shipped {
        q.dequantize_samples(&mut test);
    }
    let (calib, calib_origin) = match calib {
        Some(c) => {
            let mut ds = calibration(py, c)?;
            if let Some(q) = &shipped {
                q.dequantize_samples(&mut ds);
            }
            let o = ds.origin.clone();
            (ds, o)
        }
        None => (test.clone(), "the same samples".to_string()),
    };
    let samples = samples.unwrap_or(npu_app::DEFAULT_CALIB.min(calib.len()));
    if samples == 0 || samples > calib.len() {
        return Err(npu_err(format!("samples={samples}: the calibration data have {} samples", calib.len())));
    }
    let metric = match metric {
        None => Metric::default_for(&test),
        Some(name) => metric_arg(name)?,
    };
    let keys = schemes.unwrap_or_else(|| schemes_keys().into_iter().map(String::from).collect());
    let mut rows =
        keys.iter().map(|k| RowSpec::named(k, samples)).collect::<npu_app::Result<Vec<_>>>().map_err(npu_err)?;
    if let Some(q) = shipped {
        rows.push(RowSpec::as_shipped(q, &m.preprocess));
    }
    for (label, q) in extra.into_iter().flat_map(|d| d.iter()) {
        let label: String = label.extract()?;
        let q = q
            .cast::<QuantizedModel>()
            .map_err(|_| PyTypeError::new_err(format!("extra[{label:?}]: expected a QuantizedModel")))?;
        rows.push(RowSpec::Quantized { key: label.clone(), label, model: Box::new(q.get().q.clone()) });
    }
    let origin = format!("{}, calibrated on {calib_origin}", test.origin);
    let cb = Callback::new(progress)?;
    let req = npu_app::compare::Request {
        model: &m,
        hw: &hw,
        test: &test,
        metric,
        origin,
        calib: &calib,
        rows,
        jobs,
        shard: None,
    };
    let r = py.detach(|| npu_app::compare::compare(&req, &cb));
    let c = cb.finish(r.map_err(npu_err))?;
    Ok(Comparison { c })
}

/// Values of a swept parameter: a list (or `range`) of numbers, `{"from", "to", "step"}`,
/// or `{"from", "to"}` (doubling).
fn values_arg(name: &str, v: &Bound<'_, PyAny>) -> PyResult<npu_app::sweep::Values> {
    use npu_app::sweep::Values;
    if let Ok(d) = v.cast::<PyDict>() {
        let get = |k: &str| -> PyResult<Option<f64>> { d.get_item(k)?.map(|x| x.extract()).transpose() };
        return match (get("from")?, get("to")?, get("step")?) {
            (Some(from), Some(to), Some(step)) => Ok(Values::Range { from, to, step }),
            (Some(from), Some(to), None) => Ok(Values::Doubling { from, to }),
            _ => Err(PyValueError::new_err(format!(
                "params[{name:?}]: a dict needs \"from\" and \"to\" (and \"step\" for a range; without it, doubling)"
            ))),
        };
    }
    let list: Vec<f64> = v
        .try_iter()
        .and_then(|it| it.map(|x| x?.extract::<f64>()).collect())
        .map_err(|_| PyTypeError::new_err(format!("params[{name:?}]: expected numbers, a range or a dict")))?;
    Ok(Values::List(list))
}

/// Measures every point of a design-space sweep: each scheme of `model` on each
/// hardware description of `hw` (a preset, RON, dict, or a list of them) with every
/// combination of `params` (hardware field paths such as `"mac.rows+mac.cols"` to value
/// lists), kept by `filters` (`"mac.rows * mac.cols <= 1024"`). With samples `x` each
/// point's metric is measured on the simulator too; without, timing only. One dict per
/// point, in order; a point that cannot run (an invalid variant, a missing MAC mode)
/// says why in its `error`.
///
///     >>> rows = npu.sweep(m, schemes=["int8-per-channel"], calib=x,
///     ...                  params={"mac.rows+mac.cols": [8, 16, 32]})
///     >>> [(r["params"], r["cycles"]) for r in rows]
#[pyfunction]
#[pyo3(signature = (model, x=None, labels=None, *, schemes=None, hw=None, params=None, filters=None,
                    calib=None, samples=None, jobs=0, progress=None, layout=None, scale=None, mean=None, std=None))]
#[allow(clippy::too_many_arguments)]
fn sweep<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
    x: Option<&Bound<'py, PyAny>>,
    labels: Option<&Bound<'py, PyAny>>,
    schemes: Option<Vec<String>>,
    hw: Option<&Bound<'py, PyAny>>,
    params: Option<&Bound<'py, PyDict>>,
    filters: Option<Vec<String>>,
    calib: Option<&Bound<'py, PyAny>>,
    samples: Option<usize>,
    jobs: usize,
    progress: Option<Bound<'py, PyAny>>,
    layout: Option<&str>,
    scale: Option<f32>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
) -> PyResult<Bound<'py, PyAny>> {
    use npu_app::sweep::{expand, hardware_variant, measure, Plan};
    use std::sync::Arc;
    let (mut m, _) = model_arg(model)?;
    m.preprocess = preprocess(&m.preprocess, &overrides(layout, scale, mean, std)?)?;
    let bases: Vec<npu_hw::HwConfig> = match hw {
        Some(h) if h.is_instance_of::<PyList>() => {
            h.try_iter()?.map(|h| hardware_arg(py, Some(&h?))).collect::<PyResult<_>>()?
        }
        other => vec![hardware_arg(py, other)?],
    };
    let test = x.map(|x| dataset(py, x, labels, "test data")).transpose()?;
    let calib = match calib {
        Some(c) => Some(calibration(py, c)?),
        None => test.clone(),
    };
    let samples = match (&calib, samples) {
        (Some(c), Some(n)) if n == 0 || n > c.len() => {
            return Err(npu_err(format!("samples={n}: the calibration data have {} samples", c.len())))
        }
        (Some(_), Some(n)) => n,
        (Some(c), None) => npu_app::DEFAULT_CALIB.min(c.len()),
        (None, Some(n)) => {
            return Err(npu_err(format!("samples={n}: there are no calibration data (give calib= or samples x)")))
        }
        (None, None) => 1,
    };
    let mut swept = std::collections::BTreeMap::new();
    for (k, v) in params.into_iter().flat_map(|d| d.iter()) {
        let k: String = k.extract()?;
        let v = values_arg(&k, &v)?;
        swept.insert(k, v);
    }
    // Points name their base hardware; two bases of one name are told apart by position.
    let names: Vec<String> = bases
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if bases.iter().filter(|b| b.name == h.name).count() > 1 {
                format!("{}#{i}", h.name)
            } else {
                h.name.clone()
            }
        })
        .collect();
    let plan = Plan {
        name: m.name.clone(),
        models: vec![m.name.clone()],
        schemes: schemes.unwrap_or_else(|| vec![npu_app::DEFAULT_SCHEME.to_string()]),
        hw: names.clone(),
        params: swept,
        filters: filters.unwrap_or_default(),
        timing_only: test.is_none(),
        images: test.as_ref().map_or(1, Dataset::len),
        calib: samples,
        data: None,
        calib_data: None,
    };
    let named: Vec<(String, npu_hw::HwConfig)> = names.iter().cloned().zip(bases.iter().cloned()).collect();
    plan.check_params("", "sweep", &named).map_err(npu_err)?;
    let recipes = plan
        .schemes
        .iter()
        .map(|s| npu_app::Recipe::named(s, samples))
        .collect::<npu_app::Result<Vec<_>>>()
        .map_err(npu_err)?;
    let points = expand(&plan).map_err(npu_err)?;
    let cb = Callback::new(progress)?;
    let r = py.detach(|| -> npu_app::Result<Vec<npu_app::sweep::Record>> {
        use npu_app::Progress as _;
        use rayon::prelude::*;
        // Each scheme quantized once; without calibration data, ranges without data.
        let none = empty(&m);
        let quantized: Vec<std::result::Result<Arc<npu_quant::QModel>, String>> = recipes
            .par_iter()
            .map(|r| {
                let mut r = r.clone();
                let data = match &calib {
                    Some(c) => c,
                    None => {
                        r.ranges = npu_quant::RangeSource::DataFree;
                        &none
                    }
                };
                r.quantize(&m, data).map(Arc::new).map_err(|e| e.to_string())
            })
            .collect();
        let done = std::sync::atomic::AtomicUsize::new(0);
        cb.begin("sweeping", points.len());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(if jobs == 0 { rayon::current_num_threads() } else { jobs })
            .build()
            .map_err(|e| npu_app::Error::Invalid(format!("cannot start {jobs} threads: {e}")))?;
        let records = pool.install(|| {
            points
                .par_iter()
                .map(|p| {
                    let s = plan.schemes.iter().position(|s| *s == p.scheme).unwrap_or(0);
                    let base = names.iter().position(|n| *n == p.hw).unwrap_or(0);
                    let hw = hardware_variant(&bases[base], &p.params).map_err(|e| e.to_string());
                    let r = measure(p, "", &quantized[s], &hw, test.as_ref());
                    let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    cb.advance("sweeping", d);
                    r
                })
                .collect::<Vec<_>>()
        });
        cb.end("sweeping");
        Ok(records)
    });
    let records = cb.finish(r.map_err(npu_err))?;
    let rows: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("key");
            }
            v
        })
        .collect();
    to_py(py, &rows)
}

/// No samples, shaped for `m` (data-free quantization reads none).
fn empty(m: &npu_model::Model) -> Dataset {
    Dataset {
        origin: "no data".into(),
        shape: m.input_shape().to_vec(),
        elements: Elements::F32(Vec::new()),
        dtype: "float32".into(),
        targets: npu_data::Targets::None,
        classes: None,
        class_names: Vec::new(),
        layout: None,
    }
}

fn schemes_keys() -> Vec<&'static str> {
    std::iter::once("fp32").chain(npu_app::RECIPES.iter().map(|(k, _)| *k)).collect()
}

/// The Python module `npu._npu` (re-exported by `npu`).
#[pymodule]
fn _npu(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NpuError", m.py().get_type::<NpuError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Model>()?;
    m.add_class::<QuantizedModel>()?;
    m.add_class::<Deployment>()?;
    m.add_class::<Report>()?;
    m.add_class::<Comparison>()?;
    m.add_class::<Svg>()?;
    m.add_function(wrap_pyfunction!(load_model, m)?)?;
    m.add_function(wrap_pyfunction!(load_quantized, m)?)?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(hardware, m)?)?;
    m.add_function(wrap_pyfunction!(presets, m)?)?;
    m.add_function(wrap_pyfunction!(schemes, m)?)?;
    Ok(())
}
