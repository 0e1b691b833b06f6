//! Entry point: parse, set up logging, dispatch, and render an error once.
//!
//! Every exit code comes from one rule ([`teamsync::exit::Exit`], the README's table).
//! A reader that went away (`teamsync jobs list | head`, `teamsync plan … 2>&1 | head -1`)
//! is not an error: the command's write returns the broken pipe as the source of its
//! error, and `main` finds it by walking the error chain and ends quietly with 0, as a
//! Unix filter does (ripgrep's way).

use clap::Parser;
use std::error::Error;
use std::process::ExitCode;
use teamsync::cli::Cli;
use teamsync::commands;
use teamsync::exit::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::init_logging(&cli.global);
    match commands::run(cli) {
        Ok(exit) => exit.into(),
        Err(e) if is_broken_pipe(&e) => Exit::Done.into(),
        Err(e) => {
            use std::io::Write;
            // stderr may be closed too; nothing is left to tell then.
            let _ = writeln!(std::io::stderr(), "error: {}", commands::render_error(&e));
            e.exit().into()
        }
    }
}

/// Whether a write to a closed pipe caused `e`.
fn is_broken_pipe(e: &(dyn Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        cur = c.source();
    }
    false
}
