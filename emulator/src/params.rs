//! Where parameters come from (§1.2) and the JSON-schema checks PVE applies
//! to them (§1.1, §6.1), with PVE's exact error texts.

use crate::cidr;
use std::collections::BTreeMap;

/// A parameter value after decoding, as Perl would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PVal {
    Str(String),
    /// A repeated form key: Perl gets an array reference.
    List(Vec<String>),
    /// A JSON array or object: "ARRAY" or "HASH".
    Ref(&'static str),
}

pub(crate) type Params = BTreeMap<String, PVal>;

/// `uri_unescape`: `%XX` becomes the byte, anything else stays; with
/// `plus_is_space` (query strings and form bodies) `+` is a space.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
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
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
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
pub(crate) fn merge(params: &mut Params, pairs: Vec<(String, PVal)>) {
    let mut this: Params = BTreeMap::new();
    for (k, v) in pairs {
        let merged = match (this.remove(&k), v) {
            (None, v) => v,
            (Some(PVal::Str(a)), PVal::Str(b)) => PVal::List(vec![a, b]),
            (Some(PVal::List(mut l)), PVal::Str(b)) => {
                l.push(b);
                PVal::List(l)
            }
            (Some(_), v) => v,
        };
        this.insert(k, merged);
    }
    params.extend(this);
}

/// An `application/json` body: an object whose scalars become strings
/// (booleans 1/0, as JSON::PP booleans pass the boolean check); null means
/// absent.
pub(crate) fn parse_json(body: &[u8]) -> Result<Vec<(String, PVal)>, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(map) = value else {
        return Err("JSON body is not an object".into());
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let v = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::Bool(b) => PVal::Str(if b { "1" } else { "0" }.into()),
            serde_json::Value::Number(n) => PVal::Str(n.to_string()),
            serde_json::Value::String(s) => PVal::Str(s),
            serde_json::Value::Array(_) => PVal::Ref("ARRAY"),
            serde_json::Value::Object(_) => PVal::Ref("HASH"),
        };
        out.push((k, v));
    }
    Ok(out)
}

/// Flattens parameters for [`crate::Recorded`].
pub(crate) fn flatten(pairs: &[(String, PVal)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        match v {
            PVal::Str(s) => out.push((k.clone(), s.clone())),
            PVal::List(l) => out.extend(l.iter().map(|s| (k.clone(), s.clone()))),
            PVal::Ref(r) => out.push((k.clone(), r.to_string())),
        }
    }
    out
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
fn check_prop(ty: Ty, value: &PVal) -> Result<(), String> {
    let type_name = if ty == Ty::Bool { "boolean" } else { "string" };
    let v = match value {
        PVal::Str(s) => s,
        PVal::List(_) => return Err(format!("type check ('{type_name}') failed - got ARRAY")),
        PVal::Ref(r) => return Err(format!("type check ('{type_name}') failed - got {r}")),
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
            .map(|(k, v)| (k.to_string(), PVal::Str(v.to_string())))
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
        assert_eq!(p["a"], PVal::List(vec!["1".into(), "2".into()]));
        merge(&mut p, vec![("b".into(), PVal::Str("y".into()))]);
        assert_eq!(
            p["b"],
            PVal::Str("y".into()),
            "the query overrides the body"
        );
    }

    #[test]
    fn json_bodies() {
        let p = parse_json(br#"{"cidr":"1.2.3.4","nomatch":true,"n":1,"z":null,"l":[1]}"#).unwrap();
        assert_eq!(
            p,
            vec![
                ("cidr".into(), PVal::Str("1.2.3.4".into())),
                ("l".into(), PVal::Ref("ARRAY")),
                ("n".into(), PVal::Str("1".into())),
                ("nomatch".into(), PVal::Str("1".into())),
            ]
        );
        assert!(parse_json(b"[1]").is_err());
        assert!(parse_json(b"{").is_err());
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
            vec![("nomatch".into(), PVal::List(vec!["1".into(), "1".into()]))],
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
