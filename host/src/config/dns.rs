//! `[dns]`: the host names whose addresses `fail2pvefw dns` keeps in an
//! accept list, and whether those addresses are never banned.

use super::host::check_name;
use super::toml;

/// `[dns]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dns {
    /// `names`: what `fail2pvefw dns` without names keeps; lower case, no
    /// final dot, each once.
    pub names: Vec<String>,
    /// `ipset`: the accept list; `None` falls back to `[pve] ipset`, which
    /// `dns` refuses, since bans go there.
    pub ipset: Option<String>,
    /// `never_ban_resolved` (default true): the addresses the names
    /// resolved to last are never banned, by fail2ban or anyone else.
    pub never_ban_resolved: bool,
}

impl Default for Dns {
    fn default() -> Dns {
        Dns {
            names: Vec::new(),
            ipset: None,
            never_ban_resolved: true,
        }
    }
}

pub(super) fn dns(file: toml::Dns) -> Result<Dns, String> {
    let mut names = Vec::new();
    for name in &file.names {
        let name = host_name(name).map_err(|e| format!("[dns] names: {e}"))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if let Some(ipset) = &file.ipset {
        ipset_name(ipset).map_err(|e| format!("[dns] ipset: {e}"))?;
    }
    Ok(Dns {
        names,
        ipset: file.ipset,
        never_ban_resolved: file.never_ban_resolved.unwrap_or(true),
    })
}

/// A host name to resolve, as the state keeps it: an RFC 1123 name, in
/// lower case, without the final dot of a fully qualified one.
pub fn host_name(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "'{text}' is an address, not a host name: add it to the IPSet by hand (fail2pvefw never touches an entry without its tag)"
        ));
    }
    if name.is_empty() {
        return Err("an empty host name".into());
    }
    check_name(&name).map_err(|why| format!("'{text}' is not a host name: {why}"))?;
    Ok(name)
}

/// An IPSet name as PVE takes it and the policy writes it: 2 to 64 of
/// `a-z`, `0-9`, `-`, `_`, starting with a letter.
pub fn ipset_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = (2..=64).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_');
    if ok {
        return Ok(());
    }
    Err(format!(
        "'{name}' is not an IPSet name: 2 to 64 of a-z, 0-9, '-' and '_', starting with a letter"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_host_names_in_lower_case() {
        assert_eq!(host_name("Home.Example.NET.").unwrap(), "home.example.net");
        for bad in [
            "",
            "192.0.2.1",
            "2001:db8::1",
            "a b",
            "-x.test",
            "x..test",
            "x_y",
        ] {
            assert!(host_name(bad).is_err(), "{bad}");
        }
        assert!(host_name("192.0.2.1").unwrap_err().contains("an address"));
    }

    #[test]
    fn the_table_is_checked_with_defaults() {
        let t = |names: &[&str], ipset: Option<&str>| toml::Dns {
            names: names.iter().map(|n| n.to_string()).collect(),
            ipset: ipset.map(str::to_string),
            never_ban_resolved: None,
        };
        let d = dns(t(&["a.test", "A.test."], Some("trusted"))).unwrap();
        assert_eq!(d.names, ["a.test"]);
        assert!(d.never_ban_resolved);
        let e = dns(t(&["a test"], None)).unwrap_err();
        assert!(e.starts_with("[dns] names: "), "{e}");
        let e = dns(t(&[], Some("Trusted"))).unwrap_err();
        assert!(e.starts_with("[dns] ipset: "), "{e}");
        assert_eq!(dns(toml::Dns::default()).unwrap(), Dns::default());
    }
}
