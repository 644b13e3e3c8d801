//! `[pve] host`: where a PVE node's API listens.

use std::fmt;

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
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address
    /// (more than one `:`) gets the default port.
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("'{text}' lacks the closing ']'"))?;
            (host, after.strip_prefix(':'))
        } else if text.matches(':').count() > 1 {
            (text, None)
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(format!("'{text}' is not a host name or address"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("'{port}' in '{text}' is not a port number"))?,
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
        assert!(HostPort::parse("pve.test:0").is_err());
        assert!(HostPort::parse("pve.test:x").is_err());
        assert!(HostPort::parse("").is_err());
    }
}
