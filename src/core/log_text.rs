//! What build output may put into a log line: no terminal control sequences.
//!
//! A build runs code from the repository, and its output reaches operators' terminals
//! through `stagehand logs`, `curl` and the dashboard. Escape sequences there can
//! recolour or clear the screen, retitle the window, hide text or write a link (OSC 8)
//! that says one thing and points at another. So every C0 control but tab, DEL, every
//! C1 control, and whole ESC / CSI / OSC / DCS sequences are dropped before a line is
//! stored; stagehand's own colours are added by the CLI when it prints, never stored.

use std::borrow::Cow;

/// `line` without control characters and escape sequences (tab kept).
pub fn strip_controls(line: &str) -> Cow<'_, str> {
    if !line.chars().any(is_control) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // A two-character sequence (ESC 7, ESC c …): both go.
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if is_control(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_control(c: char) -> bool {
    c != '\t' && (c.is_ascii_control() || ('\u{80}'..='\u{9f}').contains(&c))
}

/// Parameters and intermediates up to and including the final byte (`@` to `~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            return;
        }
        if !('\u{20}'..='\u{3f}').contains(&c) {
            // Not a CSI after all; what follows is text again.
            return;
        }
    }
}

/// An OSC, DCS, SOS, PM or APC string, up to and including its terminator (BEL, ESC \,
/// or ST).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{07}' | '\u{9c}' => return,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(strip_controls(input), expected, "{input:?}");
    }

    #[test]
    fn controls_and_sequences_are_dropped_text_and_tabs_stay() {
        let cases = [
            ("plain text", "plain text"),
            ("tab\tkept", "tab\tkept"),
            ("\u{1b}[31mred\u{1b}[0m", "red"),
            ("\u{1b}[1;38;5;196mbold\u{1b}[m", "bold"),
            ("clear\u{1b}[2J\u{1b}[Hscreen", "clearscreen"),
            ("\u{1b}]0;owned title\u{07}after", "after"),
            (
                "\u{1b}]8;;https://evil.example\u{1b}\\https://good.example\u{1b}]8;;\u{1b}\\",
                "https://good.example",
            ),
            ("\u{1b}Pdevice control\u{1b}\\x", "x"),
            ("\u{1b}7saved\u{1b}8", "saved"),
            (
                "bell\u{07} null\u{0} bs\u{08} del\u{7f}",
                "bell null bs del",
            ),
            (
                "c1 \u{9b}31mcsi \u{9d}0;t\u{9c}osc \u{85}nel",
                "c1 csi osc nel",
            ),
            ("unterminated \u{1b}]0;title", "unterminated "),
            ("trailing esc\u{1b}", "trailing esc"),
            ("ünïcödé ✓", "ünïcödé ✓"),
        ];
        for (input, expected) in cases {
            check(input, expected);
        }
        assert!(matches!(strip_controls("clean"), Cow::Borrowed(_)));
    }
}
