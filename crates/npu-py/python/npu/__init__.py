"""npu: quantize, compile and simulate neural networks on a bit-exact, cycle-approximate
model of an edge NPU, with NumPy arrays in and out.

    >>> import numpy as np, npu
    >>> m = npu.load_model("model.onnx")                       # or .tflite, bytes, "zoo:cnn"
    >>> q = npu.quantize(m, "int8-per-channel", calib=x[:500])
    >>> d = npu.compile(q, "edge-256")
    >>> d.report().fps                                           # modeled frames/s
    >>> y = d.simulate(x)                                        # the simulator's outputs
    >>> npu.compare(m, x, labels).to_pandas()                    # every scheme side by side

Every function's documentation is in its docstring (``help(npu.quantize)``) and in
``docs/python.md``; errors of npu's are raised as :class:`NpuError`.
"""

from ._npu import (
    Comparison,
    Deployment,
    Model,
    NpuError,
    QuantizedModel,
    Report,
    Svg,
    __version__,
    compare,
    compile,
    hardware,
    load_model,
    load_quantized,
    presets,
    quantize,
    schemes,
    sweep,
)

__all__ = [
    "Comparison",
    "Deployment",
    "Model",
    "NpuError",
    "QuantizedModel",
    "Report",
    "Svg",
    "TqdmProgress",
    "__version__",
    "compare",
    "compile",
    "hardware",
    "load_model",
    "load_quantized",
    "presets",
    "quantize",
    "schemes",
    "sweep",
]


class TqdmProgress:
    """A ``progress=`` callback drawing one tqdm bar per task (tqdm must be installed)::

        d.simulate(x, progress=npu.TqdmProgress())
    """

    def __init__(self, **tqdm_kwargs):
        self._kwargs = tqdm_kwargs
        self._bars = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        bar = self._bars.get(label)
        if bar is None:
            bar = self._bars[label] = tqdm(total=total, desc=label, unit="sample", **self._kwargs)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self._bars[label]
