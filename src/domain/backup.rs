//! Online backups: what a backup may be called.

/// The directory name of a backup: `requested` when it is a plain name (1 to 64 of ASCII
/// letters, digits, '.', '_' and '-', not starting with '.'), so it can never leave the backup
/// directory; `backup-<now_ms>` when empty.
pub fn name(requested: &str, now_ms: u64) -> Result<String, &'static str> {
    if requested.is_empty() {
        return Ok(format!("backup-{now_ms}"));
    }
    let plain = requested.len() <= 64
        && !requested.starts_with('.')
        && requested.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if plain {
        Ok(requested.to_owned())
    } else {
        Err("name: 1 to 64 of letters, digits, '.', '_', '-', not starting with '.'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_paths_do_not() {
        assert_eq!(name("", 42).unwrap(), "backup-42");
        assert_eq!(name("nightly-2026.12.02_a", 0).unwrap(), "nightly-2026.12.02_a");
        for bad in ["..", ".hidden", "a/b", "../data", "/abs", "a b", "ü", &"x".repeat(65)] {
            assert!(name(bad, 0).is_err(), "{bad:?}");
        }
        assert!(name(&"x".repeat(64), 0).is_ok());
    }
}
