//! Value conversions between cgroup v1 and v2 semantics, as runc does them.

use crate::error::CgroupError;

/// cpu.shares bounds of the kernel.
pub const MIN_SHARES: u64 = 2;
/// cpu.shares bounds of the kernel.
pub const MAX_SHARES: u64 = 262_144;

/// v1 cpu.shares → v2 cpu.weight: `1 + ((shares - 2) * 9999) / 262142` (0 = unset).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((s - 2) * 9999) / 262_142
}

/// v2 cpu.weight → v1 cpu.shares, the inverse of [`shares_to_weight`] (0 = unset).
pub fn weight_to_shares(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = weight.clamp(1, 10_000);
    2 + ((w - 1) * 262_142) / 9999
}

/// v1 blkio.weight (10..=1000) → v2 io.weight (1..=10000) (0 = unset).
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// OCI memory.swap (memory+swap, v1 semantics) → v2 memory.swap.max (swap only).
/// `None` = leave unchanged, `Some(-1)` = max.
pub fn swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>, CgroupError> {
    let swap = swap.unwrap_or(0);
    let memory = limit.unwrap_or(0);
    // Unlimited memory with swap unset means "both unlimited", as on v1.
    if memory == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    if swap == -1 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(None);
    }
    if memory == 0 || memory == -1 {
        return Err(CgroupError::invalid(
            "memory.swap",
            "a swap limit needs a memory limit",
        ));
    }
    if memory < 0 {
        return Err(CgroupError::invalid(
            "memory.limit",
            format!("invalid value {memory}"),
        ));
    }
    if swap < memory {
        return Err(CgroupError::invalid(
            "memory.swap",
            format!("memory+swap limit {swap} must be >= memory limit {memory}"),
        ));
    }
    Ok(Some(swap - memory))
}

/// Formats a v2 limit: negative means "max".
pub fn v2_limit(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_weight_round_trip() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // out of range shares are clamped like the kernel does
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
        for shares in [2u64, 512, 1024, 4096, 262_144] {
            let back = weight_to_shares(shares_to_weight(shares));
            // lossy (10000 buckets for 262143 values) but within one bucket
            assert!(back.abs_diff(shares) <= 27, "{shares} -> {back}");
        }
    }

    #[test]
    fn blkio_weight() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_to_v2(None, None).unwrap(), None);
        assert_eq!(swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(-1), Some(100)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(300), Some(100)).unwrap(), Some(200));
        assert_eq!(swap_to_v2(Some(100), Some(100)).unwrap(), Some(0));
        assert!(swap_to_v2(Some(50), Some(100)).is_err());
        assert!(swap_to_v2(Some(50), None).is_err());
    }
}
