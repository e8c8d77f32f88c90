//! Process memory readings for memory benchmarks (Linux `/proc`; `None` elsewhere).
//!
//! The peak resident set size (`VmHWM`) can be reset with [`reset_peak_rss`], so one process can measure
//! several configurations side by side.

fn status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Current resident set size in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Peak resident set size in bytes since start or the last [`reset_peak_rss`].
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// Resets the peak to the current resident size (writes `5` to `/proc/self/clear_refs`). Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_follows_an_allocation_and_resets() {
        let (Some(_), true) = (super::peak_rss_bytes(), super::reset_peak_rss()) else {
            return; // not Linux, or clear_refs not permitted
        };
        let before = super::peak_rss_bytes().unwrap();
        let big = vec![1u8; 64 << 20];
        let touched: u64 = big.iter().step_by(4096).map(|&b| b as u64).sum();
        let after = super::peak_rss_bytes().unwrap();
        assert!(touched > 0);
        assert!(after >= before + (48 << 20), "{before} -> {after}");
        drop(big);
        assert!(super::reset_peak_rss());
        assert!(super::peak_rss_bytes().unwrap() < after);
    }
}
