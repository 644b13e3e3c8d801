//! Configuration errors that never show a secret.
//!
//! The `toml` crate's error quotes the offending source line, and serde's
//! messages quote values (`invalid type: string "…"`): a typo on the token's
//! line would print the token into fail2ban's log or the journal. Here a
//! parse error keeps the line, the column, the parser's words and the key,
//! and loses every value. Nothing depends on which key holds a secret: every
//! quoted value is redacted, a name is shown only when it is one of ours (or
//! a typo of one), and as a last net any piece of the file's text that made
//! it into the words is cut out. The caller then cuts any piece of a
//! secret (`secrets::Secrets`, which also guards the checks after parsing).

use std::ops::Range;

/// What stands for a value that is not shown.
pub(super) const REDACTED: &str = "…";
/// Pieces of the file this long are cut out of a parser's words.
const SOURCE_PIECE: usize = 12;

/// `line L, column C: MESSAGE (key 'K' in [T])`, with no value of the file.
pub(super) fn toml_error(text: &str, err: &::toml::de::Error, names: &[&str]) -> String {
    let span = err
        .span()
        .filter(|s| s.start <= text.len() && s.end <= text.len());
    let mut out = String::new();
    if let Some(span) = &span {
        let (line, column) = position(text, span.start);
        out.push_str(&format!("line {line}, column {column}: "));
    }
    out.push_str(&redact_message(err.message(), text, span.clone(), names));
    // An unterminated multi-line string is reported where the file ends:
    // the key and table there are not where the mistake is.
    let far_from_its_start = err.message().contains("multi-line");
    if let Some(span) = span.filter(|_| !far_from_its_start) {
        out.push_str(&where_in_file(text, span.start, names));
    }
    out
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// One piece of a parser's message.
enum Piece<'a> {
    Words(&'a str),
    /// In backticks: serde's field names, the parser's expected tokens.
    Ticked(&'a str),
    /// In double quotes: serde's string values (Rust `Debug` form).
    Quoted,
}

/// The parser's words with every value replaced by `…`.
fn redact_message(message: &str, text: &str, span: Option<Range<usize>>, names: &[&str]) -> String {
    let message = message.trim_end();
    // serde names the key or value at the span; one holding a backtick or
    // a quote would shift the pieces below, so the words stop before it.
    let at_span =
        span.map(|s| &text[floor_char_boundary(text, s.start)..floor_char_boundary(text, s.end)]);
    if at_span.is_some_and(|s| s.contains('`'))
        && let Some(cut) = message.find(['`', '"'])
    {
        return format!("{}{REDACTED}", cut_source_pieces(&message[..cut], text));
    }
    let mut out = String::new();
    for piece in pieces(message) {
        match piece {
            Piece::Words(words) => out.push_str(&cut_source_pieces(words, text)),
            Piece::Ticked(name) if shown(name, names) => out.push_str(&format!("`{name}`")),
            Piece::Ticked(_) => out.push_str(&format!("`{REDACTED}`")),
            Piece::Quoted => out.push_str(&format!("\"{REDACTED}\"")),
        }
    }
    out
}

fn pieces(message: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = message;
    while let Some(start) = rest.find(['`', '"']) {
        if start > 0 {
            pieces.push(Piece::Words(&rest[..start]));
        }
        let quote = rest.as_bytes()[start];
        let inner = &rest[start + 1..];
        let end = if quote == b'`' {
            inner.find('`')
        } else {
            closing_quote(inner)
        };
        let Some(end) = end else {
            // Unbalanced: whatever follows may be a value.
            pieces.push(Piece::Quoted);
            return pieces;
        };
        pieces.push(if quote == b'`' {
            Piece::Ticked(&inner[..end])
        } else {
            Piece::Quoted
        });
        rest = &inner[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Words(rest));
    }
    pieces
}

/// The `"` that ends a Rust `Debug` string, skipping `\"` and `\\`.
fn closing_quote(inner: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// A name in backticks is shown when it reads as a key (below), is a
/// number, or is one of the parser's one-character tokens (`=`).
fn shown(name: &str, names: &[&str]) -> bool {
    name.chars().count() <= 2
        || (name.len() <= 20 && name.parse::<f64>().is_ok())
        || reads_as_a_key(name, names)
}

/// One of ours, a typo of one (`tokn`, `ipv6_prefx`), or a word a person
/// would write as a key (`colour`): lower case letters and `_`, short. A
/// secret (hex, base64, a UUID) is none of these.
fn reads_as_a_key(name: &str, names: &[&str]) -> bool {
    if names.contains(&name) {
        return true;
    }
    let plain = |extra: &str| {
        !name.is_empty()
            && name.len() <= 24
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || extra.contains(c))
    };
    plain("") || (plain("0123456789-") && names.iter().any(|ours| distance(name, ours) <= 2))
}

/// Levenshtein distance, for names of a few dozen characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The last net: any run of the parser's words that also occurs in the
/// file is cut out (its words are its own; the file's are the admin's).
fn cut_source_pieces(words: &str, text: &str) -> String {
    let mut marked = vec![false; words.len()];
    for window in windows(words, SOURCE_PIECE) {
        if text.contains(&words[window.clone()]) {
            marked[window].fill(true);
        }
    }
    rebuild(words, &marked)
}

/// The byte ranges of every run of `n` characters.
pub(super) fn windows(text: &str, n: usize) -> Vec<Range<usize>> {
    let mut bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    bounds.push(text.len());
    (0..bounds.len().saturating_sub(n))
        .map(|k| bounds[k]..bounds[k + n])
        .collect()
}

/// The text with each marked run of bytes replaced by one `…`.
pub(super) fn rebuild(text: &str, marked: &[bool]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for (i, c) in text.char_indices() {
        if marked[i] {
            if !in_run {
                out.push_str(REDACTED);
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out
}

/// ` (key 'token' in [pve])`, ` (in [pve])` or nothing: the table from the
/// header above the error and the key left of its line's `=`, each only
/// when it is one of ours (or a typo of one).
fn where_in_file(text: &str, offset: usize, names: &[&str]) -> String {
    let before = &text[..floor_char_boundary(text, offset)];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let table = std::iter::once(line)
        .chain(before[..line_start].lines().rev())
        .find_map(table_header)
        .filter(|t| t.split('.').all(|part| reads_as_a_key(part, names)));
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim())
        .filter(|key| !key.starts_with('['))
        .filter(|key| {
            key.split('.')
                .all(|part| reads_as_a_key(part.trim(), names))
        });
    match (key, table) {
        (Some(key), Some(table)) => format!(" (key '{key}' in [{table}])"),
        (Some(key), None) => format!(" (key '{key}')"),
        (None, Some(table)) => format!(" (in [{table}])"),
        (None, None) => String::new(),
    }
}

/// `pve` from `[pve]` or `[[pve]]`, comments aside.
fn table_header(line: &str) -> Option<&str> {
    let line = line.split('#').next()?.trim();
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(inner);
    Some(inner.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["pve", "state", "host", "token", "token_file", "fingerprint"];
    const SECRET: &str = "6043ef45-632a-428b-8777-4b1eb5587d58";

    fn error(text: &str) -> String {
        let err = ::toml::from_str::<::toml::Table>(text).unwrap_err();
        toml_error(text, &err, NAMES)
    }

    #[test]
    fn a_parse_error_keeps_line_column_and_key_but_not_the_value() {
        let e = error(&format!(
            "[pve]\nhost = \"h\"\ntoken = \"a@pve!t={SECRET}\n"
        ));
        assert!(e.starts_with("line 3, column "), "{e}");
        assert!(e.ends_with("(key 'token' in [pve])"), "{e}");
        assert!(!e.contains("6043ef45"), "{e}");
    }

    #[test]
    fn quoted_values_and_foreign_names_are_redacted() {
        let text = format!("x = \"{SECRET}\"\n");
        let m = redact_message(
            &format!("invalid type: string \"{SECRET}\\\"x\", expected f64"),
            &text,
            None,
            NAMES,
        );
        assert_eq!(m, "invalid type: string \"…\", expected f64");
        let m = redact_message(
            &format!("unknown field `tokn`, expected `host` or `{SECRET}`"),
            &text,
            None,
            NAMES,
        );
        assert_eq!(m, "unknown field `tokn`, expected `host` or `…`");
    }

    #[test]
    fn words_found_in_the_file_are_cut() {
        let text = format!("{SECRET}\n");
        let m = redact_message(&format!("bad {SECRET} here"), &text, None, NAMES);
        assert_eq!(m, "bad … here");
    }

    #[test]
    fn typos_of_our_names_are_shown_others_not() {
        assert!(shown("tokn", NAMES));
        assert!(shown("fingerprnt", NAMES));
        assert!(shown("colour", NAMES));
        assert!(shown("=", NAMES));
        assert!(!shown(SECRET, NAMES));
        assert!(!shown("6043ef45632a", NAMES));
        assert!(!shown("Zm9vYmFyYmF6cXV4", NAMES));
    }
}
