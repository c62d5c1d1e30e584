use super::*;

fn env(name: &str) -> EnvironmentName {
    EnvironmentName::parse(name).unwrap()
}

fn rule(environment: &str, source: &str, auto_deploy: bool, protected: bool) -> Rule {
    let (kind, pattern) = source.split_once(':').unwrap();
    let pattern = RefPattern::parse(pattern).unwrap();
    Rule {
        environment: env(environment),
        source: if kind == "branch" {
            RefSource::Branch(pattern)
        } else {
            RefSource::Tag(pattern)
        },
        auto_deploy,
        protected,
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn temporary(name: &str, base: &str, branch: &str) -> Temporary {
    Temporary {
        name: env(name),
        base: env(base),
        branch: branch.into(),
    }
}

/// One short line per step, so the tables read at a glance.
fn summary(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| match s {
            Step::Compare {
                environment, head, ..
            } => format!("compare {environment} {head}"),
            Step::Create { base, branch, head } => format!("create {base}<{branch}> {head}"),
            Step::Teardown { environment, .. } => format!("teardown {environment}"),
            Step::CompareTags { environment, tags } => {
                let tags: Vec<String> = tags.iter().map(|(t, c)| format!("{t} {c}")).collect();
                format!("compare {environment} [{}]", tags.join(", "))
            }
            Step::Leave { subject, why } => format!("leave {subject}: {why}"),
        })
        .collect()
}

fn rules() -> Vec<Rule> {
    vec![
        rule("production", "branch:main", true, true),
        rule("staging", "branch:develop", false, false),
        rule("preview", "branch:feature/*", true, false),
        rule("releases", "tag:v*", true, false),
    ]
}

fn remote(branches: &[(&str, &str)], tags: &[(&str, &str)]) -> RemoteRefs {
    RemoteRefs {
        branches: map(branches),
        tags: map(tags),
    }
}

#[test]
fn plans_compare_create_teardown_and_leave() {
    let heads = remote(
        &[
            ("main", "m1"),
            ("develop", "d1"),
            ("feature/kept", "k2"),
            ("feature/new", "n1"),
            ("feature/moved", "o2"),
            ("feature/old", "o1"),
            ("feature/a/b", "x"),
        ],
        &[("v1", "t1"), ("v2", "t2"), ("other", "o")],
    );
    let temporaries = [
        temporary("preview-feature-kept", "preview", "feature/kept"),
        temporary("preview-feature-gone", "preview", "feature/gone"),
    ];
    let seen = map(&[
        ("refs/heads/feature/old", "o1"),
        ("refs/heads/feature/moved", "o1"),
        ("refs/tags/v1", "t1"),
    ]);
    let got = summary(&plan(&rules(), &heads, &temporaries, Some(&seen)));
    assert_eq!(
        got,
        [
            "compare production m1",
            "leave staging: auto_deploy is off",
            "compare preview-feature-kept k2",
            "teardown preview-feature-gone",
            "create preview<feature/moved> o2",
            "create preview<feature/new> n1",
            "leave branch `feature/old`: not pushed since the previous round",
            "compare releases [v2 t2]",
        ]
    );
}

#[test]
fn before_the_first_round_existing_branches_make_no_environments() {
    let heads = remote(&[("feature/x", "x1")], &[("v1", "t1")]);
    let got = summary(&plan(&rules(), &heads, &[], None));
    assert_eq!(
        got[3],
        "leave releases: first round: tags already there are not deployed by reconciliation"
    );
    assert_eq!(
        got[2],
        "leave branch `feature/x`: was there before the first round: its first push makes its environment"
    );
    assert_eq!(
        got[0], "leave production: branch `main` is not on the remote",
        "a missing branch is a note, not an error"
    );
}

#[test]
fn protected_and_manual_patterns() {
    let rules = [rule("preview", "branch:feature/*", false, true)];
    let heads = remote(&[("feature/kept", "k"), ("feature/new", "n")], &[]);
    let temporaries = [
        temporary("preview-feature-kept", "preview", "feature/kept"),
        temporary("preview-feature-gone", "preview", "feature/gone"),
    ];
    let got = summary(&plan(&rules, &heads, &temporaries, Some(&map(&[]))));
    assert_eq!(
        got,
        [
            "leave preview-feature-kept: auto_deploy is off",
            "leave preview-feature-gone: its branch is gone, but it is protected: never torn down",
        ]
    );
}

#[test]
fn refspecs_cover_every_followed_branch_once() {
    type Case<'a> = (&'a [(&'a str, bool)], &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        (&[("main", true)], &["+refs/heads/main*:refs/heads/main*"]),
        // A manual literal branch needs no head; a manual pattern still tears down.
        (
            &[("main", false), ("feature/*", false)],
            &["+refs/heads/feature/*:refs/heads/feature/*"],
        ),
        (
            &[("main", true), ("develop", true), ("feature/*", true)],
            &[
                "+refs/heads/develop*:refs/heads/develop*",
                "+refs/heads/feature/*:refs/heads/feature/*",
                "+refs/heads/main*:refs/heads/main*",
            ],
        ),
        (
            &[("**", true), ("main", true)],
            &["+refs/heads/*:refs/heads/*"],
        ),
        (
            &[("rel-?/x", true), ("rel-*", true)],
            &["+refs/heads/rel-*:refs/heads/rel-*"],
        ),
    ];
    for (branches, expected) in cases {
        let rules: Vec<Rule> = branches
            .iter()
            .enumerate()
            .map(|(i, (b, auto))| rule(&format!("e{i}"), &format!("branch:{b}"), *auto, false))
            .collect();
        assert_eq!(fetch_refspecs(&rules), *expected, "{branches:?}");
    }
    let tags = [
        rule("t", "tag:v*", true, false),
        rule("u", "tag:rc-*", false, false),
        rule("b", "branch:v*", true, false),
    ];
    assert_eq!(
        fetch_refspecs(&tags),
        ["+refs/heads/v*:refs/heads/v*", "+refs/tags/v*:refs/tags/v*"],
        "a manual tag environment needs no tags"
    );
}

#[test]
fn pattern_branches_and_tags_are_what_the_next_round_compares() {
    let heads = remote(
        &[("main", "m"), ("feature/x", "x"), ("other", "o")],
        &[("v1", "t1"), ("other", "o")],
    );
    assert_eq!(
        remembered(&rules(), &heads),
        map(&[("refs/heads/feature/x", "x"), ("refs/tags/v1", "t1")])
    );
}

/// History for the tag tables: a → b → c → d, and a → x (a side line).
fn is_ancestor(a: &str, b: &str) -> bool {
    const LINE: &str = "abcd";
    match (LINE.find(a), LINE.find(b)) {
        (Some(i), Some(j)) => i < j,
        _ => a == "a" && b == "x",
    }
}

#[test]
fn the_newest_tag_is_the_one_every_other_is_behind() {
    let tags = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect()
    };
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        Result<&'a str, &'a str>,
    );
    let cases: &[Case<'_>] = &[
        (&[("v2", "c"), ("v3", "d")], Some("b"), Ok("v3")),
        (&[("v3", "d"), ("v2", "c")], Some("b"), Ok("v3")),
        // History decides, not the name.
        (&[("v10", "c"), ("v9", "d")], Some("a"), Ok("v9")),
        (&[("v1", "c"), ("v1-final", "c")], Some("a"), Ok("v1-final")),
        // Never deployed: the newest of them.
        (&[("v1", "b"), ("v2", "d")], None, Ok("v2")),
        (&[("v1", "b")], Some("b"), Err("newer than the live")),
        (&[("old", "a")], Some("c"), Err("newer than the live")),
        (&[("v2", "c"), ("side", "x")], None, Err("diverge")),
        // A side-line tag not descending from the live commit is not newer.
        (&[("v2", "c"), ("side", "x")], Some("b"), Ok("v2")),
    ];
    for (list, live, expected) in cases {
        let list = tags(list);
        let got = newest_tag(&list, *live, is_ancestor).map(|(t, _)| t.as_str());
        match (expected, &got) {
            (Ok(want), Ok(tag)) if want == tag => {}
            (Err(part), Err(why)) if why.contains(part) => {}
            _ => panic!("{list:?} live {live:?}: got {got:?}, want {expected:?}"),
        }
    }
}

#[test]
fn decisions() {
    let head = "h";
    let facts = |busy, live: Option<&str>, tried, head_is_older, skip_marker| Facts {
        busy,
        live: live.map(str::to_owned),
        tried,
        head_is_older,
        skip_marker,
    };
    use DeployStatus::*;
    let cases: Vec<(Facts, Option<&str>)> = vec![
        (facts(false, Some("old"), None, false, false), None),
        // Never deployed: the first round deploys it.
        (facts(false, None, None, false, false), None),
        (
            facts(true, Some("old"), None, false, false),
            Some("queued or running"),
        ),
        (
            facts(false, Some("h"), None, false, false),
            Some("the head is live"),
        ),
        (
            facts(false, Some("old"), Some(Failed), false, false),
            Some("ended failed"),
        ),
        (
            facts(false, Some("old"), Some(Succeeded), false, false),
            Some("ended succeeded"),
        ),
        (
            facts(false, Some("old"), Some(RolledBack), false, false),
            Some("ended rolled_back"),
        ),
        (
            facts(false, Some("old"), Some(Skipped), false, false),
            Some("ended skipped"),
        ),
        // A deploy that never got to finish is tried again.
        (
            facts(false, Some("old"), Some(Interrupted), false, false),
            None,
        ),
        (
            facts(false, Some("old"), Some(Cancelled), false, false),
            None,
        ),
        (
            facts(false, Some("old"), Some(Superseded), false, false),
            None,
        ),
        (
            facts(false, Some("new"), None, true, false),
            Some("older than the live"),
        ),
        (
            facts(false, Some("old"), None, false, true),
            Some("[skip deploy]"),
        ),
    ];
    for (facts, expected) in cases {
        let got = decide(head, &facts);
        match (expected, &got) {
            (None, Decision::Deploy) => {}
            (Some(part), Decision::Leave(why)) if why.contains(part) => {}
            _ => panic!("{facts:?}: got {got:?}, want {expected:?}"),
        }
    }
}
