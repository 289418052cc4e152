//! Hardware descriptions: presets load, bad ones are rejected naming the field.

use npu_hw::{preset, HwConfig};

fn with(edit: impl Fn(&mut HwConfig)) -> String {
    let mut c = preset("edge-256").expect("preset");
    edit(&mut c);
    HwConfig::from_ron(&c.to_ron(), "my.ron").expect_err("invalid").to_string()
}

#[test]
fn invalid_fields_are_named_with_the_rule() {
    assert_eq!(
        with(|c| c.mac.rows = 0),
        "my.ron: invalid hardware description: `mac.rows` must be in 1..=1024 (got 0)"
    );
    assert_eq!(
        with(|c| c.buffers.act.bytes = 2 << 20),
        "my.ron: invalid hardware description: `buffers.act.bytes` must be in 1..=1048576 (got 2097152)"
    );
    assert!(with(|c| c.memories.dram.burst = 100).contains("`memories.dram.burst` must be a power of two"));
    assert!(with(|c| c.memories.sram.bytes_per_cycle = 0.0)
        .contains("`memories.sram.bytes_per_cycle` must be a finite number greater than 0"));
    // Regression: 1e-300 passed, and the timing model's cycle counts overflowed and wrapped
    // (a run reported fewer cycles on slower memory).
    assert!(with(|c| c.memories.dram.bytes_per_cycle = 1e-300)
        .contains("`memories.dram.bytes_per_cycle` must be in 0.001..=1000000 bytes per cycle (got 1e-300)"));
    assert!(with(|c| c.buffers.wgt.bytes_per_cycle = 1e9)
        .contains("`buffers.wgt.bytes_per_cycle` must be in 0.001..=1000000"));
    assert!(with(|c| c.buffers.acc.bytes = 1001).contains("`buffers.acc.bytes` must be a multiple of 4"));
    assert!(with(|c| c.energy.dram_byte_pj = -1.0).contains("`energy.dram_byte_pj` must be a finite number at least 0"));
    assert!(with(|c| c.mac.macs_per_pe.i8 = 0).contains("`mac.macs_per_pe.i8` must be in 1..=64"));
}

#[test]
fn malformed_ron_names_the_position() {
    let text = preset("edge-256").expect("preset").to_ron().replace("rows:", "rowz:");
    let e = HwConfig::from_ron(&text, "typo.ron").expect_err("unknown field").to_string();
    assert!(e.starts_with("typo.ron: "), "{e}");
    assert!(e.contains("rowz"), "{e}");
    let e = HwConfig::from_ron("(name: \"x\",", "cut.ron").expect_err("truncated").to_string();
    assert!(e.starts_with("cut.ron: "), "{e}");
}

#[test]
fn unknown_preset() {
    assert_eq!(
        preset("edge-2k").expect_err("no such preset").to_string(),
        "unknown hardware preset `edge-2k` (expected one of: edge-64, edge-256, edge-1k, ethos-u55-64, \
         ethos-u55-128, ethos-u55-256, ethos-u55-256-deep, ethos-u55-256-sram-only, ethos-u65-256, \
         ethos-u65-512, ethos-u65-256-dedicated, ethos-u65-512-dedicated, or a .ron file)"
    );
}

/// A block-based (Ethos-U style) MAC unit's description is checked like the rest: the
/// block organisation must come with `Blocked` and only with it, match the array's
/// shape, and per-kind vector rates must be positive.
#[test]
fn block_unit_descriptions_are_checked() {
    let ethos = |edit: &dyn Fn(&mut HwConfig)| {
        let mut c = preset("ethos-u55-256").expect("preset");
        edit(&mut c);
        HwConfig::from_ron(&c.to_ron(), "u55.ron").expect_err("invalid").to_string()
    };
    assert_eq!(
        ethos(&|c| c.mac.blocks = None),
        "u55.ron: invalid hardware description: `mac.blocks` must describe the block unit of a `Blocked` MAC \
         array (got none)"
    );
    assert!(with(|c| c.mac.blocks = preset("ethos-u55-256").expect("preset").mac.blocks)
        .contains("`mac.blocks` is only for `dataflow: Blocked` (got WeightStationary)"));
    assert_eq!(
        ethos(&|c| c.mac.cols = 16),
        "u55.ron: invalid hardware description: `mac.cols` must equal the micro-block's outputs \
         (height × width × channels) (got 16)"
    );
    assert!(ethos(&|c| c.mac.rows = 16).contains("`mac.rows` must equal `mac.blocks.ifm_depth`"));
    assert!(ethos(&|c| c.mac.blocks.as_mut().expect("blocks").cores = 0)
        .contains("`mac.blocks.cores` must be in 1..=16 (got 0)"));
    assert!(ethos(&|c| c.mac.blocks.as_mut().expect("blocks").max_block.1 = 1)
        .contains("`mac.blocks.max_block.1` must be in 2..=4096 (got 1)"));
    assert!(ethos(&|c| c.vector.cycles_per_op.as_mut().expect("rates").add = 0.0)
        .contains("`vector.cycles_per_op.add` must be a finite number greater than 0"));
    assert!(ethos(&|c| c.mac.max_padded_stride = Some(0)).contains("`mac.max_padded_stride` must be in 1..=1024"));
    // Every preset's peak rate is its micro-block's outputs × 8 input channels × cores.
    for (name, macs) in [("ethos-u55-64", 64), ("ethos-u55-128", 128), ("ethos-u55-256", 256), ("ethos-u65-512", 512)] {
        assert_eq!(preset(name).expect("preset").peak_macs_per_cycle(npu_isa::MacMode::I8), macs, "{name}");
    }
}
