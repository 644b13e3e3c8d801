//! The secrets of a configuration file, so that no message shows them.
//!
//! The checks after parsing quote the values they refuse ("'…' is not a
//! SHA-256 fingerprint"), which is what an admin needs, unless the value is
//! the token pasted under the wrong key. So every message about the file is
//! scrubbed of these, found by key name and by shape, not by where the
//! token belongs.

use super::redact::{rebuild, windows};

/// Pieces of a secret this long are cut out of any message.
const SECRET_PIECE: usize = 8;

/// Values that must never appear in a message: those of keys named like a
/// secret (`token`, `api_key`, `password`, `*_secret`, …) in any table, the
/// secret part of anything shaped like a PVE token (wherever it was put),
/// and what a `token_file` holds.
#[derive(Default)]
pub(super) struct Secrets(Vec<String>);

impl Secrets {
    pub(super) fn from_text(text: &str) -> Secrets {
        let mut secrets = Secrets::default();
        if let Ok(table) = ::toml::from_str::<::toml::Table>(text) {
            secrets.walk_table(&table);
        }
        // Also by line, for a file that does not parse.
        for line in text.lines() {
            if let Some((key, value)) = line.split_once('=')
                && is_secret_key(key.trim().trim_matches(['"', '\'']))
            {
                secrets.add(value.trim().trim_matches(['"', '\'', '[', ']', ' ']));
            }
            for word in line.split([' ', '"', '\'', '[', ']', ',', '\t']) {
                secrets.add_if_token(word);
            }
        }
        secrets
    }

    fn walk_table(&mut self, table: &::toml::Table) {
        for (key, value) in table {
            if is_secret_key(key) {
                self.add_strings(value);
            }
            match value {
                ::toml::Value::Table(inner) => self.walk_table(inner),
                ::toml::Value::Array(items) => {
                    for item in items {
                        self.walk_value(item);
                    }
                }
                other => self.walk_value(other),
            }
        }
    }

    fn walk_value(&mut self, value: &::toml::Value) {
        match value {
            ::toml::Value::String(s) => self.add_if_token(s),
            ::toml::Value::Table(t) => self.walk_table(t),
            ::toml::Value::Array(items) => items.iter().for_each(|i| self.walk_value(i)),
            _ => {}
        }
    }

    fn add_strings(&mut self, value: &::toml::Value) {
        match value {
            ::toml::Value::String(s) => self.add(s),
            ::toml::Value::Array(items) => items.iter().for_each(|i| self.add_strings(i)),
            ::toml::Value::Table(t) => t.values().for_each(|v| self.add_strings(v)),
            _ => {}
        }
    }

    /// The secret part of anything shaped like a PVE token.
    fn add_if_token(&mut self, text: &str) {
        if let Some(secret) = token_secret(text) {
            self.push(secret);
        }
    }

    /// A secret value: of a token only the part after the last `=` (the id
    /// is named in messages), else all of it, line by line.
    pub(super) fn add(&mut self, value: &str) {
        match token_secret(value) {
            Some(secret) => self.push(secret),
            None => value.lines().for_each(|line| self.push(line)),
        }
    }

    fn push(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.chars().count() >= 4 && !self.0.iter().any(|s| s == secret) {
            self.0.push(secret.to_string());
        }
    }

    /// The message with every piece of a secret cut out.
    pub(super) fn scrub(&self, message: &str) -> String {
        let mut marked = vec![false; message.len()];
        for secret in &self.0 {
            let piece = SECRET_PIECE.min(secret.chars().count());
            for window in windows(secret, piece) {
                let window = &secret[window];
                for (at, _) in message.match_indices(window) {
                    marked[at..at + window.len()].fill(true);
                }
            }
        }
        rebuild(message, &marked)
    }
}

/// `USER@REALM!TOKENID=SECRET` (PVE splits at the last `=`): `SECRET`.
fn token_secret(text: &str) -> Option<&str> {
    let (id, secret) = text.trim().rsplit_once('=')?;
    (id.contains('@') && id.contains('!')).then_some(secret)
}

/// A key whose value is a password, wherever it is: `token`, `api_key`,
/// `password`, `secret`, and `*_token`, `*_key`, `*_secret`, `*_password`.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "token",
        "api_key",
        "apikey",
        "password",
        "secret",
        "passphrase",
    ]
    .contains(&key.as_str())
        || ["_token", "_key", "_secret", "_password"]
            .iter()
            .any(|end| key.ends_with(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "6043ef45-632a-428b-8777-4b1eb5587d58";

    #[test]
    fn secrets_are_found_by_key_and_by_shape_and_scrubbed() {
        let s = Secrets::from_text(&format!(
            "[pve]\nfingerprint = \"root@pam!x={SECRET}\"\n[crowdsec]\napi_key = \"abcdefgh12345678\"\n"
        ));
        let m = s.scrub(&format!(
            "'{SECRET}' and 'xxabcdefgh12345678' and {}",
            &SECRET[3..20]
        ));
        assert!(
            !m.contains("abcdefgh") && !m.contains(&SECRET[3..11]),
            "{m}"
        );
        assert!(m.starts_with("'…' and 'xx…' and …"), "{m}");
    }

    #[test]
    fn the_secret_of_an_unparsable_file_is_found_by_line() {
        let s = Secrets::from_text(&format!("[pve]\ntoken = \"{SECRET}\n"));
        assert_eq!(s.scrub(&format!("x {SECRET} y")), "x … y");
    }
}
