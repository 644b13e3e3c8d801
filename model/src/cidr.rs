//! Validation and normalisation of ipset `cidr` values, reproducing
//! pve-common's `pve_verify_ip_or_cidr_or_alias`, pve-firewall's `clean_cidr`
//! and `parse_ip_or_cidr`, and the parts of Net::IP 1.26 they rely on
//! (spec §3). Written independently of the guest crate on purpose: the
//! model is the oracle the client's own normalisation is tested against.
//!
//! Perl's `$` also matches before a final newline, so a value ending in one
//! `\n` passes every anchored check of the API and keeps its newline: PVE
//! stores `1.2.3.4\n` (issue 16 item 6). [`verify`] and [`normalise`] do the
//! same.

/// Net::IP's wording when the address part is fine but the prefix is not
/// accepted (spec §3.1), without the `invalid format - ` prefix and `\n`.
const LOOKS_BAD: &str = "value does not look like a valid IP address or CIDR network";

/// What a syntactically valid `cidr` value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Matches `^(dc/|guest/)?<alias-pattern>$`: checked for existence later.
    Alias { scope: Option<String>, name: String },
    /// An IPv4/IPv6 address with an optional `/len` (text kept as typed).
    Address,
}

/// A parsed address: the value, its width (32 or 128) and the prefix text.
struct Addr<'a> {
    value: u128,
    bits: u32,
    prefix: Option<&'a str>,
}

/// `[A-Za-z][A-Za-z0-9\-\_]+`, anchored: ipset names and alias names (§1.1).
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

/// The format check of §3.1. `Err` holds the message that goes after
/// `invalid format - ` (the caller adds that prefix and the trailing `\n`).
pub fn verify(value: &str) -> Result<Kind, String> {
    let value = perl_line(value);
    for scope in ["dc/", "guest/", ""] {
        if let Some(rest) = value.strip_prefix(scope)
            && is_name(rest)
        {
            let scope = (!scope.is_empty()).then(|| scope.trim_end_matches('/').to_string());
            return Ok(Kind::Alias {
                scope,
                name: rest.to_string(),
            });
        }
    }
    let addr = parse(value).ok_or_else(|| LOOKS_BAD.to_string())?;
    // Net::IP's ip_is_ipv6 gives up on more than seven colons without
    // setting an error, so PVE's message is empty: `::` standing for a
    // single zero group passes pve-common's regex but not Net::IP.
    if addr.bits == 128 && value.split('/').next().unwrap_or("").matches(':').count() > 7 {
        return Err(String::new());
    }
    // pve_verify_ip_or_cidr then hands clean_cidr(value) to Net::IP->new;
    // clean_cidr leaves a prefix of "0" untouched, so Net::IP sees host bits.
    net_ip_check(&addr)?;
    Ok(Kind::Address)
}

/// What an anchored Perl pattern sees of a value: `$` matches before one
/// final newline, so that newline is not part of the match.
fn perl_line(value: &str) -> &str {
    value.strip_suffix('\n').unwrap_or(value)
}

/// Net::IP->new's prefix checks (`ip_check_prefix`), applied to what
/// `clean_cidr` produced: too long first, then host bits set — which only
/// survives cleaning when the prefix is the falsy string "0".
fn net_ip_check(addr: &Addr) -> Result<(), String> {
    let Some(text) = addr.prefix else {
        return Ok(());
    };
    let len = prefix_value(text);
    if len > addr.bits as u128 {
        return Err(format!(
            "Prefix length {text} is longer than IP address ({})",
            addr.bits
        ));
    }
    if text == "0" && addr.value != 0 {
        let bin = format!("{:0width$b}", addr.value, width = addr.bits as usize);
        return Err(format!("Invalid prefix {bin}/{text}"));
    }
    Ok(())
}

/// Numeric value of the prefix digits, saturating (Perl compares numerically).
fn prefix_value(text: &str) -> u128 {
    text.bytes().fold(0u128, |acc, d| {
        acc.saturating_mul(10).saturating_add(u128::from(d - b'0'))
    })
}

/// `clean_cidr` then `parse_ip_or_cidr` (§3.2), for an `Address` that passed
/// [`verify`]: the string POST /ipset/{name} stores. `None` if not an address.
/// A final newline survives, as it does in PVE.
pub fn normalise(value: &str) -> Option<String> {
    let core = perl_line(value);
    let newline = &value[core.len()..];
    let addr = parse(core)?;
    let cleaned = match addr.prefix {
        // No prefix, or the falsy "0": returned unchanged, not canonicalised.
        None | Some("0") => core.to_string(),
        Some(text) => {
            let len = prefix_value(text).min(addr.bits as u128) as u32;
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len) >> (128 - addr.bits)
            };
            let masked = addr.value & mask;
            let ip = if addr.bits == 32 {
                let o = (masked as u32).to_be_bytes();
                format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])
            } else {
                compress_v6(masked)
            };
            format!("{ip}/{text}")
        }
    };
    Some(strip_host_prefix(&cleaned, addr.bits) + newline)
}

/// pve-firewall's `parse_ip_or_cidr`, as the `cluster.fw` parser applies it
/// to ipset entries and aliases: pve-common's address pattern only (no
/// Net::IP, so `/33` passes), then an exact `/32` (IPv4) or `/128` (IPv6)
/// is dropped. `Err` is PVE's message.
pub fn parse_ip_or_cidr(value: &str) -> Result<String, &'static str> {
    match parse(value) {
        Some(addr) => Ok(strip_host_prefix(value, addr.bits)),
        None => Err(LOOKS_BAD),
    }
}

/// `s|/32$||` for IPv4, `s|/128$||` for IPv6: only those exact characters.
fn strip_host_prefix(value: &str, bits: u32) -> String {
    let strip = if bits == 32 { "/32" } else { "/128" };
    value.strip_suffix(strip).unwrap_or(value).to_string()
}

/// True when the (normalised) value ends in a prefix whose value is 0:
/// pve-firewall's `m!/0+$!`, "a zero prefix is not allowed" (§2 step 4).
pub fn has_zero_prefix(value: &str) -> bool {
    match perl_line(value).rsplit_once('/') {
        Some((_, p)) => !p.is_empty() && p.bytes().all(|c| c == b'0'),
        None => false,
    }
}

/// `Net::IP::ip_compress_address` (§3.2): groups without leading zeros, then
/// the longest `(^|:)0(:0)+(:|$)` run *measured with its colons* becomes
/// `::`; the first of equally long runs wins; a lone `0` stays. A leading run
/// is one character shorter than a middle run of the same zeros, so a middle
/// run wins that tie, unlike RFC 5952.
pub fn compress_v6(value: u128) -> String {
    let groups: Vec<u16> = (0..8).map(|i| (value >> (112 - 16 * i)) as u16).collect();
    let mut best: Option<(usize, usize, usize)> = None; // (start, end, length)
    let mut i = 0;
    while i < 8 {
        if groups[i] != 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < 8 && groups[i] == 0 {
            i += 1;
        }
        let zeros = i - start;
        if zeros < 2 {
            continue;
        }
        // "0" per group, the colons between them, plus a colon before (unless
        // at the start) and after (unless at the end).
        let len = 2 * zeros - 1 + usize::from(start > 0) + usize::from(i < 8);
        if best.is_none_or(|(_, _, l)| len > l) {
            best = Some((start, i, len));
        }
    }
    let hex = |g: &[u16]| {
        g.iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    match best {
        Some((s, e, _)) => format!("{}::{}", hex(&groups[..s]), hex(&groups[e..])),
        None => hex(&groups),
    }
}

/// `^(IPV6RE|IPV4RE)(/\d+)?$` from pve-common (§3.1).
fn parse(value: &str) -> Option<Addr<'_>> {
    let (ip, prefix) = match value.split_once('/') {
        Some((ip, p)) => {
            if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (ip, Some(p))
        }
        None => (value, None),
    };
    if let Some(v4) = parse_v4(ip) {
        return Some(Addr {
            value: u128::from(v4),
            bits: 32,
            prefix,
        });
    }
    parse_v6(ip).map(|value| Addr {
        value,
        bits: 128,
        prefix,
    })
}

/// IPV4RE: four decimal octets 0–255 without leading zeros.
fn parse_v4(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut v = 0u32;
    for p in parts {
        let ok = !p.is_empty()
            && p.len() <= 3
            && p.bytes().all(|c| c.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'));
        let n: u32 = if ok { p.parse().ok()? } else { return None };
        if n > 255 {
            return None;
        }
        v = (v << 8) | n;
    }
    Some(v)
}

/// IPV6RE: the RFC 4291 text forms; a dotted quad only as the last 32 bits;
/// at most one `::`, which stands for at least one group; no zone id.
fn parse_v6(s: &str) -> Option<u128> {
    fn groups(part: &str, last_may_be_v4: bool) -> Option<Vec<u16>> {
        if part.is_empty() {
            return Some(Vec::new());
        }
        let items: Vec<&str> = part.split(':').collect();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if last_may_be_v4 && i == items.len() - 1 && item.contains('.') {
                let v4 = parse_v4(item)?;
                out.extend([(v4 >> 16) as u16, v4 as u16]);
            } else if (1..=4).contains(&item.len()) && item.bytes().all(|c| c.is_ascii_hexdigit()) {
                out.push(u16::from_str_radix(item, 16).ok()?);
            } else {
                return None;
            }
        }
        Some(out)
    }
    let all = match s.split_once("::") {
        Some((head, tail)) => {
            if tail.contains("::") {
                return None;
            }
            let h = groups(head, false)?;
            let t = groups(tail, true)?;
            if h.len() + t.len() > 7 {
                return None;
            }
            let mut all = h;
            all.resize(8 - t.len(), 0);
            all.extend(t);
            all
        }
        None => {
            let g = groups(s, true)?;
            if g.len() != 8 {
                return None;
            }
            g
        }
    };
    Some(
        all.iter()
            .fold(0u128, |acc, g| (acc << 16) | u128::from(*g)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What POST /ipset/{name} makes of a value, ignoring alias existence:
    /// Ok(stored) or Err(the errors-map text), as in the table of §3.3.
    fn add(value: &str) -> Result<String, String> {
        match verify(value).map_err(|m| format!("invalid format - {m}\n"))? {
            Kind::Alias { .. } => Ok(value.to_string()),
            Kind::Address => {
                let n = normalise(value).unwrap();
                if has_zero_prefix(&n) {
                    return Err("a zero prefix is not allowed in ipset entries".into());
                }
                Ok(n)
            }
        }
    }

    fn ok(input: &str, stored: &str) {
        assert_eq!(add(input), Ok(stored.to_string()), "input {input:?}");
    }

    const ZERO: &str = "a zero prefix is not allowed in ipset entries";
    const BAD: &str =
        "invalid format - value does not look like a valid IP address or CIDR network\n";

    #[test]
    fn table_ipv4() {
        ok("1.2.3.4", "1.2.3.4");
        ok("1.2.3.4/32", "1.2.3.4");
        ok("10.0.0.1/8", "10.0.0.0/8");
        ok("192.168.1.155/24", "192.168.1.0/24");
        ok("10.1.2.3/31", "10.1.2.2/31");
        ok("1.2.3.4/08", "1.0.0.0/08");
        ok("1.2.3.4/032", "1.2.3.4/032");
    }

    #[test]
    fn table_zero_prefix() {
        for v in ["0.0.0.0/0", "::/0", "1.2.3.4/00"] {
            assert_eq!(add(v), Err(ZERO.into()), "{v}");
        }
        assert_eq!(normalise("1.2.3.4/00").unwrap(), "0.0.0.0/00");
    }

    #[test]
    fn table_prefix_errors() {
        assert_eq!(
            add("1.2.3.4/0"),
            Err("invalid format - Invalid prefix 00000001000000100000001100000100/0\n".into())
        );
        assert_eq!(
            add("1.2.3.4/33"),
            Err("invalid format - Prefix length 33 is longer than IP address (32)\n".into())
        );
        assert_eq!(
            add("2001:db8::/129"),
            Err("invalid format - Prefix length 129 is longer than IP address (128)\n".into())
        );
    }

    #[test]
    fn table_bad_format() {
        for v in [
            "010.0.0.1",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4-1.2.3.8",
            "fe80::1%eth0",
            " 1.2.3.4",
            "a",
            "sdn/foo",
            "",
            "1.2.3.4/",
            "1.2.3.4/x",
            "1::2::3",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::8",
            "1:2:3:4:5:6::1.2.3.4",
            "12345::1",
        ] {
            assert_eq!(add(v), Err(BAD.into()), "{v:?}");
        }
    }

    #[test]
    fn table_ipv6() {
        ok("2001:DB8::1", "2001:DB8::1");
        ok(
            "2001:0db8:0000:0000:0000:0000:0000:0001",
            "2001:0db8:0000:0000:0000:0000:0000:0001",
        );
        ok("2001:db8::1/128", "2001:db8::1");
        ok("2001:0db8:0000::1/128", "2001:db8::1");
        ok("2001:DB8::1/64", "2001:db8::/64");
        ok("FE80::1/10", "fe80::/10");
        ok("::ffff:1.2.3.4", "::ffff:1.2.3.4");
        ok("::ffff:1.2.3.4/128", "::ffff:102:304");
        ok("::ffff:10.0.0.1/104", "::ffff:a00:0/104");
        ok("1:2:3::4:5:6:7", "1:2:3::4:5:6:7");
        ok("::", "::");
    }

    #[test]
    fn double_colon_for_one_group_gets_net_ips_empty_error() {
        // Seven groups and `::`: pve-common's pattern allows it, Net::IP
        // counts eight colons and fails without a message.
        for v in ["1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "::1:2:3:4:5:6:7/64"] {
            assert_eq!(add(v), Err("invalid format - \n".into()), "{v}");
        }
        // The cluster.fw parser checks the pattern only.
        assert_eq!(
            parse_ip_or_cidr("1:2:3:4:5:6:7::").as_deref(),
            Ok("1:2:3:4:5:6:7::")
        );
    }

    #[test]
    fn trailing_newline_is_accepted_and_kept() {
        ok("1.2.3.4\n", "1.2.3.4\n");
        ok("1.2.3.4/32\n", "1.2.3.4\n");
        ok("10.0.0.1/8\n", "10.0.0.0/8\n");
        ok("dc/myalias\n", "dc/myalias\n");
        assert_eq!(add("0.0.0.0/0\n"), Err(ZERO.into()));
        assert_eq!(add("1.2.3.4\n\n"), Err(BAD.into()), "only one newline");
        assert_eq!(add("\n1.2.3.4"), Err(BAD.into()));
    }

    #[test]
    fn parse_ip_or_cidr_checks_the_pattern_and_strips_host_prefixes() {
        assert_eq!(parse_ip_or_cidr("1.2.3.4/32").as_deref(), Ok("1.2.3.4"));
        assert_eq!(
            parse_ip_or_cidr("2001:db8::1/128").as_deref(),
            Ok("2001:db8::1")
        );
        assert_eq!(parse_ip_or_cidr("1.2.3.4/33").as_deref(), Ok("1.2.3.4/33"));
        assert_eq!(
            parse_ip_or_cidr("1.2.3.4/128").as_deref(),
            Ok("1.2.3.4/128")
        );
        assert_eq!(parse_ip_or_cidr("10.0.0.1/8").as_deref(), Ok("10.0.0.1/8"));
        assert_eq!(
            parse_ip_or_cidr("1.2.3.4/032").as_deref(),
            Ok("1.2.3.4/032")
        );
        assert_eq!(parse_ip_or_cidr("not-an-ip"), Err(LOOKS_BAD));
    }

    #[test]
    fn table_aliases() {
        ok("myalias", "myalias");
        ok("dc/myalias", "dc/myalias");
        assert_eq!(
            verify("guest/foo"),
            Ok(Kind::Alias {
                scope: Some("guest".into()),
                name: "foo".into()
            })
        );
        assert_eq!(
            verify("myalias"),
            Ok(Kind::Alias {
                scope: None,
                name: "myalias".into()
            })
        );
    }

    #[test]
    fn net_ip_compression_ties() {
        // Middle run beats an equally long leading run (§3.2 example).
        ok("0:0:1:2:0:0:3:4/128", "0:0:1:2::3:4");
        // Equal middle runs: the first wins.
        assert_eq!(
            compress_v6(0x0001_0000_0000_0002_0000_0000_0003_0004),
            "1::2:0:0:3:4"
        );
        // A longer leading run wins.
        assert_eq!(
            compress_v6(0x0000_0000_0000_0001_0000_0000_0002_0003),
            "::1:0:0:2:3"
        );
        // Trailing run equal to a middle run (same length with colons): first wins.
        assert_eq!(
            compress_v6(0x0001_0000_0000_0002_0003_0004_0000_0000),
            "1::2:3:4:0:0"
        );
        // Trailing versus leading of equal zeros: both are 2N long; first wins.
        assert_eq!(
            compress_v6(0x0000_0000_0001_0002_0003_0004_0000_0000),
            "::1:2:3:4:0:0"
        );
        // A single zero group is never compressed.
        assert_eq!(
            compress_v6(0x0001_0000_0002_0003_0004_0005_0006_0007),
            "1:0:2:3:4:5:6:7"
        );
        assert_eq!(compress_v6(0), "::");
        assert_eq!(compress_v6(1), "::1");
    }

    #[test]
    fn names() {
        assert!(is_name("fail2ban"));
        assert!(is_name("a-_9"));
        assert!(!is_name("a"));
        assert!(!is_name("9ab"));
        assert!(!is_name("ab.c"));
    }
}
