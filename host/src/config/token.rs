//! `[pve] token`: the API token, whose secret no message shows.

use std::fmt;

/// A PVE API token. The secret never appears in `Debug` or `Display`.
#[derive(Clone)]
pub struct Token {
    /// `USER@REALM!TOKENID`
    pub id: String,
    secret: String,
}

impl Token {
    /// Parses `USER@REALM!TOKENID=SECRET`, with or without the `PVEAPIToken=`
    /// prefix. Split at the last `=`, as PVE does. Errors never quote the
    /// secret.
    pub fn parse(text: &str) -> Result<Token, String> {
        let text = text.trim();
        let text = text.strip_prefix("PVEAPIToken=").unwrap_or(text);
        let Some((id, secret)) = text.rsplit_once('=') else {
            return Err("the token must look like USER@REALM!TOKENID=SECRET (no '=' found)".into());
        };
        if !valid_token_id(id) {
            // The id holds no secret, but a mangled string might; say only its shape.
            return Err(
                "the token id must look like USER@REALM!TOKENID, e.g. fail2ban@pve!fail2ban".into(),
            );
        }
        if secret.is_empty() || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the secret of token '{id}' is empty or contains spaces"
            ));
        }
        Ok(Token {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The `Authorization` header value PVE expects.
    pub fn header_value(&self) -> String {
        format!("PVEAPIToken={}={}", self.id, self.secret)
    }

    /// For tests and redaction checks: the secret itself.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}=<redacted>)", self.id)
    }
}

/// `user@realm!name`, name as PVE's `[A-Za-z][A-Za-z0-9.\-_]+`.
fn valid_token_id(id: &str) -> bool {
    let Some((user_realm, name)) = id.split_once('!') else {
        return false;
    };
    let Some((user, realm)) = user_realm.rsplit_once('@') else {
        return false;
    };
    let mut name_chars = name.chars();
    let name_ok = name_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() >= 2
        && name_chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    let plain = |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '=');
    plain(user) && plain(realm) && name_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_prefix_is_optional_and_split_at_last_equals() {
        let t = Token::parse("PVEAPIToken=root@pam!f2b=abc").unwrap();
        assert_eq!(t.id, "root@pam!f2b");
        // PVE splits at the last '=', so an id ending up with '=' is malformed.
        assert!(Token::parse("root@pam!f2b=a=b").is_err());
        let t = Token::parse("root@pam!f2b=abc").unwrap();
        assert_eq!((t.id.as_str(), t.secret()), ("root@pam!f2b", "abc"));
        assert_eq!(t.header_value(), "PVEAPIToken=root@pam!f2b=abc");
    }
}
