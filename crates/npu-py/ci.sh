#!/usr/bin/env bash
# The Python package's tests, as `.ci/run` runs them: a fresh venv, the wheel built by
# maturin and installed in it (offline: `--no-index` from the built file), then pytest
# (which also executes the example notebook). Needs PyPI for maturin, numpy and pytest.
# Run from anywhere; NPU_PY_VENV chooses the venv's folder (default target/py-venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${NPU_PY_VENV:-target/py-venv}
python3 -m venv --clear "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check maturin numpy pytest
rm -rf target/wheels
# The dev profile (optimized, as the tests are) shares most crates with `cargo test`.
"$venv/bin/maturin" build --profile dev -m crates/npu-py/Cargo.toml -o target/wheels
"$venv/bin/pip" install -q --disable-pip-version-check --no-index --no-deps target/wheels/npu-*.whl
# The command line the outputs are compared with (`cargo test` has built it already).
[ -x target/debug/npu ] || cargo build -p npu
NPU_BIN="$PWD/target/debug/npu" "$venv/bin/python" -m pytest -q crates/npu-py/tests
