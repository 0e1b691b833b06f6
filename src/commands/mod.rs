//! One function per CLI command. Each returns the process exit code, or a typed error
//! that `main` renders once; nothing below here prints errors or exits.

/// `print!` that survives a closed pipe; see [`write_stdout`].
macro_rules! out {
    ($($t:tt)*) => { $crate::commands::write_stdout(format_args!($($t)*)) };
}
/// `println!` that survives a closed pipe; see [`write_stdout`].
macro_rules! outln {
    () => { $crate::commands::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::commands::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

mod backends;
mod jobs;
mod plan;
mod run;
mod sim;
mod templates;
mod tenant;
mod validate;

use crate::cli::{Cli, Command, GlobalArgs, OutputFormat};
use crate::config::{Config, ConfigError};
use std::path::PathBuf;

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ITEMS_FAILED: i32 = 1;
    pub const INVALID: i32 = 2;
    pub const ABORTED: i32 = 3;
    pub const CHANGES_PENDING: i32 = 4;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input, usage, plan error or drift: nothing was sent.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The job could not run or was stopped: auth, lock held, fail-fast.
    #[error("{0}")]
    Aborted(String),
    /// Anything else (I/O on our side, an unexpected failure).
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Invalid(_) | CliError::Config(_) => exit::INVALID,
            CliError::Aborted(_) => exit::ABORTED,
            CliError::Other(_) => exit::ITEMS_FAILED,
        }
    }
}

pub type CmdResult = Result<i32, CliError>;

/// What every command gets: the loaded config and the global flags.
pub struct Ctx {
    pub config: Config,
    pub output: OutputFormat,
    pub db: PathBuf,
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi({
            use is_terminal::IsTerminal;
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        })
        .try_init();
}

pub fn run(cli: Cli) -> CmdResult {
    // `sim` and `templates`/`validate` need no history; everything loads config the same way.
    let config = Config::load(cli.global.config.as_deref())?;
    let db = cli.global.db.clone().unwrap_or_else(|| config.db.clone());
    let ctx = Ctx {
        config,
        output: cli.global.output,
        db,
    };
    match cli.command {
        Command::Validate { sheets, sheet } => validate::run(&ctx, &sheets, &sheet),
        Command::Templates { command } => templates::run(&ctx, command),
        Command::Backends => backends::run(&ctx),
        Command::Sim(args) => runtime()?.block_on(sim::run(&ctx, args)),
        Command::Plan {
            sheet,
            plan,
            sheet_args,
            out,
            detailed_exitcode,
        } => runtime()?.block_on(plan::run(
            &ctx,
            &sheet,
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
            sheet,
            plan,
            sheet_args,
            run,
        } => runtime()?.block_on(run::sync(&ctx, &sheet, &plan, &sheet_args, &run)),
        Command::Resume { job, run } => runtime()?.block_on(run::resume(&ctx, &job, &run)),
        Command::Jobs { command } => runtime()?.block_on(jobs::run(&ctx, command)),
        Command::Tenant { command } => runtime()?.block_on(tenant::run(&ctx, command)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot start the async runtime: {e}")))
}

/// Prints a JSON value on stdout (pretty, one document).
pub(crate) fn print_json(v: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Writes to stdout. A reader that went away (`teamsync jobs list | head`) ends the
/// process quietly, as for any Unix filter, instead of the panic `println!` gives.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(exit::ITEMS_FAILED);
    }
}
