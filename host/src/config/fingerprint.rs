//! SHA-256 certificate fingerprints, as the PVE GUI shows them.

/// Parses a SHA-256 fingerprint: 64 hex digits, any case, with or without `:`.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text.trim().chars().filter(|&c| c != ':').collect();
    let bad = || {
        format!(
            "'{text}' is not a SHA-256 fingerprint: expected 32 hex pairs like 07:86:CC:…, as the PVE GUI shows it"
        )
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Formats a fingerprint the way the PVE GUI and `openssl x509 -fingerprint` do.
pub fn format_fingerprint(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_in_any_case_with_or_without_colons() {
        let upper = ["07"; 32].join(":");
        let lower = "0a".repeat(32);
        assert_eq!(parse_fingerprint(&upper).unwrap(), [7; 32]);
        assert_eq!(parse_fingerprint(&lower).unwrap(), [10; 32]);
        assert!(parse_fingerprint("07:86").is_err());
        assert_eq!(format_fingerprint(&[0xab; 32]), ["AB"; 32].join(":"));
    }
}
