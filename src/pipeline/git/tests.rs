use super::*;

#[test]
fn a_remote_prints_its_token_as_stars() {
    let remote = Remote {
        url: "https://example.com/acme/shop.git".into(),
        ssh_key: None,
        token: Some(Secret::new("ghp_hunter2")),
        with: FetchWith::Git2,
        treeless: false,
    };
    let printed = format!("{remote:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("***"), "{printed}");
}

/// Found while building bench/faults.sh: a kill during the mirror's creation (the
/// app's first deploy) left a directory libgit2 calls "not a repository", and every
/// later deploy of the app failed with "cannot open or create the mirror" until an
/// operator deleted it. Confirmed with the release binary and a leftover directory.
#[test]
fn regression_a_mirror_left_half_created_by_a_crash_is_made_again() {
    let state = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(state.path(), &AppName::parse("shop").unwrap());
    for leftover in ["objects/pack", "refs/heads"] {
        std::fs::create_dir_all(mirror.path.join(leftover)).unwrap();
        let repo = mirror.open().unwrap();
        assert!(repo.is_bare());
    }
    let names: Vec<String> = std::fs::read_dir(state.path().join("mirrors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"shop.git".to_string()), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n == "shop.git" || n.starts_with(".shop.git.broken-")),
        "{names:?}"
    );
    // A working mirror is opened as it is.
    std::fs::write(mirror.path.join("marker"), "x").unwrap();
    mirror.open().unwrap();
    assert!(mirror.path.join("marker").exists());
}

#[test]
fn url_kinds() {
    for (url, ssh, local) in [
        ("git@github.com:acme/shop.git", true, false),
        ("ssh://git@github.com/acme/shop.git", true, false),
        ("https://github.com/acme/shop.git", false, false),
        ("git://127.0.0.1/shop.git", false, false),
        ("file:///srv/git/shop.git", false, true),
        ("/srv/git/shop.git", false, true),
        ("./relative:path", false, true),
    ] {
        assert_eq!((is_ssh_url(url), is_local_url(url)), (ssh, local), "{url}");
    }
}
