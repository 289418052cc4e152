"""Type stubs of npu's extension module (``npu._npu``, re-exported by ``npu``)."""

import os
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = npt.ArrayLike
"""Samples ``[N, ...]`` of any integer or float dtype (uint8, int8, int16, uint16, int32,
uint32, int64, uint64, float16, float32, float64), in any memory layout. Integers must fit
int32 and floats be finite; raw integer samples go through the model's preprocessing,
floats are taken as they are."""

Source = Union[str, "os.PathLike[str]", bytes]
"""A file path, the file's bytes, or ``"zoo:NAME"`` (models only)."""

Hardware = Union[str, "os.PathLike[str]", Mapping[str, Any]]
"""A preset name (:func:`presets`), a ``.ron`` file, RON text, or a dict as
:func:`hardware` returns."""

Progress = Callable[[str, int, int], Any]
"""Called as ``progress(label, done, total)`` from worker threads while a long call runs
(with the GIL); an exception it raises is raised when the call returns."""

Layout = Literal["nchw", "nhwc"]

class NpuError(Exception):
    """An error of npu's: a model, data set, hardware description or request it cannot
    use, or a simulator trap. The message is npu's own (the command line prints the same)."""

class Model:
    """A float model (FP32 graph and preprocessing), as imported."""

    @property
    def name(self) -> str: ...
    @property
    def input_shape(self) -> list[int]:
        """Per-sample input shape, channels first."""
    @property
    def output_shape(self) -> list[int]: ...
    @property
    def preprocess(self) -> dict[str, Any]:
        """``{"scale", "mean", "std", "layout"}``: raw samples become ``(v·scale − mean) / std``."""
    @property
    def quantized(self) -> bool:
        """Whether this is an int8 TFLite carrying its own quantization."""
    def layers(self) -> list[dict[str, Any]]:
        """Per layer: name, op, output shape, parameters, MACs."""
    def run(
        self,
        x: ArrayLike,
        *,
        layout: Optional[Layout] = None,
        scale: Optional[float] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
    ) -> npt.NDArray[np.float32]:
        """The FP32 reference executor's outputs ``[N, *output_shape]``."""

class QuantizedModel:
    """A quantized model: integer weights, scales and zero points for every layer."""

    @property
    def name(self) -> str: ...
    @property
    def scheme(self) -> str: ...
    @property
    def input_shape(self) -> list[int]: ...
    @property
    def output_shape(self) -> list[int]: ...
    @property
    def preprocess(self) -> dict[str, Any]: ...
    def layers(self) -> list[dict[str, Any]]:
        """Per layer: widths, scales and kinds (``npu quantize``'s report without data)."""
    def to_bytes(self) -> bytes:
        """The model as an ``.npuq`` file's bytes."""
    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes an ``.npuq`` file (what ``npu simulate`` and ``npu compile`` take)."""
    def run(
        self,
        x: ArrayLike,
        *,
        dequantize: bool = True,
        layout: Optional[Layout] = None,
        scale: Optional[float] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
    ) -> npt.NDArray[Any]:
        """The integer reference executor's outputs (``npu infer --engine int``): float32,
        or the int32 output integers with ``dequantize=False``. The simulator's equal them
        bit for bit."""

class Report:
    """What a compiled model costs on its hardware, per frame, from one simulated run.
    Shown as HTML in notebooks; ``repr`` is the text report."""

    @property
    def cycles(self) -> int: ...
    @property
    def fps(self) -> float: ...
    @property
    def latency_us(self) -> float: ...
    @property
    def energy_uj(self) -> float: ...
    @property
    def power_mw(self) -> float: ...
    @property
    def layers(self) -> list[dict[str, Any]]:
        """Per layer: cycles, span, MAC utilisation, bound, traffic, energy."""
    def to_dict(self) -> dict[str, Any]:
        """Figures, per-layer rows, the whole run's row and the simulator's counters."""
    def _repr_html_(self) -> str: ...

class Deployment:
    """A quantized model compiled for a hardware description."""

    @property
    def hw(self) -> dict[str, Any]: ...
    @property
    def model(self) -> QuantizedModel: ...
    @property
    def input_shape(self) -> list[int]: ...
    @property
    def output_shape(self) -> list[int]: ...
    def assembly(self) -> str:
        """The program, disassembled."""
    def report(self) -> Report:
        """Cycles, frames/s, latency, energy and per-layer rows (computed once)."""
    def simulate(
        self,
        x: ArrayLike,
        *,
        dequantize: bool = True,
        jobs: int = 0,
        progress: Optional[Progress] = None,
        layout: Optional[Layout] = None,
        scale: Optional[float] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
    ) -> npt.NDArray[Any]:
        """The simulator's outputs ``[N, *output_shape]``, each sample replayed bit-exactly
        on ``jobs`` threads (0: all cores): float32, or the int32 output integers with
        ``dequantize=False`` (what ``npu simulate -o`` writes). Releases the GIL.

        >>> y = npu.compile(q).simulate(x, dequantize=False)
        >>> bool((y == q.run(x, dequantize=False)).all())
        True
        """
    def evaluate(
        self,
        x: ArrayLike,
        labels: Optional[ArrayLike] = None,
        *,
        metric: Optional[Literal["top1", "top5", "agreement", "sqnr", "cosine", "mse"]] = None,
        jobs: int = 0,
        progress: Optional[Progress] = None,
        layout: Optional[Layout] = None,
        scale: Optional[float] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
    ) -> dict[str, Any]:
        """Runs ``x`` through the simulator and scores its outputs (default metric: top-1
        with class labels, agreement with the FP32 model without). Returns ``{"metric",
        "value", "images", "correct", "seconds", "outputs", "predictions"}``."""

class Svg:
    """An SVG image; notebooks draw it, ``str()`` is its text."""

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None: ...
    def _repr_svg_(self) -> str: ...

class Comparison:
    """Quantization schemes side by side on modeled hardware. Shown as an HTML table in
    notebooks; ``repr`` is the terminal table."""

    @property
    def title(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per row (key, label, score, delta, cycles, fps, energy_uj, …,
        pareto_fps, pareto_energy, error): ``pandas.DataFrame(c.rows)``."""
    def table(self) -> str: ...
    def markdown(self) -> str: ...
    def csv(self) -> str: ...
    def plot(self, axis: Literal["fps", "energy"] = "fps") -> Svg:
        """Accuracy against frames/s or energy per frame, with the Pareto front."""
    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame (pandas must be installed)."""
    def to_dict(self) -> dict[str, Any]:
        """The whole comparison as ``npu compare --json`` writes it."""
    def _repr_html_(self) -> str: ...

def load_model(
    source: Source, *, format: Optional[Literal["onnx", "tflite", "npum"]] = None, name: Optional[str] = None
) -> Model:
    """Loads a float model: an ONNX, TFLite or ``.npum`` file, its bytes, or ``"zoo:NAME"``.
    ``format`` is needed only for bytes whose format cannot be told from them; ``name``
    names a model given as bytes (default ``model``).

    >>> m = npu.load_model("resnet18.onnx")
    >>> m.input_shape
    [3, 224, 224]
    """

def load_quantized(
    source: Source, *, format: Optional[Literal["npuq", "tflite"]] = None, name: Optional[str] = None
) -> QuantizedModel:
    """Loads a quantized model: an ``.npuq`` file, an int8 TFLite as shipped, or their bytes."""

def quantize(
    model: Union[Model, Source],
    scheme: str = "int8-per-channel",
    calib: Union[ArrayLike, Iterable[Any], Any, None] = None,
    *,
    samples: Optional[int] = None,
    method: Optional[Literal["minmax", "percentile", "mse", "kl"]] = None,
    cle: bool = False,
    bias_correction: Optional[Literal["analytical", "empirical"]] = None,
    adaround: bool = False,
    clip_sigma: Optional[float] = None,
    pin_first_last: bool = False,
    layer_bits: Optional[Mapping[str, int]] = None,
    layout: Optional[Layout] = None,
    scale: Optional[float] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
) -> QuantizedModel:
    """Quantizes a float model.

    ``scheme``: a name of :func:`schemes` (``int8-pow2``, ``int8-sym``, ``uint8-asym``,
    ``int8-per-channel``, ``w4a8-per-channel``, ``binary-weights``, composite recipes such
    as ``int8-per-channel-dfq``) or a scheme in RON. ``calib``: calibration samples — an
    array ``[N, ...]``, an iterable of batches, or an ONNX Runtime ``CalibrationDataReader``
    (``get_next()`` returning ``{input: batch}`` until ``None``); the first ``samples``
    (default 500) are used, ranges chosen by ``method`` (default min/max). Without
    ``calib``, ranges are data-free (``samples`` and ``method`` are then refused, as are
    the plain-scheme options with a composite recipe). ``layer_bits`` sets weight widths
    per layer (8, 4, 2 = ternary, 1 = binary).

    >>> q = npu.quantize(m, "w4a8-per-channel", calib=x_train[:500], cle=True)
    """

def compile(
    model: Union[QuantizedModel, Source],
    hw: Optional[Hardware] = None,
    *,
    cpu: Optional[Sequence[str]] = None,
    cpu_fallback: bool = True,
    schedule: str = "overlapped",
) -> Deployment:
    """Compiles a quantized model for hardware (default ``edge-256``). ``cpu`` places named
    layers on the host CPU; ``cpu_fallback=False`` makes a layer the NPU cannot run an error;
    ``schedule`` is ``"overlapped"`` (npu's: weights stream during the layer before, layers
    overlap) or ``"per-layer"`` (one layer at a time, as Vela's performance model sums them).

    >>> d = npu.compile(q, {**npu.hardware("edge-256"), "clock_mhz": 800.0})
    """

def compare(
    model: Union[Model, Source],
    x: ArrayLike,
    labels: Optional[ArrayLike] = None,
    *,
    schemes: Optional[Sequence[str]] = None,
    hw: Optional[Hardware] = None,
    calib: Union[ArrayLike, Iterable[Any], Any, None] = None,
    samples: Optional[int] = None,
    metric: Optional[str] = None,
    extra: Optional[Mapping[str, QuantizedModel]] = None,
    jobs: int = 0,
    progress: Optional[Progress] = None,
    layout: Optional[Layout] = None,
    scale: Optional[float] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
) -> Comparison:
    """Every scheme of ``schemes`` (default: all of :func:`schemes`) quantized, compiled for
    ``hw`` and run on every sample of ``x`` in the simulator: the metric from its outputs,
    cycles, frames/s and energy from the same program (``npu compare``). Calibration on
    ``calib`` (default: ``x`` itself); ``extra`` adds rows of models quantized already.

    >>> c = npu.compare(m, x_test, y_test, schemes=["fp32", "int8-per-channel", "w4a8-per-channel"])
    >>> c.to_pandas()[["label", "score", "fps", "energy_uj"]]
    """

def sweep(
    model: Union[Model, Source],
    x: Optional[ArrayLike] = None,
    labels: Optional[ArrayLike] = None,
    *,
    schemes: Optional[Sequence[str]] = None,
    hw: Union[Hardware, Sequence[Hardware], None] = None,
    params: Optional[Mapping[str, Union[Sequence[float], Mapping[str, float]]]] = None,
    filters: Optional[Sequence[str]] = None,
    calib: Union[ArrayLike, Iterable[Any], Any, None] = None,
    samples: Optional[int] = None,
    jobs: int = 0,
    progress: Optional[Progress] = None,
    layout: Optional[Layout] = None,
    scale: Optional[float] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
) -> list[dict[str, Any]]:
    """A design-space sweep (``npu sweep``): every scheme on every hardware variant —
    ``params`` maps hardware field paths (``"mac.rows+mac.cols"``, ``"clock_mhz"``) to
    value lists, ``{"from", "to", "step"}`` ranges or ``{"from", "to"}`` doublings, kept
    by ``filters``. With ``x`` each point's accuracy is measured on the simulator; without,
    timing only. One dict per point; a point that cannot run says why in ``error``.

    >>> rows = npu.sweep(m, schemes=["int8-per-channel"], params={"mac.rows+mac.cols": [8, 16, 32]})
    """

def hardware(hw: Optional[Hardware] = None) -> dict[str, Any]:
    """A hardware description (default ``edge-256``) as a dict, to change and pass on."""

def presets() -> list[str]:
    """The hardware presets' names."""

def schemes() -> list[tuple[str, str]]:
    """The comparison rows' keys and descriptions: ``fp32``, then every named recipe."""
