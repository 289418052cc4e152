//! Data files: IDX images and labels (gzip or raw), `.npy` arrays, preprocessing.

use npu_data::npy;
use npu_data::{parse_idx, write_idx, Dataset, Preprocess};
use npu_zoo::{fashion_mnist_test, fashion_mnist_train_subset};

#[test]
fn embedded_sets_have_the_documented_sizes_and_balance() {
    let test = fashion_mnist_test().expect("embedded test set");
    assert_eq!((test.len(), test.rows, test.cols), (10_000, 28, 28));
    // The split holds 1,000 test images per class (shared/datasets/fashion-mnist/README.md).
    for class in 0..10u8 {
        assert_eq!(test.labels.iter().filter(|l| **l == class).count(), 1000, "class {class}");
    }
    let train = fashion_mnist_train_subset().expect("embedded subset");
    assert_eq!(train.len(), 10_000);
    assert!(train.labels.iter().all(|l| *l < 10));
}

#[test]
fn idx_round_trip_and_errors() {
    let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
    let images = write_idx(&[2, 3, 4], &pixels);
    let labels = write_idx(&[2], &[7, 1]);
    let ds = Dataset::from_idx(&images, &labels, "mem").expect("valid");
    assert_eq!((ds.rows, ds.cols, ds.labels.clone()), (3, 4, vec![7, 1]));
    assert_eq!(ds.image(1), &pixels[12..]);

    let e = parse_idx(&images[..images.len() - 1], "cut.idx").expect_err("short");
    assert_eq!(e.to_string(), "cut.idx: dimensions [2, 3, 4] need 24 bytes of data, the file has 23");
    let e = parse_idx(b"PK\x03\x04zip", "a.zip").expect_err("not idx");
    assert!(e.to_string().starts_with("a.zip: not an IDX file"), "{e}");
    let e = parse_idx(&[0x1f, 0x8b, 0x08, 0, 1, 2], "bad.gz").expect_err("corrupt gzip");
    assert!(e.to_string().starts_with("bad.gz: corrupt gzip stream"), "{e}");
    let e = Dataset::from_idx(&images, &write_idx(&[3], &[1, 2, 3]), "pair").expect_err("counts differ");
    assert_eq!(e.to_string(), "pair: 2 images but 3 labels");
}

#[test]
fn preprocessing_formula() {
    let p = Preprocess { scale: 1.0 / 255.0, mean: 0.5, std: 0.25, layout: Default::default() };
    // 255 → (1 − 0.5)/0.25 = 2; 0 → −2.
    assert_eq!(p.apply(&[255, 0]), vec![2.0, -2.0]);
    assert!(Preprocess { std: 0.0, ..p }.validate().is_err());
}

#[test]
fn npy_round_trip_and_errors() {
    let data = [1.5, -2.0, 3.25, 0.0, 7.0, -1.0];
    let bytes = npy::write(&[2, 3], npy::Dtype::F32, &data);
    // The header is padded so the data starts on a 64-byte boundary (format 1.0).
    assert_eq!((bytes.len() - 6 * 4) % 64, 0);
    let a = npy::parse(&bytes, "a.npy").expect("valid");
    assert_eq!((a.shape.clone(), a.dtype, a.data.clone()), (vec![2, 3], npy::Dtype::F32, data.to_vec()));
    let i8s = npy::parse(&npy::write(&[3], npy::Dtype::I8, &[-128.0, 0.0, 127.0]), "b.npy").expect("valid");
    assert_eq!(i8s.data, vec![-128.0, 0.0, 127.0]);
    let e = npy::parse(&bytes[..bytes.len() - 4], "cut.npy").expect_err("short");
    assert_eq!(e.to_string(), "cut.npy: shape [2, 3] of <f4 needs 24 data bytes, the file has 20");
    let e = npy::parse(b"not numpy", "x.npy").expect_err("magic");
    assert!(e.to_string().contains("missing \\x93NUMPY magic"), "{e}");
}
