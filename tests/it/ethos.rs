//! The Arm Ethos-U presets against Vela 5.2's own figures: the block unit's choice and
//! compute cycles against Vela's functions on a table of layer shapes
//! (`tests/fixtures/vela/blocks.json`, written by `blocks.py` calling Vela).

use npu_sim::exec::{MacKind, MacShape};
use npu_sim::timing::{blocked_cycles, choose_block};

fn fixture(name: &str) -> serde_json::Value {
    let path = crate::repo_root().join("tests/fixtures/vela").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn triple(v: &serde_json::Value) -> (u64, u64, u64) {
    let n = |i: usize| v[i].as_u64().expect("integer");
    (n(0), n(1), n(2))
}

/// For every Ethos-U preset and every shape of the table, npu's block unit picks the
/// output block Vela's `find_block_config` picks and takes the compute cycles Vela's
/// `_estimate_conv_cycles` gives it (its DPU part: per block, times the blocks, over the
/// cores).
#[test]
fn ethos_block_unit_chooses_and_times_blocks_as_vela_does() {
    let table = fixture("blocks.json");
    let accelerators = table["accelerators"].as_object().expect("accelerators");
    assert_eq!(accelerators.len(), 5);
    let mut checked = 0;
    for (preset, rows) in accelerators {
        let hw = npu_hw::preset(preset).unwrap_or_else(|e| panic!("{e}"));
        let b = hw.mac.blocks.as_ref().expect("a block unit");
        for row in rows.as_array().expect("rows") {
            let v: Vec<u64> =
                row["shape"].as_array().expect("shape").iter().map(|x| x.as_u64().expect("int")).collect();
            let kind = match row["kind"].as_str().expect("kind") {
                "conv" => MacKind::Conv,
                "dw" => MacKind::Depthwise,
                "pool" => MacKind::Pooling,
                _ => MacKind::VectorProduct,
            };
            let s =
                MacShape { kind, oh: v[0], ow: v[1], cout: v[2], cin: v[3], kh: v[4], kw: v[5], sy: v[6], sx: v[7] };
            let what = format!("{preset} {} {:?}", row["kind"], v);
            let cfg = choose_block(b, &s).unwrap_or_else(|| panic!("{what}: no block fits"));
            assert_eq!(cfg.ofm, triple(&row["ofm_block"]), "{what}: output block");
            if kind == MacKind::Conv {
                assert_eq!(cfg.part_kernel, row["part_kernel"].as_bool().expect("bool"), "{what}: kernel method");
                assert_eq!(cfg.ifm.2, triple(&row["ifm_block"]).2, "{what}: input block depth");
            }
            assert_eq!(blocked_cycles(b, &s), row["cycles"].as_u64().expect("cycles"), "{what}: cycles");
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * 37);
}

/// The networks of `tests/fixtures/vela/` (TensorFlow-made int8 TFLite: a ResNet-style,
/// a depthwise-separable, a dense-heavy and a 1-D audio network) and their files.
const NETWORKS: [(&str, &str); 4] = [
    ("resnet8", "tests/fixtures/speed/resnet8.tflite"),
    ("mobilenet", "tests/fixtures/speed/mobilenet.tflite"),
    ("dense", "tests/fixtures/vela/dense.tflite"),
    ("audio1d", "tests/fixtures/vela/audio1d.tflite"),
];

/// The Ethos-U presets and the Vela configuration each models (`vela.json`'s keys).
const AGREEMENT: [&str; 7] = [
    "ethos-u55-64",
    "ethos-u55-128",
    "ethos-u55-256",
    "ethos-u55-256-deep",
    "ethos-u55-256-sram-only",
    "ethos-u65-256",
    "ethos-u65-512",
];

/// npu's cycles on the NPU for a network on a preset (its host-CPU layers left out, as
/// Vela's totals leave out the operators it places on the CPU), with the names of those
/// layers and the per-layer rows.
fn npu_cycles(file: &str, preset: &str) -> (u64, Vec<String>, Vec<npu_app::LayerRow>) {
    let path = crate::repo_root().join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let q = npu_tflite::import(&bytes, file).expect("imports").quantized.expect("int8");
    let hw = npu_hw::preset(preset).expect("preset");
    let t = npu_app::Deployment::new(q, hw).expect("compiles").timing().expect("runs");
    let host: Vec<String> = t.layers.iter().filter(|l| l.bound == "cpu").map(|l| l.layer.clone()).collect();
    let on_host: u64 = t.layers.iter().filter(|l| l.bound == "cpu").map(|l| l.cycles).sum();
    (t.total.cycles - on_host, host, t.layers)
}

/// Agreement with Vela 5.2, measured and kept: on each Ethos-U preset and each of the
/// four test networks, npu's simulated cycles (its own compiled schedule on the preset's
/// block unit and memory system) are within ±15 % of Vela's estimated total for the
/// configuration the preset models, and the layers each leaves to the CPU are the same.
/// Prints the table of `docs/hardware.md` and per-layer ratios (`-- --nocapture`).
#[test]
fn ethos_presets_agree_with_vela_within_15_percent() {
    let vela = fixture("vela.json");
    let mut worst: (f64, String) = (0.0, String::new());
    println!("| network | preset | Vela cycles | npu cycles | npu / Vela |");
    println!("|---|---|---|---|---|");
    for (net, file) in NETWORKS {
        for preset in AGREEMENT {
            let v = &vela["networks"][net][preset];
            let want = v["cycles_total"].as_u64().unwrap_or_else(|| panic!("{net} {preset}: no Vela total"));
            let (got, host, layers) = npu_cycles(file, preset);
            let ratio = got as f64 / want as f64;
            println!("| {net} | {preset} | {want} | {got} | {ratio:.2} |");
            let vela_layers = v["layers"].as_array().expect("layers");
            let vela_cpu: Vec<&str> = vela_layers
                .iter()
                .filter(|l| l["target"] == "CPU")
                .map(|l| l["name"].as_str().expect("name"))
                .collect();
            assert_eq!(host, vela_cpu, "{net} on {preset}: the layers left to the CPU");
            for l in &layers {
                let theirs: u64 = vela_layers
                    .iter()
                    .filter(|x| x["name"].as_str() == Some(l.layer.as_str()))
                    .map(|x| x["cycles"].as_u64().expect("cycles"))
                    .sum();
                if theirs > 0 {
                    println!(
                        "    {:>8} / {:>8} = {:.2}  {}",
                        l.cycles,
                        theirs,
                        l.cycles as f64 / theirs as f64,
                        l.layer
                    );
                }
            }
            let off = (ratio - 1.0).abs();
            if off > worst.0 {
                worst = (off, format!("{net} on {preset}: npu {got} cycles, Vela {want} (ratio {ratio:.3})"));
            }
        }
    }
    assert!(worst.0 <= 0.15, "furthest from Vela: {}", worst.1);
}
