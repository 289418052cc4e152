//! How much npu reads, computes while importing, or plans before it refuses: the
//! process-wide [`Limits`].
//!
//! Every reader checks a declared size against these limits *before* allocating, so a
//! small corrupt or hostile file is an error naming the limit, never an abort for want of
//! memory. The defaults suit models and data sets of today's edge networks; a user with a
//! larger one raises a limit (the CLI's `--size-limit NAME=VALUE`, before any work starts).
//! They are process-wide rather than passed to every reader because they are a policy of
//! the whole run, set once by the application, like a thread count.
//!
//! | name | default | what it bounds |
//! |---|---|---|
//! | `file_bytes` | 4 GiB | bytes of one file read (a model, a data file, an image, `/dev/zero`) |
//! | `inflated_bytes` | 4 GiB | bytes a compressed stream may inflate to (gzip IDX, each `.npz` entry) |
//! | `tensor_elements` | 2²⁸ | values of one tensor: an ONNX constant (read or computed), one sample of an input or activation, a quantized value |
//! | `folded_elements` | 2²⁸ | values of all the constants computed while importing one ONNX model |
//! | `sweep_points` | 10⁶ | points of a sweep plan before filtering |

use std::sync::RwLock;

use crate::error::{Error, Result};

/// Limits on sizes; see the [module documentation](self) for what each bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one file read.
    pub file_bytes: u64,
    /// Bytes a compressed stream may inflate to.
    pub inflated_bytes: u64,
    /// Values of one tensor.
    pub tensor_elements: u64,
    /// Values of all the constants computed while importing one ONNX model.
    pub folded_elements: u64,
    /// Points of a sweep plan before filtering.
    pub sweep_points: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file_bytes: 4 << 30,
            inflated_bytes: 4 << 30,
            tensor_elements: 1 << 28,
            folded_elements: 1 << 28,
            sweep_points: 1_000_000,
        }
    }
}

/// Every limit's name and a phrase saying what it bounds, in the order of [`Limits`].
pub const NAMES: [(&str, &str); 5] = [
    ("file_bytes", "bytes of one file read"),
    ("inflated_bytes", "bytes a compressed stream may inflate to"),
    ("tensor_elements", "values of one tensor"),
    ("folded_elements", "values of all the constants computed while importing an ONNX model"),
    ("sweep_points", "points of a sweep plan before filtering"),
];

impl Limits {
    fn slot(&mut self, name: &str) -> Option<&mut u64> {
        Some(match name {
            "file_bytes" => &mut self.file_bytes,
            "inflated_bytes" => &mut self.inflated_bytes,
            "tensor_elements" => &mut self.tensor_elements,
            "folded_elements" => &mut self.folded_elements,
            "sweep_points" => &mut self.sweep_points,
            _ => return None,
        })
    }

    /// The limit called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<u64> {
        let mut copy = *self;
        copy.slot(name).map(|v| *v)
    }

    /// Applies one assignment `NAME=VALUE`, where VALUE is a whole number at least 1,
    /// optionally with a binary suffix (`Ki`, `Mi`, `Gi`, `Ti`) or written as a power
    /// of two (`2^30`); digits may be grouped with `_`.
    pub fn assign(&mut self, assignment: &str) -> Result<()> {
        let bad = |m: String| Error::Limit(format!("limit `{assignment}`: {m}"));
        let (name, value) = assignment.split_once('=').ok_or_else(|| bad("expected NAME=VALUE".into()))?;
        let value = parse_size(value.trim()).map_err(bad)?;
        let names = NAMES.map(|n| n.0).join(", ");
        let slot =
            self.slot(name.trim()).ok_or_else(|| bad(format!("no limit is called `{name}` (limits: {names})")))?;
        *slot = value;
        Ok(())
    }
}

fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let not = || format!("`{s}` is not a whole number at least 1 (e.g. 1000000, 8Gi, 2^33)");
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let value = if let Some((base, exp)) = clean.split_once('^') {
        let exp: u32 = exp.parse().map_err(|_| not())?;
        if base != "2" {
            return Err(not());
        }
        1u64.checked_shl(exp).filter(|_| exp < 64).ok_or_else(not)?
    } else {
        let (digits, shift) = match clean.len().checked_sub(2).map(|i| clean.split_at(i)) {
            Some((d, "Ki")) => (d, 10),
            Some((d, "Mi")) => (d, 20),
            Some((d, "Gi")) => (d, 30),
            Some((d, "Ti")) => (d, 40),
            _ => (clean.as_str(), 0),
        };
        let v: u64 = digits.parse().map_err(|_| not())?;
        v.checked_mul(1 << shift).ok_or_else(not)?
    };
    if value == 0 {
        return Err(not());
    }
    Ok(value)
}

static CURRENT: RwLock<Limits> = RwLock::new(Limits {
    file_bytes: 4 << 30,
    inflated_bytes: 4 << 30,
    tensor_elements: 1 << 28,
    folded_elements: 1 << 28,
    sweep_points: 1_000_000,
});

/// The limits in force.
pub fn current() -> Limits {
    *CURRENT.read().unwrap_or_else(|e| e.into_inner())
}

/// Puts `limits` in force for the whole process (an application does this once, before
/// any work).
pub fn set(limits: Limits) {
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = limits;
}

/// The values of one tensor allowed now, as a `usize` (saturating on narrow targets).
pub fn tensor_elements() -> usize {
    usize::try_from(current().tensor_elements).unwrap_or(usize::MAX)
}

/// The words an error uses for exceeding limit `name` of value `value`: "the
/// `tensor_elements` limit (268435456)", so that the user knows what to raise.
pub fn named(name: &str, value: u64) -> String {
    format!("the `{name}` limit ({value})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_defaults_are_the_default() {
        assert_eq!(current(), Limits::default());
    }

    #[test]
    fn assignments_take_plain_suffixed_and_power_of_two_values() {
        let mut l = Limits::default();
        l.assign("file_bytes=8Gi").unwrap();
        assert_eq!(l.file_bytes, 8 * 1024 * 1024 * 1024);
        l.assign("tensor_elements=2^30").unwrap();
        assert_eq!(l.tensor_elements, 1_073_741_824);
        l.assign("sweep_points=2_000_000").unwrap();
        assert_eq!(l.sweep_points, 2_000_000);
        l.assign("inflated_bytes=512Mi").unwrap();
        assert_eq!(l.inflated_bytes, 536_870_912);
        assert_eq!(l.get("folded_elements"), Some(268_435_456));
    }

    #[test]
    fn bad_assignments_say_what_is_wrong() {
        let mut l = Limits::default();
        for (a, expected) in [
            ("file_bytes", "expected NAME=VALUE"),
            ("files=3", "no limit is called `files`"),
            ("file_bytes=0", "not a whole number at least 1"),
            ("file_bytes=-1", "not a whole number"),
            ("file_bytes=2^64", "not a whole number"),
            ("file_bytes=3^4", "not a whole number"),
            ("file_bytes=20000000Ti", "not a whole number"),
        ] {
            let e = l.assign(a).unwrap_err().to_string();
            assert!(e.contains(expected) && e.contains(a), "{a}: {e}");
        }
        assert_eq!(l, Limits::default(), "a refused assignment changes nothing");
    }
}
