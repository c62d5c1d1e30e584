//! Decisions about an environment's app process (the `run` command), without touching
//! one: the signal that stops it, the port range it gets a port from, its states, the
//! restart backoff, what a `/proc/<pid>/stat` line says, and what to do at start-up
//! with a process recorded by an earlier stagehand.
//!
//! The supervisor (`src/supervisor/`) does the spawning, signalling and polling; it
//! asks here what each observation means.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IntoDeserializer;

/// The signal a process is asked to stop with (`stop_signal`); SIGKILL follows after
/// `stop_timeout`. Its serde names are the upper-case ones (`"TERM"`); [`StopSignal::parse`]
/// and the config first bring a text to them ([`StopSignal::canonical`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StopSignal {
    Term,
    Int,
    Quit,
    Hup,
    Usr1,
    Usr2,
    Kill,
}

impl StopSignal {
    /// `" sigterm "` → `"TERM"`: any case, with or without `SIG`, spaces around.
    pub fn canonical(text: &str) -> String {
        let upper = text.trim().to_ascii_uppercase();
        upper.strip_prefix("SIG").unwrap_or(&upper).to_owned()
    }

    /// `"TERM"` or `"SIGTERM"`, any case.
    pub fn parse(text: &str) -> Result<StopSignal, String> {
        let canonical = StopSignal::canonical(text);
        let words: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            canonical.as_str().into_deserializer();
        StopSignal::deserialize(words).map_err(|_| {
            format!("{text:?} is not a stop signal: use TERM, INT, QUIT, HUP, USR1, USR2 or KILL")
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "TERM",
            StopSignal::Int => "INT",
            StopSignal::Quit => "QUIT",
            StopSignal::Hup => "HUP",
            StopSignal::Usr1 => "USR1",
            StopSignal::Usr2 => "USR2",
            StopSignal::Kill => "KILL",
        }
    }
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

/// `[server] ports`: the ports app processes are given, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl Default for PortRange {
    fn default() -> PortRange {
        PortRange {
            first: 20000,
            last: 29999,
        }
    }
}

impl PortRange {
    /// `"20000-29999"`; privileged ports (below 1024) are refused.
    pub fn parse(text: &str) -> Result<PortRange, String> {
        let bad =
            || format!("{text:?} is not a port range: write FIRST-LAST, e.g. \"20000-29999\"");
        let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first > last {
            return Err(format!("{text:?}: the first port is above the last"));
        }
        if first < 1024 {
            return Err(format!(
                "{text:?}: ports below 1024 need root; pick a range above 1024"
            ));
        }
        Ok(PortRange { first, last })
    }

    pub fn len(self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    pub fn is_empty(self) -> bool {
        false
    }

    /// Every port of the range once, starting at `seed` (wrapped into the range) and
    /// skipping `taken`: the order in which the supervisor tries to bind them. A varying
    /// seed spreads new processes over the range, so a port just given up by a retired
    /// process (possibly in TIME_WAIT) is not the first one tried again.
    pub fn candidates(self, seed: u32, taken: &[u16]) -> Vec<u16> {
        let len = self.len();
        (0..len)
            .map(|i| {
                let offset = (seed % len + i) % len;
                // In range by construction: offset < len ≤ 65536 - first.
                (u32::from(self.first) + offset) as u16
            })
            .filter(|p| !taken.contains(p))
            .collect()
    }
}

/// What the API shows as `process.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Spawned, not yet answering its health check.
    Starting,
    Running,
    /// Exited on its own; waiting out the backoff before the next start.
    Restarting,
    /// Stopped on purpose (`stagehand stop`): not restarted until `start`.
    Stopped,
    /// Could not be started again (its command or release is broken); retried with backoff.
    Crashed,
}

impl ProcessState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Starting => "starting",
            ProcessState::Running => "running",
            ProcessState::Restarting => "restarting",
            ProcessState::Stopped => "stopped",
            ProcessState::Crashed => "crashed",
        }
    }

    pub fn parse(text: &str) -> Option<ProcessState> {
        Some(match text {
            "starting" => ProcessState::Starting,
            "running" => ProcessState::Running,
            "restarting" => ProcessState::Restarting,
            "stopped" => ProcessState::Stopped,
            "crashed" => ProcessState::Crashed,
            _ => return None,
        })
    }

    /// Whether the supervisor should bring the process back when it is not alive.
    pub fn wants_running(self) -> bool {
        !matches!(self, ProcessState::Stopped)
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part a recorded process plays for its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The process the environment's route points at.
    Live,
    /// Started by a deploy, rollback or restart; not switched to yet.
    Candidate,
    /// Switched away from; being stopped.
    Retiring,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Live => "live",
            Role::Candidate => "candidate",
            Role::Retiring => "retiring",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "live" => Role::Live,
            "candidate" => Role::Candidate,
            "retiring" => Role::Retiring,
            _ => return None,
        })
    }
}

/// The first restart waits 1 s; each further one in a row twice as long, up to 60 s.
pub fn restart_delay(restarts_in_a_row: u32) -> Duration {
    let secs = 1u64 << restarts_in_a_row.min(6);
    Duration::from_secs(secs.min(60))
}

/// A process that stayed up this long before exiting starts the backoff over: it
/// was working, and its exit is news, not a crash loop.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// How many restarts in a row a process that exited after `uptime` has behind it.
pub fn restarts_in_a_row(previous_in_a_row: u32, uptime: Duration) -> u32 {
    if uptime >= BACKOFF_RESET_AFTER {
        0
    } else {
        previous_in_a_row.saturating_add(1)
    }
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (exited, not yet reaped), `X`, …
    pub state: char,
    /// Field 5.
    pub pgrp: i32,
    /// Field 6.
    pub session: i32,
    /// Field 22: clock ticks since boot when it started. With the pid it names one
    /// process for the life of the machine, even after the pid is reused.
    pub start_ticks: u64,
}

impl ProcStat {
    /// The command name (field 2) is in parentheses and may hold spaces and `)`, so the
    /// fields are counted from the last `)`.
    pub fn parse(text: &str) -> Option<ProcStat> {
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is field 3.
        Some(ProcStat {
            state: fields.first()?.chars().next()?,
            pgrp: fields.get(2)?.parse().ok()?,
            session: fields.get(3)?.parse().ok()?,
            start_ticks: fields.get(19)?.parse().ok()?,
        })
    }

    /// A zombie has exited: only its exit status is left for its parent to collect.
    pub fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// What a recorded pid looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Alive, with the recorded start time: the very process that was recorded.
    Same,
    /// Gone, a zombie, or the pid now belongs to another process.
    Gone,
}

/// Compares the recorded start time with what `/proc` says now (`None`: no such pid).
pub fn liveness(recorded_start_ticks: u64, now: Option<ProcStat>) -> Liveness {
    match now {
        Some(stat) if stat.is_alive() && stat.start_ticks == recorded_start_ticks => Liveness::Same,
        _ => Liveness::Gone,
    }
}

/// What stagehand does at start-up with a process an earlier run recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtStart {
    /// Keep it running and supervise it (by polling: it is not our child).
    Adopt,
    /// It died while stagehand was away: start the live release again.
    Restart,
    /// A deploy's candidate or a retiring process an interrupted operation left: stop
    /// it (it was never, or is no longer, what the route points at) and drop the record.
    StopAndForget,
    /// Drop the record and touch nothing: the process is gone or not stagehand's to run
    /// any more (the environment lost its `run`), and it is never killed for that.
    Forget,
    /// Leave the record as it is (stopped on purpose).
    Keep,
}

/// `runs`: the environment still has a `run` command in the config.
pub fn at_start(role: Role, state: ProcessState, alive: Liveness, runs: bool) -> AtStart {
    match (role, alive) {
        (Role::Candidate | Role::Retiring, Liveness::Same) => AtStart::StopAndForget,
        (Role::Candidate | Role::Retiring, Liveness::Gone) => AtStart::Forget,
        (Role::Live, _) if !runs => AtStart::Forget,
        (Role::Live, _) if !state.wants_running() => AtStart::Keep,
        (Role::Live, Liveness::Same) => AtStart::Adopt,
        (Role::Live, Liveness::Gone) => AtStart::Restart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_parse_with_or_without_sig() {
        let table = [
            ("TERM", Ok(StopSignal::Term)),
            ("sigint", Ok(StopSignal::Int)),
            (" SIGQUIT ", Ok(StopSignal::Quit)),
            ("KILL", Ok(StopSignal::Kill)),
            ("STOP", Err(())),
            ("", Err(())),
        ];
        for (text, expected) in table {
            assert_eq!(StopSignal::parse(text).map_err(drop), expected, "{text:?}");
        }
    }

    #[test]
    fn port_ranges_parse_and_refuse_nonsense() {
        assert_eq!(
            PortRange::parse("20000-20009"),
            Ok(PortRange {
                first: 20000,
                last: 20009
            })
        );
        for bad in [
            "",
            "20000",
            "2-1",
            "80-90",
            "20000-70000",
            "a-b",
            "30000-20000",
        ] {
            assert!(PortRange::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn candidates_cover_the_range_once_from_the_seed_skipping_taken() {
        let range = PortRange {
            first: 100 + 1024,
            last: 104 + 1024,
        };
        assert_eq!(range.candidates(2, &[]), vec![1126, 1127, 1128, 1124, 1125]);
        assert_eq!(range.candidates(7, &[1127]), vec![1126, 1128, 1124, 1125]);
        let top = PortRange {
            first: 65534,
            last: 65535,
        };
        assert_eq!(top.candidates(1, &[]), vec![65535, 65534]);
    }

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute() {
        let delays: Vec<u64> = (0..9).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(restart_delay(u32::MAX).as_secs(), 60);
    }

    #[test]
    fn a_process_that_stayed_up_resets_the_backoff() {
        assert_eq!(restarts_in_a_row(5, Duration::from_secs(2)), 6);
        assert_eq!(restarts_in_a_row(5, BACKOFF_RESET_AFTER), 0);
        assert_eq!(restarts_in_a_row(u32::MAX, Duration::ZERO), u32::MAX);
    }

    #[test]
    fn proc_stat_fields_are_counted_from_the_last_paren() {
        let line = "4242 (my app) (x)) S 1 4242 4242 0 -1 4194560 300 0 0 0 1 2 0 0 20 0 1 0 987654 1000 50";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                state: 'S',
                pgrp: 4242,
                session: 4242,
                start_ticks: 987654
            })
        );
        assert_eq!(ProcStat::parse("4242 (sh) Z 1"), None);
        assert_eq!(ProcStat::parse(""), None);
    }

    #[test]
    fn liveness_needs_the_same_start_time_and_no_zombie() {
        let stat = |state, start_ticks| {
            Some(ProcStat {
                state,
                pgrp: 1,
                session: 1,
                start_ticks,
            })
        };
        assert_eq!(liveness(10, stat('S', 10)), Liveness::Same);
        assert_eq!(liveness(10, stat('R', 11)), Liveness::Gone);
        assert_eq!(liveness(10, stat('Z', 10)), Liveness::Gone);
        assert_eq!(liveness(10, None), Liveness::Gone);
    }

    #[test]
    fn at_start_never_kills_a_live_process() {
        use AtStart::*;
        use Liveness::*;
        use ProcessState::*;
        let table = [
            (Role::Live, Running, Same, true, Adopt),
            (Role::Live, Running, Gone, true, Restart),
            (Role::Live, Restarting, Gone, true, Restart),
            (Role::Live, Starting, Same, true, Adopt),
            (Role::Live, Stopped, Gone, true, Keep),
            (Role::Live, Running, Same, false, Forget),
            (Role::Candidate, Starting, Same, true, StopAndForget),
            (Role::Candidate, Starting, Gone, true, Forget),
            (Role::Retiring, Running, Same, true, StopAndForget),
            (Role::Retiring, Running, Gone, false, Forget),
        ];
        for (role, state, alive, runs, expected) in table {
            assert_eq!(
                at_start(role, state, alive, runs),
                expected,
                "{role:?} {state:?} {alive:?} runs={runs}"
            );
        }
    }
}
