//! The ownership tag at the end of every entry's comment.
//!
//! `[2026/11/26 01:02:03] sshd: 3 attempts f2p:web01/sshd/1764120123`
//!
//! `f2p:INSTANCE/JAIL/EXPIRY` as the comment's last word: which fail2pvefw
//! instance wrote the entry, for which jail (`-` for none), and the Unix
//! second its ban ends (`-` for a permanent one). Names keep only
//! `[A-Za-z0-9._-]`, at most 32 characters.
//!
//! The host reads it with this same code (it depends on this crate without
//! features): it sends a PUT or DELETE of an entry only when the entry
//! carries this instance's tag, and `sync` removes this instance's entries
//! whose EXPIRY has passed, even when fail2ban is gone; an entry someone
//! else wrote is never touched. It is short on purpose: `cluster.fw` holds
//! the whole datacenter firewall in 1 MiB, and every byte of comment costs
//! entries.

/// Marks the tag; the last word of the comment.
pub const PREFIX: &str = "f2p:";
/// Longest instance and jail names kept in a tag.
pub const MAX_NAME: usize = 32;

/// Who wrote an entry: the fields of its tag (the WIT `owner`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The fail2pvefw instance that wrote it.
    pub instance: String,
    /// The jail that banned it, if any.
    pub jail: Option<String>,
    /// When the ban ends, Unix seconds; `None` for a permanent ban.
    pub expires: Option<i64>,
}

impl Owner {
    /// The owner of a ban made now: `bantime` < 0 (or none) is permanent.
    pub fn for_ban(
        instance: &str,
        jail: Option<&str>,
        banned_at: i64,
        bantime: Option<i64>,
    ) -> Owner {
        Owner {
            instance: tag_name(instance),
            jail: jail.and_then(name),
            expires: bantime
                .filter(|&t| t >= 0)
                .map(|t| banned_at.saturating_add(t)),
        }
    }

    /// `f2p:<instance>/<jail or ->/<expiry or ->`
    pub fn tag(&self) -> String {
        let jail = self.jail.as_deref().unwrap_or("-");
        let expires = self.expires.map_or("-".to_string(), |t| t.to_string());
        format!("{PREFIX}{}/{jail}/{expires}", self.instance)
    }

    /// Reads the tag from the last word of a comment, if there is one.
    pub fn parse(comment: &str) -> Option<Owner> {
        let last = comment.split_whitespace().last()?;
        let mut parts = last.strip_prefix(PREFIX)?.split('/');
        let (instance, jail, expires) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || name(instance).as_deref() != Some(instance) {
            return None;
        }
        let jail = match jail {
            "-" => None,
            j if name(j).as_deref() == Some(j) => Some(j.to_string()),
            _ => return None,
        };
        let expires = match expires {
            "-" => None,
            t => Some(t.parse::<i64>().ok()?),
        };
        Some(Owner {
            instance: instance.to_string(),
            jail,
            expires,
        })
    }
}

/// Whether a comment carries the tag of `instance` (as its tags name it,
/// [`tag_name`]): the host's test before it lets a PUT or DELETE through.
pub fn is_ours(comment: Option<&str>, instance: &str) -> bool {
    comment
        .and_then(Owner::parse)
        .is_some_and(|owner| owner.instance == instance)
}

/// This instance's name as its tags carry it.
pub fn tag_name(instance: &str) -> String {
    name(instance).unwrap_or_else(|| "fail2pvefw".into())
}

/// A name as a tag keeps it: letters, digits, `.`, `_`, `-`; at most 32.
/// Anything else is dropped, so no name can break the tag's syntax.
fn name(text: &str) -> Option<String> {
    let kept: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(MAX_NAME)
        .collect();
    (!kept.is_empty() && kept != "-").then_some(kept)
}

/// Removes anything that looks like a tag from human text, so a comment
/// cannot claim an owner.
pub fn strip_tags(text: &str) -> String {
    text.split(' ')
        .filter(|word| !word.starts_with(PREFIX))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_round_trips() {
        let owner = Owner::for_ban("web01", Some("sshd"), 1_700_000_000, Some(600));
        assert_eq!(owner.tag(), "f2p:web01/sshd/1700000600");
        let comment = format!("[2023/11/14 22:13:20] sshd, 3 failures {}", owner.tag());
        assert_eq!(Owner::parse(&comment), Some(owner));
    }

    #[test]
    fn permanent_and_jailless_bans_use_dashes() {
        let owner = Owner::for_ban("web01", None, 1_700_000_000, Some(-1));
        assert_eq!(owner.tag(), "f2p:web01/-/-");
        assert_eq!(Owner::parse(&owner.tag()), Some(owner));
        assert_eq!(Owner::for_ban("a", None, 5, None).expires, None);
    }

    #[test]
    fn names_cannot_break_the_tag() {
        let owner = Owner::for_ban("my host/1", Some("ss h/d"), 0, Some(1));
        assert_eq!(owner.tag(), "f2p:myhost1/sshd/1");
        assert_eq!(Owner::for_ban("///", None, 0, None).instance, "fail2pvefw");
    }

    #[test]
    fn comments_without_a_valid_tag_have_no_owner() {
        for comment in [
            "",
            "added by hand",
            "f2p:web01/sshd",
            "f2p:web01/sshd/soon",
            "f2p:web01/sshd/1/2",
            "f2p:/sshd/1",
            "f2p:web01/sshd/1 trailing words",
        ] {
            assert_eq!(Owner::parse(comment), None, "{comment:?}");
        }
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
    fn names_that_are_not_kept_whole_are_no_tag() {
        for comment in ["f2p:-/sshd/1", "f2p:web 01/sshd/1", "f2p:web01/ss%hd/1"] {
            assert_eq!(Owner::parse(comment), None, "{comment:?}");
        }
        let long = format!("f2p:{}/-/-", "a".repeat(33));
        assert_eq!(Owner::parse(&long), None);
        let tag = Owner::parse("[2023/11/14 22:13:20] sshd, 3 failures f2p:web01/sshd/1700000600");
        assert_eq!(tag.unwrap().expires, Some(1_700_000_600));
    }

    #[test]
    fn human_text_cannot_claim_an_owner() {
        assert_eq!(strip_tags("hi f2p:other/sshd/1 there"), "hi there");
    }
}
