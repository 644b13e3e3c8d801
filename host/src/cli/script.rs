//! `sandbox --script FILE`: commands one per line, words split as a shell
//! splits them. Like the rest of `cli`, it uses only clap and std.

use super::sandbox::{SandboxCommand, parse_one, split};

/// The commands of a script: one per line, words split as a shell splits
/// them; empty lines and `#` comments skipped. Only commands and their own
/// options (no sandbox options). `Err` names the line.
pub fn script_commands(text: &str) -> Result<Vec<SandboxCommand>, String> {
    let mut commands = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words = shell_words(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        for segment in split(&words) {
            let command = parse_one(&segment).map_err(|e| {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                format!("line {}: {}", n + 1, first.trim_start_matches("error: "))
            })?;
            commands.push(command);
        }
    }
    Ok(commands)
}

/// A line's words as a POSIX shell splits them: blanks separate, `'…'`
/// and `"…"` group (a backslash escapes `"`, `\` and `$` inside double
/// quotes), a backslash escapes the next character outside quotes.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("a ' is not closed".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("a \" is not closed".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("a \" is not closed".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("a \\ ends the line".into()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_words_as_a_shell() {
        let commands = script_commands(
            "# an escalation\n\nban 203.0.113.1 -c 'two words'\n  ban 203.0.113.2 -c \"say \\\"hi\\\"\"\nunban 203.0.113.1\n",
        )
        .unwrap();
        let shown: Vec<String> = commands.iter().map(SandboxCommand::describe).collect();
        assert_eq!(
            shown,
            ["ban 203.0.113.1", "ban 203.0.113.2", "unban 203.0.113.1"]
        );
        let SandboxCommand::Ban(t) = &commands[1] else {
            panic!()
        };
        assert_eq!(t.comment.as_deref(), Some("say \"hi\""));
        let e = script_commands("ban 1.2.3.4\nfrobnicate\n").unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        assert!(
            script_commands("ban 'x")
                .unwrap_err()
                .contains("not closed")
        );
    }
}
