//! Element views: RESHAPEs to ranks the IR does not hold (5-D) and TILEs, followed as
//! index maps over an image's elements in TFLite's `H, W, C` order until a RESHAPE back
//! to an image whose every pixel is an input pixel — Keras 3's `UpSampling2D`
//! (`[1,H,W,C] → [1,H,1,W,C] → TILE → [1,2H,W,1,C] → TILE → [1,2H,2W,C]`) — which becomes
//! a pixel gather.

use super::{to_usize, Build, Result, TOp, RESHAPE, TILE};

/// Some elements of an image activation, arranged in `dims` (TFLite's, batch included).
#[derive(Debug, Clone)]
pub(crate) struct View {
    /// The image activation's tensor.
    base: i32,
    /// Shape of the view.
    dims: Vec<usize>,
    /// For each element of the view (row-major), its element of the base in `H, W, C`
    /// order.
    map: Vec<usize>,
}

/// Largest number of elements a view follows.
const MAX_VIEW: usize = 1 << 24;

impl Build<'_> {
    /// Whether operator `op` reads or makes a view (handled by [`Self::view_op`]).
    pub(crate) fn is_view_op(&self, op: &TOp) -> bool {
        let input_view = op.inputs.first().is_some_and(|i| self.views.contains_key(i));
        let out_rank = op.outputs.first().and_then(|&o| self.tensor(o)).map_or(0, |t| t.shape.len());
        match op.code {
            TILE => true,
            RESHAPE => input_view || out_rank > 4,
            _ => false,
        }
    }

    /// A RESHAPE or TILE on views; a RESHAPE from a view to an image becomes a gather.
    pub(crate) fn view_op(&mut self, k: usize, op: &TOp) -> Result<()> {
        let ti = op.inputs.first().copied().unwrap_or(-1);
        let out = op.outputs.first().copied().unwrap_or(-1);
        let odims: Vec<usize> = self
            .tensor(out)
            .map(|t| t.shape.iter().map(|&d| to_usize(d).unwrap_or(0)).collect())
            .ok_or_else(|| self.op_err(k, op, "has no output tensor"))?;
        let view = match self.views.get(&ti) {
            Some(v) => v.clone(),
            None => {
                // A view of a whole image activation.
                let a = self.act(k, op, 0)?;
                let a = self.plain(k, op, &a)?;
                let s = self.shape_of(a.id);
                if a.hwc_flat.is_some() || s.len() != 3 || s.iter().product::<usize>() > MAX_VIEW {
                    return Err(self.op_err(
                        k,
                        op,
                        format!("reshapes or tiles per-sample {s:?}; images are supported"),
                    ));
                }
                let n = s.iter().product();
                View { base: ti, dims: vec![1, s[1], s[2], s[0]], map: (0..n).collect() }
            }
        };
        let next = match op.code {
            TILE => {
                let m = self.ints(k, op, 1)?.ok_or_else(|| self.op_err(k, op, "has no multiples"))?;
                if m.len() != view.dims.len() || m.iter().any(|v| *v < 1) || m[0] != 1 {
                    return Err(self.op_err(k, op, format!("multiples {m:?} for {:?} (the batch kept)", view.dims)));
                }
                let dims: Vec<usize> = view.dims.iter().zip(&m).map(|(d, t)| d * *t as usize).collect();
                if dims != odims || dims.iter().product::<usize>() > MAX_VIEW {
                    return Err(self.op_err(k, op, format!("tiles {:?} to {odims:?}", view.dims)));
                }
                let total: usize = dims.iter().product();
                let mut map = Vec::with_capacity(total);
                for flat in 0..total {
                    // The source element: each coordinate modulo the input's extent.
                    let (mut rem, mut src, mut stride) = (flat, 0, 1);
                    let mut idx = vec![0; dims.len()];
                    for d in (0..dims.len()).rev() {
                        idx[d] = rem % dims[d] % view.dims[d];
                        rem /= dims[d];
                    }
                    for d in (0..dims.len()).rev() {
                        src += idx[d] * stride;
                        stride *= view.dims[d];
                    }
                    map.push(view.map[src]);
                }
                View { base: view.base, dims, map }
            }
            _ => {
                if odims.iter().product::<usize>() != view.map.len() {
                    return Err(self.op_err(k, op, format!("reshapes {:?} to {odims:?}", view.dims)));
                }
                View { base: view.base, dims: odims.clone(), map: view.map }
            }
        };
        match next.dims[..] {
            [1, oh, ow, c] if op.code == RESHAPE => self.view_to_image(k, op, next, [oh, ow, c]),
            _ => {
                self.views.insert(out, next);
                Ok(())
            }
        }
    }

    /// A view arranged as an image: each output pixel must be one input pixel (its
    /// channels in order), and the pixels a product of a row map and a column map.
    // Both maps are filled from the same 2-D walk over output pixels.
    #[allow(clippy::needless_range_loop)]
    fn view_to_image(&mut self, k: usize, op: &TOp, v: View, [oh, ow, c]: [usize; 3]) -> Result<()> {
        let base = self.acts.get(to_usize(v.base).unwrap_or(usize::MAX)).cloned().flatten();
        let base = base.ok_or_else(|| self.op_err(k, op, "the reshaped tensor is not an activation"))?;
        let s = self.shape_of(base.id);
        let (bc, w) = (s[0], s[2]);
        let not_gather =
            || self.op_err(k, op, "moves elements across pixels or channels; only pixel repeats are supported");
        if bc != c {
            return Err(not_gather());
        }
        let (mut rows, mut cols) = (vec![usize::MAX; oh], vec![usize::MAX; ow]);
        for y in 0..oh {
            for x in 0..ow {
                let at = (y * ow + x) * c;
                let q = v.map[at];
                if !q.is_multiple_of(c) || (0..c).any(|ch| v.map[at + ch] != q + ch) {
                    return Err(not_gather());
                }
                let (by, bx) = (q / c / w, q / c % w);
                for (slot, want) in [(&mut rows[y], by), (&mut cols[x], bx)] {
                    if *slot == usize::MAX {
                        *slot = want;
                    } else if *slot != want {
                        return Err(not_gather());
                    }
                }
            }
        }
        let (_, out_t) = self.out_tensor(op).ok_or_else(|| self.op_err(k, op, "has no output tensor"))?;
        let out_t = out_t.clone();
        let qout = if self.int8 { Some(self.qparams(&out_t).map_err(|m| self.op_err(k, op, m))?) } else { None };
        let name = out_t.name.clone();
        self.gather_pixels(k, op, &name, &base, rows, cols, &[c, oh, ow], qout)
    }
}
