//! Data files: IDX (any rank and element type), `.npy` and `.npz` of every dtype,
//! image folders, data-set descriptions; the shape, layout and dtype rules of
//! `Dataset::inputs`; and the metrics. Expected values are worked out by hand.

use npu_data::metrics::{score, tally, Against, ExactSum, Metric};
use npu_data::{parse_idx, write_idx, Array, Dataset, Elements, Layout, Preprocess, Targets};
use npu_datafiles::npy;
use npu_zoo::{fashion_mnist_test, fashion_mnist_train_subset};

fn pre(scale: f32, mean: &[f32], std: &[f32], layout: Layout) -> Preprocess {
    Preprocess { scale, mean: mean.to_vec(), std: std.to_vec(), layout }
}

fn array(shape: &[usize], values: Elements) -> Array {
    Array { shape: shape.to_vec(), values, dtype: "test".into() }
}

#[test]
fn embedded_sets_have_the_documented_sizes_and_balance() {
    let test = fashion_mnist_test().expect("embedded test set");
    assert_eq!((test.len(), test.shape.clone()), (10_000, vec![28, 28]));
    // The split holds 1,000 test images per class (shared/datasets/fashion-mnist/README.md).
    let labels = test.labels().expect("labelled");
    for class in 0..10u32 {
        assert_eq!(labels.iter().filter(|l| **l == class).count(), 1000, "class {class}");
    }
    let train = fashion_mnist_train_subset().expect("embedded subset");
    assert_eq!(train.len(), 10_000);
    assert!(train.labels().expect("labelled").iter().all(|l| *l < 10));
}

#[test]
fn idx_round_trip_and_errors() {
    let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
    let images = write_idx(&[2, 3, 4], &pixels);
    let labels = write_idx(&[2], &[7, 1]);
    let ds = Dataset::from_idx(&images, &labels, "mem").expect("valid");
    assert_eq!((ds.shape.clone(), ds.labels().map(<[u32]>::to_vec)), (vec![3, 4], Some(vec![7, 1])));
    assert_eq!(ds.image(1), Some(&pixels[12..]));

    let e = parse_idx(&images[..images.len() - 1], "cut.idx").expect_err("short");
    assert_eq!(e.to_string(), "cut.idx: dimensions [2, 3, 4] of uint8 need 24 bytes of data, the file has 23");
    let e = parse_idx(b"PK\x03\x04zip", "a.zip").expect_err("not idx");
    assert!(e.to_string().starts_with("a.zip: not an IDX file"), "{e}");
    let e = parse_idx(&[0x1f, 0x8b, 0x08, 0, 1, 2], "bad.gz").expect_err("corrupt gzip");
    assert!(e.to_string().starts_with("bad.gz: corrupt gzip stream"), "{e}");
    let e = Dataset::from_idx(&images, &write_idx(&[3], &[1, 2, 3]), "pair").expect_err("counts differ");
    assert_eq!(e.to_string(), "pair: 2 images but 3 labels");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes).expect("compress");
    z.finish().expect("compress")
}

#[test]
fn gzip_idx_inflates_no_further_than_its_header_declares() {
    // Regression (#22): a 0.9 MB gzip IDX inflated to 0.94 GB before the header was read.
    let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
    let idx = write_idx(&[2, 3, 4], &pixels);
    let a = parse_idx(&gzip(&idx), "ok.idx.gz").expect("a gzip IDX as declared");
    assert_eq!((a.shape.clone(), a.values.clone()), (vec![2, 3, 4], Elements::U8(pixels)));
    // The same header with 16 MiB of zeros after it (under 64 KiB compressed): refused after
    // reading one byte past the 24 the header declares.
    let mut bomb = idx.clone();
    bomb.resize(idx.len() + (16 << 20), 0);
    let packed = gzip(&bomb);
    assert!(packed.len() < 64 << 10, "{} bytes compressed", packed.len());
    let e = parse_idx(&packed, "bomb.idx.gz").expect_err("more than declared");
    assert_eq!(
        e.to_string(),
        "bomb.idx.gz: the gzip stream holds more than the 24 bytes of data its IDX header declares"
    );
    // A header declaring 65,536 × 65,536 × 2 bytes (8 GiB): refused before inflating.
    let huge = gzip(&[0, 0, 0x08, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2]);
    let e = parse_idx(&huge, "huge.idx.gz").expect_err("over the limit");
    assert_eq!(
        e.to_string(),
        "huge.idx.gz: the header declares more bytes of data than the `inflated_bytes` limit (4294967296) of what a gzip stream may inflate to"
    );
    assert_eq!(npu_data::limits::Limits::default().inflated_bytes, 4 << 30);
    // A short stream is named by the size check as an uncompressed one is.
    let e = parse_idx(&gzip(&idx[..idx.len() - 1]), "cut.idx.gz").expect_err("short");
    assert_eq!(e.to_string(), "cut.idx.gz: dimensions [2, 3, 4] of uint8 need 24 bytes of data, the file has 23");
}

/// IDX element types other than bytes, big-endian as the format defines: int16 −2 is
/// `ff fe`, float32 1.5 is `3f c0 00 00`.
#[test]
fn idx_files_of_wider_types_and_any_rank() {
    let mut i16s = vec![0, 0, 0x0B, 1, 0, 0, 0, 2];
    i16s.extend([0xff, 0xfe, 0x01, 0x00]);
    let a = parse_idx(&i16s, "h.idx").expect("int16");
    assert_eq!((a.shape.clone(), a.values.clone(), a.dtype.as_str()), (vec![2], Elements::I32(vec![-2, 256]), "int16"));
    let mut f32s = vec![0, 0, 0x0D, 4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    f32s.extend([0x3f, 0xc0, 0, 0]);
    let a = parse_idx(&f32s, "f.idx").expect("float32, rank 4");
    assert_eq!((a.shape.clone(), a.values.clone()), (vec![1, 1, 1, 1], Elements::F32(vec![1.5])));
    let e = parse_idx(&[0, 0, 0x0A, 1, 0, 0, 0, 0], "t.idx").expect_err("no type 0x0a");
    assert!(e.to_string().contains("element type 0x0a"), "{e}");
}

#[test]
fn preprocessing_formula_per_channel_and_its_checks() {
    // 255 → (1 − 0.5)/0.25 = 2; 0 → −2.
    let ds = Dataset::from_arrays(array(&[1, 2], Elements::U8(vec![255, 0])), None, "two").expect("valid");
    let p = pre(1.0 / 255.0, &[0.5], &[0.25], Layout::Nchw);
    assert_eq!(ds.inputs(&[2], &p, 0..1).expect("fits"), vec![2.0, -2.0]);
    // Per channel, on a 2×1×1 input: channel 0 (v·0.1 − 1)/2, channel 1 (v·0.1 − 2)/4.
    let ds = Dataset::from_arrays(array(&[1, 2, 1, 1], Elements::I32(vec![30, 60])), None, "ch").expect("valid");
    let p = pre(0.1, &[1.0, 2.0], &[2.0, 4.0], Layout::Nchw);
    assert_eq!(ds.inputs(&[2, 1, 1], &p, 0..1).expect("fits"), vec![1.0, 1.0]);
    // Float samples are inputs already: no preprocessing.
    let ds = Dataset::from_arrays(array(&[1, 2, 1, 1], Elements::F32(vec![30.0, 60.0])), None, "f").expect("valid");
    assert_eq!(ds.inputs(&[2, 1, 1], &p, 0..1).expect("fits"), vec![30.0, 60.0]);
    // Three means for a two-channel input, and a zero std, are errors.
    let e = Dataset::from_arrays(array(&[1, 2, 1, 1], Elements::U8(vec![1, 2])), None, "x")
        .expect("valid")
        .inputs(&[2, 1, 1], &pre(1.0, &[0.0, 0.0, 0.0], &[1.0], Layout::Nchw), 0..1)
        .expect_err("3 means, 2 channels");
    assert!(e.to_string().contains("3 per-channel means/stds, but the model input 2×1×1 has 2 channels"), "{e}");
    assert!(pre(1.0, &[0.0], &[0.0], Layout::Nchw).validate().is_err());
}

/// Channels-last samples are reordered to the model's channel-first order: sample
/// `[h][w][c]` = `10·h + 5·w + c` lands at `[c][h][w]`.
#[test]
fn nhwc_samples_are_reordered_and_a_layout_mismatch_names_the_flag() {
    let (h, w, c) = (2, 3, 2);
    let mut v = Vec::new();
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                v.push((10 * y + 5 * x + ch) as f32);
            }
        }
    }
    let ds = Dataset::from_arrays(array(&[1, h, w, c], Elements::F32(v)), None, "x.npy").expect("valid");
    let nhwc = pre(1.0, &[0.0], &[1.0], Layout::Nhwc);
    let got = ds.inputs(&[c, h, w], &nhwc, 0..1).expect("fits");
    let mut want = Vec::new();
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                want.push((10 * y + 5 * x + ch) as f32);
            }
        }
    }
    assert_eq!(got, want);
    let nchw = pre(1.0, &[0.0], &[1.0], Layout::Nchw);
    let e = ds.inputs(&[c, h, w], &nchw, 0..1).expect_err("channels last for a channels-first model");
    assert!(e.to_string().contains("pass --layout nhwc"), "{e}");
    let e = ds.inputs(&[h, w, c], &nhwc, 0..1).expect_err("already in the model's order");
    assert!(e.to_string().contains("pass --layout nchw"), "{e}");
    let e = ds.inputs(&[3, 4], &nchw, 0..1).expect_err("another shape");
    assert!(e.to_string().contains("2×3×2") && e.to_string().contains("3×4"), "{e}");
    // Unit dimensions do not matter: 28×28 samples fit a 1×28×28 input either way.
    let gray = Dataset::from_arrays(array(&[1, 2, 2], Elements::U8(vec![1, 2, 3, 4])), None, "g").expect("valid");
    assert_eq!(gray.inputs(&[1, 2, 2], &nhwc, 0..1).expect("fits"), vec![1.0, 2.0, 3.0, 4.0]);
}

/// A `.npy` format 1.0 header by hand (NumPy's documented layout): magic, version, the
/// header length, the dictionary padded with spaces to a 64-byte boundary and a newline.
fn npy_header(dict: &str) -> Vec<u8> {
    let mut h = dict.as_bytes().to_vec();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(&h);
    out
}

#[test]
fn npy_files_of_every_numpy_dtype() {
    let f = npy::write(&[2, 3], &Elements::F32(vec![1.5, -2.0, 3.25, 0.0, 7.0, -1.0]));
    // Format 1.0 pads the header so the data starts on a 64-byte boundary.
    assert_eq!((f.len() - 6 * 4) % 64, 0);
    let a = npy::parse(&f, "a.npy").expect("valid");
    assert_eq!((a.shape.clone(), a.dtype.as_str()), (vec![2, 3], "float32"));
    assert_eq!(a.values, Elements::F32(vec![1.5, -2.0, 3.25, 0.0, 7.0, -1.0]));
    // float64 (NumPy's default) and int64 narrow exactly; int8 stays int8.
    let d = npy::parse(&npy::write_f64(&[2], &[0.25, -3.0]), "d.npy").expect("float64");
    assert_eq!((d.dtype.as_str(), d.values), ("float64", Elements::F32(vec![0.25, -3.0])));
    let i8s = npy::parse(&npy::write(&[3], &Elements::I8(vec![-128, 0, 127])), "b.npy").expect("int8");
    assert_eq!(i8s.values, Elements::I8(vec![-128, 0, 127]));
    // A hand-written int64 file: header, then 5 and −1 little-endian.
    let mut i64s = npy_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }");
    i64s.extend(5i64.to_le_bytes());
    i64s.extend((-1i64).to_le_bytes());
    let a = npy::parse(&i64s, "l.npy").expect("int64");
    assert_eq!((a.dtype.as_str(), a.values), ("int64", Elements::I32(vec![5, -1])));
    // One beyond ±2³¹ is refused, not wrapped.
    let n = i64s.len();
    i64s[n - 8..].copy_from_slice(&(1i64 << 40).to_le_bytes());
    let e = npy::parse(&i64s, "big.npy").expect_err("too large");
    assert!(e.to_string().contains("value 1 does not fit a 32-bit integer"), "{e}");
    // Fortran order ([[1, 2, 3], [4, 5, 6]] stored column by column) is read in C order.
    let mut ft = npy_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }");
    for v in [1f32, 4.0, 2.0, 5.0, 3.0, 6.0] {
        ft.extend(v.to_le_bytes());
    }
    assert_eq!(npy::parse(&ft, "f.npy").expect("fortran").values, Elements::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let e = npy::parse(&f[..f.len() - 4], "cut.npy").expect_err("short");
    assert_eq!(e.to_string(), "cut.npy: shape [2, 3] of float32 needs 24 data bytes, the file has 20");
    let e = npy::parse(b"not numpy", "x.npy").expect_err("magic");
    assert!(e.to_string().contains("missing \\x93NUMPY magic"), "{e}");
    // NaN is data no model can take: refused where it is read.
    let e = npy::parse(&npy::write(&[2], &Elements::F32(vec![0.0, f32::NAN])), "n.npy").expect_err("nan");
    assert!(e.to_string().contains("value 1 is NaN"), "{e}");
}

#[test]
fn labels_targets_and_their_checks() {
    let x = || array(&[3, 2], Elements::U8(vec![0; 6]));
    let ds = Dataset::from_arrays(x(), Some(array(&[3], Elements::I32(vec![0, 2, 1]))), "c").expect("classes");
    assert_eq!(ds.labels(), Some(&[0u32, 2, 1][..]));
    let e = ds.check_classes(2, "model `m`").expect_err("class 2 of 2");
    assert!(e.to_string().contains("label 1 is class 2, but model `m` has 2 classes"), "{e}");
    let ds = Dataset::from_arrays(x(), Some(array(&[3, 1], Elements::F32(vec![0.5, 1.0, 2.0]))), "r").expect("targets");
    assert_eq!(ds.targets, Targets::Values { per: 1, data: vec![0.5, 1.0, 2.0] });
    let e = Dataset::from_arrays(x(), Some(array(&[3], Elements::I8(vec![0, -1, 1]))), "n").expect_err("negative");
    assert!(e.to_string().contains("label 1 is -1"), "{e}");
    let e = Dataset::from_arrays(x(), Some(array(&[2], Elements::U8(vec![0, 1]))), "m").expect_err("2 for 3");
    assert!(e.to_string().contains("3 samples but the labels have shape [2]"), "{e}");
}

/// Every metric on two samples of three outputs, worked by hand.
#[test]
fn metrics_by_hand() {
    let x = array(&[2, 1], Elements::F32(vec![0.0, 0.0]));
    let ds = Dataset::from_arrays(x.clone(), Some(array(&[2], Elements::U8(vec![2, 0]))), "d").expect("valid");
    let out = [0.1, 0.2, 0.7, 0.5, 0.3, 0.2];
    let reference = [0.0, 0.2, 0.8, 0.1, 0.6, 0.3];
    let with_ref = Against { reference: Some(&reference), inputs: None };
    let s = |m| score(m, &out, 2, &ds, with_ref).expect("scores");
    // Top-1: sample 0 picks 2 (label 2), sample 1 picks 0 (label 0).
    assert_eq!(s(Metric::Top1), 1.0);
    assert_eq!(s(Metric::Top5), 1.0);
    // Agreement: sample 0 both pick 2; sample 1 picks 0, the reference 1.
    assert_eq!(s(Metric::Agreement), 0.5);
    // SQNR: Σref² = 0.64+0.04+0.01+0.36+0.09 = 1.14; Σ(out−ref)² = 0.01+0+0.01+0.16+0.09+0.01 = 0.28.
    assert!((s(Metric::Sqnr) - 10.0 * (1.14f64 / 0.28).log10()).abs() < 1e-5);
    // Cosine of (0.1,0.2,0.7)·(0,0.2,0.8) and (0.5,0.3,0.2)·(0.1,0.6,0.3), averaged.
    let cos = |a: [f64; 3], b: [f64; 3]| {
        let d: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        d / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt())
    };
    let want = (cos([0.1, 0.2, 0.7], [0.0, 0.2, 0.8]) + cos([0.5, 0.3, 0.2], [0.1, 0.6, 0.3])) / 2.0;
    assert!((s(Metric::Cosine) - want).abs() < 1e-6);
    // MSE against targets: ((1−0.5)² + (3−1)²)/2 on one output per sample.
    let t = Dataset::from_arrays(x, Some(array(&[2], Elements::F32(vec![0.5, 1.0]))), "t").expect("valid");
    assert_eq!(score(Metric::Mse, &[1.0, 3.0], 2, &t, Against::default()).expect("mse"), 2.125);
    // An autoencoder: MSE of the output against its input.
    let unl = Dataset::from_arrays(array(&[1, 2], Elements::F32(vec![0.0, 0.0])), None, "u").expect("valid");
    let a = Against { reference: None, inputs: Some(&[1.0, 2.0]) };
    assert_eq!(score(Metric::Mse, &[1.5, 2.0], 1, &unl, a).expect("mse"), 0.125);
    // Without labels, top-1 says what to use instead.
    let e = score(Metric::Top1, &[1.0, 2.0], 1, &unl, Against::default()).expect_err("no labels");
    assert!(e.to_string().contains("has none (try --metric agreement or sqnr)"), "{e}");
    assert_eq!(Metric::default_for(&unl), Metric::Agreement);
}

/// A small deterministic generator (xorshift64*), so the sums below need no crate.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.max(1);
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn exact_sum_is_the_correctly_rounded_sum_in_any_order() {
    // Values k·2⁻²⁰ with |k| < 2⁵³ (exact in f64) of every magnitude: their exact sum
    // is an i128 multiple of 2⁻²⁰, which `as f64` rounds to nearest, ties to even.
    let mut next = xorshift(7);
    for round in 0..200 {
        let len = 1 + (next() % 40) as usize;
        let ks: Vec<i64> = (0..len)
            .map(|_| {
                let bits = next() % 54;
                let k = (next() >> (64 - bits.max(1))) as i64;
                if next().is_multiple_of(2) {
                    -k
                } else {
                    k
                }
            })
            .collect();
        let scale = (-20f64).exp2();
        let exact = ks.iter().map(|k| i128::from(*k)).sum::<i128>() as f64 * scale;
        let mut s = ExactSum::default();
        ks.iter().for_each(|k| s.add(*k as f64 * scale));
        assert_eq!(s.value(), exact, "round {round}: {ks:?}");
        // Reversed, and split into two halves merged: the same value.
        let mut r = ExactSum::default();
        ks.iter().rev().for_each(|k| r.add(*k as f64 * scale));
        assert_eq!(r.value(), exact, "round {round} reversed");
        let cut = (next() as usize) % (len + 1);
        let (mut a, mut b) = (ExactSum::default(), ExactSum::default());
        ks[..cut].iter().for_each(|k| a.add(*k as f64 * scale));
        ks[cut..].iter().for_each(|k| b.add(*k as f64 * scale));
        b.merge(&a);
        assert_eq!(b.value(), exact, "round {round} split at {cut}");
    }
    // Cancellation a running f64 sum loses: 10¹⁶ + 1 − 10¹⁶ = 1 (naively 0).
    let mut s = ExactSum::default();
    [1e16, 1.0, -1e16].into_iter().for_each(|x| s.add(x));
    assert_eq!(s.value(), 1.0);
    // Ten 0.1s: the exact sum of the ten doubles rounds to 1 (a running sum gives
    // 0.9999999999999999).
    let mut t = ExactSum::default();
    (0..10).for_each(|_| t.add(0.1));
    assert_eq!(t.value(), 1.0);
    // A non-finite value dominates and survives JSON.
    t.add(f64::INFINITY);
    let back: ExactSum = serde_json::from_str(&serde_json::to_string(&t).expect("json")).expect("parses");
    assert_eq!(back.value(), f64::INFINITY);
}

#[test]
fn tallies_of_parts_merge_to_the_score_of_the_whole() {
    // 9 samples of 4 outputs; every metric scored whole and in parts (2 + 3 + 4).
    let mut next = xorshift(3);
    let (n, per) = (9, 4);
    let mut f = || ((next() % 2001) as f32 - 1000.0) / 317.0;
    let out: Vec<f32> = (0..n * per).map(|_| f()).collect();
    let reference: Vec<f32> = (0..n * per).map(|_| f()).collect();
    let labels: Vec<u8> = (0..n as u8).map(|i| i % per as u8).collect();
    let x = array(&[n, 1], Elements::F32(vec![0.0; n]));
    let ds = Dataset::from_arrays(x.clone(), Some(array(&[n], Elements::U8(labels))), "d").expect("valid");
    let targets = Dataset::from_arrays(x, Some(array(&[n, per], Elements::F32(reference.clone()))), "t").expect("t");
    for metric in Metric::ALL {
        let d = if metric == Metric::Mse { &targets } else { &ds };
        let against = Against { reference: Some(&reference), inputs: None };
        let whole = score(metric, &out, n, d, against).expect("whole");
        let mut merged = None::<npu_data::metrics::Tally>;
        let mut start = 0;
        for len in [2, 3, 4] {
            let part = d.slice(start, len);
            let r = &reference[start * per..(start + len) * per];
            let a = Against { reference: Some(r), inputs: None };
            let t = tally(metric, &out[start * per..(start + len) * per], len, &part, a).expect("part");
            match &mut merged {
                Some(m) => m.merge(&t).expect("same metric"),
                None => merged = Some(t),
            }
            start += len;
        }
        let merged = merged.expect("three parts");
        assert_eq!(merged.samples, n);
        assert_eq!(merged.value(), whole, "{metric}");
    }
    // The SQNR by its formula, 10·log10(Σ ref² / Σ (out − ref)²).
    let sig: f64 = reference.iter().map(|r| f64::from(*r).powi(2)).sum();
    let noise: f64 = out.iter().zip(&reference).map(|(o, r)| (f64::from(*o) - f64::from(*r)).powi(2)).sum();
    let sqnr = score(Metric::Sqnr, &out, n, &ds, Against { reference: Some(&reference), inputs: None }).expect("s");
    assert!((sqnr - 10.0 * (sig / noise).log10()).abs() < 1e-9);
    // Tallies of different metrics do not merge.
    let a = tally(Metric::Top1, &out, n, &ds, Against::default()).expect("top1");
    let mut b = tally(Metric::Sqnr, &out, n, &ds, Against { reference: Some(&reference), inputs: None }).expect("s");
    assert!(b.merge(&a).is_err());
}

/// A PNG of `w × h` RGB pixels, pixel (x, y) = `f(x, y)`.
fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encodes");
    out.into_inner()
}

/// Image folders: classes in sorted order, channels-last samples, the centre crop cut
/// where it should be, resize to the shorter side (a uniform image stays uniform, the
/// aspect kept), BGR order, and images of different sizes refused by name.
#[test]
fn image_folders_decode_crop_resize_and_reorder_channels() {
    use npu_datafiles::images::{folder, Channels, ImageOptions};
    // 4×4, pixel (x, y) = (10x + y, 100, 7): the central 2×2 is x, y ∈ {1, 2}.
    let grid = png(4, 4, |x, y| [(10 * x + y) as u8, 100, 7]);
    let plain = png(4, 4, |_, _| [50, 60, 70]);
    let classes = vec![
        ("zebra".to_string(), vec![("a.png".to_string(), plain.clone())]),
        ("ant".to_string(), vec![("b.png".to_string(), grid.clone()), ("a.png".to_string(), plain.clone())]),
    ];
    let crop = ImageOptions { channels: None, resize: None, crop: Some(2) };
    let ds = folder(classes.clone(), &crop, "pets").expect("decodes");
    assert_eq!(
        (ds.shape.clone(), ds.class_names.clone()),
        (vec![2, 2, 3], vec!["ant".to_string(), "zebra".to_string()])
    );
    assert_eq!((ds.labels(), ds.layout), (Some(&[0u32, 0, 1][..]), Some(Layout::Nhwc)));
    // Sample 1 is ant/b.png (files sorted): rows y = 1, 2; columns x = 1, 2.
    let want: Vec<u8> =
        [(1, 1), (2, 1), (1, 2), (2, 2)].iter().flat_map(|&(x, y)| [(10 * x + y) as u8, 100, 7]).collect();
    assert_eq!(ds.image(1), Some(&want[..]));
    // BGR swaps the first and last channel.
    let bgr = ImageOptions { channels: Some(Channels::Bgr), ..crop };
    let ds = folder(classes.clone(), &bgr, "pets").expect("decodes");
    assert_eq!(&ds.image(0).expect("u8")[..3], &[70, 60, 50]);
    // Resize 8×4 to a shorter side of 2: 4×2, still uniform; gray decodes one channel.
    let wide = png(8, 4, |_, _| [90, 90, 90]);
    let gray = ImageOptions { channels: Some(Channels::Gray), resize: Some(2), crop: None };
    let ds = folder(vec![("c".into(), vec![("w.png".into(), wide)])], &gray, "w").expect("decodes");
    assert_eq!((ds.shape.clone(), ds.image(0).map(<[u8]>::to_vec)), (vec![2, 4, 1], Some(vec![90; 8])));
    // Different sizes without resize/crop: the second file is named.
    let odd = png(3, 5, |_, _| [0, 0, 0]);
    let mixed = vec![("c".to_string(), vec![("a.png".to_string(), plain), ("b.png".to_string(), odd)])];
    let e = folder(mixed, &ImageOptions::default(), "set").expect_err("two sizes");
    assert!(e.to_string().starts_with("set/c/b.png: is 3×5 but set/c/a.png is 4×4"), "{e}");
    // A crop larger than the image, and a file that is not an image.
    let e = folder(classes, &ImageOptions { crop: Some(5), ..crop }, "p").expect_err("crop");
    assert!(e.to_string().contains("cannot cut a 5×5 centre from a 4×4 image"), "{e}");
    let bad = vec![("c".to_string(), vec![("x.png".to_string(), b"not a png".to_vec())])];
    let e = folder(bad, &ImageOptions::default(), "q").expect_err("not an image");
    assert!(e.to_string().starts_with("q/c/x.png: cannot decode the image"), "{e}");
}

/// Data-set descriptions: `Some` may be left out, unknown fields are refused with their
/// place, and the preprocessing they state overrides the model's field by field.
#[test]
fn data_set_descriptions() {
    use npu_datafiles::spec::Spec;
    let s = Spec::from_ron("(inputs: \"x.npy\", layout: Nhwc, mean: [0.5, 0.4, 0.3], classes: 3)", "d.ron")
        .expect("parses");
    assert_eq!((s.layout, s.classes, s.labels.clone()), (Some(Layout::Nhwc), Some(3), None));
    let p = s.overrides().apply(&Preprocess::default());
    assert_eq!((p.mean.clone(), p.std.clone(), p.layout), (vec![0.5, 0.4, 0.3], vec![0.3530], Layout::Nhwc));
    let e = Spec::from_ron("(inputs: \"x.npy\", lables: \"y.npy\")", "d.ron").expect_err("typo");
    assert!(e.to_string().starts_with("d.ron: 1:") && e.to_string().contains("lables"), "{e}");
    let e = Spec::from_ron("(inputs: \"x.npy\", classes: 0)", "d.ron").expect_err("no classes");
    assert!(e.to_string().contains("`classes` must be at least 1"), "{e}");
}
