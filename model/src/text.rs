//! How Perl sees the text pve-firewall handles, so that odd bytes come out
//! of the model as they come out of PVE.
//!
//! PVE reads `cluster.fw` as bytes and never decodes it, except comments,
//! which it decodes from UTF-8 (`decode('utf8', …)`) and encodes again on
//! write. Its regular expressions therefore run on bytes: `\s` is ASCII
//! whitespace only, while `\h` (used to trim each line) also takes the byte
//! 0xA0, the second half of a UTF-8 no-break space.
//!
//! The model keeps such a byte string in a `String` with one `char` per byte
//! (U+0000–U+00FF, as Perl does when it prints it as JSON or feeds it to the
//! digest), and decoded comments as ordinary text.

/// A byte string as Perl holds it: one character per byte.
pub(crate) fn chars_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(*b)).collect()
}

/// The bytes Perl writes for a string: one byte per character up to
/// U+00FF; a wider character (only ever from an API parameter) as UTF-8.
pub(crate) fn bytes_of(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

/// `decode('utf8', …)`: malformed sequences become U+FFFD.
pub(crate) fn decode(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Perl truthiness of a defined string: everything but `""` and `"0"`.
pub(crate) fn truthy(s: &str) -> bool {
    !s.is_empty() && s != "0"
}

/// `m/^\s*$/` on a decoded (character) string: Unicode whitespace, which
/// includes U+00A0, as Rust's `char::is_whitespace` does.
pub(crate) fn blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// A comment PVE writes: truthy and not blank (`$format_ipsets`, §4).
pub(crate) fn written_comment(comment: Option<&str>) -> Option<&str> {
    comment.filter(|c| truthy(c) && !blank(c))
}

/// `\s` on a byte string: `\t \n \x0B \f \r` and space.
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// `\h` on a byte string: tab, space and 0xA0.
pub(crate) fn is_hspace(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0xa0)
}

/// `s` without the leading and trailing bytes that `strip` takes.
pub(crate) fn trim_by(s: &[u8], strip: impl Fn(u8) -> bool) -> &[u8] {
    let start = s.iter().position(|b| !strip(*b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !strip(*b)).map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// `\s*…\s*` around a capture: ASCII whitespace trimmed.
pub(crate) fn trim_space(s: &[u8]) -> &[u8] {
    trim_by(s, is_space)
}

/// The longest prefix of non-`\s` bytes, and the rest.
pub(crate) fn split_token(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|b| !is_space(**b)).count();
    s.split_at(n)
}

/// `s/#\s*(.*?)\s*$//`: the text after the first `#`, trimmed, and what
/// stands before it (untrimmed). `None` without a `#`.
pub(crate) fn split_hash(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let pos = line.iter().position(|b| *b == b'#')?;
    Some((&line[..pos], trim_space(&line[pos + 1..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_perl_strings() {
        let raw = b"1.2.3.4\xc2\xa0";
        let s = chars_of(raw);
        assert_eq!(s, "1.2.3.4\u{c2}\u{a0}");
        assert_eq!(bytes_of(&s), raw);
        assert_eq!(bytes_of("\u{263a}"), "\u{263a}".as_bytes());
    }

    #[test]
    fn trimming_follows_perl_classes() {
        assert_eq!(trim_by(b"\xa0 x \t\xa0", is_hspace), b"x");
        assert_eq!(trim_by(b"\xc2\xa0", is_hspace), b"\xc2");
        assert_eq!(trim_space(b" \x0b x \xa0"), b"x \xa0");
        assert_eq!(trim_space(b"   "), b"");
        assert_eq!(split_hash(b"a # b # c "), Some((&b"a "[..], &b"b # c"[..])));
    }

    #[test]
    fn comments_that_pve_writes() {
        assert_eq!(written_comment(Some("x")), Some("x"));
        for c in ["", "0", "  ", "\u{a0}"] {
            assert_eq!(written_comment(Some(c)), None, "{c:?}");
        }
    }
}
