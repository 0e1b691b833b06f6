//! One function per CLI command. Each returns the row of the exit-code table it ended on
//! ([`Exit`]), or a typed error that `main` renders once; nothing below here exits, and
//! errors keep their source chain up to `main` (which finds a closed pipe in it).

/// `print!` to stdout, returning `Result<(), CliError>`: use with `?`, so a reader that
/// went away (`teamsync jobs list | head`) ends the command through `main`.
macro_rules! out {
    ($($t:tt)*) => { $crate::commands::write_stdout(format_args!($($t)*)) };
}
/// `println!` to stdout, returning `Result<(), CliError>`; see [`out!`].
macro_rules! outln {
    () => { $crate::commands::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::commands::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}
/// `eprintln!` that never panics: a closed stderr (`teamsync plan 2>&1 | head -1`) loses
/// the message, which nobody could read anyway, and the command carries on to its end.
macro_rules! errln {
    ($($t:tt)*) => { $crate::commands::write_stderr(format_args!("{}\n", format_args!($($t)*))) };
}
/// `eprint!` that never panics; see [`errln!`].
macro_rules! err {
    ($($t:tt)*) => { $crate::commands::write_stderr(format_args!($($t)*)) };
}

mod all;
mod backends;
mod help;
mod jobs;
mod plan;
mod run;
pub mod schema;
mod sim;
mod templates;
mod tenant;
mod validate;

use crate::cli::{Cli, Command, GlobalArgs, OutputFormat};
use crate::config::{Config, ConfigError};
use crate::history::HistoryError;
use crate::report::sheet_out::SheetOutError;
use crate::report::ReportError;
use crate::run::RunError;
use std::path::PathBuf;

pub use crate::exit::Exit;

/// Why a command failed. Each variant keeps what caused it as its `source`, so `main` can
/// render the whole chain once and find a closed pipe in it; which exit code a variant
/// ends with is [`Exit::cli_error`]'s decision.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input or usage found by the command itself: nothing was sent.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A run, or the read side of one (opening the tenant, reading it, planning).
    #[error(transparent)]
    Run(#[from] RunError),
    /// The job history cannot be read (or, for `jobs prune`, written).
    #[error("job history {path}")]
    History {
        path: PathBuf,
        #[source]
        source: HistoryError,
    },
    /// A file named on the command line (`--out`, `--report`) cannot be written.
    #[error("cannot write {path}")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing to stdout failed (a closed pipe is told apart by `main`).
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
    #[error(transparent)]
    Report(#[from] ReportError),
    /// `jobs merge` refused a source or could not write the target.
    #[error(transparent)]
    Merge(#[from] crate::history::merge::MergeError),
    /// Something of teamsync's own failed: the async runtime, a simulator's server.
    #[error("{what}")]
    Internal {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl CliError {
    /// The history at `path` failed.
    pub(crate) fn history(path: &std::path::Path) -> impl Fn(HistoryError) -> CliError + '_ {
        move |source| CliError::History {
            path: path.to_path_buf(),
            source,
        }
    }
    /// The file at `path` could not be written.
    pub(crate) fn output(path: &std::path::Path) -> impl Fn(std::io::Error) -> CliError + '_ {
        move |source| CliError::Output {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn internal(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> CliError {
        CliError::Internal {
            what: what.into(),
            source: source.into(),
        }
    }
    /// The exit code this error ends the process with.
    pub fn exit(&self) -> Exit {
        Exit::cli_error(self)
    }
}

impl From<SheetOutError> for CliError {
    fn from(e: SheetOutError) -> CliError {
        match e {
            SheetOutError::Write { path, source } => CliError::Output {
                path: path.into(),
                source,
            },
            SheetOutError::Stdout(e) => CliError::Stdout(e),
            e @ SheetOutError::Xlsx(_) => CliError::internal("cannot write the sheet", e),
        }
    }
}

pub type CmdResult = Result<Exit, CliError>;

/// What every command gets: the loaded config and the global flags.
pub struct Ctx {
    pub config: Config,
    pub output: OutputFormat,
    pub db: PathBuf,
    /// `-q`: one line per run, no plan.
    pub quiet: bool,
}

impl Ctx {
    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

pub fn init_logging(g: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = EnvFilter::try_from_env("TEAMSYNC_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},hyper=warn,reqwest=warn,h2=warn,rustls=warn"
        ))
    });
    use is_terminal::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Its own report of a failed write is an `eprintln!`, which panics when stderr
        // is closed (`teamsync plan … 2>&1 | head -1`); a lost log line is no error.
        .log_internal_errors(false);
    // A terminal shows the time already; a log file (cron, systemd) needs it on each line.
    let _ = match g.log_format {
        crate::cli::LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .flatten_event(true)
            .try_init(),
        crate::cli::LogFormat::Text if terminal => builder
            .without_time()
            .with_ansi(std::env::var_os("NO_COLOR").is_none())
            .try_init(),
        // The default timer writes RFC 3339 in UTC (`2026-12-04T02:30:01.123456Z`).
        crate::cli::LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

pub fn run(cli: Cli) -> CmdResult {
    // `sim` and `templates`/`validate` need no history; everything loads config the same way.
    let config = Config::load(cli.global.config.as_deref())?;
    let db = cli.global.db.clone().unwrap_or_else(|| config.db.clone());
    let ctx = Ctx {
        config,
        output: cli.global.output,
        db,
        quiet: cli.global.quiet,
    };
    match cli.command {
        Command::Validate { sheet, many, .. } if many.all => {
            runtime()?.block_on(all::validate(&ctx, &sheet, &many))
        }
        Command::Validate { sheets, sheet, .. } => validate::run(&ctx, &sheets, &sheet),
        Command::Templates { command } => templates::run(&ctx, command),
        Command::Backends => backends::run(&ctx),
        Command::Completions { shell } => help::completions(shell),
        Command::Man { out_dir } => help::man(out_dir.as_deref()),
        Command::Sim(args) => runtime()?.block_on(sim::run(&ctx, args)),
        Command::Plan {
            plan,
            sheet_args,
            detailed_exitcode,
            many,
            ..
        } if many.all => runtime()?.block_on(all::plan(
            &ctx,
            &plan,
            &sheet_args,
            &many,
            detailed_exitcode,
        )),
        Command::Plan {
            sheet,
            plan,
            sheet_args,
            out,
            detailed_exitcode,
            ..
        } => runtime()?.block_on(plan::run(
            &ctx,
            &one_sheet(sheet)?,
            &plan,
            &sheet_args,
            out.as_deref(),
            detailed_exitcode,
        )),
        Command::Apply {
            sheet,
            plan_file,
            plan,
            sheet_args,
            run,
            yes,
        } => runtime()?.block_on(run::apply(
            &ctx,
            sheet.as_deref(),
            plan_file.as_deref(),
            &plan,
            &sheet_args,
            &run,
            yes,
        )),
        Command::Sync {
            plan,
            sheet_args,
            run,
            many,
            ..
        } if many.all => runtime()?.block_on(all::sync(&ctx, &plan, &sheet_args, &run, &many)),
        Command::Sync {
            sheet,
            plan,
            sheet_args,
            run,
            ..
        } => runtime()?.block_on(run::sync(
            &ctx,
            &one_sheet(sheet)?,
            &plan,
            &sheet_args,
            &run,
        )),
        Command::Resume { job, run } => runtime()?.block_on(run::resume(&ctx, &job, &run)),
        Command::Jobs { command } => runtime()?.block_on(jobs::run(&ctx, command)),
        Command::Tenant { command } => runtime()?.block_on(tenant::run(&ctx, command)),
    }
}

/// The sheet of a single-tenant command (clap requires it unless `--all`).
fn one_sheet(sheet: Option<PathBuf>) -> Result<PathBuf, CliError> {
    sheet.ok_or_else(|| CliError::Invalid("give a sheet, or --all for every tenant's own".into()))
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal("cannot start the async runtime", e))
}

/// Prints the `--output json` document `kind` on stdout: pretty, one object, with its
/// `schema` key (see [`schema`]).
pub(crate) fn print_json(kind: &str, v: serde_json::Value) -> Result<(), CliError> {
    let v = schema::tag(kind, v);
    outln!(
        "{}",
        serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
    )
}

/// Writes to stdout. A failure (a reader that went away, a full disk behind a redirect)
/// is returned, for `main` to tell a closed pipe (quiet, exit 0) from a real error.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(CliError::Stdout)
}

/// An error and its causes on one line (`cannot write /x/plan.json: No such file or
/// directory (os error 2)`), as `main` shows it. A cause whose text the message already
/// holds (an error that names its source in its own message) is not repeated.
pub fn render_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !s.is_empty() && !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
        cur = c.source();
    }
    msg
}

/// Writes to stderr, ignoring failures (see [`errln!`]).
pub(crate) fn write_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.flush());
}
