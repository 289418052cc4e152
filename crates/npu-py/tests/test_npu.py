"""The Python package's tests: the same results as the command line for the same inputs,
LiteRT's reference kernels as the oracle for int8 TFLite models, arrays of every dtype and
layout, errors as exceptions, progress and the GIL, and the example notebook executed.

Run by `.ci/run` in a venv it makes (`crates/npu-py/ci.sh`); `NPU_BIN` names the `npu`
binary to compare with (default: the workspace's target/debug/npu).
"""

import json
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import npu

ROOT = Path(__file__).resolve().parents[3]
FIX = ROOT / "tests" / "fixtures"
TV = FIX / "torchvision"
SPEED = FIX / "speed"


def npu_bin():
    return os.environ.get("NPU_BIN", str(ROOT / "target" / "debug" / "npu"))


def cli(*args, cwd=None):
    """Runs the command line; its stdout."""
    r = subprocess.run([npu_bin(), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def x():
    return np.load(TV / "input.npy")


@pytest.fixture(scope="module")
def resnet():
    return npu.load_model(TV / "resnet.onnx")


@pytest.fixture(scope="module")
def q(resnet, x):
    return npu.quantize(resnet, "int8-per-channel", calib=x)


# ---------------------------------------------------------------------------------------
# The same as the command line.


def test_quantize_compile_simulate_equal_the_cli(tmp_path, x, q):
    np.save(tmp_path / "x.npy", x)
    cli("quantize", TV / "resnet.onnx", "--scheme", "int8-per-channel", "--calib-data", tmp_path / "x.npy",
        "-o", tmp_path / "q.npuq")
    assert (tmp_path / "q.npuq").read_bytes() == q.to_bytes()
    cli("simulate", tmp_path / "q.npuq", "--input", tmp_path / "x.npy", "-o", tmp_path / "sim.npy", "--jobs", "1")
    ours = npu.compile(q, "edge-256").simulate(x, dequantize=False)
    theirs = np.load(tmp_path / "sim.npy")
    assert ours.dtype == np.int32 and ours.shape == (4, 10)
    np.testing.assert_array_equal(ours, theirs)


def test_report_equals_the_cli_json(tmp_path, q):
    q.save(tmp_path / "q.npuq")
    out = json.loads(cli("simulate", tmp_path / "q.npuq", "--timing-only", "--hw", "edge-64", "--json"))
    r = npu.compile(q, "edge-64").report()
    assert r.cycles == out["report"]["total_cycles"]
    assert [row["layer"] for row in r.layers] == [row["layer"] for row in out["layers"]]
    assert [row["cycles"] for row in r.layers] == [row["cycles"] for row in out["layers"]]


@pytest.mark.parametrize("hw", ["ethos-u55-64", "ethos-u65-512", "ethos-u65-512-dedicated"])
def test_ethos_presets_and_their_dicts_report_what_the_cli_does(tmp_path, q, hw):
    q.save(tmp_path / "q.npuq")
    out = json.loads(cli("simulate", tmp_path / "q.npuq", "--timing-only", "--hw", hw, "--json"))
    assert npu.compile(q, hw).report().cycles == out["report"]["total_cycles"]
    # The block unit's description round-trips through a dict; two cores halve the
    # block cycles, so a one-core copy of the two-core preset is slower.
    d = npu.hardware(hw)
    assert d["mac"]["dataflow"] == "Blocked" and d["buffers"]["act_staging_only"]
    # Dedicated_Sram: the host's input and output in DRAM.
    assert d["memories"].get("io", "Sram") == ("Dram" if hw.endswith("-dedicated") else "Sram")
    assert npu.compile(q, d).report().cycles == out["report"]["total_cycles"]
    if d["mac"]["blocks"]["cores"] == 2:
        d["mac"]["blocks"]["cores"] = 1
        assert npu.compile(q, d).report().cycles > out["report"]["total_cycles"]
    # Vela's kind of schedule, as the CLI's `--schedule per-layer` (layers one at a time: slower).
    per = json.loads(cli("simulate", tmp_path / "q.npuq", "--timing-only", "--hw", hw, "--json",
                         "--schedule", "per-layer"))
    assert npu.compile(q, hw, schedule="per-layer").report().cycles == per["report"]["total_cycles"]
    assert per["report"]["total_cycles"] > out["report"]["total_cycles"]
    with pytest.raises(ValueError, match="per-layer"):
        npu.compile(q, hw, schedule="vela")


def test_compare_rows_equal_the_cli(tmp_path, resnet, x):
    np.save(tmp_path / "x.npy", x)
    schemes = ["fp32", "int8-per-channel", "w4a8-per-channel"]
    out = json.loads(cli("compare", TV / "resnet.onnx", "--data", tmp_path / "x.npy", "--schemes", ",".join(schemes),
                         "--calib", "4", "--json", "-q", "--jobs", "1"))
    c = npu.compare(resnet, x, schemes=schemes, jobs=1)
    theirs = out["rows"] if "rows" in out else out["comparison"]["rows"]
    assert [r["key"] for r in c.rows] == schemes
    for ours, t in zip(c.rows, theirs):
        assert ours["key"] == t["key"]
        assert ours["images"] == t["images"] == 4
        if t["hw"] is not None:
            assert ours["cycles"] == t["hw"]["cycles"]
            assert ours["score"] == pytest.approx(t["score"])


def test_compare_of_an_int8_tflite_on_its_own_int8_samples_equals_the_cli(tmp_path):
    # Every row sees the values the int8 samples stand for, and the shipped row is added.
    model, data = SPEED / "resnet8.tflite", SPEED / "resnet8.input.npy"
    out = json.loads(cli("compare", model, "--data", data, "--schemes", "fp32,int8-per-channel", "--calib", "4",
                         "--metric", "sqnr", "--json", "-q"))
    c = npu.compare(npu.load_model(model), np.load(data), schemes=["fp32", "int8-per-channel"], metric="sqnr")
    theirs = out["rows"] if "rows" in out else out["comparison"]["rows"]
    assert [r["key"] for r in c.rows] == [r["key"] for r in theirs] == ["fp32", "int8-per-channel", "as-shipped"]
    for ours, t in list(zip(c.rows, theirs))[1:]:  # the FP32 row's SQNR against itself is infinite
        assert ours["score"] == pytest.approx(t["score"], rel=1e-9), ours["key"]
        assert ours["cycles"] == t["hw"]["cycles"], ours["key"]


# ---------------------------------------------------------------------------------------
# Against a reference implementation: LiteRT's reference kernels (fixtures made by
# tests/fixtures/speed/generate.py with TensorFlow).


@pytest.mark.parametrize("name", ["resnet8", "mobilenet", "vgg"])
def test_int8_tflite_outputs_equal_litert_reference_kernels(name):
    q = npu.load_quantized(SPEED / f"{name}.tflite")
    x = np.load(SPEED / f"{name}.input.npy")
    want = np.load(SPEED / f"{name}.output.npy")
    d = npu.compile(q, "edge-256")
    got = d.simulate(x, dequantize=False)
    np.testing.assert_array_equal(got, want.astype(np.int32))
    np.testing.assert_array_equal(q.run(x, dequantize=False), want.astype(np.int32))


@pytest.mark.parametrize("name", ["dense", "audio1d"])
def test_feature_vectors_and_waveforms_simulate_like_litert(name):
    # Non-image data as stored: [N, 640] features and [N, 4000, 1] waveforms (int8).
    q = npu.load_quantized(FIX / "vela" / f"{name}.tflite")
    x = np.load(FIX / "vela" / f"{name}.input.npy")
    want = np.load(FIX / "vela" / f"{name}.output.npy").astype(np.int32)
    got = npu.compile(q, "edge-64").simulate(x, dequantize=False)
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_models_load_from_bytes_as_from_files(x):
    a = npu.load_quantized(SPEED / "resnet8.tflite")
    b = npu.load_quantized((SPEED / "resnet8.tflite").read_bytes(), name="resnet8")
    assert a.to_bytes() == b.to_bytes()
    m = npu.load_model((TV / "resnet.onnx").read_bytes())
    assert m.input_shape == [3, 64, 64] and m.output_shape == [10]
    q = npu.quantize(m, calib=x)
    assert npu.load_quantized(q.to_bytes()).to_bytes() == q.to_bytes()


# ---------------------------------------------------------------------------------------
# Reports: figures that follow from each other by their definitions.


def test_report_figures_follow_from_the_cycles_and_the_clock(q):
    hw = npu.hardware("edge-256")
    r = npu.compile(q, hw).report()
    clock_hz = hw["clock_mhz"] * 1e6
    assert r.fps == pytest.approx(clock_hz / r.cycles)
    assert r.latency_us == pytest.approx(r.cycles / hw["clock_mhz"])
    assert r.power_mw == pytest.approx(r.energy_uj * r.fps / 1000.0)
    assert sum(row["cycles"] for row in r.layers) == r.cycles  # attributed cycles sum to the run
    html = r._repr_html_()
    assert html.count("<tr>") == len(r.layers) + 2  # heading, layers, total
    assert repr(r).startswith("main_graph (int8-per-channel) on edge-256")


def test_a_changed_hardware_dict_changes_only_what_it_should(q):
    base = npu.hardware("edge-256")
    fast = dict(base, clock_mhz=base["clock_mhz"] * 2)
    a, b = npu.compile(q, base).report(), npu.compile(q, fast).report()
    assert b.cycles == a.cycles  # cycles do not depend on the clock
    assert b.fps == pytest.approx(2 * a.fps)
    with pytest.raises(npu.NpuError, match="clock_mhz"):
        npu.compile(q, dict(base, clock_mhz=-1.0))


# ---------------------------------------------------------------------------------------
# Arrays of every dtype and layout.


def test_integer_dtypes_give_the_same_outputs(q):
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, size=(3, 3, 64, 64), dtype=np.uint8)
    d = npu.compile(q)
    want = d.simulate(raw, dequantize=False)
    for dt in [np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]:
        np.testing.assert_array_equal(d.simulate(raw.astype(dt), dequantize=False), want, err_msg=str(dt))
    big = raw.astype(">i4")
    np.testing.assert_array_equal(d.simulate(big, dequantize=False), want)
    for v in [np.asfortranarray(raw), np.asfortranarray(raw.astype(np.int16)), raw.transpose(0, 1, 3, 2).swapaxes(2, 3)]:
        np.testing.assert_array_equal(d.simulate(v, dequantize=False), want)
    # Raw integers go through the preprocessing; the same values as floats are taken as
    # they are: preprocessed by hand, they give the same outputs.
    p = q.preprocess
    pre = ((raw.astype(np.float64) * p["scale"] - p["mean"][0]) / p["std"][0]).astype(np.float32)
    np.testing.assert_array_equal(d.simulate(pre, dequantize=False), want)


def test_float_dtypes_and_memory_layouts_give_the_same_outputs(q, x):
    d = npu.compile(q)
    xs = x.astype(np.float16).astype(np.float32)  # values every float type holds exactly
    want = d.simulate(xs, dequantize=False)
    for v in [xs.astype(np.float16), xs.astype(np.float64), xs.astype(">f4"), np.asfortranarray(xs),
              xs[::-1][::-1], np.ascontiguousarray(xs[:, :, ::-1])[:, :, ::-1], xs.tolist()]:
        np.testing.assert_array_equal(d.simulate(v, dequantize=False), want)
    # Every other sample of a larger array: a strided view.
    wide = np.repeat(xs, 2, axis=0)
    np.testing.assert_array_equal(d.simulate(wide[::2], dequantize=False), want)
    # Channels last, said so.
    np.testing.assert_array_equal(d.simulate(xs.transpose(0, 2, 3, 1), layout="nhwc", dequantize=False), want)


def test_outputs_are_dequantized_with_the_output_scale(q, x):
    d = npu.compile(q)
    ints = d.simulate(x, dequantize=False)
    floats = d.simulate(x)
    assert floats.dtype == np.float32 and floats.shape == ints.shape
    # The output's scale: the ratio of any non-zero pair (affine with a zero point).
    diffs = np.diff(np.unique(ints))
    fdiffs = np.diff(np.unique(floats))
    step = fdiffs.min() / diffs.min()
    zero = ints.flat[0] - floats.flat[0] / step
    np.testing.assert_allclose(floats, (ints - round(zero)) * step, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Calibration data as people have them.


def test_calibration_readers_and_batches_quantize_as_one_array(resnet, x):
    want = npu.quantize(resnet, calib=x).to_bytes()

    class Reader:  # onnxruntime.quantization.CalibrationDataReader's protocol
        def __init__(self):
            self.batches = iter([{"input": x[:1]}, {"input": x[1:3]}, {"input": x[3:]}])

        def get_next(self):
            return next(self.batches, None)

    assert npu.quantize(resnet, calib=Reader()).to_bytes() == want
    assert npu.quantize(resnet, calib=(x[i:i + 1] for i in range(4))).to_bytes() == want
    assert npu.quantize(resnet, calib=[x[:2], x[2:]]).to_bytes() == want


def test_options_change_the_quantized_model(resnet, x):
    base = npu.quantize(resnet, calib=x)
    names = [l["name"] for l in resnet.layers() if l["op"].startswith("Conv")]
    four = npu.quantize(resnet, calib=x, layer_bits={names[1]: 4})
    assert four.to_bytes() != base.to_bytes()
    assert npu.quantize(resnet, calib=x, cle=True).to_bytes() != base.to_bytes()
    assert npu.quantize(resnet, calib=x, samples=2).to_bytes() != base.to_bytes()
    assert npu.quantize(resnet).scheme == "int8-per-channel"  # data-free


# ---------------------------------------------------------------------------------------
# Errors as exceptions with npu's messages.


def test_errors_are_exceptions_naming_the_problem(tmp_path, resnet, q, x):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 not a protobuf at all")
    with pytest.raises(npu.NpuError, match="bad.onnx"):
        npu.load_model(bad)
    with pytest.raises(npu.NpuError, match="no such file|cannot read"):
        npu.load_model(tmp_path / "missing.onnx")
    with pytest.raises(npu.NpuError, match="unknown hardware preset `edge-3`"):
        npu.compile(q, "edge-3")
    with pytest.raises(npu.NpuError, match="unknown scheme|int9"):
        npu.quantize(resnet, "int9", calib=x)
    with pytest.raises(npu.NpuError, match="the model takes 3×64×64"):
        npu.compile(q).simulate(np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(npu.NpuError, match="finite"):
        npu.compile(q).simulate(np.full((1, 3, 64, 64), np.nan, np.float32))
    with pytest.raises(npu.NpuError, match="must fit int32"):
        npu.compile(q).simulate(np.full((1, 3, 64, 64), 2**40, np.int64))
    with pytest.raises(TypeError, match="complex128"):
        npu.compile(q).simulate(np.zeros((1, 3, 64, 64), np.complex128))
    with pytest.raises(npu.NpuError, match="layer_bits"):
        npu.quantize(resnet, calib=x, layer_bits={"no-such-layer": 4})
    # Arguments that would be ignored are refused.
    with pytest.raises(npu.NpuError, match="samples=10: there are no calibration data"):
        npu.quantize(resnet, samples=10)
    with pytest.raises(npu.NpuError, match='method="mse": there are no calibration data'):
        npu.quantize(resnet, method="mse")
    with pytest.raises(npu.NpuError, match="cle=: `int8-per-channel-dfq` is a recipe"):
        npu.quantize(resnet, "int8-per-channel-dfq", cle=True)
    with pytest.raises(npu.NpuError, match="samples=3: there are no calibration data"):
        npu.sweep(resnet, samples=3)
    with pytest.raises(ValueError, match="metric `top3`: expected one of top1, top5"):
        npu.compare(resnet, x, schemes=["fp32"], metric="top3")
    with pytest.raises(ValueError, match="layout"):
        npu.compile(q).simulate(x, layout="hwc")
    with pytest.raises(npu.NpuError, match="labels"):
        npu.compare(resnet, x, np.zeros(3, np.int64), schemes=["fp32"])
    # Advice in this front end's words, not the command line's flags.
    with pytest.raises(npu.NpuError, match='channels-last .* pass layout="nhwc"$'):
        npu.compile(q).simulate(x.transpose(0, 2, 3, 1))
    assert issubclass(npu.NpuError, Exception)


# ---------------------------------------------------------------------------------------
# Progress, threads and the GIL.


def test_progress_is_reported_from_worker_threads_with_the_gil_released(q, x):
    d = npu.compile(q)
    calls = []
    main = threading.get_ident()

    def progress(label, done, total):
        calls.append((label, done, total, threading.get_ident()))

    many = np.repeat(x, 16, axis=0)
    d.simulate(many, jobs=2, progress=progress)
    assert calls[0][:3] == ("simulating", 0, 64)
    assert calls[-1][:3] == ("simulating", 64, 64)
    assert [c[1] for c in calls] == sorted(c[1] for c in calls) or all(c[2] == 64 for c in calls)
    # Worker threads could call back only because the calling thread let go of the GIL.
    assert any(c[3] != main for c in calls)


def test_an_exception_in_the_progress_callback_is_raised(q, x):
    def progress(label, done, total):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        npu.compile(q).simulate(x, progress=progress)


def test_results_do_not_depend_on_the_threads(q, x):
    d = npu.compile(q)
    many = np.repeat(x, 8, axis=0)
    np.testing.assert_array_equal(d.simulate(many, jobs=1, dequantize=False), d.simulate(many, jobs=2, dequantize=False))


# ---------------------------------------------------------------------------------------
# Comparisons, evaluation and sweeps.


def test_comparison_rows_pareto_marks_and_renderings(resnet, x):
    c = npu.compare(resnet, x, schemes=["fp32", "int8-per-channel", "uint8-asym", "w4a8-per-channel"])
    rows = c.rows
    assert c.metric == "agreement" and rows[0]["key"] == "fp32" and rows[0]["score"] == 100.0
    ran = [r for r in rows if r["cycles"] is not None]
    # The Pareto front by its definition: no other row at least as good on both with one better.
    for r in ran:
        dominated = any(o["score"] >= r["score"] and o["fps"] >= r["fps"]
                        and (o["score"] > r["score"] or o["fps"] > r["fps"]) for o in ran)
        assert r["pareto_fps"] == (not dominated), r["key"]
    html = c._repr_html_()
    assert all(r["label"] in html for r in rows) and html.count("<tr>") == len(rows) + 1
    assert c.csv().splitlines()[0].startswith("key,label,images,correct,agreement_percent")
    svg = str(c.plot("energy"))
    assert svg.startswith("<svg") and "Pareto front" in svg
    assert c.to_dict()["rows"][1]["hw"]["cycles"] == rows[1]["cycles"]
    assert repr(c) == c.table()


def test_evaluate_scores_top1_against_the_labels(q, x):
    d = npu.compile(q)
    y = d.simulate(x)
    labels = np.argmax(y, axis=1)
    labels[0] = (labels[0] + 1) % 10  # one wrong on purpose
    e = d.evaluate(x, labels)
    assert e["metric"] == "top1" and e["images"] == 4 and e["correct"] == 3
    assert e["value"] == pytest.approx(0.75)
    np.testing.assert_array_equal(e["predictions"], np.argmax(y, axis=1))
    np.testing.assert_array_equal(e["outputs"], y)
    assert d.evaluate(x, metric="agreement")["value"] <= 1.0


def test_sweep_points_equal_compiling_each_variant(resnet, x):
    rows = npu.sweep(resnet, schemes=["int8-per-channel"], calib=x,
                     params={"mac.rows": [8, 16], "mac.cols": [8, 16, 32]}, filters=["mac.rows * mac.cols <= 256"])
    got = sorted((int(r["params"]["mac.rows"]), int(r["params"]["mac.cols"])) for r in rows)
    assert got == [(8, 8), (8, 16), (8, 32), (16, 8), (16, 16)]
    assert all(r["error"] is None and r["top1"] is None for r in rows)
    q = npu.quantize(resnet, calib=x)  # what the sweep quantizes, calibrated the same way
    for r in rows:
        hw = npu.hardware("edge-256")
        hw["mac"]["rows"], hw["mac"]["cols"] = int(r["params"]["mac.rows"]), int(r["params"]["mac.cols"])
        assert r["cycles"] == npu.compile(q, hw).report().cycles
        assert r["peak_macs"] == hw["mac"]["rows"] * hw["mac"]["cols"]
    with pytest.raises(npu.NpuError, match="not a field"):
        npu.sweep(resnet, calib=x, params={"mac.rowz": [8]})


def test_sweep_with_samples_measures_accuracy(resnet, x):
    q = npu.quantize(resnet, calib=x)
    labels = np.argmax(npu.compile(q).simulate(x), axis=1)
    rows = npu.sweep(resnet, x, labels, params={"clock_mhz": [250, 500]})
    assert [r["top1"] for r in rows] == [100.0, 100.0] and all(r["images"] == 4 for r in rows)
    assert rows[1]["fps"] == pytest.approx(2 * rows[0]["fps"])


# ---------------------------------------------------------------------------------------
# The example notebook, executed cell by cell (its outputs are stripped in the repository).


def test_the_example_notebook_runs_with_outputs_stripped():
    path = ROOT / "crates" / "npu-py" / "examples" / "quickstart.ipynb"
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert cells and all(c.get("outputs") == [] and c.get("execution_count") is None for c in cells)
    ns = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        for c in cells:
            exec(compile("".join(c["source"]), f"{path.name} cell", "exec"), ns)
    finally:
        os.chdir(cwd)
    assert ns["comparison"].rows[0]["key"] == "fp32"
