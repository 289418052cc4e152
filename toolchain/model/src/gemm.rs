//! The one door to `matrixmultiply::sgemm`: every matrix is a slice with its strides,
//! checked to hold every element the strides reach before the unsafe call, so no caller
//! can make it read or write out of bounds.

/// A strided matrix view: `rows × cols`, element `(i, j)` at `i·rs + j·cs`.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

/// Row-major with `cols` columns.
pub fn row_major(cols: usize) -> Layout {
    Layout { rs: cols, cs: 1 }
}

/// Column-major with leading dimension `ld` (a row-major matrix read transposed):
/// element `(i, j)` at `j·ld + i`.
pub fn col_major(ld: usize) -> Layout {
    Layout { rs: 1, cs: ld }
}

/// Elements a `rows × cols` view with layout `l` reaches (0 for an empty view).
fn reach(rows: usize, cols: usize, l: Layout) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    (rows - 1) * l.rs + (cols - 1) * l.cs + 1
}

/// `C[m×n] = α·A[m×k]·B[k×n] + β·C`. Panics (never reads out of bounds) if a slice is
/// shorter than its view: that is a bug in the caller, whose shapes are verified.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    (m, k, n): (usize, usize, usize),
    alpha: f32,
    a: &[f32],
    la: Layout,
    b: &[f32],
    lb: Layout,
    beta: f32,
    c: &mut [f32],
    lc: Layout,
) {
    assert!(
        a.len() >= reach(m, k, la) && b.len() >= reach(k, n, lb) && c.len() >= reach(m, n, lc),
        "sgemm {m}×{k}×{n}: operand slices of {}, {} and {} elements are too short for their views",
        a.len(),
        b.len(),
        c.len()
    );
    let s = |v: usize| v as isize;
    // SAFETY: every index the kernel computes, (i·rs + j·cs) for i < rows, j < cols, is
    // below the reach checked above for each operand; `c` is borrowed exclusively.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            s(la.rs),
            s(la.cs),
            b.as_ptr(),
            s(lb.rs),
            s(lb.cs),
            beta,
            c.as_mut_ptr(),
            s(lc.rs),
            s(lc.cs),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_strided_views_and_refuses_short_slices() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]; B given transposed (column-major).
        let a = [1.0, 2.0, 3.0, 4.0];
        let bt = [5.0, 7.0, 6.0, 8.0];
        let mut c = [0.0; 4];
        sgemm((2, 2, 2), 1.0, &a, row_major(2), &bt, col_major(2), 0.0, &mut c, row_major(2));
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        let short = std::panic::catch_unwind(|| {
            let mut c = [0.0; 3];
            sgemm((2, 2, 2), 1.0, &a, row_major(2), &bt, col_major(2), 0.0, &mut c, row_major(2));
        });
        assert!(short.is_err());
    }
}
