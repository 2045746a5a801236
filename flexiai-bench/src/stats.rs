//! Percentiles over a sorted `Vec` (nearest rank).

/// p50 / p99 / max (and the sample count) of a set of samples.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Summary {
    /// Number of samples.
    pub(crate) n: usize,
    /// Median.
    pub(crate) p50: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// Largest sample.
    pub(crate) max: f64,
}

/// The value at quantile `q` (0..=1) of sorted samples, nearest-rank.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Summarises samples (any order).
pub(crate) fn summarize(samples: &[f64]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Summary {
        n: sorted.len(),
        p50: quantile(&sorted, 0.50),
        p99: quantile(&sorted, 0.99),
        max: sorted.last().copied().unwrap_or(f64::NAN),
    }
}

/// Median of samples (any order).
pub(crate) fn median(samples: &[f64]) -> f64 {
    summarize(samples).p50
}
