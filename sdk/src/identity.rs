//! A policy's identity: the name its store is kept under, and a version
//! for people (the WIT `policy-identity`, from the `identity` export).
//!
//! The host keys the policy's store by the name, never by the module's
//! file name, so renaming or upgrading the `.wasm` keeps its data; two
//! policies that declare one name share one store. `policy check` shows it.

/// The longest name and version.
pub const MAX_LEN: usize = 64;

/// Who a policy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// What its store is kept under: 1 to 64 of `[A-Za-z0-9._-]`, starting
    /// with a letter or digit (see [`check_name`]).
    pub name: String,
    /// Free text for people (`0.1.0`); not used as a key.
    pub version: String,
}

impl Identity {
    pub fn new(name: &str, version: &str) -> Identity {
        Identity {
            name: name.to_string(),
            version: version.to_string(),
        }
    }
}

/// `Ok` when `name` can key a store: 1 to 64 ASCII letters, digits, `.`,
/// `_` or `-`, the first a letter or digit. `Err` says what is wrong.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_LEN {
        return Err(format!("it is longer than {MAX_LEN} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        return Err(format!(
            "it contains '{}' (use letters, digits, '.', '_' and '-')",
            bad.escape_default()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("it must start with a letter or a digit".into());
    }
    Ok(())
}

/// `Ok` when `version` is fit to show: at most 64 characters, no control
/// character.
pub fn check_version(version: &str) -> Result<(), String> {
    if version.chars().count() > MAX_LEN {
        return Err(format!("it is longer than {MAX_LEN} characters"));
    }
    if version.chars().any(char::is_control) {
        return Err("it contains a control character".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_are_identities() {
        for name in [
            "subnet-escalation",
            "fail2pvefw-default",
            "a",
            "v2.my_policy",
        ] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn names_that_cannot_key_a_store_are_refused() {
        for name in ["", "-x", ".hidden", "a b", "a/b", "ü", "x\n"] {
            assert!(check_name(name).is_err(), "{name:?}");
        }
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_version("1.0\n").is_err());
        assert_eq!(check_version("0.1.0 (beta)"), Ok(()));
    }
}
