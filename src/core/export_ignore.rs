//! Which paths of a commit's tree its `.gitattributes` files mark `export-ignore`: what
//! `git archive` (and so Capistrano) leaves out of a release, and what an app with
//! `export_ignore = true` leaves out too. Pure: the tree walk (`pipeline::checkout`)
//! hands in each `.gitattributes` blob it meets and asks about each entry.
//!
//! The rules are git's (gitattributes(5), attr.c, as `git archive` applies them to the
//! tree it archives):
//!
//! - A `.gitattributes` in directory `d` applies to paths below `d`; a deeper file
//!   overrides a shallower one, and within a file a later line overrides an earlier one.
//!   The most specific line that names the attribute decides: `export-ignore` sets it,
//!   `-export-ignore` unsets it, `!export-ignore` makes it unspecified (and so stops the
//!   search as well); `export-ignore=<value>` is not "set", so nothing is left out.
//! - A pattern without `/` matches the entry's name at any depth below its file's
//!   directory; one with a `/` (a leading one anchors it, and is dropped) matches the path
//!   relative to that directory with `*` not crossing `/` ([`super::wildmatch`]).
//! - A trailing `/` makes a pattern match directories only. A directory that is left out
//!   takes everything below it along (archive never descends into it); a pattern does not
//!   otherwise match the paths inside a directory it matches (`tests` leaves out the
//!   directory `tests`; `tests/*.php` is what reaches into it).
//! - Lines starting with `#` and blank lines are skipped, a pattern may be written in
//!   double quotes with C escapes, negative patterns (`!x`) are ignored, and a line with
//!   an invalid attribute name is ignored whole: git does the same.
//! - Macros (`[attr]name …`) count only in the top-level `.gitattributes`, as in git, and
//!   apply wherever their name is set.
//!
//! Not read: `$GIT_DIR/info/attributes` and `core.attributesFile`, which belong to one
//! machine's git, not to the commit; `git archive` on another machine would not see them.

use std::collections::HashMap;

use super::wildmatch::wildmatch;

const ATTRIBUTE: &[u8] = b"export-ignore";

/// What one line says about `export-ignore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Set,
    /// `-export-ignore`, or a value: the attribute is not "set".
    NotSet,
    /// `!export-ignore`: back to unspecified, which also ends the search.
    Unspecified,
}

#[derive(Debug, Clone)]
struct Rule {
    /// Without the leading `/` and the trailing `/`.
    pattern: Vec<u8>,
    /// No `/` in the pattern: it matches an entry's name at any depth.
    by_name: bool,
    directories_only: bool,
    state: State,
}

/// One `.gitattributes` file, reduced to the lines that say something about
/// `export-ignore`.
#[derive(Debug, Clone, Default)]
pub struct AttributesFile {
    /// The directory holding the file, relative to the tree's root, `/`-separated, no
    /// trailing `/`; empty for the root.
    dir: Vec<u8>,
    rules: Vec<Rule>,
}

/// Macros defined by the top-level `.gitattributes`: what each says about `export-ignore`
/// when set (names that say nothing are absent).
#[derive(Debug, Clone, Default)]
pub struct Macros(HashMap<Vec<u8>, State>);

impl AttributesFile {
    /// Reads the top-level `.gitattributes`: its rules, and the macros it defines.
    pub fn parse_root(content: &[u8]) -> (AttributesFile, Macros) {
        let mut macros = Macros::default();
        let file = parse(Vec::new(), content, &mut macros, true);
        (file, macros)
    }

    /// Reads the `.gitattributes` of directory `dir` (relative to the root, not empty).
    pub fn parse(dir: &[u8], content: &[u8], macros: &Macros) -> AttributesFile {
        let mut macros = macros.clone();
        parse(dir.to_vec(), content, &mut macros, false)
    }

    /// Whether the file says nothing about `export-ignore` (a walk need not keep it).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn parse(dir: Vec<u8>, content: &[u8], macros: &mut Macros, top_level: bool) -> AttributesFile {
    let mut rules = Vec::new();
    for line in content.split(|&b| b == b'\n') {
        let line = trim_start(line);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let Some((pattern, rest)) = split_pattern(line) else {
            continue;
        };
        let Some(state) = line_state(rest, macros) else {
            continue;
        };
        if let Some(name) = pattern.strip_prefix(b"[attr]") {
            // A macro defined anywhere but the top level is ignored, as git warns.
            if top_level && valid_name(name) {
                match state {
                    Some(state) => macros.0.insert(name.to_vec(), state),
                    None => macros.0.remove(name),
                };
            }
            continue;
        }
        let (Some(state), Some(rule)) = (state, rule(&pattern)) else {
            continue;
        };
        rules.push(Rule { state, ..rule });
    }
    AttributesFile { dir, rules }
}

fn rule(pattern: &[u8]) -> Option<Rule> {
    if pattern.is_empty() || pattern[0] == b'!' {
        // Negative patterns are refused by git ("use '\!' for a literal one").
        return None;
    }
    let (pattern, directories_only) = match pattern.strip_suffix(b"/") {
        Some(stripped) => (stripped, true),
        None => (pattern, false),
    };
    let by_name = !pattern.contains(&b'/');
    let pattern = pattern.strip_prefix(b"/").unwrap_or(pattern);
    Some(Rule {
        pattern: pattern.to_vec(),
        by_name,
        directories_only,
        state: State::Unspecified,
    })
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

fn trim_start(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|&b| !is_blank(b))
        .unwrap_or(line.len());
    &line[start..]
}

/// The line's pattern (unquoted) and what follows it; `None` for a malformed quote.
fn split_pattern(line: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if line[0] == b'"' {
        let (pattern, used) = unquote(&line[1..])?;
        return Some((pattern, &line[1 + used..]));
    }
    let end = line.iter().position(|&b| is_blank(b)).unwrap_or(line.len());
    Some((line[..end].to_vec(), &line[end..]))
}

/// C-style unquoting of what follows an opening `"`: the bytes and how many input bytes
/// the closing `"` ends after.
fn unquote(s: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' => return Some((out, i + 1)),
            b'\\' => {
                let c = *s.get(i + 1)?;
                i += 2;
                match c {
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'\\' | b'"' => out.push(c),
                    b'0'..=b'3' => {
                        let digits = s.get(i..i + 2)?;
                        if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                            return None;
                        }
                        out.push(
                            ((c - b'0') << 6) | ((digits[0] - b'0') << 3) | (digits[1] - b'0'),
                        );
                        i += 2;
                    }
                    _ => return None,
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

/// git's `attr_name_valid`: `[-._A-Za-z0-9]+`, not starting with `-`.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name[0] != b'-'
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// What the attributes after a pattern say about `export-ignore`, the last mention
/// winning as in git (a set macro counts as its own mention); `None` for a line git
/// ignores (an invalid attribute name); `Some(None)` when it says nothing.
fn line_state(rest: &[u8], macros: &Macros) -> Option<Option<State>> {
    let mut state = None;
    for token in rest.split(|&b| is_blank(b)).filter(|t| !t.is_empty()) {
        let (name, value) = match token.iter().position(|&b| b == b'=') {
            Some(eq) => (&token[..eq], Some(&token[eq + 1..])),
            None => (token, None),
        };
        let (name, prefix) = match name.first() {
            Some(b'-') => (&name[1..], Some(State::NotSet)),
            Some(b'!') => (&name[1..], Some(State::Unspecified)),
            _ => (name, None),
        };
        if !valid_name(name) {
            return None;
        }
        if name == ATTRIBUTE {
            state = Some(match (prefix, value) {
                (Some(p), _) => p,
                (None, None) => State::Set,
                (None, Some(_)) => State::NotSet,
            });
        } else if prefix.is_none()
            && value.is_none()
            && let Some(&expanded) = macros.0.get(name)
        {
            state = Some(expanded);
        }
    }
    Some(state)
}

/// Whether the entry at `path` (relative to the root, `/`-separated, no trailing `/`) is
/// left out, given the `.gitattributes` files of the directories above it, deepest
/// first (its own directory's, then its parent's, …, the root's last). Files for
/// directories that do not contain `path` are skipped.
pub fn is_ignored<'a>(
    files: impl Iterator<Item = &'a AttributesFile>,
    path: &[u8],
    is_dir: bool,
) -> bool {
    let name = match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    };
    for file in files {
        let Some(relative) = below(&file.dir, path) else {
            continue;
        };
        for rule in file.rules.iter().rev() {
            if rule.directories_only && !is_dir {
                continue;
            }
            let matched = if rule.by_name {
                wildmatch(&rule.pattern, name, false)
            } else {
                wildmatch(&rule.pattern, relative, true)
            };
            if matched {
                return rule.state == State::Set;
            }
        }
    }
    false
}

/// `path` relative to `dir`, if it lies below it.
fn below<'p>(dir: &[u8], path: &'p [u8]) -> Option<&'p [u8]> {
    if dir.is_empty() {
        return Some(path);
    }
    match path.strip_prefix(dir) {
        Some(rest) if rest.first() == Some(&b'/') => Some(&rest[1..]),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
