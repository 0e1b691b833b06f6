//! The one exit-code rule: every outcome and every error of a command becomes one row of
//! the README's exit-code table here, and nowhere else.
//!
//! Why one place: a scheduler (cron, a systemd timer, a Kubernetes CronJob) only sees the
//! exit code, so a code must mean the same thing whichever layer found the problem. When
//! the decision was spread over the CLI, the apply engine, the history and the tenant
//! reader, they disagreed (a missing output folder exited 1, the code for "items failed").
//! Now the layers only say *what* happened (a [`JobStatus`], a [`FailKind`], an
//! [`ApplyError`], a [`RunError`], a [`CliError`]) and this module says which row that is.
//! Numbers appear only in [`Exit::code`].
//!
//! | code | [`Exit`] | meaning |
//! | --- | --- | --- |
//! | 0 | [`Exit::Done`] | done, or nothing to do |
//! | 1 | [`Exit::Incomplete`] | the job finished with failed items, or `apply`'s confirmation was declined |
//! | 2 | [`Exit::Invalid`] | invalid input, config or usage, a plan error, a drifted saved plan: nothing was sent |
//! | 3 | [`Exit::Aborted`] | aborted or interrupted: auth, a failed read, a busy lock, an unusable history, fail-fast, a signal |
//! | 4 | [`Exit::ChangesPending`] | only with `plan --detailed-exitcode`: changes are pending |

use crate::apply::ApplyError;
use crate::commands::CliError;
use crate::history::{FailKind, JobStatus};
use crate::run::RunError;

/// A row of the exit-code table (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: done, or nothing to do.
    Done,
    /// 1: the job finished but did not do everything: some items failed (or were left
    /// pending), or the operator declined `apply`'s confirmation (as terraform does).
    Incomplete,
    /// 2: the input, the config or the command line is wrong, the plan has errors, or a
    /// saved plan's tenant drifted: nothing was sent.
    Invalid,
    /// 3: the run was refused or stopped by its surroundings: authentication, a failed
    /// read, another run's lock, a history that cannot be written, fail-fast, a signal.
    Aborted,
    /// 4: `plan --detailed-exitcode` found changes.
    ChangesPending,
}

impl Exit {
    /// Every row, in the table's order.
    pub const ALL: [Exit; 5] = [
        Exit::Done,
        Exit::Incomplete,
        Exit::Invalid,
        Exit::Aborted,
        Exit::ChangesPending,
    ];

    /// The row of a code (`None` for a code teamsync never exits with).
    pub fn from_code(code: u8) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| e.code() == code)
    }

    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Incomplete => 1,
            Exit::Invalid => 2,
            Exit::Aborted => 3,
            Exit::ChangesPending => 4,
        }
    }

    /// How bad a code is, for [`Exit::fold`]: the table's order for 0 to 3 (done, items
    /// failed, invalid input, aborted), with "changes pending" just above done. Code 4
    /// only says a plan found work: letting it outrank an error would turn "a tenant
    /// could not be read" into "there is drift" for `plan --all --detailed-exitcode`.
    const fn severity(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::ChangesPending => 1,
            Exit::Incomplete => 2,
            Exit::Invalid => 3,
            Exit::Aborted => 4,
        }
    }

    /// The code of a run over many tenants (`--all`): the worst of theirs, in the
    /// table's order (see [`Exit::severity`]), so a scheduler sees the night's worst
    /// tenant. No tenant at all is done.
    pub fn fold(exits: impl IntoIterator<Item = Exit>) -> Exit {
        exits
            .into_iter()
            .max_by_key(|e| e.severity())
            .unwrap_or(Exit::Done)
    }

    /// A few words for one-line outcomes (`-q`), notifications and metrics.
    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Done => "done",
            Exit::Incomplete => "items failed",
            Exit::Invalid => "invalid input, nothing sent",
            Exit::Aborted => "aborted",
            Exit::ChangesPending => "changes pending",
        }
    }

    /// A job's end: success is done; partial and error (and items left pending) are
    /// incomplete; aborted and interrupted are aborted. A `failed` job (it stopped before
    /// its first write) is judged by why, its `reason_code` (see [`Exit::fail_kind`]).
    pub fn job(status: JobStatus, reason_code: Option<&str>) -> Exit {
        match status {
            JobStatus::Success => Exit::Done,
            JobStatus::Pending | JobStatus::Running | JobStatus::Partial | JobStatus::Error => {
                Exit::Incomplete
            }
            JobStatus::Aborted | JobStatus::Interrupted => Exit::Aborted,
            JobStatus::Failed => reason_code
                .and_then(FailKind::parse)
                .map_or(Exit::Aborted, Exit::fail_kind),
        }
    }

    /// Why a run stopped before its first write: wrong input is invalid (2), a refusal
    /// by the surroundings is aborted (3).
    pub fn fail_kind(kind: FailKind) -> Exit {
        match kind {
            FailKind::Sheet
            | FailKind::Plan
            | FailKind::Drift
            | FailKind::Unsupported
            | FailKind::Config => Exit::Invalid,
            FailKind::Auth | FailKind::Read | FailKind::Lock | FailKind::Interrupted => {
                Exit::Aborted
            }
        }
    }

    /// The apply engine refused or stopped: a malformed plan or a job that cannot be
    /// resumed is invalid; a busy lock, a failed tenant check, the history or a stop is
    /// aborted.
    pub fn apply_error(e: &ApplyError) -> Exit {
        match e {
            ApplyError::InvalidPlan(_)
            | ApplyError::Unsupported { .. }
            | ApplyError::Resume { .. } => Exit::Invalid,
            ApplyError::Locked(_)
            | ApplyError::Check(_)
            | ApplyError::History(_)
            | ApplyError::Stopped(_) => Exit::Aborted,
        }
    }

    /// A write run's error.
    pub fn run_error(e: &RunError) -> Exit {
        match e {
            RunError::Config(_) | RunError::Usage(_) => Exit::Invalid,
            RunError::History(_) | RunError::HistoryFailed { .. } => Exit::Aborted,
            RunError::Failed(f) => Exit::fail_kind(f.kind),
            RunError::Apply(e) => Exit::apply_error(e),
            RunError::NothingToResume(_) => Exit::Done,
        }
    }

    /// A command's error, as `main` renders it. A closed stdout never gets here: `main`
    /// ends quietly with 0 first, as a Unix filter does.
    pub fn cli_error(e: &CliError) -> Exit {
        match e {
            CliError::Invalid(_) | CliError::Config(_) | CliError::Output { .. } => Exit::Invalid,
            CliError::Run(e) => Exit::run_error(e),
            // A file that is not a history is wrong input; a target that cannot be
            // written is the surroundings.
            CliError::Merge(e) if e.is_input() => Exit::Invalid,
            CliError::Merge(_) => Exit::Aborted,
            CliError::History { .. }
            | CliError::Stdout(_)
            | CliError::Report(_)
            | CliError::Internal { .. } => Exit::Aborted,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::JobStatus as S;

    #[test]
    fn codes_are_the_readme_table() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4]);
        let readme = include_str!("../README.md");
        for e in Exit::ALL {
            assert!(
                readme.contains(&format!("| {} |", e.code())),
                "README's exit-code table lacks code {}",
                e.code()
            );
        }
    }

    #[test]
    fn many_tenants_fold_to_the_worst() {
        use Exit::*;
        assert_eq!(Exit::fold([]), Done);
        assert_eq!(Exit::fold([Done, Done]), Done);
        assert_eq!(Exit::fold([Done, Incomplete, Done]), Incomplete);
        assert_eq!(Exit::fold([Incomplete, Invalid]), Invalid);
        assert_eq!(Exit::fold([Aborted, Invalid, Incomplete]), Aborted);
        // Pending changes outrank only done: an error is never hidden behind drift.
        assert_eq!(Exit::fold([Done, ChangesPending]), ChangesPending);
        assert_eq!(Exit::fold([ChangesPending, Incomplete]), Incomplete);
        assert_eq!(Exit::fold([Aborted, ChangesPending]), Aborted);
        // Order does not matter.
        for a in Exit::ALL {
            for b in Exit::ALL {
                assert_eq!(Exit::fold([a, b]), Exit::fold([b, a]));
            }
        }
    }

    #[test]
    fn job_statuses() {
        assert_eq!(Exit::job(S::Success, None), Exit::Done);
        assert_eq!(Exit::job(S::Partial, None), Exit::Incomplete);
        assert_eq!(Exit::job(S::Error, None), Exit::Incomplete);
        assert_eq!(Exit::job(S::Aborted, Some("aborted")), Exit::Aborted);
        assert_eq!(Exit::job(S::Interrupted, Some("signal")), Exit::Aborted);
        assert_eq!(Exit::job(S::Failed, Some("plan")), Exit::Invalid);
        assert_eq!(Exit::job(S::Failed, Some("drift")), Exit::Invalid);
        assert_eq!(Exit::job(S::Failed, Some("auth")), Exit::Aborted);
        // A reason this teamsync does not know (a newer one wrote it): aborted.
        assert_eq!(Exit::job(S::Failed, Some("quota")), Exit::Aborted);
    }

    #[test]
    fn fail_kinds() {
        use FailKind as K;
        for k in [K::Sheet, K::Plan, K::Drift, K::Unsupported, K::Config] {
            assert_eq!(Exit::fail_kind(k), Exit::Invalid, "{k}");
        }
        for k in [K::Auth, K::Read, K::Lock, K::Interrupted] {
            assert_eq!(Exit::fail_kind(k), Exit::Aborted, "{k}");
        }
    }

    #[test]
    fn run_errors() {
        assert_eq!(Exit::run_error(&RunError::Usage("x".into())), Exit::Invalid);
        assert_eq!(Exit::run_error(&RunError::NothingToResume(3)), Exit::Done);
        let f = crate::run::Failure::new(FailKind::Lock, "t", "busy".into());
        assert_eq!(Exit::run_error(&f.into()), Exit::Aborted);
        assert_eq!(
            Exit::run_error(&RunError::Apply(ApplyError::InvalidPlan("x".into()))),
            Exit::Invalid
        );
    }

    #[test]
    fn cli_errors() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            Exit::cli_error(&CliError::Output {
                path: "/missing/dir/x".into(),
                source: io(),
            }),
            Exit::Invalid
        );
        assert_eq!(Exit::cli_error(&CliError::Stdout(io())), Exit::Aborted);
        assert_eq!(
            Exit::cli_error(&CliError::Invalid("usage".into())),
            Exit::Invalid
        );
    }
}
