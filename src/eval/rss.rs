//! Peak resident memory of this process (Linux): the kernel's high-water mark
//! `VmHWM`, reset by writing `5` to `/proc/self/clear_refs`.

/// Resets the high-water mark to the current resident size; `Err` says why not.
pub fn reset_peak() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("peak RSS needs Linux /proc".into());
    }
    std::fs::write("/proc/self/clear_refs", b"5")
        .map_err(|e| format!("cannot reset peak RSS (/proc/self/clear_refs: {e})"))
}

/// `VmHWM` in bytes, if the kernel reports it.
pub fn peak_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn peak_is_reported_and_resets() {
        let before = super::peak_bytes().expect("VmHWM");
        assert!(before > 0);
        if super::reset_peak().is_ok() {
            // After a reset the peak is the current size: it cannot have grown
            // past what it was before plus this test's allocations.
            let after = super::peak_bytes().unwrap();
            assert!(after <= before + (64 << 20));
        }
    }
}
