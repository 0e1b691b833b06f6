//! Command-line definitions (clap). Parsing only: behaviour lives in `commands`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "teamsync",
    version,
    about = "Bulk user sync for Microsoft Teams Phone System users",
    long_about = "Reads CSV/XLSX user sheets, applies templates, diffs them against a tenant and \
                  pushes only the changes, recording every user's outcome in a job history.\n\n\
                  Exit codes: 0 done (or nothing to do), 1 finished with failed items, 2 invalid \
                  input/config/usage or plan error (nothing sent), 3 aborted or interrupted \
                  (auth, failed read, lock held, history not writable, fail-fast, SIGTERM/SIGINT), \
                  4 changes pending (plan --detailed-exitcode)."
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
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
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
    #[arg(long)]
    pub allow_removals: Option<usize>,
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
    /// Check sheets and templates; no tenant needed.
    Validate {
        #[arg(required = true)]
        sheets: Vec<PathBuf>,
        #[command(flatten)]
        sheet: SheetArgs,
    },
    /// Show what a sheet would change on a tenant.
    Plan {
        sheet: PathBuf,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        sheet_args: SheetArgs,
        /// Save the plan for `apply --plan`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit 0 when nothing would change, 4 when there are changes.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Apply a sheet (or a saved plan) to a tenant; asks for confirmation on a terminal.
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
    /// Plan and apply without asking: for cron, systemd timers and CI.
    Sync {
        sheet: PathBuf,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        sheet_args: SheetArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Finish an interrupted or aborted job from its stored rows.
    Resume {
        /// Job id (integer) or job_id string.
        job: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Job history: list, show, export, revert, prune.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Read the tenant: status, users, groups, licenses, VRPs, or export it as a sheet.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Templates under the configured templates folder.
    Templates {
        #[command(subcommand)]
        command: TemplatesCommand,
    },
    /// Serve a simulated backend on loopback (for demos and tests).
    Sim(SimArgs),
    /// What each backend can do.
    Backends,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Xlsx,
    Json,
    Html,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Jobs, newest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
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
    /// One job with its items.
    Show {
        job: String,
        /// Only items with this status.
        #[arg(long)]
        status: Option<String>,
    },
    /// Export a job as CSV, XLSX, JSON or a self-contained HTML report.
    Export {
        job: String,
        #[arg(long, value_enum)]
        format: ExportFormat,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only failed items, as a retry sheet ready to fix and apply again.
        #[arg(long)]
        failed_only: bool,
    },
    /// A plan that puts every successful item of a job back as it was.
    Revert {
        job: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Delete jobs older than N days.
    Prune {
        #[arg(long)]
        older_than: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    Status {
        #[arg(long)]
        tenant: Option<String>,
    },
    Users {
        #[arg(long)]
        tenant: Option<String>,
    },
    Groups {
        #[arg(long)]
        tenant: Option<String>,
    },
    Licenses {
        #[arg(long)]
        tenant: Option<String>,
    },
    Vrps {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Number ranges with their free numbers (backends that have ranges, e.g. UMP 365).
    Numbers {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// The tenant's current state as an input sheet (the start of a migration).
    Export {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    List,
    Show { name: String },
}

#[derive(Debug, Args)]
pub struct SimArgs {
    #[arg(long, default_value = "fusion")]
    pub backend: String,
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
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered 500/503 or dropped (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
