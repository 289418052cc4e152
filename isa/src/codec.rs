//! Weight compression formats of the DMA-in decompressor (`ldz`): one definition of
//! each stream, used by the compiler to encode and by the simulator to decode.
//!
//! All three code signed 8-bit values and gain on zeros and small magnitudes — what
//! pruning and quantization leave:
//!
//! - [`Codec::Bitmask`]: `ceil(n/8)` presence bytes (bit `i % 8` of byte `i / 8` set when
//!   value `i` is non-zero), then the non-zero values in order. `n/8 + nnz` bytes.
//! - [`Codec::Zrl`]: pairs `(run, value)`: `run` zeros then `value`; `value = 0` makes a
//!   pair stand for `run + 1` zeros (long runs and the trailing zeros). `2·pairs` bytes.
//! - [`Codec::Rice`]: byte 0 is `k ≤ 7`; then, least significant bit first, each value's
//!   zigzag code `u` (0, −1, 1, −2, … → 0, 1, 2, 3, …) as `u >> k` one-bits, a zero bit
//!   and the `k` low bits of `u`. The encoder picks the `k` giving the shortest stream.

use crate::error::{Error, Result};
use crate::fields::Codec;

fn zigzag(v: i8) -> u32 {
    let v = i32::from(v);
    ((v << 1) ^ (v >> 31)) as u32
}

fn unzigzag(u: u32) -> i8 {
    ((u >> 1) as i32 ^ -((u & 1) as i32)) as i8
}

/// A little-endian bit writer (least significant bit first).
struct Bits {
    out: Vec<u8>,
    acc: u64,
    used: u32,
}

impl Bits {
    /// Appends the low `n ≤ 32` bits of `v`.
    fn put(&mut self, v: u32, n: u32) {
        self.acc |= u64::from(v) << self.used;
        self.used += n;
        while self.used >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.used -= 8;
        }
    }
    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

fn rice(values: &[i8], k: u32) -> Vec<u8> {
    let mut b = Bits { out: vec![k as u8], acc: 0, used: 0 };
    for &v in values {
        let u = zigzag(v);
        let mut q = u >> k;
        while q >= 32 {
            b.put(u32::MAX, 32);
            q -= 32;
        }
        b.put((1u32 << q) - 1, q + 1); // q ones, then a zero
        b.put(u & ((1 << k) - 1), k);
    }
    b.finish()
}

/// The `k` giving the shortest Rice stream, from the histogram of zigzag codes.
fn best_k(values: &[i8]) -> u32 {
    let mut hist = [0u64; 256];
    for &v in values {
        hist[zigzag(v) as usize] += 1;
    }
    (0..8u32)
        .min_by_key(|&k| hist.iter().enumerate().map(|(u, c)| c * u64::from((u as u32 >> k) + 1 + k)).sum::<u64>())
        .unwrap_or(0)
}

/// The compressed stream of `values`.
pub fn encode(values: &[i8], codec: Codec) -> Vec<u8> {
    match codec {
        Codec::Bitmask => {
            let mut out = vec![0u8; values.len().div_ceil(8)];
            for (i, v) in values.iter().enumerate() {
                if *v != 0 {
                    out[i / 8] |= 1 << (i % 8);
                }
            }
            out.extend(values.iter().filter(|v| **v != 0).map(|v| *v as u8));
            out
        }
        Codec::Zrl => {
            let mut out = Vec::new();
            let mut run = 0usize;
            for &v in values {
                if v == 0 {
                    run += 1;
                    continue;
                }
                while run > 255 {
                    out.extend([255, 0]); // 256 zeros
                    run -= 256;
                }
                out.extend([run as u8, v as u8]);
                run = 0;
            }
            while run > 0 {
                let r = run.min(256);
                out.extend([(r - 1) as u8, 0]);
                run -= r;
            }
            out
        }
        Codec::Rice => rice(values, best_k(values)),
    }
}

/// Decodes a stream into exactly `n` values; an error names what is wrong.
pub fn decode(bytes: &[u8], n: usize, codec: Codec) -> Result<Vec<i8>> {
    let bad = |m: String| Error::Codec(format!("{codec} stream: {m}"));
    let mut out = Vec::with_capacity(n);
    match codec {
        Codec::Bitmask => {
            let mask = n.div_ceil(8);
            if bytes.len() < mask {
                return Err(bad(format!("{} bytes cannot hold the {mask}-byte presence mask", bytes.len())));
            }
            let mut vals = bytes[mask..].iter();
            for i in 0..n {
                if bytes[i / 8] >> (i % 8) & 1 == 1 {
                    let v = *vals.next().ok_or_else(|| bad(format!("ends before value {i}")))? as i8;
                    if v == 0 {
                        return Err(bad(format!("value {i} is marked present but is 0")));
                    }
                    out.push(v);
                } else {
                    out.push(0);
                }
            }
            if vals.next().is_some() {
                return Err(bad(format!(
                    "{} bytes left after {n} values",
                    bytes.len() - mask - out.iter().filter(|v| **v != 0).count()
                )));
            }
        }
        Codec::Zrl => {
            if !bytes.len().is_multiple_of(2) {
                return Err(bad(format!("odd length {}", bytes.len())));
            }
            for (p, pair) in bytes.chunks_exact(2).enumerate() {
                let (run, v) = (usize::from(pair[0]), pair[1] as i8);
                let zeros = if v == 0 { run + 1 } else { run };
                if out.len() + zeros + usize::from(v != 0) > n {
                    return Err(bad(format!("pair {p} runs past {n} values")));
                }
                out.extend(std::iter::repeat_n(0, zeros));
                if v != 0 {
                    out.push(v);
                }
            }
        }
        Codec::Rice => {
            let k = u32::from(*bytes.first().ok_or_else(|| bad("empty".into()))?);
            if k > 7 {
                return Err(bad(format!("parameter k = {k} (at most 7)")));
            }
            let total = (bytes.len() - 1) * 8;
            let mut pos = 0usize;
            let bit = |pos: &mut usize| -> Result<bool> {
                if *pos >= total {
                    return Err(bad(format!("ends inside value {}", out.len())));
                }
                let b = bytes[1 + *pos / 8] >> (*pos % 8) & 1 == 1;
                *pos += 1;
                Ok(b)
            };
            let mut vals = Vec::with_capacity(n);
            while vals.len() < n {
                let mut q = 0u32;
                while bit(&mut pos)? {
                    q += 1;
                    if q > 255 {
                        return Err(bad(format!("value {} has a quotient over 255", vals.len())));
                    }
                }
                let mut r = 0u32;
                for i in 0..k {
                    r |= u32::from(bit(&mut pos)?) << i;
                }
                let u = (q << k) | r;
                if u > 255 {
                    return Err(bad(format!("value {} codes {u} (at most 255)", vals.len())));
                }
                vals.push(unzigzag(u));
            }
            if total - pos >= 8 {
                return Err(bad(format!("{} whole bytes left after {n} values", (total - pos) / 8)));
            }
            out = vals;
        }
    }
    if out.len() != n {
        return Err(bad(format!("decodes to {} values, not {n}", out.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn streams_are_as_documented() {
        let v = [0i8, 5, 0, 0, -1, 0, 0, 0, 0, 7];
        // Bitmask: bits 1, 4 (byte 0 = 0b0001_0010), bit 9 (byte 1 = 0b10), then 5, −1, 7.
        assert_eq!(encode(&v, Codec::Bitmask), [0x12, 0x02, 5, 0xff, 7]);
        // ZRL: 1 zero then 5; 2 zeros then −1; 4 zeros then 7.
        assert_eq!(encode(&v, Codec::Zrl), [1, 5, 2, 0xff, 4, 7]);
        // 300 zeros: 256 as (255, 0), 44 as (43, 0).
        assert_eq!(encode(&[0; 300], Codec::Zrl), [255, 0, 43, 0]);
        // Rice k = 0 on [0, −1, 1]: zigzag 0, 1, 2 → "0", "10", "110" → bits 0 1 0 1 1 0.
        assert_eq!(rice(&[0, -1, 1], 0), [0, 0b0001_1010]);
        // k = 2 on [5]: zigzag 10 = 0b1010 → quotient 2 ("110"), remainder 0b10 → 0 1 1 0 1.
        assert_eq!(rice(&[5], 2), [2, 0b0001_0011]);
        // The chosen k is the one whose stream is shortest.
        let v: Vec<i8> = (0..200).map(|i| ((i * 37) % 23) as i8 - 11).collect();
        let shortest = (0..8).map(|k| rice(&v, k).len()).min().expect("k");
        assert_eq!(encode(&v, Codec::Rice).len(), shortest);
        assert_eq!(decode(&[0, 0b0001_1010], 3, Codec::Rice).expect("decodes"), [0, -1, 1]);
    }

    #[test]
    fn corrupt_streams_are_errors() {
        assert!(decode(&[0x01], 8, Codec::Bitmask).is_err(), "missing value");
        assert!(decode(&[0x01, 0], 8, Codec::Bitmask).is_err(), "present zero");
        assert!(decode(&[0x00, 9], 8, Codec::Bitmask).is_err(), "extra byte");
        assert!(decode(&[3, 0], 2, Codec::Zrl).is_err(), "runs past n");
        assert!(decode(&[3], 2, Codec::Zrl).is_err(), "odd length");
        assert!(decode(&[8, 0], 1, Codec::Rice).is_err(), "k too large");
        assert!(decode(&[0, 0xff], 1, Codec::Rice).is_err(), "ends inside a value");
        assert!(decode(&[], 1, Codec::Rice).is_err(), "empty");
    }

    proptest! {
        #[test]
        fn every_codec_round_trips(v in proptest::collection::vec(prop_oneof![3 => Just(0i8), 1 => any::<i8>(), 2 => -3i8..=3], 0..600)) {
            for c in Codec::ALL {
                let e = encode(&v, *c);
                prop_assert_eq!(decode(&e, v.len(), *c).expect("decodes"), v.clone(), "{}", c);
            }
        }
    }
}
