//! A step's output bytes → log lines. It owns where lines end and where a line too
//! long for one log line is cut; it does not read pipes or wait (the caller tells it
//! when the step has been quiet: [`LineSplitter::flush_partial`]).
//!
//! - `\n` ends a line; `\r\n` too.
//! - A lone `\r` redraws the line (progress bars): what came before it on that line is
//!   dropped, so the log keeps each line's final state instead of every redraw.
//! - A line longer than the limit arrives in pieces of about the limit, never cut
//!   inside a UTF-8 character and never through a secret (any form the [`Masker`]
//!   masks): a piece boundary waits until a secret that might straddle it is whole,
//!   and moves before it. The pieces are masked afterwards, each holding whole secrets.
//! - A partial line (a prompt, a progress bar between redraws) is handed out on
//!   request, minus any tail that could be the start of a secret.

use super::mask::Masker;

pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
    /// The forms of the secrets, as bytes, and the length of the longest.
    forms: Vec<Vec<u8>>,
    longest: usize,
    /// The last byte was `\r`: a `\n` next ends the line, anything else redraws it.
    pending_cr: bool,
    /// The current line has already been handed out in part (cut at the limit or
    /// flushed while quiet): its newline then ends it without an empty line.
    continued: bool,
}

impl LineSplitter {
    /// `max_line`: the longest piece handed out (a piece may exceed it only to keep
    /// a secret longer than the limit whole).
    pub fn new(max_line: usize, secrets: &Masker) -> LineSplitter {
        let forms: Vec<Vec<u8>> = secrets
            .forms()
            .iter()
            .map(|f| f.as_bytes().to_vec())
            .collect();
        LineSplitter {
            buf: Vec::new(),
            max_line: max_line.max(4),
            longest: forms.iter().map(Vec::len).max().unwrap_or(0),
            forms,
            pending_cr: false,
            continued: false,
        }
    }

    /// Feeds output; finished lines (and pieces of long ones) are appended to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<String>) {
        while let Some((&first, rest)) = bytes.split_first() {
            if self.pending_cr {
                self.pending_cr = false;
                if first == b'\n' {
                    self.end_line(out);
                    bytes = rest;
                    continue;
                }
                self.buf.clear();
            }
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(at) => {
                    self.extend(&bytes[..at], out);
                    if bytes[at] == b'\n' {
                        self.end_line(out);
                    } else {
                        self.pending_cr = true;
                    }
                    bytes = &bytes[at + 1..];
                }
                None => {
                    self.extend(bytes, out);
                    bytes = &[];
                }
            }
        }
    }

    /// The step has been quiet: the partial line so far, except a tail that could be
    /// the start of a secret or of a UTF-8 character. `None` when there is nothing.
    pub fn flush_partial(&mut self) -> Option<String> {
        let mut cut = self.buf.len() - self.secret_prefix_tail();
        cut -= incomplete_utf8_tail(&self.buf[..cut]);
        if cut > self.max_line {
            cut = self.safe_cut(self.max_line);
        }
        if cut == 0 {
            return None;
        }
        Some(self.take(cut))
    }

    /// Whether part of a line is waiting for its end.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The output has ended: whatever is left goes to `out`.
    pub fn finish(&mut self, out: &mut Vec<String>) {
        self.pending_cr = false;
        self.continued = false;
        if !self.buf.is_empty() {
            self.end_line(out);
        }
    }

    fn extend(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        self.buf.extend_from_slice(bytes);
        // Past the limit by more than the longest secret, any secret across the limit
        // is whole in the buffer and can be seen.
        while self.buf.len() > self.max_line + self.longest {
            let cut = self.safe_cut(self.max_line);
            out.push(self.take(cut));
        }
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        // The line's end is known, so every secret in it is whole: cut what is over.
        while self.buf.len() > self.max_line {
            let cut = self.safe_cut(self.max_line);
            out.push(self.take(cut));
        }
        if !(self.buf.is_empty() && self.continued) {
            out.push(String::from_utf8_lossy(&self.buf).into_owned());
            self.buf.clear();
        }
        self.continued = false;
    }

    /// Hands out `buf[..cut]` as a piece of a line that goes on.
    fn take(&mut self, cut: usize) -> String {
        let piece = String::from_utf8_lossy(&self.buf[..cut]).into_owned();
        self.buf.drain(..cut);
        self.continued = true;
        piece
    }

    /// A cut at or before `limit` that goes through no secret and no character.
    fn safe_cut(&self, limit: usize) -> usize {
        let mut cut = limit.min(self.buf.len());
        // Moving the cut before one secret may put it inside another: repeat until
        // none straddles it (each move goes left or, at 0, past a secret: bounded).
        for _ in 0..=self.forms.len() {
            let Some((start, len)) = self.straddling(cut) else {
                break;
            };
            cut = if start > 0 { start } else { len };
        }
        let utf8 = incomplete_utf8_tail(&self.buf[..cut]);
        if cut > utf8 { cut - utf8 } else { cut }
    }

    /// A secret occurrence that starts before `cut` and ends after it.
    fn straddling(&self, cut: usize) -> Option<(usize, usize)> {
        self.forms.iter().find_map(|form| {
            let first = cut.saturating_sub(form.len() - 1);
            (first..cut)
                .find(|&start| self.buf[start..].starts_with(form) && start + form.len() > cut)
                .map(|start| (start, form.len()))
        })
    }

    /// The longest tail of the buffer that is the start (not the whole) of a secret.
    fn secret_prefix_tail(&self) -> usize {
        let len = self.buf.len();
        (1..self.longest.min(len + 1))
            .rev()
            .find(|&n| {
                let tail = &self.buf[len - n..];
                self.forms
                    .iter()
                    .any(|f| f.len() > n && f.starts_with(tail))
            })
            .unwrap_or(0)
    }
}

/// How many bytes at the end of `bytes` are the start of a UTF-8 character that is
/// cut off. Carrying them into the next piece keeps a long line of valid UTF-8 from
/// turning into replacement characters at each split.
fn incomplete_utf8_tail(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => bytes.len() - e.valid_up_to(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max_line: usize, secrets: &[&str], chunks: &[&[u8]]) -> Vec<String> {
        let masker = Masker::new(secrets.iter().map(|s| s.to_string()));
        let mut splitter = LineSplitter::new(max_line, &masker);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, &mut out);
        }
        splitter.finish(&mut out);
        out
    }

    #[test]
    fn lines_end_at_newlines_and_carriage_returns_redraw() {
        let cases: &[(&[&[u8]], &[&str])] = &[
            (&[b"a\nb\n"], &["a", "b"]),
            (&[b"a\r\nb"], &["a", "b"]),
            (&[b"a\r", b"\nb\n"], &["a", "b"]),
            (&[b"\n\n"], &["", ""]),
            (&[b"10%\r50%\r100%\n"], &["100%"]),
            (
                &[b"10%\r", b"50%\r", b"100% done\ndone\n"],
                &["100% done", "done"],
            ),
            (&[b"progress 99%\r"], &["progress 99%"]),
        ];
        for (chunks, expected) in cases {
            assert_eq!(split(16, &[], chunks), *expected, "{chunks:?}");
        }
    }

    #[test]
    fn long_lines_come_in_pieces_and_a_newline_after_a_piece_adds_no_empty_line() {
        assert_eq!(split(4, &[], &[b"abcd\n"]), ["abcd"]);
        assert_eq!(split(4, &[], &[b"abcde\n"]), ["abcd", "e"]);
        assert_eq!(split(4, &[], &[b"abcdefgh\nx\n"]), ["abcd", "efgh", "x"]);
        let text = "é".repeat(10);
        let pieces = split(5, &[], &[text.as_bytes()]);
        assert!(
            pieces
                .iter()
                .all(|p| p.len() <= 5 && !p.contains('\u{FFFD}'))
        );
        assert_eq!(pieces.concat(), text);
    }

    /// Issue 11 item 6: `print("A"*16380 + secret)` showed each half of the secret.
    #[test]
    fn a_secret_across_the_limit_stays_whole_in_one_piece() {
        let secret = "hunter2-is-the-password";
        let line = format!("{}{secret}tail\n", "A".repeat(16_380));
        let masker = Masker::new([secret.to_string()]);
        for chunk in [1, 7, 4096, line.len()] {
            let mut splitter = LineSplitter::new(16 * 1024, &masker);
            let mut out = Vec::new();
            for part in line.as_bytes().chunks(chunk) {
                splitter.push(part, &mut out);
            }
            splitter.finish(&mut out);
            assert_eq!(out.concat(), line.trim_end(), "chunks of {chunk}");
            assert!(out.len() >= 2, "chunks of {chunk}: {}", out.len());
            assert!(
                out.iter().all(|p| p.len() <= 16 * 1024),
                "chunks of {chunk}"
            );
            assert!(
                out.iter().any(|p| p.contains(secret)),
                "chunks of {chunk}: the secret was cut"
            );
            let masked: Vec<String> = out.iter().map(|p| masker.mask(p).into_owned()).collect();
            assert!(masked.iter().all(|p| !p.contains("hunter2")));
        }
        // Its base64 form is kept whole too.
        let encoded = "aHVudGVyMi1pcy10aGUtcGFzc3dvcmQ=";
        let line = format!("{}{encoded}", "A".repeat(16_370));
        let pieces = split(16 * 1024, &[secret], &[line.as_bytes()]);
        assert!(
            pieces.iter().any(|p| p.contains(encoded)),
            "{}",
            pieces.len()
        );
    }

    #[test]
    fn a_quiet_partial_line_is_flushed_but_not_a_secret_s_beginning() {
        let masker = Masker::new(["hunter2".to_string()]);
        let mut splitter = LineSplitter::new(64, &masker);
        let mut out = Vec::new();
        splitter.push(b"Continue? [y/n] ", &mut out);
        assert!(out.is_empty());
        assert_eq!(
            splitter.flush_partial().as_deref(),
            Some("Continue? [y/n] ")
        );
        assert_eq!(splitter.flush_partial(), None);
        // The answer's newline ends the flushed line: no empty line after it.
        splitter.push(b"\npassword: hun", &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(splitter.flush_partial().as_deref(), Some("password: "));
        splitter.push(b"ter2\n", &mut out);
        assert_eq!(out, ["hunter2"]);
        assert_eq!(masker.mask(&out[0]), "***");
    }
}
