//! `copy_list_with_digest` and `copy_opject_with_digest` (§7.3): SHA-1
//! over `key:value\n` for each defined, non-reference field, keys sorted,
//! values UTF-8 encoded. The caller leaves out undefined and reference
//! values (such as `errors`).

/// One element's defined scalar fields: (key, value).
pub(crate) type Fields = Vec<(&'static str, String)>;

/// The digest of a list: every element's fields, keys sorted, in order.
pub(crate) fn list<K: AsRef<str> + Ord>(
    elements: impl IntoIterator<Item = Vec<(K, String)>>,
) -> String {
    let mut sha = sha1_smol::Sha1::new();
    for mut fields in elements {
        fields.sort();
        for (k, v) in fields {
            sha.update(format!("{}:{v}\n", k.as_ref()).as_bytes());
        }
    }
    sha.digest().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(c: &str) -> Fields {
        vec![("cidr", c.to_string())]
    }

    #[test]
    fn vectors_of_the_spec() {
        assert_eq!(
            list(Vec::<Fields>::new()),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            list([cidr("1.2.3.4")]),
            "cf70dabeb1791eb8381cd3f13bd883ad2d413e5d"
        );
        let mut first = cidr("10.0.0.0/8");
        first.push((
            "comment",
            "[2024/01/02 03:04:05] Added by fail2pvefw".into(),
        ));
        let mut second = cidr("192.0.2.1");
        second.push(("nomatch", "1".into()));
        assert_eq!(
            list([first, second]),
            "a3ffedf31b2c47a52b416eeeb1c5e968988fbb4e"
        );
        let sets = [
            vec![("name", "blacklist".to_string())],
            vec![
                ("name", "fail2ban".to_string()),
                ("comment", "bans".to_string()),
            ],
        ];
        assert_eq!(list(sets), "d3a8b3a6dd863df6d85707dedd08b7c30fece826");
    }
}
