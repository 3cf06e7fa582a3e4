//! The arithmetic of a measurement: quantiles of latencies, rates, and how the ratio of two
//! workloads varies from round to round. Pure functions, so each is tested on its own.

use std::time::Duration;

/// The `p` quantile (nearest rank) of sorted `v`; 0 when empty.
pub fn percentile(v: &[u32], p: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// `count` per second of `elapsed`, rounded to one decimal (as the JSON reports it).
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    round_to(count as f64 / elapsed.as_secs_f64(), 1)
}

/// `x` rounded to `decimals` decimal places.
pub fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// The middle of `v` (the mean of the two middle values when their number is even); `None`
/// when empty. `v` need not be sorted.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// How the per-round ratio of two workloads spread: its median, lowest and highest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The ratios `a[i] / b[i]` of the rounds both ran, and how they spread; `None` with fewer
/// than two rounds, where a spread says nothing.
pub fn round_ratios(a: &[f64], b: &[f64]) -> Option<Spread> {
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    if ratios.len() < 2 {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    Some(Spread {
        median: median(&ratios)?,
        min: ratios[0],
        max: ratios[ratios.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn rate_is_per_second_to_a_tenth() {
        assert_eq!(rate(10, Duration::from_secs(4)), 2.5);
        assert_eq!(rate(1, Duration::from_secs(3)), 0.3);
        assert_eq!(rate(2_000, Duration::from_millis(500)), 4_000.0);
    }

    #[test]
    fn round_to_keeps_the_asked_decimals() {
        assert_eq!(round_to(1.23456, 3), 1.235);
        assert_eq!(round_to(1.25, 1), 1.3);
        assert_eq!(round_to(123.4, 0), 123.0);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn round_ratios_need_two_rounds() {
        assert_eq!(round_ratios(&[2.0], &[1.0]), None);
        assert_eq!(round_ratios(&[], &[]), None);
        let s = round_ratios(&[2.0, 3.0, 1.0], &[1.0, 2.0, 1.0]).expect("three rounds");
        assert_eq!(
            s,
            Spread {
                median: 1.5,
                min: 1.0,
                max: 2.0
            }
        );
        // Only the rounds both sides ran.
        let s = round_ratios(&[1.0, 2.0, 9.0], &[1.0, 1.0]).expect("two rounds");
        assert_eq!((s.min, s.max), (1.0, 2.0));
    }
}
