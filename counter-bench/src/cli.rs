//! Command-line pieces both binaries read the same way: repeated flags made unique, the
//! defaults of a quick run, the length of a slice.

/// `items` without repeats, in the order first given.
pub fn unique<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// `items` sorted, without repeats; `default` when none was given.
pub fn sorted_or<T: Ord + Clone>(items: &[T], default: &[T]) -> Vec<T> {
    let mut out = if items.is_empty() {
        default.to_vec()
    } else {
        items.to_vec()
    };
    out.sort();
    out.dedup();
    out
}

/// The client counts given on the command line (sorted, without repeats), else `default`.
pub fn client_counts(given: &[u32], default: &[usize]) -> Vec<usize> {
    let given: Vec<usize> = given.iter().map(|&c| c as usize).collect();
    sorted_or(&given, default)
}

/// `--seconds`, else the default of the run, `quick` or not; an error unless positive.
pub fn seconds(given: Option<f64>, quick: f64, full: f64, is_quick: bool) -> Result<f64, String> {
    let seconds = given.unwrap_or(if is_quick { quick } else { full });
    if seconds.is_finite() && seconds > 0.0 {
        Ok(seconds)
    } else {
        Err("--seconds must be a positive number".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_keeps_the_first_order() {
        assert_eq!(unique(vec![3, 1, 3, 2, 1]), [3, 1, 2]);
        assert!(unique(Vec::<u8>::new()).is_empty());
    }

    #[test]
    fn sorted_or_falls_back_to_the_default() {
        assert_eq!(sorted_or(&[4, 1, 4], &[9]), [1, 4]);
        assert_eq!(sorted_or(&[], &[2, 1]), [1, 2]);
        assert_eq!(client_counts(&[16, 1, 16], &[1, 4]), [1, 16]);
        assert_eq!(client_counts(&[], &[1, 4]), [1, 4]);
    }

    #[test]
    fn seconds_must_be_positive() {
        assert_eq!(seconds(None, 1.0, 10.0, true), Ok(1.0));
        assert_eq!(seconds(None, 1.0, 10.0, false), Ok(10.0));
        assert_eq!(seconds(Some(2.5), 1.0, 10.0, true), Ok(2.5));
        assert!(seconds(Some(0.0), 1.0, 10.0, false).is_err());
        assert!(seconds(Some(f64::NAN), 1.0, 10.0, false).is_err());
        assert!(seconds(Some(-1.0), 1.0, 10.0, false).is_err());
    }
}
