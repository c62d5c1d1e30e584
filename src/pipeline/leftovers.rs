//! The process groups deploy steps start: recorded durably while they may run, and
//! after a crash killed, those and nothing else.
//!
//! A step runs in its own process group, so killing stagehand with SIGKILL does not
//! stop it; it would go on writing into a release that recovery is about to delete.
//! Each group is recorded in the store ([`ProcessRegistry`]) when its shell starts,
//! with the leader's start time (field 22 of `/proc/<pid>/stat`), and forgotten once
//! the group has been killed. Recovery ([`kill_recorded`]) signals a recorded group
//! only while its leader still has the recorded start time, or, once the leader has
//! exited, only members of that group that started after it: Linux does not hand out
//! a pid that is still some group's id, so such members are the step's. Processes an
//! operator started (an app serving from `current`) are never recorded, so never hit,
//! whatever their working directory. Linux `/proc` only.
//!
//! The record is written just after the shell starts: a crash in that instant leaves
//! a step unrecorded, and recovery then leaves it alone rather than guess.

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

use crate::core::ids::DeployId;
use crate::store::{RecordedGroup, Store};

/// Writes and forgets the process groups of one deploy's steps.
#[derive(Clone)]
pub struct ProcessRegistry {
    pub store: Store,
    pub deploy: DeployId,
}

impl std::fmt::Debug for ProcessRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRegistry")
            .field("deploy", &self.deploy)
            .finish_non_exhaustive()
    }
}

impl ProcessRegistry {
    /// Records the group led by `pgid`; returns the leader's start time, `None` when
    /// it could not be recorded (then logged: recovery would leave that group alone).
    pub async fn record(&self, pgid: i32) -> Option<u64> {
        let Some(start_time) = start_time(pgid) else {
            tracing::warn!(pgid, deploy = %self.deploy, "cannot read the start time of a step's shell: its group is not recorded");
            return None;
        };
        let group = RecordedGroup {
            pgid,
            start_time,
            deploy: self.deploy,
        };
        match self.store.run(move |s| s.record_process_group(group)).await {
            Ok(()) => Some(start_time),
            Err(e) => {
                tracing::warn!(pgid, deploy = %self.deploy, error = %e, "cannot record a step's process group: recovery after a crash will not kill it");
                None
            }
        }
    }

    /// Forgets a group that has been killed. A failure only leaves a stale record,
    /// which recovery recognises by the start time and drops.
    pub async fn forget(&self, pgid: i32, start_time: u64) {
        if let Err(e) = self
            .store
            .run(move |s| s.forget_process_group(pgid, start_time))
            .await
        {
            tracing::warn!(pgid, deploy = %self.deploy, error = %e, "cannot forget a finished step's process group");
        }
    }
}

/// Kills what is left of each recorded group (see the module doc for which processes
/// count). Returns how many groups were signalled. Blocking.
pub fn kill_recorded(groups: &[RecordedGroup]) -> usize {
    let own = rustix::process::getpgrp().as_raw_nonzero().get();
    let mut killed = 0;
    for group in groups {
        if group.pgid <= 1 || group.pgid == own {
            continue;
        }
        let Some(pgid) = Pid::from_raw(group.pgid) else {
            continue;
        };
        match start_time(group.pgid) {
            Some(t) if t == group.start_time => {
                if kill_process_group(pgid, Signal::KILL).is_ok() {
                    killed += 1;
                }
            }
            // The pid is another process now, so the recorded group is long gone.
            Some(_) => {}
            None => {
                let members = members_started_since(group.pgid, group.start_time);
                for pid in &members {
                    if let Some(pid) = Pid::from_raw(*pid) {
                        let _ = kill_process(pid, Signal::KILL);
                    }
                }
                if !members.is_empty() {
                    killed += 1;
                }
            }
        }
    }
    killed
}

/// Processes in group `pgid` that started at or after `since` (clock ticks).
fn members_started_since(pgid: i32, since: u64) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| stat_fields(*pid).is_some_and(|f| f.pgrp == pgid && f.start_time >= since))
        .collect()
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`);
/// `None` when there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid).map(|f| f.start_time)
}

struct StatFields {
    pgrp: i32,
    start_time: u64,
}

/// Fields 5 and 22 of `/proc/<pid>/stat`, counted after the command name (which may
/// hold spaces and parentheses).
fn stat_fields(pid: i32) -> Option<StatFields> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(StatFields {
        pgrp: rest.get(2)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn spawn_group(script: &str) -> std::process::Child {
        std::process::Command::new("sh")
            .args(["-c", script])
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn recorded(child: &std::process::Child, start_time: u64) -> RecordedGroup {
        RecordedGroup {
            pgid: child.id() as i32,
            start_time,
            deploy: DeployId(1),
        }
    }

    #[test]
    fn kills_a_recorded_group_and_spares_the_rest() {
        let mut step = spawn_group("sleep 1000 & wait");
        let mut bystander = spawn_group("sleep 1000 & wait");
        let step_start = start_time(step.id() as i32).unwrap();
        assert_eq!(kill_recorded(&[recorded(&step, step_start)]), 1);
        assert!(!step.wait().unwrap().success());
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "the bystander was killed"
        );
        let _ = kill_process_group(Pid::from_raw(bystander.id() as i32).unwrap(), Signal::KILL);
        let _ = bystander.wait();
    }

    /// The recorded pid now belongs to another process (another start time): not ours.
    #[test]
    fn a_reused_pid_is_left_alone() {
        let mut other = spawn_group("sleep 1000 & wait");
        let start = start_time(other.id() as i32).unwrap();
        assert_eq!(kill_recorded(&[recorded(&other, start + 1)]), 0);
        assert!(other.try_wait().unwrap().is_none(), "a stranger was killed");
        let _ = kill_process_group(Pid::from_raw(other.id() as i32).unwrap(), Signal::KILL);
        let _ = other.wait();
    }

    /// The leader exited but its child lives on in the group: still the step's.
    #[test]
    fn members_outliving_their_leader_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut leader = spawn_group(&format!("sleep 1000 & echo $! > {}", pid_file.display()));
        let start = start_time(leader.id() as i32).unwrap();
        assert!(leader.wait().unwrap().success());
        let orphan: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(start_time(orphan).is_some(), "the orphan is not running");
        assert_eq!(kill_recorded(&[recorded(&leader, start)]), 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // The orphan's parent (init or a subreaper) reaps it; until then it is a zombie.
        while stat_state(orphan).is_some_and(|s| s != "Z") {
            assert!(std::time::Instant::now() < deadline, "the orphan survived");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn stat_state(pid: i32) -> Option<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(
            stat.rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned(),
        )
    }
}
