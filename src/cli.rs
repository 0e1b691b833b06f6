//! Command-line definitions (clap). Parsing only: behaviour lives in `commands`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `after_help` text: "Examples:" and the lines given.
macro_rules! examples {
    ($($line:literal),+ $(,)?) => {
        concat!("Examples:\n", $("  ", $line, "\n"),+)
    };
}

#[derive(Debug, Parser)]
#[command(
    name = "teamsync",
    version,
    about = "Bulk user sync for Microsoft Teams Phone System users",
    long_about = "Reads CSV/XLSX user sheets, applies templates, diffs them against a tenant and \
                  pushes only the changes, recording every user's outcome in a job history.",
    after_help = concat!(
        "Exit codes: 0 done (or nothing to do), 1 finished with failed items (or apply declined), \
         2 invalid input, config or usage, a plan error (nothing sent), 3 aborted or interrupted \
         (auth, failed read, lock held, history not writable, fail-fast, SIGTERM/SIGINT), \
         4 changes pending (plan --detailed-exitcode).\n\n",
        examples!(
            "teamsync validate users.xlsx",
            "teamsync plan users.xlsx --out plan.json",
            "teamsync apply --plan plan.json",
            "teamsync -q sync users.xlsx --report nightly.html",
            "teamsync jobs show 12 --status failed",
        )
    )
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Config file (default: ./config/teamsync.toml if present, else built-in defaults).
    #[arg(long, global = true, env = "TEAMSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Job history database (overrides the config's `db`).
    #[arg(long, global = true)]
    pub db: Option<PathBuf>,
    /// Output format on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// More log detail on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr; `sync`, `apply` and `resume` print one line per run (job,
    /// counts, exit code, report) instead of the plan.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log lines on stderr as text (timestamped when stderr is not a terminal) or as one
    /// JSON object per line, for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct SheetArgs {
    /// Sheet name inside an XLSX/XLS/ODS workbook (default: the first sheet).
    #[arg(long = "sheet", value_name = "NAME")]
    pub sheet_name: Option<String>,
    /// Ignore columns that are not part of the sheet format instead of failing.
    #[arg(long)]
    pub ignore_unknown_columns: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Upsert,
    Mirror,
}

#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    /// Tenant name from the config (default: default_tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// upsert: only sheet users are touched; mirror: tenant users with a number that are
    /// absent from the sheet are disabled.
    #[arg(long, value_enum, default_value_t = ModeArg::Upsert)]
    pub mode: ModeArg,
    /// Allow up to N removals in mirror mode (above the safety threshold).
    #[arg(long, value_name = "N")]
    pub allow_removals: Option<usize>,
    /// Allow up to N users to lose licenses (above the safety threshold: 10, or 5 % of
    /// the tenant's licensed users).
    #[arg(long, value_name = "N")]
    pub allow_license_removals: Option<usize>,
    /// How users' details (groups, VRP) are read: full reads every user the sheet needs
    /// them of; incremental trusts the history's last verified read of a user whose list
    /// entry and row are unchanged, re-reads a seventh of the tenant every night and any
    /// read older than 7 days, and reads again every user the plan changes (default: the
    /// tenant's `refresh`, else full).
    #[arg(long, value_enum, value_name = "MODE")]
    pub refresh: Option<crate::refresh::RefreshMode>,
}

/// `--all`, `--parallel-tenants` and `--shard`: one command over many tenants.
#[derive(Debug, Args, Clone, Default)]
pub struct ManyArgs {
    /// Every tenant that names its sheet in the config (`sheet = "…"`), side by side,
    /// each with its own lock, rate limiter and job; one summary table, and the worst
    /// tenant's exit code.
    #[arg(long)]
    pub all: bool,
    /// Tenants worked on at once with --all (default: the config's parallel_tenants, 4
    /// without one).
    #[arg(long, value_name = "N", requires = "all", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub parallel_tenants: Option<u64>,
    /// Only shard I of N (from 0) of --all's tenants: sorted by name, the ones whose
    /// position modulo N is I. N pods running --shard $JOB_COMPLETION_INDEX/N cover
    /// every tenant exactly once.
    #[arg(long, value_name = "I/N", requires = "all")]
    pub shard: Option<crate::run::many::Shard>,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Job title (default: the sheet's file name).
    #[arg(long)]
    pub title: Option<String>,
    /// Requests per second (overrides the tenant's rate_per_second).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Users worked on at once (overrides the tenant's concurrency).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Users per bulk request, on backends that have one (overrides the tenant's
    /// bulk_size; 0 sends one request per user and change).
    #[arg(long, value_name = "N")]
    pub bulk_size: Option<usize>,
    /// Apply only the first N users that have changes (canary run).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Apply only these UPNs (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Skip the read-back that checks the tenant holds the desired values.
    #[arg(long)]
    pub no_verify: bool,
    /// Also write the job's self-contained HTML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check sheets and templates offline (no tenant): exit 0, or 2 with every error.
    #[command(after_help = examples!(
        "teamsync validate users.xlsx",
        "teamsync validate new-hires.csv leavers.csv --ignore-unknown-columns",
        "teamsync --output json validate users.xlsx | jq '.errors[]'",
        "teamsync validate --all                               # every tenant's sheet (sheet = \"…\" in the config)",
    ))]
    Validate {
        /// Sheets to check (CSV, XLSX, XLS, ODS).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        sheets: Vec<PathBuf>,
        #[command(flatten)]
        sheet: SheetArgs,
        #[command(flatten)]
        many: ManyArgs,
    },
    /// Show what a sheet would change on a tenant (reads only; saves the plan with --out).
    #[command(after_help = examples!(
        "teamsync plan users.xlsx",
        "teamsync plan users.xlsx --tenant acme --out plan.json   # then: teamsync apply --plan plan.json",
        "teamsync plan users.xlsx --mode mirror                  # also disable numbered users not in the sheet",
        "teamsync plan users.csv --detailed-exitcode            # exit 4 when the tenant differs (drift checks)",
        "teamsync plan --all --detailed-exitcode                # every tenant against its own sheet",
    ))]
    Plan {
        /// The sheet to plan (omit with --all: each tenant's own).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        sheet: Option<PathBuf>,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        sheet_args: SheetArgs,
        /// Save the plan for `apply --plan`.
        #[arg(long, value_name = "FILE", conflicts_with = "all")]
        out: Option<PathBuf>,
        /// Exit 0 when nothing would change, 4 when there are changes.
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        many: ManyArgs,
    },
    /// Apply a sheet or a saved plan; asks on a terminal (declining exits 1).
    #[command(after_help = examples!(
        "teamsync apply users.xlsx                       # shows the plan, the removals and the time it takes, then asks",
        "teamsync apply --plan plan.json                 # exactly the reviewed plan; refused if the tenant drifted",
        "teamsync apply users.xlsx --limit 5 --yes       # a canary: the first 5 users with changes",
        "teamsync apply users.xlsx --only alice@contoso.com --report job.html",
    ))]
    Apply {
        /// The sheet (omit with --plan).
        #[arg(required_unless_present = "plan_file", conflicts_with = "plan_file")]
        sheet: Option<PathBuf>,
        /// A plan saved with `plan --out`; refused if the tenant drifted since.
        #[arg(long = "plan", value_name = "FILE")]
        plan_file: Option<PathBuf>,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        sheet_args: SheetArgs,
        #[command(flatten)]
        run: RunArgs,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Plan and apply without asking: for cron, systemd timers, CronJobs and CI.
    #[command(after_help = examples!(
        "teamsync sync users.xlsx",
        "teamsync -q sync /srv/hr/teams-users.xlsx --tenant acme --report /srv/reports/nightly.html",
        "teamsync --output json sync users.xlsx | jq .exit_code",
        "teamsync -q sync --all --parallel-tenants 8               # every tenant that names its sheet",
        "teamsync sync --all --shard $JOB_COMPLETION_INDEX/4       # one pod of a Kubernetes Indexed Job",
    ))]
    Sync {
        /// The sheet to sync (omit with --all: each tenant's own).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        sheet: Option<PathBuf>,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        sheet_args: SheetArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        many: ManyArgs,
    },
    /// Finish an interrupted or aborted job from the rows it stored (not the sheet).
    #[command(after_help = examples!(
        "teamsync resume 12",
        "teamsync resume 20261204T023000Z-3f9a --rate 2",
    ))]
    Resume {
        /// Job id (integer) or job_id string.
        job: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Review the job history: list, show, export, revert, prune.
    #[command(after_help = examples!(
        "teamsync jobs list",
        "teamsync jobs show 12 --status failed",
        "teamsync jobs export 12 --format html --out job.html",
        "teamsync jobs merge /mnt/pod-0/history.db /mnt/pod-1/history.db",
    ))]
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Read the tenant: status, users, groups, licenses, VRPs, numbers, or export it as a sheet.
    #[command(after_help = examples!(
        "teamsync tenant status",
        "teamsync tenant licenses --tenant acme",
        "teamsync tenant export --out current.csv",
    ))]
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// The templates a sheet's `template` column names: list them or show one resolved.
    #[command(after_help = examples!("teamsync templates list", "teamsync templates show be-office"))]
    Templates {
        #[command(subcommand)]
        command: TemplatesCommand,
    },
    /// Serve a simulated backend on loopback, for demos and tests.
    #[command(after_help = examples!(
        "teamsync sim --seed samples/tenant.json --token secret",
        "teamsync sim --backend ump --seed samples/ump-tenant.json --listen 127.0.0.1:8090",
    ))]
    Sim(SimArgs),
    /// What each backend can do (read, write, create, groups, licenses, …).
    #[command(after_help = examples!("teamsync backends", "teamsync --output json backends"))]
    Backends,
    /// Print a shell completion script for bash, zsh, fish or PowerShell.
    #[command(after_help = examples!(
        "teamsync completions bash > /etc/bash_completion.d/teamsync",
        "teamsync completions zsh > \"${fpath[1]}/_teamsync\"",
        "teamsync completions fish > ~/.config/fish/completions/teamsync.fish",
        "teamsync completions powershell >> $PROFILE",
    ))]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff), or write one page per command into a folder.
    #[command(after_help = examples!(
        "teamsync man | man -l -",
        "teamsync man --out-dir /usr/local/share/man/man1",
    ))]
    Man {
        /// Write `teamsync.1` and a page for every subcommand into DIR.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// Shells `teamsync completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

/// What `jobs export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Xlsx,
    Json,
    Html,
}

/// What `tenant export` writes: input sheets only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SheetFormat {
    Csv,
    Xlsx,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Jobs, newest first, with their status and counts.
    #[command(after_help = examples!(
        "teamsync jobs list",
        "teamsync jobs list --status failed --since 2026-12-01",
        "teamsync jobs list --tenant acme --page 2",
    ))]
    List {
        /// Only jobs of this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only jobs with this status: pending, running, success, partial, error, aborted,
        /// failed (stopped before its first write) or interrupted.
        #[arg(long)]
        status: Option<String>,
        /// Only jobs created on or after this date (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only jobs created before this date.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u64,
        #[arg(long, default_value_t = 20)]
        page_size: u64,
    },
    /// One job with its users: what changed, what failed and why.
    #[command(after_help = examples!(
        "teamsync jobs show 12",
        "teamsync jobs show 12 --status failed",
        "teamsync jobs show 12 --status created,updated",
        "teamsync --output json jobs show 20261204T023000Z-3f9a",
    ))]
    Show {
        /// Job id (integer) or job_id string.
        job: String,
        /// Only users with these outcomes (comma-separated): failed (or error), success,
        /// created, updated, disabled, deleted, unchanged, pending.
        #[arg(long)]
        status: Option<String>,
    },
    /// Export a job as CSV, XLSX, JSON or a self-contained HTML report.
    #[command(after_help = examples!(
        "teamsync jobs export 12 --format html --out job.html",
        "teamsync jobs export 12 --format csv --failed-only --out retry.csv   # fix it, then: teamsync apply retry.csv",
        "teamsync jobs export 12 --format xlsx --out job.xlsx",
    ))]
    Export {
        /// Job id (integer) or job_id string.
        job: String,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write to FILE instead of stdout (required for xlsx).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Only failed items, as a retry sheet ready to fix and apply again.
        #[arg(long)]
        failed_only: bool,
    },
    /// A plan that puts back what a job changed, to review and `apply --plan`.
    #[command(after_help = examples!(
        "teamsync jobs revert 12 --out undo.json && teamsync apply --plan undo.json",
    ))]
    Revert {
        /// Job id (integer) or job_id string.
        job: String,
        /// Save the plan for `apply --plan`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Fold other job histories (one per pod, or per night) into this one: new ids, each
    /// job once however often it is merged; the sources are only read.
    #[command(after_help = examples!(
        "teamsync jobs merge shard-0.db shard-1.db          # into the configured history",
        "teamsync --db /srv/teamsync/all.db jobs merge /mnt/pod-*/history.db",
    ))]
    Merge {
        /// The histories to fold in (teamsync history databases), in order.
        #[arg(required = true, value_name = "DB")]
        sources: Vec<PathBuf>,
    },
    /// Delete jobs older than N days (asks on a terminal; --yes for schedulers).
    #[command(after_help = examples!(
        "teamsync jobs prune --older-than 90 --dry-run",
        "teamsync jobs prune --older-than 90 --yes",
    ))]
    Prune {
        /// Jobs whose last update is more than this many days ago.
        #[arg(long, value_name = "DAYS")]
        older_than: u64,
        /// List the jobs that would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Whether the tenant answers and is ready (exit 3 when it reports a problem).
    #[command(after_help = examples!("teamsync tenant status --tenant acme"))]
    Status {
        /// Tenant name from the config (default: default_tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Every user: UPN, display name, country, number, licenses.
    #[command(after_help = examples!(
        "teamsync tenant users",
        "teamsync --output json tenant users | jq '.users[] | select(.number == null) | .upn'",
    ))]
    Users {
        /// Tenant name from the config (default: default_tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// The groups a sheet's `groups` column may name.
    #[command(after_help = examples!("teamsync tenant groups"))]
    Groups {
        /// Tenant name from the config (default: default_tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// The license SKUs a sheet's `licenses` column may name, with free and total counts.
    #[command(after_help = examples!("teamsync tenant licenses"))]
    Licenses {
        /// Tenant name from the config (default: default_tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// The voice routing policies a sheet's `vrp` column may name.
    #[command(after_help = examples!("teamsync tenant vrps"))]
    Vrps {
        /// Tenant name from the config (default: default_tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Number ranges with their free numbers (backends that have ranges, e.g. UMP 365).
    #[command(after_help = examples!("teamsync tenant numbers --tenant ump"))]
    Numbers {
        /// Tenant name from the config (default: default_tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// The tenant's current state as an input sheet (the start of a migration).
    #[command(after_help = examples!(
        "teamsync tenant export --out current.csv",
        "teamsync tenant export --format xlsx --out current.xlsx",
        "teamsync tenant export --resource-accounts --out ras.csv",
    ))]
    Export {
        /// Tenant name from the config (default: default_tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// The resource accounts (call queues, auto attendants), as a resource-account sheet.
        #[arg(long)]
        resource_accounts: bool,
        #[arg(long, value_enum, default_value_t = SheetFormat::Csv)]
        format: SheetFormat,
        /// Write to FILE instead of stdout (required for xlsx).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Every template with its description.
    #[command(after_help = examples!("teamsync templates list"))]
    List,
    /// One template with what it inherits, resolved.
    #[command(after_help = examples!("teamsync templates show be-office"))]
    Show {
        /// Template name (its file in the templates folder, without `.toml`).
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Which simulator: fusion, liveplatform, portsip or ump.
    #[arg(long, default_value = "fusion")]
    pub backend: String,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: String,
    /// SQLite state file (kept between runs); in memory when omitted.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Seed JSON, used when the state is new.
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// Bearer token clients must send.
    #[arg(long, env = "TEAMSYNC_SIM_TOKEN")]
    pub token: Option<String>,
    /// Requests per second before answering 429.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Requests the rate limit lets through back to back (default: a second's worth).
    #[arg(long, requires = "rate_limit")]
    pub burst: Option<u32>,
    /// Share of requests answered 429 (Retry-After: 1) at random, whatever the rate (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub throttle_share: f64,
    /// Send x-ms-throttle-limit-percentage once 80 % of the rate limit's bucket is used.
    #[arg(long, requires = "rate_limit")]
    pub limit_header: bool,
    /// Delay before each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered 500/503 or dropped (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Share of requests answered 500 or 503 (0..1), on top of --fault-rate.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of connections dropped without an answer (0..1), on top of --fault-rate.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command says what it is for and shows examples in its `--help`.
    #[test]
    fn every_command_has_a_description_and_examples() {
        fn walk(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                assert!(
                    sub.get_about().is_some_and(|a| !a.to_string().is_empty()),
                    "{path} has no description"
                );
                assert!(
                    sub.get_after_help()
                        .is_some_and(|h| h.to_string().contains("Examples:\n  teamsync ")),
                    "{path} --help has no examples"
                );
                walk(sub, &path);
            }
        }
        walk(&Cli::command(), "teamsync");
    }
}
