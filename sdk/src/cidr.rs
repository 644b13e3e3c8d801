//! Validation and normalisation of the address fail2ban hands us: the exact
//! string PVE stores for an entry.
//!
//! PVE decides the stored string of an IPSet entry itself (pve-ipset-api.md
//! §3.2), and it finds an entry again (GET, DELETE) only by that exact string.
//! So we send one canonical string that PVE stores unchanged: then `unban X`
//! deletes exactly what `ban X` stored, and two spellings of one network
//! (`10.0.0.1/8`, `10.0.0.0/08`) can never become two entries.
//!
//! The canonical form:
//! - host bits cleared (`10.0.0.1/8` -> `10.0.0.0/8`), as PVE does;
//! - a whole-address prefix (`/32`, `/128`, also `/032`) left out, as PVE does
//!   for the exact text `/32` and `/128`;
//! - the prefix without leading zeros (`/08` -> `/8`): PVE keeps the prefix
//!   text as typed, so we must pick one spelling;
//! - IPv6 lower-case and compressed with Net::IP's rule ([`compress_v6`]),
//!   which is what PVE prints for a prefixed IPv6 address; we use it for an
//!   unprefixed one too, which PVE stores verbatim;
//! - an IPv4-mapped IPv6 address printed as hex groups, as Net::IP does:
//!   `::ffff:1.2.3.4` -> `::ffff:102:304`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// An entry as PVE stores it (`10.0.0.0/8`, `10.0.0.0/08`, a bare address)
/// as a network, host bits cleared; `None` if it is not one. Unlike
/// [`normalize`] it takes the stored text as it is (ipnet refuses a prefix
/// with a leading zero, which PVE keeps, so the prefix is read here): the
/// host's guard and the test host read entries with it.
pub fn network(text: &str) -> Option<IpNet> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let bits: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => bits,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().ok().filter(|&len| len <= bits)?
        }
        Some(_) => return None,
    };
    IpNet::new(addr, len).ok().map(|n| n.trunc())
}

/// The longest input we look at. The longest address PVE accepts,
/// `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128`, has 49 characters.
pub const MAX_INPUT_LEN: usize = 64;

/// A validated IPSet entry: an IPv4 or IPv6 address or network, in the one
/// string form PVE stores for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    net: IpNet,
    canonical: String,
}

impl Cidr {
    /// The exact string PVE stores, and the one we send.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The network (a host address is a `/32` or `/128` network).
    pub fn net(&self) -> IpNet {
        self.net
    }

    /// The entry as one path segment: the `/` of a prefix percent-encoded, as
    /// in `/cluster/firewall/ipset/f2b/10.0.0.0%2F8`. The other characters of
    /// a canonical entry (hex digits, `.`, `:`) need no encoding.
    pub fn path_segment(&self) -> String {
        self.canonical.replace('/', "%2F")
    }

    /// The entry of a network, host bits cleared (`203.0.113.7/24` is
    /// `203.0.113.0/24`).
    pub fn from_net(net: IpNet) -> Cidr {
        let net = net.trunc();
        Cidr {
            net,
            canonical: canonical(net),
        }
    }

    /// The network `prefix` bits long around this entry (`203.0.113.7`
    /// widened to 24 is `203.0.113.0/24`); the entry itself when it is that
    /// wide already. A `prefix` longer than the address counts as the address.
    pub fn widen(&self, prefix: u8) -> Cidr {
        if prefix >= self.net.prefix_len() {
            return self.clone();
        }
        let wide = match self.net {
            IpNet::V4(net) => IpNet::V4(Ipv4Net::new(net.addr(), prefix).expect("shorter prefix")),
            IpNet::V6(net) => IpNet::V6(Ipv6Net::new(net.addr(), prefix).expect("shorter prefix")),
        };
        Cidr::from_net(wide)
    }

    /// A single address (`/32` or `/128`), not a network.
    pub fn is_host(&self) -> bool {
        self.net.prefix_len() == self.net.max_prefix_len()
    }

    /// Whether this entry's network holds all of `other`'s.
    pub fn contains(&self, other: &Cidr) -> bool {
        self.net.contains(&other.net)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// Checks `input` and returns the entry PVE would store for it.
///
/// Refuses what PVE would refuse, and also what PVE would take but we do not
/// want: aliases (they are not addresses fail2ban bans), a zero prefix (it
/// would block everyone), and spellings that only look like addresses.
pub fn normalize(input: &str) -> Result<Cidr, String> {
    check_text(input).map_err(|reason| refusal(input, &reason))?;
    let (address, prefix) = match input.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (input, None),
    };
    let net = if address.contains(':') {
        parse_v6(address, prefix).map(IpNet::V6)
    } else {
        parse_v4(address, prefix).map(IpNet::V4)
    }
    .map_err(|reason| refusal(input, &reason))?;
    Ok(Cidr {
        net,
        canonical: canonical(net),
    })
}

/// The canonical string of a network whose host bits are already clear.
fn canonical(net: IpNet) -> String {
    match net {
        IpNet::V4(net) if net.prefix_len() == 32 => net.addr().to_string(),
        IpNet::V4(net) => format!("{}/{}", net.addr(), net.prefix_len()),
        IpNet::V6(net) if net.prefix_len() == 128 => compress_v6(net.addr()),
        IpNet::V6(net) => format!("{}/{}", compress_v6(net.addr()), net.prefix_len()),
    }
}

/// Cheap checks on the raw text, before any parsing, so that the common
/// mistakes get a message that says what is wrong.
fn check_text(input: &str) -> Result<(), String> {
    if input.is_empty() {
        return Err("it is empty".into());
    }
    if input.len() > MAX_INPUT_LEN {
        return Err(format!("it is longer than {MAX_INPUT_LEN} bytes"));
    }
    if input.chars().any(char::is_whitespace) {
        return Err("it contains whitespace".into());
    }
    if looks_like_alias(input) {
        return Err("IPSet aliases are not supported, only addresses and networks".into());
    }
    if input.contains('%') {
        return Err("zone ids ('%eth0') are not supported".into());
    }
    if input.contains('-') {
        return Err("ranges are not supported; ban a CIDR network instead".into());
    }
    if let Some(bad) = input.chars().find(|c| !is_address_char(*c)) {
        return Err(format!("it contains '{}'", bad.escape_default()));
    }
    if input.matches('/').count() > 1 {
        return Err("it contains more than one '/'".into());
    }
    Ok(())
}

/// PVE's alias pattern, `^(dc/|guest/)?[A-Za-z][A-Za-z0-9_-]+$`. No address
/// matches it: IPv4 starts with a digit, IPv6 contains a `:`.
fn looks_like_alias(input: &str) -> bool {
    let name = input
        .strip_prefix("dc/")
        .or_else(|| input.strip_prefix("guest/"))
        .unwrap_or(input);
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest: Vec<char> = chars.collect();
    starts_with_letter
        && !rest.is_empty()
        && rest
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
}

fn is_address_char(c: char) -> bool {
    c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/')
}

fn parse_v4(address: &str, prefix: Option<&str>) -> Result<Ipv4Net, String> {
    // std refuses leading zeros too, but says nothing about why; `010` is
    // octal to inet_aton and decimal to others, hence refused by PVE.
    if address
        .split('.')
        .any(|octet| octet.len() > 1 && octet.starts_with('0'))
    {
        return Err("leading zeros are ambiguous".into());
    }
    let addr: Ipv4Addr = address
        .parse()
        .map_err(|_| "it is not a dotted quad of numbers 0 to 255".to_string())?;
    let len = parse_prefix(prefix, 32)?;
    let net = Ipv4Net::new(addr, len).expect("prefix length checked against 32");
    Ok(net.trunc())
}

fn parse_v6(address: &str, prefix: Option<&str>) -> Result<Ipv6Net, String> {
    let addr: Ipv6Addr = address
        .parse()
        .map_err(|_| "it is not a valid IPv6 address".to_string())?;
    let len = parse_prefix(prefix, 128)?;
    let net = Ipv6Net::new(addr, len).expect("prefix length checked against 128");
    Ok(net.trunc())
}

/// The prefix length after the `/`, or `max` (a host) when there is none.
fn parse_prefix(prefix: Option<&str>, max: u8) -> Result<u8, String> {
    let Some(text) = prefix else {
        return Ok(max);
    };
    if text.is_empty() {
        return Err("the prefix length after '/' is missing".into());
    }
    if !text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("the prefix length '{text}' is not a number"));
    }
    // Leading zeros are harmless here (`/08` is 8), so strip them; the
    // remaining digits are at most 3 for any valid length.
    let digits = text.trim_start_matches('0');
    let len: u32 = if digits.is_empty() {
        0
    } else if digits.len() > 3 {
        u32::MAX
    } else {
        digits.parse().expect("1 to 3 ASCII digits")
    };
    if len == 0 {
        return Err("a zero prefix would match every address".into());
    }
    if len > u32::from(max) {
        return Err(format!(
            "the prefix length {digits} is longer than the address ({max} bits)"
        ));
    }
    Ok(len as u8)
}

/// Prints an IPv6 address the way Net::IP's `ip_compress_address` does, which
/// is what PVE stores for a prefixed IPv6 entry (pve-ipset-api.md §3.2).
///
/// Groups in lower-case hex without leading zeros; then the longest run of
/// two or more zero groups becomes `::`. "Longest" is measured on the text
/// the regex `(^|:)0(:0)+(:|$)` matches, colons included, so a run at either
/// end counts one character less than a run of the same size in the middle;
/// on a tie the first run wins. RFC 5952 (and Rust's `Display`) measure in
/// groups, so `0:0:1:2:0:0:3:4` is `::1:2:0:0:3:4` there, `0:0:1:2::3:4` here.
pub fn compress_v6(addr: Ipv6Addr) -> String {
    let groups: Vec<String> = addr.segments().iter().map(|g| format!("{g:x}")).collect();
    match longest_zero_run(&addr.segments()) {
        Some((start, end)) => format!("{}::{}", groups[..start].join(":"), groups[end..].join(":")),
        None => groups.join(":"),
    }
}

/// The `start..end` group indexes of the zero run Net::IP compresses, if any.
fn longest_zero_run(segments: &[u16; 8]) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize, usize)> = None; // (start, end, matched length)
    let mut i = 0;
    while i < segments.len() {
        if segments[i] != 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < segments.len() && segments[i] == 0 {
            i += 1;
        }
        let groups = i - start;
        if groups < 2 {
            continue;
        }
        // "0:0:…:0" plus the colon before (unless at the start) and the colon
        // after (unless at the end).
        let matched = 2 * groups - 1 + usize::from(start > 0) + usize::from(i < segments.len());
        if best.is_none_or(|(_, _, longest)| matched > longest) {
            best = Some((start, i, matched));
        }
    }
    best.map(|(start, end, _)| (start, end))
}

/// The error text for a refused input. Quotes the input, shortened and with
/// control characters escaped, so that the message stays one readable line.
fn refusal(input: &str, reason: &str) -> String {
    format!(
        "{} is not an IP address or CIDR network: {reason}",
        quote(input)
    )
}

/// `'input'`, cut to [`MAX_INPUT_LEN`] characters, control characters
/// escaped.
pub fn quote(input: &str) -> String {
    let mut quoted = String::from("'");
    for c in input.chars().take(MAX_INPUT_LEN) {
        if c.is_control() {
            quoted.extend(c.escape_default());
        } else {
            quoted.push(c);
        }
    }
    if input.chars().nth(MAX_INPUT_LEN).is_some() {
        quoted.push('…');
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_gives_the_network_as_pve_stores_it() {
        let host = normalize("203.0.113.7").unwrap();
        assert!(host.is_host());
        let net = host.widen(24);
        assert_eq!(net.as_str(), "203.0.113.0/24");
        assert!(!net.is_host() && net.contains(&host) && !host.contains(&net));
        assert_eq!(net.widen(28), net);
        let v6 = normalize("2001:DB8:1:2::7").unwrap().widen(64);
        assert_eq!(v6.as_str(), "2001:db8:1:2::/64");
        assert_eq!(v6, normalize("2001:db8:1:2::/64").unwrap());
    }

    /// What PVE stores when it is sent `sent` (pve-ipset-api.md §3.2), built
    /// independently of `normalize`: no prefix, verbatim; with a prefix, host
    /// bits cleared, IPv6 compressed by a literal transcription of Net::IP's
    /// Perl, the prefix text kept as typed, then an exact `/32` or `/128`
    /// stripped.
    fn pve_stores(sent: &str) -> String {
        let Some((address, prefix)) = sent.split_once('/') else {
            return sent.to_string();
        };
        let len: u8 = prefix.parse().unwrap();
        let printed = if address.contains(':') {
            let addr: Ipv6Addr = address.parse().unwrap();
            perl_compress(Ipv6Net::new(addr, len).unwrap().trunc().addr())
        } else {
            let addr: Ipv4Addr = address.parse().unwrap();
            Ipv4Net::new(addr, len).unwrap().trunc().addr().to_string()
        };
        let stored = format!("{printed}/{prefix}");
        let host_suffix = if address.contains(':') { "/128" } else { "/32" };
        match stored.strip_suffix(host_suffix) {
            Some(host) => host.to_string(),
            None => stored,
        }
    }

    /// Net::IP 1.26 `ip_compress_address`, step by step on the text: expand,
    /// strip leading zeros of each group, find the longest match of
    /// `(^|:)0(:0)+(:|$)` scanning left to right (non-overlapping, `>` keeps
    /// the first on a tie), replace its first occurrence with `::`.
    fn perl_compress(addr: Ipv6Addr) -> String {
        let expanded: Vec<String> = addr.segments().iter().map(|g| format!("{g:04x}")).collect();
        let ip: String = expanded
            .iter()
            .map(|g| {
                let t = g.trim_start_matches('0');
                if t.is_empty() { "0" } else { t }
            })
            .collect::<Vec<_>>()
            .join(":");
        let bytes = ip.as_bytes();
        let mut longest = String::new();
        let mut pos = 0;
        while pos < bytes.len() {
            if let Some(m) = match_zero_run(bytes, pos) {
                if m.len() > longest.len() {
                    longest = m.clone();
                }
                pos += m.len();
            } else {
                pos += 1;
            }
        }
        if longest.is_empty() {
            ip
        } else {
            ip.replacen(&longest, "::", 1)
        }
    }

    /// `(?:^|:)0(?::0)+(?::|$)` anchored at `pos`.
    fn match_zero_run(s: &[u8], pos: usize) -> Option<String> {
        let mut i = pos;
        if pos != 0 {
            if s[i] != b':' {
                return None;
            }
            i += 1;
        }
        if s.get(i) != Some(&b'0') || !matches!(s.get(i + 1), None | Some(b':')) {
            return None;
        }
        i += 1;
        let mut zeros = 1;
        while s.get(i) == Some(&b':')
            && s.get(i + 1) == Some(&b'0')
            && matches!(s.get(i + 2), None | Some(b':'))
        {
            i += 2;
            zeros += 1;
        }
        if zeros < 2 {
            return None;
        }
        if s.get(i) == Some(&b':') {
            i += 1;
        }
        Some(String::from_utf8(s[pos..i].to_vec()).unwrap())
    }

    fn ok(input: &str) -> String {
        match normalize(input) {
            Ok(entry) => entry.to_string(),
            Err(e) => panic!("{input:?} refused: {e}"),
        }
    }

    fn err(input: &str) -> String {
        match normalize(input) {
            Ok(entry) => panic!("{input:?} accepted as {entry}"),
            Err(e) => e,
        }
    }

    /// The accepted rows of pve-ipset-api.md §3.3: (input, what PVE stores
    /// for that input, what we send). What we send must be stored unchanged.
    const TABLE_ACCEPTED: &[(&str, &str, &str)] = &[
        ("1.2.3.4", "1.2.3.4", "1.2.3.4"),
        ("1.2.3.4/32", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.1/8", "10.0.0.0/8", "10.0.0.0/8"),
        ("192.168.1.155/24", "192.168.1.0/24", "192.168.1.0/24"),
        ("10.1.2.3/31", "10.1.2.2/31", "10.1.2.2/31"),
        ("1.2.3.4/08", "1.0.0.0/08", "1.0.0.0/8"),
        ("1.2.3.4/032", "1.2.3.4/032", "1.2.3.4"),
        ("2001:DB8::1", "2001:DB8::1", "2001:db8::1"),
        (
            "2001:0db8:0000:0000:0000:0000:0000:0001",
            "2001:0db8:0000:0000:0000:0000:0000:0001",
            "2001:db8::1",
        ),
        ("2001:db8::1/128", "2001:db8::1", "2001:db8::1"),
        ("2001:0db8:0000::1/128", "2001:db8::1", "2001:db8::1"),
        ("2001:DB8::1/64", "2001:db8::/64", "2001:db8::/64"),
        ("FE80::1/10", "fe80::/10", "fe80::/10"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4", "::ffff:102:304"),
        ("::ffff:1.2.3.4/128", "::ffff:102:304", "::ffff:102:304"),
        (
            "::ffff:10.0.0.1/104",
            "::ffff:a00:0/104",
            "::ffff:a00:0/104",
        ),
    ];

    #[test]
    fn table_rows_accepted_map_to_what_pve_stores() {
        for &(input, pve_stores_input, we_send) in TABLE_ACCEPTED {
            assert_eq!(pve_stores(input), pve_stores_input, "model of PVE, {input}");
            assert_eq!(ok(input), we_send, "normalize({input})");
            assert_eq!(pve_stores(we_send), we_send, "PVE keeps what we send");
        }
    }

    #[test]
    fn table_rows_refused_name_the_input() {
        let refused = [
            "0.0.0.0/0",
            "::/0",
            "1.2.3.4/00",
            "1.2.3.4/0",
            "1.2.3.4/33",
            "010.0.0.1",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4-1.2.3.8",
            "fe80::1%eth0",
            " 1.2.3.4",
            "2001:db8::/129",
            "myalias",
            "dc/myalias",
            "guest/foo",
            "a",
            "sdn/foo",
        ];
        for input in refused {
            let e = err(input);
            assert!(
                e.starts_with(&format!("'{input}' is not an IP address or CIDR network: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            err("010.0.0.1"),
            "'010.0.0.1' is not an IP address or CIDR network: leading zeros are ambiguous"
        );
        assert!(err("").ends_with("it is empty"));
        assert!(err(&"1".repeat(65)).ends_with("it is longer than 64 bytes"));
        assert!(err("1.2.3.4 ").ends_with("it contains whitespace"));
        assert!(err("1.2.\t3.4").contains("'1.2.\\t3.4'"));
        assert!(err("myalias").contains("aliases are not supported"));
        assert!(err("dc/x1").contains("aliases are not supported"));
        assert!(err("fe80::1%eth0").contains("zone ids"));
        assert!(err("1.2.3.4-1.2.3.8").contains("ranges are not supported"));
        assert!(err("1.2.3.4;reboot").ends_with("it contains ';'"));
        assert!(err("$(id)").ends_with("it contains '$'"));
        assert!(err("1.2.3.4/x").ends_with("it contains 'x'"));
        assert!(err("1.2.3.4/ff").contains("prefix length 'ff' is not a number"));
        assert!(err("1.2.3.4/1.5").contains("prefix length '1.5' is not a number"));
        assert!(err("1.2.3.4/").contains("prefix length after '/' is missing"));
        assert!(err("1.2.3.4/8/9").contains("more than one '/'"));
        assert!(err("1.2.3.4/0").ends_with("a zero prefix would match every address"));
        assert!(err("::/000").ends_with("a zero prefix would match every address"));
        assert!(
            err("1.2.3.4/33")
                .ends_with("the prefix length 33 is longer than the address (32 bits)")
        );
        assert!(err("::1/129").ends_with("(128 bits)"));
        assert!(err("::1/99999999999999999999").ends_with("(128 bits)"));
        assert!(err("1.2.3").contains("dotted quad"));
        assert!(err("1:2:3").contains("not a valid IPv6 address"));
        assert!(err("::ffff:010.0.0.1").contains("not a valid IPv6 address"));
    }

    #[test]
    fn long_input_is_quoted_shortened() {
        let long = "9".repeat(200);
        let e = err(&long);
        assert!(e.starts_with(&format!("'{}…'", "9".repeat(64))), "{e}");
    }

    #[test]
    fn prefixes_are_printed_one_way() {
        assert_eq!(ok("10.0.0.0/08"), "10.0.0.0/8");
        assert_eq!(ok("10.0.0.0/008"), "10.0.0.0/8");
        assert_eq!(ok("1.2.3.4/032"), "1.2.3.4");
        assert_eq!(ok("2001:db8::1/0128"), "2001:db8::1");
        assert_eq!(ok("2001:db8::/064"), "2001:db8::/64");
        assert_eq!(ok("10.1.2.3/31"), "10.1.2.2/31");
        assert_eq!(ok("255.255.255.255/1"), "128.0.0.0/1");
        assert_eq!(ok("0.0.0.0"), "0.0.0.0");
    }

    #[test]
    fn ipv6_without_prefix_is_sent_in_net_ip_form() {
        assert_eq!(ok("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
        assert_eq!(ok("::1"), "::1");
        assert_eq!(ok("::"), "::");
        assert_eq!(ok("0:0:1:2:0:0:3:4"), "0:0:1:2::3:4");
        assert_eq!(ok("::ffff:1.2.3.4"), "::ffff:102:304");
        assert_eq!(ok("64:ff9b::192.0.2.33"), "64:ff9b::c000:221");
    }

    #[test]
    fn net_ip_compression_ties_and_edges() {
        let cases = [
            // A middle run of N beats a leading run of N (one colon longer).
            ("0:0:1:2:0:0:3:4", "0:0:1:2::3:4"),
            ("1:2:0:0:3:4:0:0", "1:2::3:4:0:0"),
            // Equal measured length: the first wins.
            ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
            ("0:0:0:1:0:0:2:3", "::1:0:0:2:3"),
            ("1:2:3:0:0:4:0:0", "1:2:3::4:0:0"),
            // A longer run wins wherever it is.
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("0:0:1:0:0:0:2:3", "0:0:1::2:3"),
            // A single zero group is never compressed.
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            ("0:1:2:3:4:5:6:0", "0:1:2:3:4:5:6:0"),
            ("1:0:0:0:0:0:0:0", "1::"),
            ("0:0:0:0:0:0:0:1", "::1"),
            ("0:0:0:0:0:0:0:0", "::"),
            ("ABCD:0DB8:0:0:1:0:0:0", "abcd:db8:0:0:1::"),
        ];
        for (input, expected) in cases {
            let addr: Ipv6Addr = input.parse().unwrap();
            assert_eq!(compress_v6(addr), expected, "{input}");
            assert_eq!(perl_compress(addr), expected, "Perl model, {input}");
        }
        // Where Net::IP and RFC 5952 differ.
        let addr: Ipv6Addr = "0:0:1:2:0:0:3:4".parse().unwrap();
        assert_eq!(addr.to_string(), "::1:2:0:0:3:4");
    }

    #[test]
    fn path_segment_encodes_the_slash() {
        assert_eq!(
            normalize("10.0.0.1/8").unwrap().path_segment(),
            "10.0.0.0%2F8"
        );
        assert_eq!(
            normalize("2001:db8::/64").unwrap().path_segment(),
            "2001:db8::%2F64"
        );
        assert_eq!(normalize("1.2.3.4").unwrap().path_segment(), "1.2.3.4");
    }

    /// A small deterministic generator, so the property tests need no crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A random address text in one of the spellings PVE accepts: zero-heavy
    /// IPv6 groups (to exercise compression), random case, padded groups,
    /// embedded dotted quads, prefixes with leading zeros.
    fn random_input(rng: &mut Rng) -> String {
        let mut text = if rng.below(2) == 0 {
            let octets: Vec<String> = (0..4).map(|_| rng.below(256).to_string()).collect();
            octets.join(".")
        } else {
            let groups: Vec<String> = (0..8)
                .map(|_| {
                    let g = if rng.below(2) == 0 {
                        0
                    } else {
                        rng.below(0x1_0000)
                    };
                    match rng.below(3) {
                        0 => format!("{g:x}"),
                        1 => format!("{g:04X}"),
                        _ => format!("{g:X}"),
                    }
                })
                .collect();
            let mut text = groups.join(":");
            if rng.below(4) == 0 {
                // Let std print it, sometimes with an embedded dotted quad.
                let addr: Ipv6Addr = text.parse().unwrap();
                text = if rng.below(2) == 0 {
                    let [.., a, b, c, d] = addr.octets();
                    let head: Vec<String> = addr.segments()[..6]
                        .iter()
                        .map(|g| format!("{g:x}"))
                        .collect();
                    format!("{}:{a}.{b}.{c}.{d}", head.join(":"))
                } else {
                    addr.to_string()
                };
            }
            text
        };
        if rng.below(3) != 0 {
            let max = if text.contains(':') { 128 } else { 32 };
            let len = 1 + rng.below(max);
            let zeros = "0".repeat(rng.below(2) as usize);
            text = format!("{text}/{zeros}{len}");
        }
        text
    }

    #[test]
    fn normalize_is_idempotent_and_pve_keeps_what_we_send() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for _ in 0..20_000 {
            let input = random_input(&mut rng);
            let once = ok(&input);
            assert_eq!(ok(&once), once, "normalize(normalize({input}))");
            assert_eq!(pve_stores(&once), once, "PVE keeps {once} (from {input})");
            // A prefixed input: we send what PVE would store for it, up to
            // the spelling of the prefix and the /32 or /128 we drop.
            if input.contains('/') {
                let (address, prefix) = input.split_once('/').unwrap();
                let len: u8 = prefix.parse().unwrap();
                let plain = pve_stores(&format!("{address}/{len}"));
                assert_eq!(once, plain, "{input}");
            }
        }
    }

    #[test]
    fn compression_matches_the_perl_model() {
        let mut rng = Rng(42);
        for _ in 0..20_000 {
            let mut segments = [0u16; 8];
            for g in &mut segments {
                *g = if rng.below(2) == 0 {
                    0
                } else {
                    rng.below(0x1_0000) as u16
                };
            }
            let addr = Ipv6Addr::from(segments);
            assert_eq!(compress_v6(addr), perl_compress(addr), "{segments:x?}");
        }
    }
}
