//! Who wrote an entry, from the ownership tag that ends its comment:
//! `[2026/11/26 01:02:03] sshd, 3 failures f2p:web01/sshd/1764120123`.
//!
//! The host's own reader of the tag the policy writes (`guest/src/owner.rs`
//! writes and reads it the same way; the SDK will later hold the one shared
//! implementation). The host trusts only its own reading: a DELETE or PUT of
//! an entry is sent only when this says the entry is ours.

/// Marks the tag; the last word of the comment.
pub const PREFIX: &str = "f2p:";
/// Longest instance and jail names a tag holds.
const MAX_NAME: usize = 32;

/// The tag's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub instance: String,
    pub jail: Option<String>,
    /// Unix seconds; `None` for a permanent ban.
    pub expires: Option<i64>,
}

impl Tag {
    /// Reads the tag from the last word of a comment, if it is one:
    /// `f2p:INSTANCE/JAIL/EXPIRY`, names of `[A-Za-z0-9._-]` (at most 32),
    /// `-` for no jail or no expiry.
    pub fn parse(comment: &str) -> Option<Tag> {
        let last = comment.split_whitespace().last()?;
        let mut parts = last.strip_prefix(PREFIX)?.split('/');
        let (instance, jail, expires) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !is_name(instance) {
            return None;
        }
        let jail = match jail {
            "-" => None,
            j if is_name(j) => Some(j.to_string()),
            _ => return None,
        };
        let expires = match expires {
            "-" => None,
            t => Some(t.parse::<i64>().ok()?),
        };
        Some(Tag {
            instance: instance.to_string(),
            jail,
            expires,
        })
    }
}

/// Whether a comment carries the tag of `instance`.
pub fn is_ours(comment: Option<&str>, instance: &str) -> bool {
    comment
        .and_then(Tag::parse)
        .is_some_and(|tag| tag.instance == instance)
}

/// Why an entry is not ours, in words for the policy and the log:
/// `not ours (comment 'manual-by-admin' carries no tag f2p:web01/…)`.
pub fn not_ours(comment: Option<&str>, instance: &str) -> String {
    let Some(comment) = comment else {
        return format!("not ours (it has no comment, so no tag {PREFIX}{instance}/…)");
    };
    let shown: String = crate::log::sanitize(comment).chars().take(120).collect();
    match Tag::parse(comment) {
        Some(tag) => format!(
            "not ours (comment '{shown}': instance '{}' wrote it)",
            tag.instance
        ),
        None => format!("not ours (comment '{shown}' carries no tag {PREFIX}{instance}/…)"),
    }
}

/// A name as a tag holds it: 1 to 32 of `[A-Za-z0-9._-]`, not `-`.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text != "-"
        && text.len() <= MAX_NAME
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guests_tags_are_read() {
        let tag = Tag::parse("[2023/11/14 22:13:20] sshd, 3 failures f2p:web01/sshd/1700000600");
        assert_eq!(
            tag,
            Some(Tag {
                instance: "web01".into(),
                jail: Some("sshd".into()),
                expires: Some(1_700_000_600),
            })
        );
        let tag = Tag::parse("f2p:web01/-/-").unwrap();
        assert_eq!((tag.jail, tag.expires), (None, None));
    }

    #[test]
    fn comments_without_a_valid_tag_have_no_owner() {
        for comment in [
            "",
            "manual-by-admin",
            "f2p:web01/sshd",
            "f2p:web01/sshd/soon",
            "f2p:web01/sshd/1/2",
            "f2p:/sshd/1",
            "f2p:-/sshd/1",
            "f2p:web01/sshd/1 trailing words",
            "f2p:web 01/sshd/1",
            "f2p:web01/ss%hd/1",
        ] {
            assert_eq!(Tag::parse(comment), None, "{comment:?}");
        }
        let long = format!("f2p:{}/-/-", "a".repeat(33));
        assert_eq!(Tag::parse(&long), None);
    }

    #[test]
    fn ownership_is_this_instances_tag_only() {
        assert!(is_ours(Some("x f2p:web01/sshd/5"), "web01"));
        assert!(!is_ours(Some("x f2p:web02/sshd/5"), "web01"));
        assert!(!is_ours(Some("x f2p:web011/sshd/5"), "web01"));
        assert!(!is_ours(Some("manual-by-admin"), "web01"));
        assert!(!is_ours(None, "web01"));
    }

    #[test]
    fn the_words_say_whose_it_is() {
        let words = not_ours(Some("manual-by-admin"), "web01");
        assert_eq!(
            words,
            "not ours (comment 'manual-by-admin' carries no tag f2p:web01/…)"
        );
        let words = not_ours(Some("x f2p:other/sshd/1"), "web01");
        assert!(words.contains("instance 'other' wrote it"), "{words}");
        assert!(not_ours(None, "web01").contains("no comment"));
    }
}
