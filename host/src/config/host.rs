//! `[pve] host`: where a PVE node's API listens.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The port `pveproxy` listens on.
pub const DEFAULT_PORT: u16 = 8006;

/// A PVE API endpoint, `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// A name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6
    /// address (which gets the default port), where host is an RFC 1123
    /// name or an IP literal. Anything else (a user part, a path, a query,
    /// a zone id, spaces, an empty port) is refused, naming the problem:
    /// what is not a plain host is not checked against the nodes that must
    /// never be banned, and must not reach the HTTP client.
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let (host, port) = split(text)?;
        let port = match port {
            None => DEFAULT_PORT,
            Some("") => return Err(format!("'{text}' has an empty port after ':'")),
            Some(port) => port
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| port.parse::<u16>().ok())
                .flatten()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("'{port}' in '{text}' is not a port number (1-65535)"))?,
        };
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }

    /// The origin for URLs: `https://host:port`.
    pub fn origin(&self) -> String {
        format!("https://{self}")
    }
}

/// The host and the port text, after refusing what no host string holds.
fn split(text: &str) -> Result<(&str, Option<&str>), String> {
    let shape = "give a host name or IP address with an optional port, e.g. 'pve1.example.com', '192.0.2.10:8006' or '[2001:db8::10]:8006'";
    if text.is_empty() {
        return Err(format!("is empty: {shape}"));
    }
    if text.contains(char::is_whitespace) || text.contains(char::is_control) {
        return Err(format!(
            "'{text}' contains a space or a control character: {shape}"
        ));
    }
    if let Some((scheme, _)) = text.split_once("://") {
        return Err(format!(
            "'{text}' is a URL: leave out '{scheme}://' and any path; {shape}"
        ));
    }
    if text.contains('@') {
        return Err(format!(
            "'{text}' has a user part ('…@'): the token says who we are; {shape}"
        ));
    }
    if let Some(c) = text.chars().find(|c| "/?#".contains(*c)) {
        return Err(format!(
            "'{text}' contains '{c}' (a URL's path, query or fragment): {shape}"
        ));
    }
    if text.contains('%') {
        return Err(format!(
            "'{text}' has a zone id ('%'): link-local addresses are not supported; {shape}"
        ));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inner, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("'{text}' lacks the closing ']'"))?;
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(format!("'[{inner}]' in '{text}' is not an IPv6 address"));
        }
        return match after {
            "" => Ok((inner, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inner, Some(port))),
                None => Err(format!(
                    "'{text}' has '{after}' after ']': expected ':PORT' or nothing"
                )),
            },
        };
    }
    if text.matches(':').count() > 1 {
        return match text.parse::<Ipv6Addr>() {
            Ok(_) => Ok((text, None)),
            Err(_) => Err(format!(
                "'{text}' is not an IPv6 address (with a port, write it as '[ADDRESS]:PORT')"
            )),
        };
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    if host.is_empty() {
        return Err(format!("'{text}' has no host before ':'"));
    }
    if host.parse::<Ipv4Addr>().is_err() {
        check_name(host)
            .map_err(|why| format!("'{host}' in '{text}' is not a host name: {why}"))?;
    }
    Ok((host, port))
}

/// An RFC 1123 host name: dot-separated labels of 1-63 letters, digits and
/// '-', not starting or ending with '-', at most 253 characters, the last
/// label not all digits (that would be a malformed IPv4 address).
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err("it has an empty label (two dots, or a dot at the start or end)".into());
        }
        if label.len() > 63 {
            return Err(format!("the label '{label}' is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && *c != '-')
        {
            return Err(format!(
                "'{c}' is not allowed (letters, digits, '-' and '.' are)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label '{label}' starts or ends with '-'"));
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            "it looks like an IPv4 address but is not one (four numbers 0-255, no leading zeros)"
                .into(),
        );
    }
    Ok(())
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_forms() {
        let p = |s| HostPort::parse(s).unwrap();
        assert_eq!(p("pve.test").to_string(), "pve.test:8006");
        assert_eq!(p("pve.test:443").to_string(), "pve.test:443");
        assert_eq!(p("[2001:db8::1]:8007").to_string(), "[2001:db8::1]:8007");
        assert_eq!(p("2001:db8::1").to_string(), "[2001:db8::1]:8006");
        assert_eq!(p("[2001:db8::1]").to_string(), "[2001:db8::1]:8006");
        assert_eq!(p("192.0.2.10").to_string(), "192.0.2.10:8006");
        assert_eq!(
            p("PVE-1.Example.test:65535").to_string(),
            "PVE-1.Example.test:65535"
        );
        assert!(HostPort::parse("pve.test:0").is_err());
        assert!(HostPort::parse("pve.test:x").is_err());
        assert!(HostPort::parse("").is_err());
    }

    #[test]
    fn anything_but_a_host_and_port_is_refused_naming_the_problem() {
        for (text, problem) in [
            ("user@127.0.0.1:8006", "user part"),
            ("127.0.0.1?x=1", "'?'"),
            ("127.0.0.1#x", "'#'"),
            ("127.0.0.1/api2", "'/'"),
            ("https://pve.test:8006", "a URL"),
            ("[fe80::1%eth0]:8006", "zone id"),
            ("fe80::1%eth0", "zone id"),
            ("pve.test:", "empty port"),
            ("pve .test", "space"),
            (" pve.test", "space"),
            ("pve.test:+80", "not a port"),
            ("pve.test:65536", "not a port"),
            ("pve_1.test", "'_' is not allowed"),
            ("-pve.test", "starts or ends with '-'"),
            ("pve..test", "empty label"),
            ("pve.test.", "empty label"),
            ("010.0.0.1", "looks like an IPv4"),
            ("256.0.0.1", "looks like an IPv4"),
            ("[2001:db8::1", "closing ']'"),
            ("[pve.test]:8006", "not an IPv6 address"),
            ("[2001:db8::1]8006", "after ']'"),
            ("2001:db8::zz", "not an IPv6 address"),
            (":8006", "no host"),
        ] {
            let err = HostPort::parse(text).unwrap_err();
            assert!(err.contains(problem), "{text:?}: {err}");
        }
    }
}
