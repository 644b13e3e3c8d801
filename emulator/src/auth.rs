//! API-token authentication (§9): which header counts, how it is split, and
//! the two 401 flavours a client can tell apart.

use crate::options::Token;
use pve_model::params::percent_decode;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// Neither a `PVEAuthCookie` nor a `PVEAPIToken` anywhere: `401 No ticket`.
    NoTicket,
    /// Anything wrong with what was presented: `401 Authentication failed!`.
    Failed,
}

/// `extract_auth_value`: `(^|\s)NAME(=| )([^;]*)`, URI-unescaped.
fn extract(header: &str, name: &str) -> Option<String> {
    let mut from = 0;
    while let Some(pos) = header[from..].find(name) {
        let start = from + pos;
        let before_ok = start == 0 || header[..start].ends_with(char::is_whitespace);
        let rest = &header[start + name.len()..];
        if before_ok && (rest.starts_with('=') || rest.starts_with(' ')) {
            let value = rest[1..].split(';').next().unwrap_or("");
            return Some(percent_decode(value, false));
        }
        from = start + name.len();
    }
    None
}

/// Authenticates a request from its `Authorization` and `Cookie` headers.
/// A ticket takes precedence over a token; the emulator issues no tickets,
/// so any ticket fails.
pub(crate) fn authenticate(
    authorization: Option<&str>,
    cookie: Option<&str>,
    tokens: &[Token],
) -> Result<Token, AuthError> {
    let ticket = [authorization, cookie]
        .into_iter()
        .flatten()
        .find_map(|h| extract(h, "PVEAuthCookie"));
    if ticket.is_some() {
        return Err(AuthError::Failed);
    }
    let value = authorization
        .and_then(|h| extract(h, "PVEAPIToken"))
        .ok_or(AuthError::NoTicket)?;
    // Split at the last '=': the secret never contains one, the id may not.
    let (id, secret) = value.rsplit_once('=').ok_or(AuthError::Failed)?;
    if !valid_token_id(id) {
        return Err(AuthError::Failed);
    }
    tokens
        .iter()
        .find(|t| t.id == id && t.secret == secret)
        .cloned()
        .ok_or(AuthError::Failed)
}

/// `user@realm!name` with name `[A-Za-z][A-Za-z0-9.\-_]+`.
fn valid_token_id(id: &str) -> bool {
    let Some((user, name)) = id.rsplit_once('!') else {
        return false;
    };
    let b = name.as_bytes();
    user.contains('@')
        && b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b".-_".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Vec<Token> {
        vec![Token::new("f2b@pve!ban", "s3cret")]
    }

    #[test]
    fn header_forms() {
        let ok = |h: &str| authenticate(Some(h), None, &tokens()).map(|t| t.id);
        assert_eq!(
            ok("PVEAPIToken=f2b@pve!ban=s3cret"),
            Ok("f2b@pve!ban".into())
        );
        assert_eq!(
            ok("PVEAPIToken f2b@pve!ban=s3cret"),
            Ok("f2b@pve!ban".into())
        );
        assert_eq!(
            ok("PVEAPIToken=f2b%40pve%21ban=s3cret"),
            Ok("f2b@pve!ban".into())
        );
        assert_eq!(
            ok("x PVEAPIToken=f2b@pve!ban=s3cret; y"),
            Ok("f2b@pve!ban".into())
        );
        assert_eq!(ok("PVEAPIToken=f2b@pve!ban=wrong"), Err(AuthError::Failed));
        assert_eq!(ok("PVEAPIToken=f2b@pve!ban"), Err(AuthError::Failed));
        assert_eq!(ok("PVEAPIToken=f2b@pve!b=s3cret"), Err(AuthError::Failed));
        assert_eq!(
            ok("pveapitoken=f2b@pve!ban=s3cret"),
            Err(AuthError::NoTicket)
        );
        assert_eq!(ok("Bearer abc"), Err(AuthError::NoTicket));
        assert_eq!(
            ok("xPVEAPIToken=f2b@pve!ban=s3cret"),
            Err(AuthError::NoTicket)
        );
        assert_eq!(
            authenticate(None, None, &tokens()),
            Err(AuthError::NoTicket)
        );
        assert_eq!(
            authenticate(
                Some("PVEAPIToken=f2b@pve!ban=s3cret"),
                Some("PVEAuthCookie=x"),
                &tokens()
            ),
            Err(AuthError::Failed)
        );
    }
}
