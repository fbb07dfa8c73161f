//! The process's open files: at start the soft limit is raised to the hard one, a reserve is
//! kept back for what is not a listener's connection (storage, peers and other outgoing calls,
//! the refusals themselves), and the listeners' caps are fitted in the rest. When the
//! configured caps do not fit, every listener's cap is scaled by the same factor (but not below
//! `MIN_CAP`), and no source may then hold more than a quarter of a listener.

use super::limits::Caps;

/// No listener is squeezed below this many connections (or its configured cap, if lower).
const MIN_CAP: usize = 64;

/// Raises the soft open-file limit to the hard one; answers the soft limit in force.
pub fn raise_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// The listeners' caps as they fit in `limit` open files less `reserve`, in the same order.
pub fn fit(limit: u64, reserve: u64, wanted: &[Caps]) -> Vec<Caps> {
    let reserve = reserve.min(limit / 2);
    let budget = usize::try_from(limit - reserve).unwrap_or(usize::MAX);
    let total: usize = wanted.iter().map(|c| c.max).sum();
    if total <= budget {
        return wanted.to_vec();
    }
    wanted
        .iter()
        .map(|caps| {
            let scaled = (caps.max as u128 * budget as u128 / total as u128) as usize;
            let max = scaled.max(caps.max.min(MIN_CAP));
            Caps {
                max,
                per_source: caps.per_source.min((max / 4).max(1)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(max: usize, per_source: usize) -> Caps {
        Caps { max, per_source }
    }

    #[test]
    fn caps_that_fit_are_kept() {
        let wanted = [caps(1000, 1000), caps(100, 10)];
        assert_eq!(fit(65536, 1024, &wanted), wanted);
    }

    #[test]
    fn caps_that_do_not_fit_shrink_alike_and_one_source_gets_a_quarter_at_most() {
        let fitted = fit(
            2048,
            512,
            &[caps(16384, 256), caps(1024, 128), caps(10000, 64)],
        );
        let total: usize = fitted.iter().map(|c| c.max).sum();
        assert!(total <= 1536 + MIN_CAP, "{fitted:?}");
        assert_eq!(fitted[0].max, 16384 * 1536 / 27408);
        assert_eq!(fitted[0].per_source, fitted[0].max / 4);
        assert_eq!(fitted[1], caps(MIN_CAP, MIN_CAP / 4), "a floor");
        assert_eq!(fitted[2].per_source, 64);
    }

    #[test]
    fn a_tiny_limit_keeps_half_for_itself() {
        let fitted = fit(256, 4096, &[caps(10000, 100)]);
        assert_eq!(fitted, [caps(128, 32)]);
    }
}
