//! After a crash: the build process groups a dead stagehand left behind.
//!
//! A build runs in its own process group, so killing stagehand with SIGKILL does not
//! stop it; it would go on writing into a release that recovery is about to delete.
//! Recovery finds such processes by their working directory (inside the interrupted
//! release) and kills their groups. Matching on the directory rather than a stored pid
//! means a pid reused since the crash is never hit. Linux `/proc` only.

use std::path::Path;

use rustix::process::{Pid, Signal, kill_process_group};

/// Kills the process group of every process whose working directory is inside `dir`.
/// Returns how many groups were signalled. Blocking.
pub fn kill_groups_working_in(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut groups = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let cwd = std::fs::read_link(entry.path().join("cwd"));
        // A deleted directory reads as "<path> (deleted)": still ours.
        let inside = cwd.is_ok_and(|cwd| {
            let text = cwd.to_string_lossy();
            Path::new(text.trim_end_matches(" (deleted)")).starts_with(dir)
        });
        if inside
            && let Some(pgrp) = process_group(pid)
            && pgrp > 1
            && pgrp != rustix::process::getpgrp().as_raw_nonzero().get()
            && !groups.contains(&pgrp)
        {
            groups.push(pgrp);
        }
    }
    for pgrp in &groups {
        if let Some(pid) = Pid::from_raw(*pgrp) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
    groups.len()
}

/// Field 5 of `/proc/<pid>/stat`, read after the command name (which may hold spaces).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn kills_groups_left_in_a_directory_and_nothing_else() {
        let inside = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let spawn = |dir: &Path| {
            std::process::Command::new("sh")
                .args(["-c", "sleep 1000 & wait"])
                .current_dir(dir)
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let mut victim = spawn(inside.path());
        let mut bystander = spawn(outside.path());
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(kill_groups_working_in(inside.path()), 1);
        let status = victim.wait().unwrap();
        assert!(!status.success());
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "the bystander was killed"
        );
        let _ = kill_process_group(Pid::from_raw(bystander.id() as i32).unwrap(), Signal::KILL);
        let _ = bystander.wait();
    }
}
