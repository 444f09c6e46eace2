//! What the measurement probes share (included with `#[path]`).

/// The median of `v` (sorted in place; the upper middle of an even count).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
