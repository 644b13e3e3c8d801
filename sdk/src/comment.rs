//! The comment stored with each IPSet entry: `[YYYY/MM/DD HH:MM:SS] TEXT TAG`,
//! in the host's local time, like the old Perl script's comments, ending
//! with the ownership tag ([`crate::tag`]). TEXT is the request's `comment`
//! (`-c`; none when it was not given) or else `JAIL, N failures`.
//!
//! PVE checks nothing in a comment (pve-ipset-api.md §4): a CR or LF is
//! written raw into `cluster.fw` and starts a new line there, which can add a
//! bogus entry or even a new section. So every control character goes.
//! Comments also cost capacity in the 1 MiB `cluster.fw`, so the text is cut.

/// The most characters of text after the timestamp.
pub const MAX_TEXT_CHARS: usize = 100;

/// The last second we print: 9999-12-31 23:59:59 UTC. Past it the year would
/// need five digits.
const MAX_TIME: i64 = 253_402_300_799;

use crate::tag::{self, Owner};
use crate::types::BanRequest;

/// The timestamp of `at` (Unix seconds) shifted by `offset` (seconds east
/// of UTC), then `text`.
pub fn comment(at: i64, offset: i32, text: &str) -> String {
    format!("{} {text}", timestamp(at, offset))
}

/// The whole comment fail2pvefw writes: `[YYYY/MM/DD HH:MM:SS] TEXT TAG`,
/// TEXT made safe for `cluster.fw` ([`clean`]) and stripped of anything
/// that looks like a tag, so that only `owner`'s tag ends it.
pub fn tagged(at: i64, offset: i32, text: &str, owner: &Owner) -> String {
    let text = tag::strip_tags(&clean(text));
    format!("{} {}", comment(at, offset, &text), owner.tag())
}

/// The comment of the entry a ban of `req` writes, made at `at` (Unix
/// seconds) in the zone `offset` seconds east of UTC: `[YYYY/MM/DD
/// HH:MM:SS] TEXT f2p:INSTANCE/JAIL/EXPIRY`, TEXT the request's comment or
/// else its jail and failures ([`text`]), the tag the request's owner
/// ([`BanRequest::owner`]). The default policy's comment.
///
/// A request of jail `crowdsec` (an entry CrowdSec's `admit` chose, see
/// [`crate::admission`]) gets [`for_admitted_at`]'s comment instead.
pub fn for_ban_at(req: &BanRequest, at: i64, offset: i32) -> String {
    if req.jail.as_deref() == Some(crate::admission::JAIL) {
        return for_admitted_at(req, at);
    }
    let text = text(req.comment.as_deref(), req.jail.as_deref(), req.failures);
    tagged(at, offset, &text, &req.owner(at))
}

/// The comment of an entry `admit` chose: the chosen comment as it is
/// (`cs ORIGIN SCENARIO`), then the tag; no timestamp (the LAPI keeps when
/// a decision was made, and every byte costs entries). The host counted
/// exactly these bytes against `max-bytes`.
pub fn for_admitted_at(req: &BanRequest, at: i64) -> String {
    let text = text(req.comment.as_deref(), req.jail.as_deref(), None);
    let text = tag::strip_tags(&text);
    format!("{} {}", text.trim(), req.owner(at).tag())
}

crate::with_host! {
    /// [`for_ban_at`] at the second of the ban ([`ban_time`]), in the
    /// host's local time.
    pub fn for_ban(req: &BanRequest) -> String {
        let at = banned_at(req);
        for_ban_at(req, at, crate::clock::local_offset(at))
    }

    /// The second of the ban: fail2ban's `<time>`, else the host's now.
    pub fn banned_at(req: &BanRequest) -> i64 {
        ban_time(req.time, crate::clock::now)
    }
}

/// The second of the ban: fail2ban's `<time>` rounded down, or `now()` when
/// fail2ban gave none or gave something that is not a time we can print.
pub fn ban_time(time: Option<f64>, now: impl FnOnce() -> u64) -> i64 {
    match time {
        Some(t) if t.is_finite() && (0.0..=MAX_TIME as f64).contains(&t) => t.floor() as i64,
        _ => i64::try_from(now()).unwrap_or(MAX_TIME).min(MAX_TIME),
    }
}

/// `[YYYY/MM/DD HH:MM:SS]` for `at` (Unix seconds) in the zone `offset`
/// seconds east of UTC.
pub fn timestamp(at: i64, offset: i32) -> String {
    let local = at + i64::from(offset);
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "[{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}]",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The proleptic Gregorian date of a day number (0 = 1970-01-01), by Howard
/// Hinnant's `civil_from_days`. Counting in 400-year eras starting on March 1
/// puts the leap day at the end of each year, so no month table is needed.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The text after the timestamp: the user's `comment` if it has any text
/// left once cleaned, else the jail and the failure count
/// (`sshd, 3 failures`), else `Added by fail2pvefw` (the old script's default).
pub fn text(comment: Option<&str>, jail: Option<&str>, failures: Option<u32>) -> String {
    if let Some(comment) = comment.map(clean).filter(|c| !c.is_empty()) {
        return comment;
    }
    let jail = jail.map(clean).filter(|j| !j.is_empty());
    let failures = failures.map(|n| match n {
        1 => "1 failure".to_string(),
        n => format!("{n} failures"),
    });
    match (jail, failures) {
        (Some(jail), Some(failures)) => clean(&format!("{jail}, {failures}")),
        (Some(jail), None) => jail,
        (None, Some(failures)) => failures,
        (None, None) => "Added by fail2pvefw".to_string(),
    }
}

/// `text` made safe for one line of `cluster.fw`: every control character
/// removed (C0, DEL, C1, and the Unicode line and paragraph separators), the
/// line-breaking ones (TAB, LF, CR, ...) turned into one space so that words
/// stay apart; then trimmed and cut to [`MAX_TEXT_CHARS`] characters.
pub fn clean(text: &str) -> String {
    one_line(text, MAX_TEXT_CHARS)
}

/// `text` as one trimmed line of at most `max_chars` characters, with the
/// control characters handled as [`clean`] describes. Also used for PVE's
/// error messages, which may hold newlines.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for c in text.chars() {
        let c = if is_line_break(c) {
            // One space for a line break, none right after another space.
            if out.ends_with(' ') {
                continue;
            }
            ' '
        } else if c.is_control() {
            continue;
        } else {
            c
        };
        // Trim the start as we go.
        if out.is_empty() && c.is_whitespace() {
            continue;
        }
        if count == max_chars {
            break;
        }
        out.push(c);
        count += 1;
    }
    out.truncate(out.trim_end().len());
    out
}

/// Controls that separate words or lines; they become a space.
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hinnant's `days_from_civil`, the inverse, to check round trips.
    fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    #[test]
    fn user_comment_with_fixed_time_and_offset() {
        // 2026-11-26 00:02:03 UTC, one hour east.
        let text = text(Some("sshd: 3 attempts"), Some("sshd"), Some(3));
        assert_eq!(
            comment(1_795_651_323, 3600, &text),
            "[2026/11/26 01:02:03] sshd: 3 attempts"
        );
    }

    #[test]
    fn a_tagged_comment_ends_with_the_one_tag() {
        let owner = Owner::for_ban("web01", Some("sshd"), 1_795_651_323, Some(600));
        assert_eq!(
            tagged(1_795_651_323, 3600, "3 bans\nf2p:evil/-/- in x", &owner),
            "[2026/11/26 01:02:03] 3 bans in x f2p:web01/sshd/1795651923"
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0, 0), "[1970/01/01 00:00:00]");
        assert_eq!(timestamp(951_782_400, 0), "[2000/02/29 00:00:00]");
        assert_eq!(timestamp(1_709_208_000, 0), "[2024/02/29 12:00:00]");
        assert_eq!(timestamp(253_402_300_799, 0), "[9999/12/31 23:59:59]");
    }

    #[test]
    fn negative_offset_goes_back_a_day_and_a_year() {
        // 2026-01-01 03:00:00 UTC, five hours west.
        assert_eq!(timestamp(1_767_236_400, -5 * 3600), "[2025/12/31 22:00:00]");
        // Before the epoch in local time.
        assert_eq!(timestamp(0, -1), "[1969/12/31 23:59:59]");
    }

    #[test]
    fn leap_days() {
        // Around 2024-02-29 (leap year).
        assert_eq!(
            timestamp(1_709_208_000 - 86_400, 0),
            "[2024/02/28 12:00:00]"
        );
        assert_eq!(
            timestamp(1_709_208_000 + 86_400, 0),
            "[2024/03/01 12:00:00]"
        );
        // 2000 is a leap year (divisible by 400).
        assert_eq!(timestamp(951_782_400 - 1, 0), "[2000/02/28 23:59:59]");
        assert_eq!(timestamp(951_782_400 + 86_400, 0), "[2000/03/01 00:00:00]");
        // 2100 is not (divisible by 100): February 28 is followed by March 1.
        assert_eq!(timestamp(4_107_540_600, 0), "[2100/02/28 23:30:00]");
        assert_eq!(timestamp(4_107_540_600, 1800), "[2100/03/01 00:00:00]");
        // New Year's Eve of a leap year is day 366.
        assert_eq!(timestamp(1_735_689_599, 0), "[2024/12/31 23:59:59]");
        assert_eq!(timestamp(1_735_689_599, 1), "[2025/01/01 00:00:00]");
        // A positive offset across the leap day.
        assert_eq!(
            timestamp(1_709_164_800 - 1, 14 * 3600),
            "[2024/02/29 13:59:59]"
        );
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in (-800_000..3_000_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn ban_time_floors_and_falls_back_to_now() {
        assert_eq!(ban_time(Some(1_700_000_000.999), || 1), 1_700_000_000);
        assert_eq!(ban_time(Some(0.5), || 1), 0);
        assert_eq!(ban_time(None, || 42), 42);
        assert_eq!(ban_time(Some(f64::NAN), || 42), 42);
        assert_eq!(ban_time(Some(f64::INFINITY), || 42), 42);
        assert_eq!(ban_time(Some(-1.0), || 42), 42);
        assert_eq!(ban_time(Some(1e300), || 42), 42);
        assert_eq!(ban_time(None, || u64::MAX), MAX_TIME);
    }

    #[test]
    fn text_from_comment_jail_failures_or_default() {
        assert_eq!(
            text(Some("manual ban"), Some("sshd"), Some(3)),
            "manual ban"
        );
        assert_eq!(text(None, Some("sshd"), Some(3)), "sshd, 3 failures");
        assert_eq!(text(None, Some("sshd"), Some(1)), "sshd, 1 failure");
        assert_eq!(text(None, Some("sshd"), None), "sshd");
        assert_eq!(text(None, None, Some(5)), "5 failures");
        assert_eq!(text(None, None, None), "Added by fail2pvefw");
        // A comment with nothing left after cleaning does not count.
        assert_eq!(text(Some(" \r\n\t"), Some("sshd"), None), "sshd");
        assert_eq!(text(Some(""), None, None), "Added by fail2pvefw");
        assert_eq!(text(None, Some("\u{7f}"), None), "Added by fail2pvefw");
    }

    #[test]
    fn percent_is_just_a_character() {
        assert_eq!(text(Some("100% %s %n"), None, None), "100% %s %n");
    }

    #[test]
    fn control_characters_are_removed() {
        assert_eq!(clean("a\r\n[RULES]\nIN DROP"), "a [RULES] IN DROP");
        assert_eq!(clean("a\tb"), "a b");
        assert_eq!(clean("a\0b\u{7f}c\u{1b}[31md"), "abc[31md");
        assert_eq!(clean("a\u{80}b\u{9f}c\u{85}d"), "abc d");
        assert_eq!(clean("a\u{2028}b\u{2029}c"), "a b c");
        assert_eq!(clean("  \n padded \t "), "padded");
        assert_eq!(clean("two  spaces stay"), "two  spaces stay");
        assert_eq!(clean("#hash stays #"), "#hash stays #");
        assert_eq!(clean("ünïcödé ✓"), "ünïcödé ✓");
        let cleaned = clean("x\u{0}\u{1}\u{8}\u{a0}\u{feff}y");
        assert!(!cleaned.chars().any(char::is_control), "{cleaned:?}");
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let long = "é".repeat(300);
        let cut = clean(&long);
        assert_eq!(cut.chars().count(), MAX_TEXT_CHARS);
        assert_eq!(cut, "é".repeat(MAX_TEXT_CHARS));
        // Cut, then trimmed: no trailing space.
        let spaced = format!("{} tail", "a".repeat(MAX_TEXT_CHARS - 1));
        assert_eq!(clean(&spaced), "a".repeat(MAX_TEXT_CHARS - 1));
        // Composite text is cut too.
        let jail = "j".repeat(99);
        assert_eq!(
            text(None, Some(&jail), Some(3)).chars().count(),
            MAX_TEXT_CHARS
        );
    }
}
