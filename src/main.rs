//! Entry point: parse, set up logging, dispatch, and render errors once with one
//! exit-code rule (see `commands::CliError::exit_code`).

use clap::Parser;
use teamsync::cli::Cli;
use teamsync::commands;

fn main() {
    let cli = Cli::parse();
    commands::init_logging(&cli.global);
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
