//! Every trap: a program that triggers it, and the message naming the instruction.

use npu_isa::{assemble, Instr, Op, Program};
use npu_sim::{run, RunOptions, Trap, TrapKind};

fn trap_on(src: &str, hw: &npu_hw::HwConfig) -> Trap {
    let p = assemble(src, "t.s").unwrap_or_else(|e| panic!("{e}"));
    trap_prog(&p, hw)
}

fn trap_prog(p: &Program, hw: &npu_hw::HwConfig) -> Trap {
    let o = run(p, hw, &RunOptions::default()).expect("loads");
    o.trap.expect("the program traps")
}

fn edge(name: &str) -> npu_hw::HwConfig {
    npu_hw::preset(name).expect("preset")
}

fn msg(src: &str) -> String {
    trap_on(src, &edge("edge-256")).to_string()
}

#[test]
fn out_of_bounds_accesses() {
    // act is 256 KiB on edge-256: 0x3ff00 + 512 runs past it.
    assert_eq!(
        msg("nop\nld ext=sram src=0 dst=0x3ff00 elem=512\n"),
        "trap at instruction 1 (`ld` on ld, dispatch #0): dst accesses act 0x3ff00..0x40100, outside the 262144-byte memory"
    );
    assert!(msg("ld ext=sram src=0x1ffff0 dst=0 elem=32\n").contains("src accesses sram 0x1ffff0..0x200010"));
    assert!(msg("st ext=sram src=0 dst=0x1ffffc elem=8\n").contains("dst accesses sram"));
    assert!(msg("rq src=65535 n=1 c=2 par=0 dst=0\n").contains("src accesses acc 0x3fffc..0x40004"));
    assert!(msg("conv ifm=0 ih=3 iw=3 cin=1 wgt=0x1fff8 kh=3 kw=3 cout=1 dst=0\n").contains("wgt accesses wgt"));
    assert!(msg("lut src=0 dst=0 n=4 table=0x3f80\n").contains("table accesses par 0x3f80..0x4080"));
}

#[test]
fn misaligned_accesses() {
    assert!(msg("ld src=0 loc=acc dst=2 elem=8\n").contains("dst at acc 0x2 is not 4-byte aligned"));
    assert!(msg("ld src=0 loc=acc dst=0 elem=6\n").contains("(its length 6 is not a multiple of 4)"));
    assert!(msg("st loc=acc src=1 dst=0 elem=4\n").contains("src at acc 0x1 is not 4-byte aligned"));
    assert!(msg("rq src=0 n=1 c=1 par=6 dst=0\n").contains("par at par 0x6 is not 4-byte aligned"));
    assert!(msg("vmul a=0 b=0 dst=0 n=1 par=2\n").contains("par at par 0x2 is not 4-byte aligned"));
    assert!(msg("wzp ifm=0 ih=1 iw=1 cin=1 cout=1 zp=3 dst=0\n").contains("zp at par 0x3 is not 4-byte aligned"));
}

#[test]
fn missing_hardware_capabilities() {
    let t = trap_on("mm mode=xnor a=0 b=0 c=0 m=1 k=8 n=1\n", &edge("edge-64"));
    assert_eq!(t.kind, TrapKind::Unsupported { hw: "edge-64".into(), what: "`xnor` mode in its MAC array".into() });
    let mut shift_only = edge("edge-256");
    shift_only.requant.multiplier = false;
    let t = trap_on("rq mode=mul src=0 n=1 c=1 par=0 dst=0\n", &shift_only);
    assert!(t.to_string().contains("has no requantization multiplier (`mode=mul`)"), "{t}");
    // The same hardware runs the shift-only form.
    let p = assemble("rq mode=shift pc=0 src=0 n=1 c=1 par=0 dst=0\n", "t.s").expect("assembles");
    assert!(run(&p, &shift_only, &RunOptions::default()).expect("loads").trap.is_none());
}

#[test]
fn impossible_operand_combinations() {
    assert!(
        msg("conv dw=1 ifm=0 ih=3 iw=3 cin=2 wgt=0 cout=3 dst=0\n").contains("depthwise convolution needs cout = cin")
    );
    assert!(msg("conv ifm=0 ih=2 iw=5 cin=1 wgt=0 kh=3 kw=3 cout=1 dst=0\n")
        .contains("larger than the 2×5 padded input tile"));
    assert!(msg("conv ifm=0 ih=1 iw=5 cin=1 wgt=0 kh=3 kw=3 pb=1 cout=1 dst=0\n")
        .contains("larger than the 2×5 padded input tile"));
    assert!(msg("conv ifm=0 ih=3 iw=3 cin=8 ps=4 wgt=0 cout=1 dst=0\n").contains("pixel stride 4 is smaller"));
    assert!(msg("rq ot=u8 src=0 n=1 c=1 par=0 dst=0 lo=-20 hi=-1\n").contains("outside the output range [0, 255]"));
    assert!(msg("rq src=0 n=1 c=1 par=0 dst=0 lo=5 hi=4\n").contains("lower bound 5 exceeds upper bound 4"));
    assert!(msg("pool src=0 ih=4 iw=4 c=1 kh=2 kw=2 pt=2 dst=0x100\n").contains("must be smaller than the 2×2 window"));
}

#[test]
fn invalid_data_in_memory() {
    // Weight 9 is not an int4.
    let t = msg(".data dram 0\n.byte 1, 9\n.text\nld src=0 loc=wgt dst=0 elem=2 signal=mac\nmm mode=i4 a=0 b=0 c=0 m=1 k=2 n=1 wait=ld\n");
    assert!(t.contains("weight 9 at wgt 0x1 is outside the range of `i4` mode"), "{t}");
    // Shift 40 in a requantization record.
    let t = msg(".data dram 0\n.word 0, 1073741824, 40\n.text\nld src=0 loc=par dst=0 elem=12 signal=rq\nrq src=0 n=1 c=1 par=0 dst=0 wait=ld\n");
    assert!(t.contains("requantization record of channel 0") && t.contains("shift 40"), "{t}");
    // Ternary code 0b10 is invalid.
    let t = msg(".data dram 0\n.byte 0b10\n.text\nld src=0 loc=wgt dst=0 elem=1 unpack=t2\n");
    assert!(t.contains("cannot unpack t2: invalid code 0b10"), "{t}");
    // An elementwise record with a left shift of 31.
    let t = msg(".data dram 0\n.word 0, 0, 0, 31, 0, 0, 0, 0, 0, 0\n.text\nld src=0 loc=par dst=0 elem=40 signal=vec\nvadd a=0 b=0 dst=0 n=1 par=0 wait=ld\n");
    assert!(t.contains("left shift 31 is outside 0..=24"), "{t}");
}

fn raw(ops: Vec<Op>) -> Program {
    Program { code: ops.into_iter().map(Instr::new).collect(), data: Vec::new() }
}

#[test]
fn malformed_control_flow_in_binaries() {
    // The assembler refuses these; a hand-made binary can still hold them.
    let hw = edge("edge-256");
    let t = trap_prog(&raw(vec![Op::Nop(npu_isa::Nop {}), Op::EndLoop(npu_isa::EndLoop {})]), &hw);
    assert_eq!(t.to_string(), "trap at instruction 1 (`endloop`): control flow: `endloop` without `loop`");
    let t = trap_prog(&raw(vec![Op::Loop(npu_isa::Loop { n: 2 })]), &hw);
    assert!(t.to_string().contains("`loop` is never closed"), "{t}");
    let nine = (0..9).map(|_| Op::Loop(npu_isa::Loop { n: 1 })).collect();
    let t = trap_prog(&raw(nine), &hw);
    assert!(t.to_string().contains("loops nest deeper than 8"), "{t}");
}

#[test]
fn deadlock_names_every_waiting_instruction() {
    assert_eq!(
        msg("mm a=0 b=0 c=0 m=1 k=1 n=1 wait=rq\nrq src=0 n=1 c=1 par=0 dst=0 wait=mac\n"),
        "trap at instruction 0 (`mm` on mac, dispatch #0): deadlock: no unit can proceed: instruction 0 (`mm` on mac) \
         waits for a token from rq; instruction 1 (`rq` on rq) waits for a token from mac"
    );
}

#[test]
fn instruction_limit() {
    let p = assemble("loop n=1000\nnop\nendloop\n", "t.s").expect("assembles");
    let o = run(&p, &edge("edge-256"), &RunOptions { max_instructions: 100, ..RunOptions::default() }).expect("loads");
    assert!(matches!(o.trap.map(|t| t.kind), Some(TrapKind::InstructionLimit(100))));
}

#[test]
fn data_that_does_not_fit_is_a_load_error() {
    let p = assemble(".data par 0x3ffe\n.word 1\n", "t.s").expect("assembles");
    let e = run(&p, &edge("edge-256"), &RunOptions::default()).expect_err("par is 16 KiB");
    assert_eq!(
        e.to_string(),
        "data segment 0 (par 0x3ffe..0x4002) does not fit the 16384-byte par memory of `edge-256`"
    );
}

/// A replay applies one program's recorded order on one hardware; anything else is
/// refused by name rather than replayed into wrong outputs or out-of-bounds accesses.
#[test]
fn replay_refuses_a_trace_or_machine_it_was_not_made_from() {
    let hw = edge("edge-256");
    let src =
        "ld ext=sram src=0 dst=0 elem=8\nloop n=3\nlut src=0 dst=16 n=8 table=0\nendloop\nst src=16 dst=64 elem=8\n";
    let p = assemble(src, "r.s").expect("assembles");
    let traced = RunOptions { trace: true, timing_only: true, ..RunOptions::default() };
    let trace = run(&p, &hw, &traced).expect("loads").trace;
    assert_eq!(trace.len(), 5, "ld, three lut iterations, st");
    let r = npu_sim::Replay::new(&p, &hw, &trace).expect("its own trace");
    let mut m = r.machine().expect("loads");
    assert_eq!(r.run(&mut m, &[]).expect("runs"), None);
    // A trace cut short, one with an event moved, and another program's trace.
    let e = npu_sim::Replay::new(&p, &hw, &trace[..4]).expect_err("cut");
    assert!(e.to_string().contains("dispatches more than 4 instructions, the trace holds 4"), "{e}");
    let mut moved = trace.clone();
    moved[1].index = 4;
    let e = npu_sim::Replay::new(&p, &hw, &moved).expect_err("moved");
    assert!(e.to_string().contains("(instruction 4, dispatch #1) does not match"), "{e}");
    let other = assemble("nop\nld ext=sram src=0 dst=0 elem=8\n", "o.s").expect("assembles");
    let e = npu_sim::Replay::new(&other, &hw, &trace).expect_err("foreign");
    assert!(e.to_string().contains("the program dispatches 1 instructions, the trace holds 5"), "{e}");
    // A machine of other hardware.
    let mut small = npu_sim::Machine::new(&edge("edge-64"), &p).expect("loads");
    let e = r.run(&mut small, &[]).expect_err("other machine");
    assert!(e.to_string().contains("not those of `edge-256`"), "{e}");
}

/// 1,000 loads of 4 KiB from off-chip memory, no store.
const LOADS: &str =
    ".data dram 0x0\nx:\n.zero 4096\n.text\nloop n=1000\nld ext=dram src=x loc=act dst=0 elem=4096\nendloop\n";

#[test]
fn cycle_limit_stops_a_run_once_its_clock_passes_the_budget() {
    let hw = edge("edge-256");
    let p = assemble(LOADS, "t.s").expect("assembles");
    let full = run(&p, &hw, &RunOptions::default()).expect("loads");
    assert!(full.trap.is_none());
    let total = full.report.total_cycles;
    // Bandwidth alone: 4,096,000 bytes at the off-chip port's bytes per cycle.
    let floor = 1000.0 * 4096.0 / hw.memories.dram.bytes_per_cycle;
    assert!(total as f64 >= floor, "{total} cycles, below the bandwidth floor {floor}");
    let half = total / 2;
    let o = run(&p, &hw, &RunOptions { max_cycles: half, ..RunOptions::default() }).expect("loads");
    let trap = o.trap.expect("the budget is half the run");
    assert_eq!(trap.kind, TrapKind::CycleLimit(half));
    // Stopped by the first transfer to end past the budget: within one load of it.
    assert!(o.report.total_cycles > half && o.report.total_cycles < total, "{}", o.report.total_cycles);
    let seq = trap.seq.expect("dispatched");
    assert!((400..600).contains(&seq), "stopped at load #{seq} of 1000");
    assert_eq!(
        trap.to_string(),
        format!("trap at instruction 1 (`ld` on ld, dispatch #{seq}): cycle limit of {half} cycles reached")
    );
    // A budget of the whole run is not reached.
    let o = run(&p, &hw, &RunOptions { max_cycles: total, ..RunOptions::default() }).expect("loads");
    assert!(o.trap.is_none());
}

#[test]
fn time_limit_stops_a_run_at_the_first_check_past_it() {
    let p = assemble(LOADS, "t.s").expect("assembles");
    let opts = RunOptions { time_limit: Some(std::time::Duration::from_nanos(1)), ..RunOptions::default() };
    // 1,000 instructions: the clock is first read after TIME_CHECK_INTERVAL of them.
    let o = run(&p, &edge("edge-256"), &opts).expect("loads");
    assert!(o.trap.is_none(), "{:?}", o.trap);
    let long = LOADS.replace("n=1000", "n=10000");
    let p = assemble(&long, "t.s").expect("assembles");
    let trap = run(&p, &edge("edge-256"), &opts).expect("loads").trap.expect("1 ns has passed");
    assert_eq!(trap.kind, TrapKind::TimeLimit(std::time::Duration::from_nanos(1)));
    assert_eq!(trap.seq, Some(npu_sim::TIME_CHECK_INTERVAL - 1));
    assert_eq!(
        trap.to_string(),
        "trap at instruction 1 (`ld` on ld, dispatch #4095): time limit of 0.000000001 s reached"
    );
}
