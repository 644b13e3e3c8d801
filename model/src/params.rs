//! Request parameters as PVE's server hands them to a handler (§1.2), and
//! the JSON-schema checks PVE applies to them (§1.1, §6.1), with PVE's
//! exact error texts.

use crate::cidr;
use std::collections::BTreeMap;

/// A parameter value after decoding, as Perl would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Str(String),
    /// A repeated form key: Perl gets an array reference.
    List(Vec<String>),
    /// A JSON array or object: "ARRAY" or "HASH".
    Ref(&'static str),
}

/// Parameters by name, merged from their sources.
pub type Params = BTreeMap<String, Param>;

/// `uri_unescape`: `%XX` becomes the byte, anything else stays; with
/// `plus_is_space` (query strings and form bodies) `+` is a space.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `application/x-www-form-urlencoded` (also query strings): ordered pairs.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Adds pairs to `params`, later sources overriding earlier ones by key, and
/// a key repeated *within* one source turning into a list.
pub fn merge(params: &mut Params, pairs: Vec<(String, Param)>) {
    let mut this: Params = BTreeMap::new();
    for (k, v) in pairs {
        let merged = match (this.remove(&k), v) {
            (None, v) => v,
            (Some(Param::Str(a)), Param::Str(b)) => Param::List(vec![a, b]),
            (Some(Param::List(mut l)), Param::Str(b)) => {
                l.push(b);
                Param::List(l)
            }
            (Some(_), v) => v,
        };
        this.insert(k, merged);
    }
    params.extend(this);
}

/// Decoded pairs from one source (a form body or a query string): a
/// repeated key becomes a list, as Perl's decoder makes it an array.
pub fn from_pairs(pairs: &[(String, String)]) -> Params {
    let mut params = Params::new();
    let pairs = pairs
        .iter()
        .map(|(k, v)| (k.clone(), Param::Str(v.clone())))
        .collect();
    merge(&mut params, pairs);
    params
}

/// A string parameter, if given (the schema has made sure of the type).
pub(crate) fn get<'a>(p: &'a Params, key: &str) -> Option<&'a str> {
    match p.get(key) {
        Some(Param::Str(s)) => Some(s),
        _ => None,
    }
}

/// A required string parameter (checked present by the schema).
pub(crate) fn req<'a>(p: &'a Params, key: &str) -> &'a str {
    get(p, key).unwrap_or_default()
}

/// A boolean parameter (`1` or `0` after the schema), or a truthy string.
pub(crate) fn flag(p: &Params, key: &str) -> bool {
    get(p, key).is_some_and(crate::text::truthy)
}

/// The property types the ipset API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// Standard option `ipset-name` (also `rename`).
    Name,
    /// Format `IPorCIDRorAlias`.
    Cidr,
    /// A plain string (`comment`, and the optional strings of extra routes).
    Str,
    /// `nomatch`, `force`: only 0 or 1 over HTTP.
    Bool,
    /// `pve-config-digest`: maxLength 64.
    Digest,
}

/// One schema property: (name, type, optional).
pub(crate) type Prop = (&'static str, Ty, bool);

/// `check_object` with `additionalProperties => 0`: every error at once.
pub(crate) fn validate(schema: &[Prop], params: &Params) -> Result<(), BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    for (name, ty, optional) in schema {
        match params.get(*name) {
            None if !optional => {
                errors.insert(
                    name.to_string(),
                    "property is missing and it is not optional".into(),
                );
            }
            None => {}
            Some(v) => {
                if let Err(e) = check_prop(*ty, v) {
                    errors.insert(name.to_string(), e);
                }
            }
        }
    }
    for k in params
        .keys()
        .filter(|k| !schema.iter().any(|(n, _, _)| n == k))
    {
        errors.insert(
            k.clone(),
            "property is not defined in schema and the schema does not allow additional properties"
                .into(),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `check_prop`: type, format, pattern, maxLength, minLength, first failure wins.
fn check_prop(ty: Ty, value: &Param) -> Result<(), String> {
    let type_name = if ty == Ty::Bool { "boolean" } else { "string" };
    let v = match value {
        Param::Str(s) => s,
        Param::List(_) => return Err(format!("type check ('{type_name}') failed - got ARRAY")),
        Param::Ref(r) => return Err(format!("type check ('{type_name}') failed - got {r}")),
    };
    match ty {
        Ty::Bool if v != "0" && v != "1" => {
            Err(format!("type check ('boolean') failed - got '{v}'"))
        }
        Ty::Cidr => cidr::verify(v)
            .map(|_| ())
            .map_err(|m| format!("invalid format - {m}\n")),
        Ty::Name if !cidr::is_name(v) => Err("value does not match the regex pattern".into()),
        Ty::Name if v.chars().count() > 64 => Err("value may only be 64 characters long".into()),
        Ty::Digest if v.chars().count() > 64 => Err("value may only be 64 characters long".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let mut p = Params::new();
        let pairs = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Param::Str(v.to_string())))
            .collect();
        merge(&mut p, pairs);
        p
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("10.0.0.0%2F8", false), "10.0.0.0/8");
        assert_eq!(percent_decode("a+b%20c%", true), "a b c%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(
            parse_form("cidr=1.2.3.4%2F32&comment=a+b&&x"),
            vec![
                ("cidr".into(), "1.2.3.4/32".into()),
                ("comment".into(), "a b".into()),
                ("x".into(), "".into())
            ]
        );
    }

    #[test]
    fn merging_and_repeats() {
        let mut p = params(&[("a", "1"), ("a", "2"), ("b", "x")]);
        assert_eq!(p["a"], Param::List(vec!["1".into(), "2".into()]));
        merge(&mut p, vec![("b".into(), Param::Str("y".into()))]);
        assert_eq!(
            p["b"],
            Param::Str("y".into()),
            "the query overrides the body"
        );
    }

    #[test]
    fn schema_errors() {
        let schema: &[Prop] = &[
            ("name", Ty::Name, false),
            ("cidr", Ty::Cidr, false),
            ("nomatch", Ty::Bool, true),
        ];
        let err = validate(
            schema,
            &params(&[("name", "a"), ("nomatch", "true"), ("digest", "x")]),
        )
        .unwrap_err();
        assert_eq!(err["name"], "value does not match the regex pattern");
        assert_eq!(err["cidr"], "property is missing and it is not optional");
        assert_eq!(err["nomatch"], "type check ('boolean') failed - got 'true'");
        assert_eq!(
            err["digest"],
            "property is not defined in schema and the schema does not allow additional properties"
        );
        let long = "a".repeat(65);
        let err = validate(schema, &params(&[("name", &long), ("cidr", "1.2.3")])).unwrap_err();
        assert_eq!(err["name"], "value may only be 64 characters long");
        assert_eq!(
            err["cidr"],
            "invalid format - value does not look like a valid IP address or CIDR network\n"
        );
        assert!(
            validate(
                schema,
                &params(&[("name", &"a".repeat(64)), ("cidr", "x1"), ("nomatch", "0")])
            )
            .is_ok()
        );
        let mut p = params(&[("name", "ab"), ("cidr", "1.2.3.4")]);
        merge(
            &mut p,
            vec![("nomatch".into(), Param::List(vec!["1".into(), "1".into()]))],
        );
        assert_eq!(
            validate(schema, &p).unwrap_err()["nomatch"],
            "type check ('boolean') failed - got ARRAY"
        );
        let digest: &[Prop] = &[("digest", Ty::Digest, true)];
        assert!(validate(digest, &params(&[("digest", &"f".repeat(64))])).is_ok());
        assert!(validate(digest, &params(&[("digest", &"f".repeat(65))])).is_err());
    }
}
