//! Branch patterns and temporary environment names on hostile input. `RefPattern::parse`,
//! `matches`, `overlaps` and `overlap_example` must never panic and must agree with each
//! other and with an independent matcher: a name two patterns both match proves they
//! overlap, and an overlap example is matched by both. Temporary environment names
//! (readable and hashed) must be `[a-z0-9-]`, at most 63 characters, never `.` or `..`,
//! for every configured base name and every branch.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stagehand::core::ids::EnvironmentName;
use stagehand::core::ref_pattern::{
    RefPattern, temporary_environment_name, temporary_environment_name_hashed,
};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    a: &'a str,
    b: &'a str,
    name: &'a str,
    base: &'a str,
    other_branch: &'a str,
}

/// Config patterns are short; long ones only slow the search down (it is quadratic).
const MAX_PATTERN: usize = 80;
const MAX_NAME: usize = 300;
/// The config's limit for an environment that can be a temporary one's base.
const MAX_BASE: usize = 40;

#[derive(Clone, Copy, PartialEq)]
enum Tok {
    Lit(char),
    One,
    Star,
    DoubleStar,
}

/// An independent matcher: tokenise the way the docs describe, then a DP table over
/// (token, character) positions.
fn reference_matches(pattern: &str, name: &str) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                toks.push(Tok::DoubleStar);
                i += 2;
            }
            '*' => {
                toks.push(Tok::Star);
                i += 1;
            }
            '?' => {
                toks.push(Tok::One);
                i += 1;
            }
            c => {
                toks.push(Tok::Lit(c));
                i += 1;
            }
        }
    }
    let s: Vec<char> = name.chars().collect();
    // ok[t][j]: toks[t..] matches s[j..]
    let mut ok = vec![vec![false; s.len() + 1]; toks.len() + 1];
    ok[toks.len()][s.len()] = true;
    for t in (0..toks.len()).rev() {
        for j in (0..=s.len()).rev() {
            let here = s.get(j).copied();
            ok[t][j] = match toks[t] {
                Tok::Lit(c) => here == Some(c) && ok[t + 1][j + 1],
                Tok::One => here.is_some_and(|c| c != '/') && ok[t + 1][j + 1],
                Tok::Star => ok[t + 1][j] || (here.is_some_and(|c| c != '/') && ok[t][j + 1]),
                Tok::DoubleStar => ok[t + 1][j] || (here.is_some() && ok[t][j + 1]),
            };
        }
    }
    ok[0][0]
}

fn check_name(name: &str) {
    assert!(!name.is_empty() && name.len() <= 63, "{name:?}");
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{name:?} is not [a-z0-9-]"
    );
    assert!(name != "." && name != "..");
    assert!(EnvironmentName::parse(name).is_ok(), "{name:?}");
}

fuzz_target!(|input: Input<'_>| {
    let Input {
        a,
        b,
        name,
        base,
        other_branch,
    } = input;
    if name.chars().count() <= MAX_NAME {
        for pattern in [a, b] {
            if pattern.chars().count() > MAX_PATTERN {
                continue;
            }
            if let Ok(p) = RefPattern::parse(pattern) {
                assert_eq!(p.as_str(), pattern);
                assert_eq!(
                    p.matches(name),
                    reference_matches(pattern, name),
                    "{pattern:?} vs {name:?}"
                );
                if p.is_literal() {
                    assert_eq!(p.matches(name), name == pattern);
                }
            }
        }
        if a.chars().count() <= MAX_PATTERN
            && b.chars().count() <= MAX_PATTERN
            && let (Ok(pa), Ok(pb)) = (RefPattern::parse(a), RefPattern::parse(b))
        {
            let overlaps = pa.overlaps(&pb);
            assert_eq!(overlaps, pb.overlaps(&pa), "{a:?} / {b:?} not symmetric");
            if pa.matches(name) && pb.matches(name) {
                assert!(overlaps, "{a:?} and {b:?} both match {name:?}");
            }
            match pa.overlap_example(&pb) {
                Some(example) => {
                    assert!(overlaps);
                    assert!(
                        pa.matches(&example) && pb.matches(&example),
                        "{a:?} / {b:?}: example {example:?}"
                    );
                }
                None => assert!(!overlaps),
            }
            assert!(pa.overlaps(&pa), "{a:?} overlaps itself");
        }
    }

    // Temporary names are made from a configured environment name and any branch.
    if EnvironmentName::parse(base).is_ok() && base.len() <= MAX_BASE {
        let readable = temporary_environment_name(base, name);
        check_name(&readable);
        let hashed = temporary_environment_name_hashed(base, name);
        check_name(&hashed);
        if other_branch != name {
            assert_ne!(
                hashed,
                temporary_environment_name_hashed(base, other_branch),
                "{name:?} and {other_branch:?} share a hashed name"
            );
        }
    }
});
