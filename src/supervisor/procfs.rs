//! Looking at and signalling app processes by pid, through `/proc` and `kill(2)`.
//! Every signal is preceded by a check that the pid still names the recorded process
//! (same start time), so a pid reused since it was recorded is never hit. Linux only.

use rustix::process::{Pid, Signal, kill_process_group};

use crate::core::app_process::{Liveness, ProcStat, StopSignal, liveness};

/// What `/proc/<pid>/stat` says now; `None` when there is no such process.
pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    ProcStat::parse(&text)
}

/// Whether `pid` is still the process that started at `start_ticks`.
pub fn is_same(pid: i32, start_ticks: u64) -> bool {
    liveness(start_ticks, stat(pid)) == Liveness::Same
}

fn rustix_signal(signal: StopSignal) -> Signal {
    match signal {
        StopSignal::Term => Signal::TERM,
        StopSignal::Int => Signal::INT,
        StopSignal::Quit => Signal::QUIT,
        StopSignal::Hup => Signal::HUP,
        StopSignal::Usr1 => Signal::USR1,
        StopSignal::Usr2 => Signal::USR2,
        StopSignal::Kill => Signal::KILL,
    }
}

/// Signals the whole process group the app leads (it was started as a group leader,
/// so `sh -c` and everything it started get the signal), if `pid` is still the
/// recorded process. Returns whether a signal was sent.
pub fn signal_group(pid: i32, start_ticks: u64, signal: StopSignal) -> bool {
    let Some(now) = stat(pid) else {
        return false;
    };
    if liveness(start_ticks, Some(now)) != Liveness::Same || now.pgrp != pid {
        return false;
    }
    match Pid::from_raw(pid) {
        Some(group) => kill_process_group(group, rustix_signal(signal)).is_ok(),
        None => false,
    }
}
