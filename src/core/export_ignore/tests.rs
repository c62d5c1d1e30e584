use super::*;

fn root(text: &str) -> (AttributesFile, Macros) {
    AttributesFile::parse_root(text.as_bytes())
}

fn ignored(files: &[AttributesFile], path: &str, is_dir: bool) -> bool {
    // The arrays list files shallowest first.
    is_ignored(files.iter().rev(), path.as_bytes(), is_dir)
}

#[test]
fn a_name_pattern_matches_at_any_depth_an_anchored_one_only_from_its_directory() {
    let (file, _) = root("Tests export-ignore\n/docs export-ignore\n");
    let files = [file];
    assert!(ignored(&files, "Tests", true));
    assert!(ignored(&files, "src/Console/Tests", true));
    assert!(ignored(&files, "docs", true));
    assert!(!ignored(&files, "src/docs", true));
    assert!(!ignored(&files, "src/Console/Command.php", false));
}

#[test]
fn wildcards_do_not_cross_slashes_unless_doubled() {
    let (file, _) = root("/src/*/Tests export-ignore\n/lib/**/*.md export-ignore\n");
    let files = [file];
    assert!(ignored(&files, "src/Console/Tests", true));
    assert!(!ignored(&files, "src/A/B/Tests", true));
    assert!(ignored(&files, "lib/README.md", false));
    assert!(ignored(&files, "lib/a/b/c.md", false));
    assert!(!ignored(&files, "README.md", false));
}

#[test]
fn a_trailing_slash_matches_directories_only() {
    let (file, _) = root("build/ export-ignore\n");
    let files = [file];
    assert!(ignored(&files, "build", true));
    assert!(!ignored(&files, "build", false));
}

#[test]
fn the_most_specific_mention_decides_unset_and_unspecified_included() {
    let (top, macros) = root("*.md export-ignore\n/keep.md -export-ignore\n");
    let sub = AttributesFile::parse(b"pkg", b"NOTES.md !export-ignore\n", &macros);
    let files = [top, sub];
    assert!(ignored(&files, "README.md", false));
    assert!(!ignored(&files, "keep.md", false));
    assert!(ignored(&files, "pkg/README.md", false));
    assert!(
        !ignored(&files, "pkg/NOTES.md", false),
        "! ends the search unspecified"
    );
    // A later line of the same file overrides an earlier one.
    let (file, _) = root("a export-ignore\na -export-ignore\nb -export-ignore\nb export-ignore\n");
    let files = [file];
    assert!(!ignored(&files, "a", false));
    assert!(ignored(&files, "b", false));
}

#[test]
fn a_subdirectory_file_applies_below_its_directory_only() {
    let (top, macros) = root("");
    let sub = AttributesFile::parse(
        b"src/Console",
        b"/Tests export-ignore\n/.git* export-ignore\n",
        &macros,
    );
    let files = [top, sub];
    assert!(ignored(&files, "src/Console/Tests", true));
    assert!(ignored(&files, "src/Console/.gitattributes", false));
    assert!(ignored(&files, "src/Console/.github", true));
    assert!(!ignored(&files, "src/ConsoleX/Tests", true));
    assert!(!ignored(&files, "Tests", true));
}

#[test]
fn a_value_is_not_set_and_a_bad_name_drops_the_line() {
    let (file, _) = root("a export-ignore=yes\nb export-ignore bad/name\nc export-ignore\n");
    let files = [file];
    assert!(!ignored(&files, "a", false));
    assert!(!ignored(&files, "b", false));
    assert!(ignored(&files, "c", false));
}

#[test]
fn comments_negative_patterns_and_quotes() {
    let text = "# a comment export-ignore\n!neg export-ignore\n\"with space\" export-ignore\n  \t indented export-ignore\r\n";
    let (file, _) = root(text);
    let files = [file];
    assert!(!ignored(&files, "#", false));
    assert!(!ignored(&files, "neg", false));
    assert!(ignored(&files, "with space", false));
    assert!(ignored(&files, "indented", false));
}

#[test]
fn macros_count_from_the_top_level_only() {
    let (top, macros) = root("[attr]dist-only export-ignore\n*.test dist-only\n");
    let sub = AttributesFile::parse(
        b"a",
        b"[attr]sub-macro export-ignore\n*.x sub-macro\n*.y dist-only\n",
        &macros,
    );
    let files = [top, sub];
    assert!(ignored(&files, "x.test", false));
    assert!(ignored(&files, "a/b.y", false));
    assert!(
        !ignored(&files, "a/b.x", false),
        "a macro defined below the top is ignored"
    );
}

#[test]
fn lines_about_other_attributes_are_dropped() {
    let (file, _) = root("*.php diff=php\n*.png binary\n");
    assert!(file.is_empty());
}
