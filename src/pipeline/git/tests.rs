use super::*;
use crate::core::secret::Secret;

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

/// Runs git in `dir` with a fixed identity, for the fetch tests' origins.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// An origin with two commits, serving filters and objects by id, and a treeless remote.
fn treeless_origin(dir: &Path) -> (Remote, String) {
    let origin = dir.join("origin");
    std::fs::create_dir(&origin).unwrap();
    git_in(&origin, &["init", "-q", "-b", "main"]);
    git_in(&origin, &["config", "uploadpack.allowFilter", "true"]);
    git_in(
        &origin,
        &["config", "uploadpack.allowAnySHA1InWant", "true"],
    );
    for (i, text) in ["one", "two"].iter().enumerate() {
        std::fs::write(origin.join(format!("f{i}.txt")), text).unwrap();
        git_in(&origin, &["add", "-A"]);
        git_in(&origin, &["commit", "-q", "-m", text]);
    }
    let head = git_in(&origin, &["rev-parse", "HEAD"]);
    let remote = Remote {
        url: origin.to_string_lossy().into_owned(),
        ssh_key: None,
        token: None,
        with: FetchWith::GitCli,
        treeless: true,
    };
    (remote, head)
}

#[tokio::test]
async fn a_first_fetch_by_depth_is_shallow_until_any_next_fetch_deepens_it() {
    let dir = tempfile::tempdir().unwrap();
    let (remote, head) = treeless_origin(dir.path());
    first_fetch_by_depth(dir.path(), remote, &head).await;
}

/// A full mirror fetched by libgit2 takes the same path: the git CLI makes it shallow
/// and deepens it; libgit2 fetches into it afterwards as into any mirror.
#[tokio::test]
async fn a_full_mirror_fetched_by_libgit2_is_deepened_by_the_cli_then_fetched_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let (mut remote, head) = treeless_origin(dir.path());
    remote.treeless = false;
    remote.with = FetchWith::Git2;
    let mirror = first_fetch_by_depth(dir.path(), remote.clone(), &head).await;
    let origin = dir.path().join("origin");
    std::fs::write(origin.join("f2.txt"), "three").unwrap();
    git_in(&origin, &["add", "-A"]);
    git_in(&origin, &["commit", "-q", "-m", "three"]);
    let newest = git_in(&origin, &["rev-parse", "HEAD"]);
    let spec = vec!["+refs/heads/main:refs/heads/main".to_owned()];
    mirror
        .fetch(&remote, spec, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(mirror.resolve_commit("main").unwrap().0.as_str(), newest);
    assert!(mirror.is_ancestor(&head, &newest).unwrap());
}

async fn first_fetch_by_depth(dir: &Path, remote: Remote, head: &str) -> Mirror {
    let head = head.to_owned();
    let mirror = Mirror::new(&dir.join("state"), &AppName::parse("shop").unwrap());
    let spec = vec!["+refs/heads/main:refs/heads/main".to_owned()];
    assert!(mirror.is_empty());
    let shallow = mirror
        .fetch_tip(&remote, spec.clone(), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(shallow && mirror.is_shallow());
    assert!(!mirror.is_empty());
    let repo = mirror.open().unwrap();
    let commit = repo
        .find_commit(git2::Oid::from_str(&head).unwrap())
        .unwrap();
    // The tip's files came with it.
    assert!(repo.odb().unwrap().exists(commit.tree_id()));
    mirror
        .fetch(&remote, spec, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!mirror.is_shallow());
    let first = git_in(
        &dir.join("origin"),
        &["rev-list", "--max-parents=0", "HEAD"],
    );
    assert!(mirror.is_ancestor(&first, &head).unwrap());
    mirror
}

/// Found trying it as an operator: a reconciliation round at start fetched the history
/// while the first push waited for the mirror's lock; the push's depth-1 fetch then got
/// nothing (git had the commit), left its files missing and made the mirror shallow.
#[tokio::test]
async fn regression_a_depth_fetch_into_a_mirror_fetched_meanwhile_fetches_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let (remote, _head) = treeless_origin(dir.path());
    let mirror = Mirror::new(&dir.path().join("state"), &AppName::parse("shop").unwrap());
    let spec = vec!["+refs/heads/main:refs/heads/main".to_owned()];
    mirror
        .fetch(&remote, spec.clone(), Duration::from_secs(30))
        .await
        .unwrap();
    let shallow = mirror
        .fetch_tip(&remote, spec, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!shallow && !mirror.is_shallow());
}
