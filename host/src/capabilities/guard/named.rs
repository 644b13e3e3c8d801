//! The entries `fail2pvefw dns` writes for a host name, and how the host
//! knows them again:
//! `[2026/11/26 10:00:03] home.example.net f2p:web01/dns/-`.
//!
//! The ownership tag's jail slot says `dns` and there is no expiry (so
//! `sync` never removes one as expired); the word before the tag is the
//! name. Only the host writes these, into accept lists.

use fail2pvefw_sdk::tag::{Owner as Tag, PREFIX};

/// The tag's jail slot of a host name's entry.
pub const SLOT: &str = "dns";

/// The comment of `name`'s entry, written at `at` (Unix seconds, local
/// time) by `instance`.
pub fn comment(name: &str, at: f64, instance: &str) -> String {
    let when = chrono::DateTime::from_timestamp(at.max(0.0) as i64, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("[%Y/%m/%d %H:%M:%S]")
                .to_string()
        })
        .unwrap_or_default();
    format!("{when} {name} {PREFIX}{instance}/{SLOT}/-")
}

/// The host name of an entry `instance` wrote for `fail2pvefw dns`, from
/// its comment; `None` for any other entry.
pub fn name_of<'a>(comment: &'a str, instance: &str) -> Option<&'a str> {
    let tag = Tag::parse(comment)?;
    if tag.instance != instance || tag.jail.as_deref() != Some(SLOT) || tag.expires.is_some() {
        return None;
    }
    let mut words = comment.split_whitespace().rev();
    words.next(); // the tag
    words.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_names_comment_reads_back_as_its_name() {
        let c = comment("home.test", 1_700_000_000.0, "web01");
        assert!(c.ends_with("] home.test f2p:web01/dns/-"), "{c}");
        assert!(c.starts_with("[20"), "{c}");
        assert_eq!(name_of(&c, "web01"), Some("home.test"));
        assert_eq!(name_of(&c, "web02"), None);
        assert!(fail2pvefw_sdk::tag::is_ours(Some(&c), "web01"));
        for other in [
            "[2026/01/01 00:00:00] sshd, 3 failures f2p:web01/dns/1700000000",
            "[2026/01/01 00:00:00] home.test f2p:web01/sshd/-",
            "home.test",
            "f2p:web01/dns/-",
        ] {
            assert_eq!(name_of(other, "web01"), None, "{other}");
        }
    }
}
