//! Branch and tag pattern matching for stagehand: parsing the patterns written in the
//! config, deciding whether a pushed ref matches one, detecting when two environments'
//! patterns could both claim the same ref (with a concrete witness for error messages),
//! and naming the temporary environments created for refs matched by a wildcard pattern.
//!
//! Everything here is pure computation: no I/O, no global state.

use std::collections::VecDeque;
use std::fmt;

use sha2::{Digest, Sha256};

/// Kubernetes-style label limit; environment names end up in hostnames and resource names.
const MAX_NAME_LEN: usize = 63;
/// Hex digits of the branch hash used to keep temporary environment names distinct.
const HASH_LEN: usize = 8;
/// Any character would do; a plain letter keeps witnesses readable in error messages.
const WILDCARD_WITNESS: char = 'x';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `?`
    AnyOne,
    /// `*`
    Star,
    /// `**`
    DoubleStar,
}

/// The set of characters a token can consume in one step, kept symbolic so that
/// intersecting two tokens never requires enumerating an alphabet.
#[derive(Debug, Clone, Copy)]
enum Class {
    Lit(char),
    NotSlash,
    Any,
}

impl Token {
    fn class(self) -> Class {
        match self {
            Token::Lit(c) => Class::Lit(c),
            Token::AnyOne | Token::Star => Class::NotSlash,
            Token::DoubleStar => Class::Any,
        }
    }

    fn is_star(self) -> bool {
        matches!(self, Token::Star | Token::DoubleStar)
    }

    /// Position after consuming one character at position `i`: stars loop on themselves.
    fn advance(self, i: usize) -> usize {
        if self.is_star() { i } else { i + 1 }
    }
}

/// One character in both classes, if the classes intersect.
fn common_char(a: Class, b: Class) -> Option<char> {
    match (a, b) {
        (Class::Lit(c), Class::Lit(d)) => (c == d).then_some(c),
        (Class::Lit(c), Class::NotSlash) | (Class::NotSlash, Class::Lit(c)) => {
            (c != '/').then_some(c)
        }
        (Class::Lit(c), Class::Any) | (Class::Any, Class::Lit(c)) => Some(c),
        _ => Some(WILDCARD_WITNESS),
    }
}

/// Shortest-path search over the product of the two token automata: state `(i, j)` means
/// `i` tokens of `a` and `j` tokens of `b` are done. Returns a string accepted by both.
/// Matching a concrete name reuses this with the name as a token list of literals, so
/// matching and overlap detection cannot disagree.
fn common_string(a: &[Token], b: &[Token]) -> Option<String> {
    let width = b.len() + 1;
    let index = |i: usize, j: usize| i * width + j;
    let mut seen = vec![false; (a.len() + 1) * width];
    let mut parent: Vec<Option<(usize, usize, Option<char>)>> = vec![None; seen.len()];
    let mut queue = VecDeque::from([(0, 0)]);
    seen[0] = true;
    while let Some((i, j)) = queue.pop_front() {
        if i == a.len() && j == b.len() {
            let mut chars = Vec::new();
            let mut at = (i, j);
            while let Some((pi, pj, c)) = parent[index(at.0, at.1)] {
                chars.extend(c);
                at = (pi, pj);
            }
            return Some(chars.into_iter().rev().collect());
        }
        let (ta, tb) = (a.get(i).copied(), b.get(j).copied());
        let mut moves = Vec::with_capacity(3);
        if ta.is_some_and(Token::is_star) {
            moves.push((i + 1, j, None));
        }
        if tb.is_some_and(Token::is_star) {
            moves.push((i, j + 1, None));
        }
        if let (Some(ta), Some(tb)) = (ta, tb)
            && let Some(c) = common_char(ta.class(), tb.class())
        {
            moves.push((ta.advance(i), tb.advance(j), Some(c)));
        }
        for (ni, nj, c) in moves {
            if !seen[index(ni, nj)] {
                seen[index(ni, nj)] = true;
                parent[index(ni, nj)] = Some((i, j, c));
                queue.push_back((ni, nj));
            }
        }
    }
    None
}

/// A branch or tag pattern from the config: literal characters, `*` (any run of characters
/// except '/', possibly empty, so "feature/*" matches "feature/"), `**` (any run including
/// '/'), `?` (exactly one character except '/'). Characters are Unicode scalar values.
/// Other glob metacharacters are rejected rather than taken literally, so a user expecting
/// `[abc]` or `{a,b}` to work gets an error instead of a pattern that silently never matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefPattern {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    Empty,
    /// `position` counts characters, not bytes, so it lines up with what the user typed.
    UnsupportedCharacter {
        ch: char,
        position: usize,
    },
    /// Three or more consecutive stars; `position` is the first star of the run (in characters).
    TooManyStars {
        position: usize,
    },
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Empty => write!(f, "pattern is empty"),
            PatternError::UnsupportedCharacter { ch, position } => write!(
                f,
                "unsupported character {ch:?} at position {position} (only `*`, `**` and `?` are wildcards)"
            ),
            PatternError::TooManyStars { position } => write!(
                f,
                "too many consecutive `*` at position {position} (use `*` or `**`)"
            ),
        }
    }
}

impl std::error::Error for PatternError {}

fn is_unsupported(c: char) -> bool {
    matches!(c, '[' | ']' | '{' | '}' | '\\')
}

impl RefPattern {
    pub fn parse(source: &str) -> Result<RefPattern, PatternError> {
        if source.is_empty() {
            return Err(PatternError::Empty);
        }
        let chars: Vec<char> = source.chars().collect();
        let mut tokens = Vec::with_capacity(chars.len());
        let mut position = 0;
        while let Some(&c) = chars.get(position) {
            let (token, width) = match c {
                '*' => {
                    let run = chars[position..].iter().take_while(|&&c| c == '*').count();
                    match run {
                        1 => (Token::Star, 1),
                        2 => (Token::DoubleStar, 2),
                        _ => return Err(PatternError::TooManyStars { position }),
                    }
                }
                '?' => (Token::AnyOne, 1),
                c if is_unsupported(c) => {
                    return Err(PatternError::UnsupportedCharacter { ch: c, position });
                }
                c => (Token::Lit(c), 1),
            };
            tokens.push(token);
            position += width;
        }
        Ok(RefPattern {
            source: source.to_owned(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern names exactly one ref, i.e. a non-temporary environment.
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Lit(_)))
    }

    pub fn matches(&self, name: &str) -> bool {
        let literal: Vec<Token> = name.chars().map(Token::Lit).collect();
        common_string(&self.tokens, &literal).is_some()
    }

    /// True when at least one name is matched by both patterns. Exact, not heuristic.
    pub fn overlaps(&self, other: &RefPattern) -> bool {
        self.overlap_example(other).is_some()
    }

    /// A concrete name matched by both patterns, for error messages; wildcard positions
    /// are filled with 'x'.
    pub fn overlap_example(&self, other: &RefPattern) -> Option<String> {
        common_string(&self.tokens, &other.tokens)
    }
}

impl fmt::Display for RefPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Lowercased ASCII alphanumerics with every other run collapsed to one '-', no '-' at the ends.
fn slug(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    let mut gap = false;
    for c in branch.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

/// Cuts an ASCII `[a-z0-9-]` string to `max` bytes without leaving a dangling '-'.
fn truncate_name(s: &str, max: usize) -> &str {
    s.get(..max).unwrap_or(s).trim_end_matches('-')
}

/// The base environment's part of a temporary name. Configured names may hold `_`
/// (`[a-z0-9][a-z0-9_-]*`), which a temporary name, a DNS label, must not: slugged like
/// the branch. Never empty, so a temporary name never starts with '-'.
pub fn base_slug(base: &str) -> String {
    match slug(base) {
        s if s.is_empty() => "env".to_owned(),
        s => s,
    }
}

/// Name of the temporary environment made for `branch` from the pattern environment `base`:
/// `<slug(base)>-<slug(branch)>`. Falls back to the hashed form when the slug is empty or
/// the name would exceed 63 characters. Readable names are not injective ("a_b" and "a-b"
/// share one); the caller detects such collisions and uses
/// [`temporary_environment_name_hashed`].
pub fn temporary_environment_name(base: &str, branch: &str) -> String {
    let base = base_slug(base);
    let slug = slug(branch);
    if slug.is_empty() || base.len() + 1 + slug.len() > MAX_NAME_LEN {
        return temporary_environment_name_hashed(&base, branch);
    }
    format!("{base}-{slug}")
}

/// `<slug(base)>-<slug(branch), truncated>-<8 hex of sha256(branch)>`, at most 63 characters.
/// The hash covers the raw branch, so distinct branches get distinct names.
pub fn temporary_environment_name_hashed(base: &str, branch: &str) -> String {
    let digest = hex::encode(Sha256::digest(branch.as_bytes()));
    let hash = &digest[..HASH_LEN];
    // `base` is validated elsewhere to be short, but the 63-char bound must hold regardless.
    let base = base_slug(base);
    let base = truncate_name(&base, MAX_NAME_LEN - 1 - HASH_LEN);
    let budget = MAX_NAME_LEN.saturating_sub(base.len() + 1 + 1 + HASH_LEN);
    let slug = slug(branch);
    match truncate_name(&slug, budget) {
        "" => format!("{base}-{hash}"),
        part => format!("{base}-{part}-{hash}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pat(s: &str) -> RefPattern {
        RefPattern::parse(s).unwrap()
    }

    #[test]
    fn matches_table() {
        fn check(pattern: &str, name: &str, expected: bool) {
            assert_eq!(pat(pattern).matches(name), expected, "{pattern} vs {name}");
        }
        check("main", "main", true);
        check("main", "main2", false);
        check("main", "mai", false);
        check("feature/*", "feature/x", true);
        check("feature/*", "feature/x/y", false);
        check("feature/*", "feature/", true);
        check("feature/*", "feature", false);
        check("release/**", "release/1/2", true);
        check("release/**", "release/", true);
        check("**", "", true);
        check("v*", "v1.2.3", true);
        check("v*", "release-1", false);
        check("v?.?", "v1.2", true);
        check("v?.?", "v1.22", false);
        check("a?b", "a/b", false);
        check("?", "", false);
        check("?", "é", true);
        check("feature/ü*", "feature/über", true);
        check("feature/*", "feature/日本", true);
        check("*/*", "a/b", true);
    }

    #[test]
    fn overlaps_table() {
        fn check(a: &str, b: &str, expected: bool, example: Option<&str>) {
            let (pa, pb) = (pat(a), pat(b));
            assert_eq!(pa.overlaps(&pb), expected, "{a} vs {b}");
            assert_eq!(pb.overlaps(&pa), expected, "{b} vs {a}");
            let found = pa.overlap_example(&pb);
            assert_eq!(found.is_some(), expected);
            if let Some(s) = &found {
                assert!(pa.matches(s) && pb.matches(s), "{a} / {b} example {s:?}");
            }
            if let Some(e) = example {
                assert_eq!(found.as_deref(), Some(e));
            }
        }
        check("main", "main", true, Some("main"));
        check("main", "ma*", true, Some("main"));
        check("feature/*", "feature/**", true, None);
        check("feature/*", "fix/*", false, None);
        check("*", "a/b", false, None);
        check("**", "a/b", true, Some("a/b"));
        check("**", "x/*/y?", true, None);
        check("a*b", "*c", false, None);
        check("a*", "*b", true, Some("ab"));
        check("x/*/y", "x/**", true, None);
        check("?", "ab", false, None);
    }

    #[test]
    fn parse_table() {
        fn check(source: &str, expected: Result<bool, PatternError>) {
            let got = RefPattern::parse(source).map(|p| p.is_literal());
            assert_eq!(got, expected, "{source:?}");
        }
        check("", Err(PatternError::Empty));
        let ch = '[';
        check(
            "feat[ure]",
            Err(PatternError::UnsupportedCharacter { ch, position: 4 }),
        );
        check("a***", Err(PatternError::TooManyStars { position: 1 }));
        check("main", Ok(true));
        check("feature/*", Ok(false));
        check("v?", Ok(false));
        assert_eq!(pat("release/**").to_string(), "release/**");
        assert_eq!(pat("release/**").as_str(), "release/**");
    }

    fn is_hex_suffix(name: &str, len: usize) -> bool {
        name.len() > len
            && name[name.len() - len..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
    }

    #[test]
    fn name_table() {
        fn check(base: &str, branch: &str, expected: &str) {
            assert_eq!(temporary_environment_name(base, branch), expected);
        }
        check("preview", "feature/New_Cart!", "preview-feature-new-cart");
        check("preview", "main", "preview-main");
        let long = "feature/".to_owned() + &"very-long-branch-name-".repeat(5);
        let name = temporary_environment_name("preview", &long);
        assert_eq!(name.len(), 63);
        assert!(name.starts_with("preview-feature-very-long"));
        assert!(is_hex_suffix(&name, HASH_LEN));
        let hashed = temporary_environment_name("preview", "!!!");
        assert_eq!(hashed, temporary_environment_name_hashed("preview", "!!!"));
        assert_eq!(hashed.len(), "preview-".len() + HASH_LEN);
        assert_ne!(
            temporary_environment_name_hashed("preview", "a_b"),
            temporary_environment_name_hashed("preview", "a-b")
        );
    }

    /// Found by `fuzz/fuzz_targets/routing.rs`: base `0_` made `0_-p-zwppp-…`, with an
    /// underscore the contract's `[a-z0-9-]` (a DNS label) does not allow.
    #[test]
    fn temporary_names_slug_an_underscore_in_the_base() {
        let cases = [
            ("0_", "P\0ZwPPP", "0-p-zwppp"),
            ("pre_view", "feature/New_Cart!", "pre-view-feature-new-cart"),
            ("a__b_", "x", "a-b-x"),
        ];
        for (base, branch, expected) in cases {
            let name = temporary_environment_name(base, branch);
            assert_eq!(name, expected);
            let hashed = temporary_environment_name_hashed(base, branch);
            for name in [&name, &hashed] {
                assert!(
                    name.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                    "{name}"
                );
            }
        }
    }

    fn branch() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9/._!-]{0,100}",
            "[\\x00-\\x1f./]{0,5}"
        ]
    }

    /// Every name the config accepts for an environment (`[a-z0-9][a-z0-9_-]*`, ≤ 40).
    fn base() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9_-]{0,39}"
    }

    fn pattern() -> impl Strategy<Value = RefPattern> {
        "[ab/*?]{1,6}".prop_filter_map("too many stars", |s| RefPattern::parse(&s).ok())
    }

    fn assert_valid(name: &str, base: &str) {
        assert!(name.len() <= MAX_NAME_LEN, "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        assert!(name != "." && name != "..");
        assert!(name.starts_with(&format!("{}-", base_slug(base))), "{name}");
    }

    /// Independent backtracking matcher, so `matches` is not only checked against itself.
    fn reference_match(p: &[char], s: &[char]) -> bool {
        match p {
            [] => s.is_empty(),
            ['*', '*', rest @ ..] => (0..=s.len()).any(|k| reference_match(rest, &s[k..])),
            ['*', rest @ ..] => {
                let run = s.iter().take_while(|&&c| c != '/').count();
                (0..=run).any(|k| reference_match(rest, &s[k..]))
            }
            ['?', rest @ ..] => {
                s.first().is_some_and(|&c| c != '/') && reference_match(rest, &s[1..])
            }
            [c, rest @ ..] => s.first() == Some(c) && reference_match(rest, &s[1..]),
        }
    }

    proptest! {
        #[test]
        fn names_are_valid(base in base(), branch in branch()) {
            assert_valid(&temporary_environment_name(&base, &branch), &base);
            let hashed = temporary_environment_name_hashed(&base, &branch);
            assert_valid(&hashed, &base);
            prop_assert!(is_hex_suffix(&hashed, HASH_LEN));
        }

        #[test]
        fn hashed_names_are_distinct(base in base(), a in branch(), b in branch()) {
            if a != b {
                prop_assert_ne!(
                    temporary_environment_name_hashed(&base, &a),
                    temporary_environment_name_hashed(&base, &b)
                );
            }
        }

        #[test]
        fn overlap_is_consistent(a in pattern(), b in pattern(), s in "[ab/x]{0,6}") {
            prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
            let chars: Vec<char> = s.chars().collect();
            let expected = reference_match(&a.as_str().chars().collect::<Vec<_>>(), &chars);
            prop_assert_eq!(a.matches(&s), expected);
            if a.matches(&s) && b.matches(&s) {
                prop_assert!(a.overlaps(&b));
            }
            if let Some(example) = a.overlap_example(&b) {
                prop_assert!(a.matches(&example) && b.matches(&example), "{:?}", example);
            }
        }
    }
}
