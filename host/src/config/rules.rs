//! What the policy may do and use: `[limits]` (fuel and memory per call),
//! `[rules]` (never-ban networks, IPv6 widening, extra PVE paths, the
//! widest network an entry may cover) and
//! `[policy_settings]` (free-form values a custom policy reads).

use super::toml;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Fuel for one call: roughly a second of guest work, far more than a ban
/// needs (about a million), little enough that a loop ends quickly.
pub const DEFAULT_FUEL: u64 = 1_000_000_000;
/// Linear memory one policy may grow to.
pub const DEFAULT_MEMORY: usize = 64 * 1024 * 1024;

/// The sandbox of each policy call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel for one call (about a wasm instruction each); a loop runs dry.
    pub fuel: u64,
    /// Bytes of linear memory the policy may grow to.
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            memory: DEFAULT_MEMORY,
        }
    }
}

/// The widest IPv4 network an entry may cover by default: a /16 is 65536
/// addresses, more than any fail2ban ban needs.
pub const DEFAULT_WIDEST_IPV4: u8 = 16;
/// The widest IPv6 network an entry may cover by default: a /32 is a whole
/// provider's allocation.
pub const DEFAULT_WIDEST_IPV6: u8 = 32;

/// The administrator's rules, passed to the policy as settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Networks (or addresses) never to ban, checked by the host.
    pub never_ban: Vec<String>,
    /// Widen IPv6 bans to this prefix length.
    pub ipv6_prefix: Option<u8>,
    /// API paths granted beyond the IPSets and `GET /version`.
    pub allow_paths: Vec<String>,
    /// The widest IPv4 network any entry may cover: entries with a shorter
    /// prefix are refused by the host's guard, whatever the policy asks.
    pub widest_ipv4: u8,
    /// The same for IPv6.
    pub widest_ipv6: u8,
    /// `[policy_settings]`, as text.
    pub policy_settings: BTreeMap<String, String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            never_ban: Vec::new(),
            ipv6_prefix: None,
            allow_paths: Vec::new(),
            widest_ipv4: DEFAULT_WIDEST_IPV4,
            widest_ipv6: DEFAULT_WIDEST_IPV6,
            policy_settings: BTreeMap::new(),
        }
    }
}

const MIN_MEMORY_MIB: u64 = 2;
const MAX_MEMORY_MIB: u64 = 4096;

pub(super) fn limits(file: toml::Limits) -> Result<Limits, String> {
    let fuel = file.fuel.unwrap_or(DEFAULT_FUEL);
    if fuel < 1_000_000 {
        return Err(format!(
            "[limits] fuel = {fuel} is too little for any ban: give at least 1000000 (default {DEFAULT_FUEL}, about a second)"
        ));
    }
    let memory = match file.memory_mib {
        None => DEFAULT_MEMORY,
        Some(mib) if (MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&mib) => (mib as usize) << 20,
        Some(mib) => {
            return Err(format!(
                "[limits] memory_mib = {mib}: give {MIN_MEMORY_MIB} to {MAX_MEMORY_MIB} (default {})",
                DEFAULT_MEMORY >> 20
            ));
        }
    };
    Ok(Limits { fuel, memory })
}

pub(super) fn rules(
    file: toml::Rules,
    settings: BTreeMap<String, ::toml::Value>,
) -> Result<Rules, String> {
    for net in &file.never_ban {
        check_network(net).map_err(|e| format!("[rules] never_ban: {e}"))?;
    }
    if let Some(p) = file.ipv6_prefix
        && !(1..=128).contains(&p)
    {
        return Err(format!(
            "[rules] ipv6_prefix = {p}: give a prefix length from 1 to 128, e.g. 64"
        ));
    }
    let widest = |key: &str, value: Option<u8>, default: u8, max: u8| match value {
        None => Ok(default),
        Some(p) if (1..=max).contains(&p) => Ok(p),
        Some(p) => Err(format!(
            "[rules] {key} = {p}: give a prefix length from 1 to {max}, the widest network any entry may cover (default {default})"
        )),
    };
    let widest_ipv4 = widest("widest_ipv4", file.widest_ipv4, DEFAULT_WIDEST_IPV4, 32)?;
    let widest_ipv6 = widest("widest_ipv6", file.widest_ipv6, DEFAULT_WIDEST_IPV6, 128)?;
    for path in &file.allow_paths {
        check_path(path).map_err(|e| format!("[rules] allow_paths: {e}"))?;
    }
    let policy_settings = settings
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                ::toml::Value::String(s) => s,
                other => other.to_string(),
            };
            (key, text)
        })
        .collect();
    Ok(Rules {
        never_ban: file.never_ban,
        ipv6_prefix: file.ipv6_prefix,
        allow_paths: file
            .allow_paths
            .into_iter()
            .map(|p| p.trim_end_matches('/').to_string())
            .collect(),
        widest_ipv4,
        widest_ipv6,
        policy_settings,
    })
}

/// `10.0.0.0/8`, `2001:db8::/32` or a bare address.
pub fn check_network(text: &str) -> Result<(), String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let bad = || format!("'{text}' is not an address or network like 10.0.0.0/8");
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    // Digits only: `u8::from_str` would take `+8`, which the guard does not.
    let digits = |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
    match prefix {
        None => Ok(()),
        Some(p) if digits(p) && p.parse::<u8>().is_ok_and(|p| p <= max) => Ok(()),
        Some(_) => Err(bad()),
    }
}

/// An API path under `/api2/json`, like `/cluster/firewall/rules`.
fn check_path(path: &str) -> Result<(), String> {
    let plain = path.starts_with('/')
        && path.len() > 1
        && !path.contains(|c: char| c.is_whitespace() || c.is_control() || "?#%\\".contains(c))
        && !path.split('/').any(|seg| seg == "." || seg == "..");
    if plain {
        Ok(())
    } else {
        Err(format!(
            "'{path}' is not a plain API path like \"/cluster/firewall/rules\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_of(text: &str) -> Result<Rules, String> {
        let file = toml::parse(text)?;
        rules(file.rules, file.policy_settings)
    }

    #[test]
    fn absent_tables_give_defaults() {
        let file = toml::parse("").unwrap();
        assert_eq!(limits(file.limits).unwrap(), Limits::default());
        assert_eq!(rules_of("").unwrap(), Rules::default());
    }

    #[test]
    fn limits_are_read_and_checked() {
        let file = toml::parse("[limits]\nfuel = 5000000\nmemory_mib = 16\n").unwrap();
        assert_eq!(
            limits(file.limits).unwrap(),
            Limits {
                fuel: 5_000_000,
                memory: 16 << 20
            }
        );
        let file = toml::parse("[limits]\nmemory_mib = 1\n").unwrap();
        assert!(limits(file.limits).unwrap_err().contains("memory_mib = 1"));
        let file = toml::parse("[limits]\nfuel = 10\n").unwrap();
        assert!(limits(file.limits).unwrap_err().contains("fuel = 10"));
    }

    #[test]
    fn rules_are_read_and_checked() {
        let r = rules_of(
            "[rules]\nnever_ban = [\"10.0.0.0/8\", \"2001:db8::1\"]\nipv6_prefix = 64\nallow_paths = [\"/cluster/firewall/rules/\"]\n\n[policy_settings]\nthreshold = 3\nname = \"x\"\n",
        )
        .unwrap();
        assert_eq!(r.never_ban, ["10.0.0.0/8", "2001:db8::1"]);
        assert_eq!(r.ipv6_prefix, Some(64));
        assert_eq!(r.allow_paths, ["/cluster/firewall/rules"]);
        assert_eq!(r.policy_settings["threshold"], "3");
        assert_eq!(r.policy_settings["name"], "x");
    }

    #[test]
    fn widest_networks_default_to_16_and_32_and_are_checked() {
        let r = rules_of("").unwrap();
        assert_eq!((r.widest_ipv4, r.widest_ipv6), (16, 32));
        let r = rules_of("[rules]\nwidest_ipv4 = 8\nwidest_ipv6 = 128\n").unwrap();
        assert_eq!((r.widest_ipv4, r.widest_ipv6), (8, 128));
        for bad in [
            "widest_ipv4 = 0",
            "widest_ipv4 = 33",
            "widest_ipv6 = 0",
            "widest_ipv6 = 129",
        ] {
            let e = rules_of(&format!("[rules]\n{bad}\n")).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn bad_rules_name_the_key_and_the_value() {
        let e = rules_of("[rules]\nnever_ban = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(e.contains("never_ban") && e.contains("10.0.0.0/33"), "{e}");
        let e = rules_of("[rules]\nipv6_prefix = 0\n").unwrap_err();
        assert!(e.contains("ipv6_prefix = 0"), "{e}");
        let e = rules_of("[rules]\nallow_paths = [\"/cluster/../access\"]\n").unwrap_err();
        assert!(e.contains("allow_paths"), "{e}");
        let e = rules_of("[rules]\nnevr_ban = []\n").unwrap_err();
        assert!(e.contains("nevr_ban"), "{e}");
    }
}
