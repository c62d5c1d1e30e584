//! git's `wildmatch` (wildmatch.c), the glob of `.gitattributes` and `.gitignore`
//! patterns, over bytes: tree entry names are bytes, not UTF-8.
//!
//! A port, not a reinvention, because a pattern must mean here exactly what it means to
//! `git archive`: `*` and `?` never match `/` when `pathname` is set, `**` does only as a
//! whole segment (`**/x`, `x/**`, `a/**/b`; elsewhere it is `*`), `[...]` sets with `!`
//! or `^` negation, ranges, `[:class:]` names and `\` escapes. Case-sensitive, as git is
//! unless `core.ignorecase` is set (it never is in a bare mirror).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Match,
    NoMatch,
    /// The text ran out: no later start position of an enclosing `*` can match either.
    AbortAll,
    /// A single `*` met a `/`: only an enclosing `**` may go on trying.
    AbortToStarstar,
}

/// Whether `text` matches `pattern` as a whole. `pathname`: git's `WM_PATHNAME` (wildcards
/// do not cross `/`).
pub fn wildmatch(pattern: &[u8], text: &[u8], pathname: bool) -> bool {
    dowild(pattern, text, pathname) == Outcome::Match
}

fn is_glob_special(c: u8) -> bool {
    matches!(c, b'*' | b'?' | b'[' | b'\\')
}

// Reads "past the end" as NUL, like the C code's string walk: keeps the port line by line.
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn dowild(pattern: &[u8], text: &[u8], pathname: bool) -> Outcome {
    let mut p = 0;
    let mut t = 0;
    while at(pattern, p) != 0 {
        let mut p_ch = at(pattern, p);
        let t_ch = at(text, t);
        if t_ch == 0 && p_ch != b'*' {
            return Outcome::AbortAll;
        }
        match p_ch {
            b'?' => {
                if pathname && t_ch == b'/' {
                    return Outcome::NoMatch;
                }
            }
            b'*' => {
                let match_slash;
                p += 1;
                if at(pattern, p) == b'*' {
                    // `prev_p` in the C code: the byte before the `**`, if any.
                    let before = p.checked_sub(2).map(|i| pattern[i]);
                    while at(pattern, p) == b'*' {
                        p += 1;
                    }
                    let next = at(pattern, p);
                    let whole_segment = (before.is_none() || before == Some(b'/'))
                        && (next == 0
                            || next == b'/'
                            || (next == b'\\' && at(pattern, p + 1) == b'/'));
                    if whole_segment {
                        // `a/**/b` also matches `a/b`: try the `**/` as nothing first.
                        if next == b'/'
                            && dowild(&pattern[p + 1..], &text[t..], pathname) == Outcome::Match
                        {
                            return Outcome::Match;
                        }
                        match_slash = true;
                    } else {
                        match_slash = !pathname;
                    }
                } else {
                    match_slash = !pathname;
                }
                if at(pattern, p) == 0 {
                    // A trailing `**` matches everything, a trailing `*` only the rest of
                    // this segment.
                    if !match_slash && text[t..].contains(&b'/') {
                        return Outcome::NoMatch;
                    }
                    return Outcome::Match;
                } else if !match_slash && at(pattern, p) == b'/' {
                    // `*/`: one whole segment, then the slash both sides consume below.
                    match text[t..].iter().position(|&c| c == b'/') {
                        Some(offset) => t += offset,
                        None => return Outcome::NoMatch,
                    }
                    p += 1;
                    t += 1;
                    continue;
                }
                let mut t_ch = at(text, t);
                loop {
                    if t_ch == 0 {
                        break;
                    }
                    // A literal after the `*`: skip ahead to where it occurs.
                    let literal = at(pattern, p);
                    if !is_glob_special(literal) {
                        while t < text.len() && (match_slash || text[t] != b'/') {
                            if text[t] == literal {
                                break;
                            }
                            t += 1;
                        }
                        if at(text, t) != literal {
                            return Outcome::NoMatch;
                        }
                        t_ch = literal;
                    }
                    let matched = dowild(&pattern[p..], &text[t..], pathname);
                    if matched != Outcome::NoMatch {
                        if !match_slash || matched != Outcome::AbortToStarstar {
                            return matched;
                        }
                    } else if !match_slash && t_ch == b'/' {
                        return Outcome::AbortToStarstar;
                    }
                    t += 1;
                    t_ch = at(text, t);
                }
                return Outcome::AbortAll;
            }
            b'[' => {
                p += 1;
                p_ch = at(pattern, p);
                if p_ch == b'^' {
                    p_ch = b'!';
                }
                let negated = p_ch == b'!';
                if negated {
                    p += 1;
                    p_ch = at(pattern, p);
                }
                let mut prev_ch: u8 = 0;
                let mut matched = false;
                loop {
                    if p_ch == 0 {
                        return Outcome::AbortAll;
                    }
                    if p_ch == b'\\' {
                        p += 1;
                        p_ch = at(pattern, p);
                        if p_ch == 0 {
                            return Outcome::AbortAll;
                        }
                        if t_ch == p_ch {
                            matched = true;
                        }
                    } else if p_ch == b'-'
                        && prev_ch != 0
                        && at(pattern, p + 1) != 0
                        && at(pattern, p + 1) != b']'
                    {
                        p += 1;
                        p_ch = at(pattern, p);
                        if p_ch == b'\\' {
                            p += 1;
                            p_ch = at(pattern, p);
                            if p_ch == 0 {
                                return Outcome::AbortAll;
                            }
                        }
                        if t_ch <= p_ch && t_ch >= prev_ch {
                            matched = true;
                        }
                        p_ch = 0; // a range's end does not start another range
                    } else if p_ch == b'[' && at(pattern, p + 1) == b':' {
                        let start = p + 2;
                        let mut end = start;
                        while at(pattern, end) != 0 && at(pattern, end) != b']' {
                            end += 1;
                        }
                        if at(pattern, end) == 0 {
                            return Outcome::AbortAll;
                        }
                        if end == start || pattern[end - 1] != b':' {
                            // No `:]`: an ordinary `[` in the set.
                            p_ch = b'[';
                            if t_ch == p_ch {
                                matched = true;
                            }
                        } else {
                            let Some(class) = class_matches(&pattern[start..end - 1], t_ch) else {
                                return Outcome::AbortAll;
                            };
                            matched |= class;
                            p = end;
                            p_ch = 0;
                        }
                    } else if t_ch == p_ch {
                        matched = true;
                    }
                    prev_ch = p_ch;
                    p += 1;
                    p_ch = at(pattern, p);
                    if p_ch == b']' {
                        break;
                    }
                }
                if matched == negated || (pathname && t_ch == b'/') {
                    return Outcome::NoMatch;
                }
            }
            _ => {
                if p_ch == b'\\' {
                    // A literal match of the next byte (a trailing `\` matches nothing).
                    p += 1;
                    p_ch = at(pattern, p);
                }
                if t_ch != p_ch {
                    return Outcome::NoMatch;
                }
            }
        }
        p += 1;
        t += 1;
    }
    if t < text.len() {
        Outcome::NoMatch
    } else {
        Outcome::Match
    }
}

/// `[:name:]`: whether `c` is in the class, `None` for a name git does not know.
fn class_matches(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => c.is_ascii_whitespace() || c == 0x0b,
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::wildmatch;

    // Rows after git's t/t3070-wildmatches.sh, with WM_PATHNAME (how `.gitattributes`
    // patterns with a `/` match): (matches, text, pattern). Checked against
    // `git check-attr` with the pattern anchored (`/<pattern>`), which git matches with
    // this very function.
    pub(crate) const CASES: &[(bool, &str, &str)] = &[
        (true, "foo", "foo"),
        (false, "foo", "bar"),
        (true, "", ""),
        (true, "foo", "???"),
        (false, "foo", "??"),
        (true, "foo", "*"),
        (true, "foo", "f*"),
        (false, "foo", "*f"),
        (true, "foo", "*foo*"),
        (true, "foobar", "*ob*a*r*"),
        (true, "aaaaaaabababab", "*ab"),
        (true, "foo*", "foo\\*"),
        (false, "foobar", "foo\\*bar"),
        (true, "f\\oo", "f\\\\oo"),
        (true, "ball", "*[al]?"),
        (false, "ten", "[ten]"),
        (true, "ten", "**[!te]"),
        (false, "ten", "**[!ten]"),
        (true, "ten", "t[a-g]n"),
        (false, "ten", "t[!a-g]n"),
        (true, "ton", "t[!a-g]n"),
        (true, "ton", "t[^a-g]n"),
        (true, "a]b", "a[]]b"),
        (true, "a-b", "a[]-]b"),
        (true, "a]b", "a[]-]b"),
        (false, "aab", "a[]-]b"),
        (true, "aab", "a[]a-]b"),
        (true, "]", "]"),
        (false, "foo/baz/bar", "foo*bar"),
        (false, "foo/baz/bar", "foo**bar"),
        (true, "foobazbar", "foo**bar"),
        (true, "foo/baz/bar", "foo/**/bar"),
        (true, "foo/baz/bar", "foo/**/**/bar"),
        (true, "foo/b/a/z/bar", "foo/**/bar"),
        (true, "foo/b/a/z/bar", "foo/**/**/bar"),
        (true, "foo/bar", "foo/**/bar"),
        (true, "foo/bar", "foo/**/**/bar"),
        (false, "foo/bar", "foo?bar"),
        (false, "foo/bar", "foo[/]bar"),
        (false, "foo/bar", "foo[^a-z]bar"),
        (false, "foo/bar", "f[^eiu][^eiu][^eiu][^eiu][^eiu]r"),
        (true, "foo-bar", "f[^eiu][^eiu][^eiu][^eiu][^eiu]r"),
        (true, "foo", "**/foo"),
        (true, "XXX/foo", "**/foo"),
        (true, "bar/baz/foo", "**/foo"),
        (false, "bar/baz/foo", "*/foo"),
        (false, "foo/bar/baz", "**/bar*"),
        (true, "deep/foo/bar/baz", "**/bar/*"),
        (false, "deep/foo/bar/baz/", "**/bar/*"),
        (true, "deep/foo/bar/baz/", "**/bar/**"),
        (false, "deep/foo/bar", "**/bar/*"),
        (true, "deep/foo/bar/", "**/bar/**"),
        (false, "foo/bar/baz", "**/bar**"),
        (true, "foo/bar/baz/x", "*/bar/**"),
        (false, "deep/foo/bar/baz/x", "*/bar/**"),
        (true, "deep/foo/bar/baz/x", "**/bar/*/*"),
        (false, "acrt", "a[c-c]st"),
        (true, "acrt", "a[c-c]rt"),
        (false, "]", "[!]-]"),
        (true, "a", "[!]-]"),
        (false, "", "\\"),
        (false, "\\", "\\"),
        (false, "XXX/\\", "*/\\"),
        (true, "XXX/\\", "*/\\\\"),
        (true, "foo", "foo"),
        (true, "@foo", "@foo"),
        (false, "foo", "@foo"),
        (true, "[ab]", "\\[ab]"),
        (true, "[ab]", "[[]ab]"),
        (true, "[ab]", "[[:]ab]"),
        (false, "[ab]", "[[::]ab]"),
        (true, "[ab]", "[[:digit]ab]"),
        (true, "[ab]", "[\\[:]ab]"),
        (true, "?a?b", "\\??\\?b"),
        (true, "abc", "\\a\\b\\c"),
        (false, "foo", ""),
        (true, "foo/bar/baz/to", "**/t[o]"),
        (true, "a1B", "[[:alpha:]][[:digit:]][[:upper:]]"),
        (false, "a", "[[:digit:][:upper:][:space:]]"),
        (true, "A", "[[:digit:][:upper:][:space:]]"),
        (true, "1", "[[:digit:][:upper:][:space:]]"),
        (false, "1", "[[:digit:][:upper:][:spaci:]]"),
        (true, " ", "[[:digit:][:upper:][:space:]]"),
        (false, ".", "[[:digit:][:upper:][:space:]]"),
        (true, ".", "[[:digit:][:punct:][:space:]]"),
        (true, "5", "[[:xdigit:]]"),
        (true, "f", "[[:xdigit:]]"),
        (true, "D", "[[:xdigit:]]"),
        (false, "-", "[a-c[:digit:]x-z]"),
        (false, "q", "[a-c[:digit:]x-z]"),
        (true, "5", "[a-c[:digit:]x-z]"),
        (true, "b", "[a-c[:digit:]x-z]"),
        (true, "y", "[a-c[:digit:]x-z]"),
        (false, "-", "[]-a]"),
        (true, "^", "[]-a]"),
        (false, "-", "[]-z]"),
        (false, "-.]", "[\\-^]"),
        (true, "-", "[+--]"),
        (true, "abcd", "a[b-d]*"),
        (true, "foo/bar/baz", "foo/**"),
        (true, "foo/bar", "*/*"),
        (false, "foo/bb/aa/rr", "*/*"),
        (true, "foo/bar/baz", "*/bar/*"),
        (false, "foo", "*/*/*"),
        (false, "foo/bar", "*/*/*"),
        (true, "foo/bba/arr", "*/*/*"),
        (false, "foo/bb/aa/rr", "*/*/*"),
        (true, "foo/bb/aa/rr", "**/**/**"),
        (true, "abcXdefXghi", "*X*i"),
        (false, "ab/cXd/efXg/hi", "*X*i"),
        (true, "ab/cXd/efXg/hi", "*/*X*/*/*i"),
        (true, "ab/cXd/efXg/hi", "**/*X*/**/*i"),
    ];

    #[test]
    fn agrees_with_git_on_its_own_test_patterns() {
        for &(expected, text, pattern) in CASES {
            assert_eq!(
                wildmatch(pattern.as_bytes(), text.as_bytes(), true),
                expected,
                "{pattern:?} against {text:?}"
            );
        }
    }

    #[test]
    fn without_pathname_wildcards_cross_slashes() {
        assert!(wildmatch(b"foo*bar", b"foo/baz/bar", false));
        assert!(!wildmatch(b"foo*bar", b"foo/baz/bar", true));
        assert!(wildmatch(b"foo?bar", b"foo/bar", false));
        assert!(!wildmatch(b"foo?bar", b"foo/bar", true));
        assert!(wildmatch(b"*.md", b"README.md", false));
    }

    #[test]
    fn bytes_outside_utf8_are_plain_bytes() {
        assert!(wildmatch(b"caf\xe9*", b"caf\xe9.txt", true));
        assert!(wildmatch(b"?", b"\xff", true));
        assert!(!wildmatch(b"caf\xe9", b"cafe", true));
    }
}
