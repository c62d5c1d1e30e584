//! The dashboard's pure parts: log tails, durations, escaping, the CSP.

use super::views::{VisibleLog, environment_row, visible_log};
use super::*;
use crate::api_types::EnvironmentOverview;

#[test]
fn base64_matches_rfc_4648() {
    let cases = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            BASE64_STANDARD.encode(input.as_bytes()),
            expected,
            "{input:?}"
        );
    }
}

#[test]
fn visible_log_keeps_complete_lines_and_numbers_them() {
    type Case = (
        &'static str,
        bool,
        usize,
        (&'static [&'static str], usize, usize),
    );
    let cases: &[Case] = &[
        ("", false, 10, (&[], 0, 0)),
        ("a\nb\n", false, 10, (&["a", "b"], 0, 2)),
        // A running deploy's half-written last line is left to the stream.
        ("a\nb\nhal", false, 10, (&["a", "b"], 0, 2)),
        ("a\nb\nend", true, 10, (&["a", "b", "end"], 0, 3)),
        ("1\n2\n3\n4\n", true, 2, (&["3", "4"], 2, 4)),
    ];
    for (text, ended, cap, (lines, skipped, last)) in cases {
        let got = visible_log(text, *ended, *cap);
        assert_eq!(
            got,
            VisibleLog {
                lines: lines.iter().map(|l| l.to_string()).collect(),
                skipped: *skipped,
                last: *last,
            },
            "{text:?}"
        );
    }
}

#[test]
fn attacker_controlled_text_is_escaped() {
    let env = EnvironmentOverview {
        name: EnvironmentName::parse("preview-x").unwrap(),
        branch: Some("feature/<script>alert(1)</script>".into()),
        fed_by: "branch feature/<script>alert(1)</script>\"'".into(),
        temporary: true,
        base: None,
        protected: false,
        auto_deploy: true,
        follows_tags: false,
        live_release: None,
        live_commit: Some("<b>".into()),
        live_deploy: None,
        last_deploy: None,
        pending: None,
        process: None,
        address: Some("https://x.test/\"><script>alert(1)</script>".into()),
        pinned: false,
        expires_at: None,
    };
    let viewer = Viewer { csrf: "c".into() };
    let html = environment_row(&AppName::parse("shop").unwrap(), &env, &[], &viewer).into_string();
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("feature/&lt;script&gt;alert(1)&lt;/script&gt;&quot;'"),
        "{html}"
    );
    assert!(html.contains("&lt;b&gt;"), "{html}");
}

#[test]
fn the_policy_hashes_the_script_and_style_it_serves() {
    assert!(CSP.contains(&csp_hash(SCRIPT)));
    assert!(CSP.contains(&csp_hash(CSS)));
    assert!(CSP.contains("frame-ancestors 'none'"));
    assert!(!CSP.contains("unsafe-inline"));
}
