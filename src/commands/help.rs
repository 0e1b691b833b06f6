//! `teamsync completions SHELL` and `teamsync man`: generated from the clap definitions in
//! `crate::cli`, so they never disagree with the commands the binary has.

use super::{CmdResult, Exit};
use crate::cli::{Cli, Shell};
use clap::CommandFactory;

/// The completion script for `shell`, on stdout.
pub(super) fn completions(shell: Shell) -> CmdResult {
    use clap_complete::Shell as S;
    let shell = match shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Powershell => S::PowerShell,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "teamsync", &mut buf);
    out!("{}", String::from_utf8_lossy(&buf))?;
    Ok(Exit::Done)
}

/// The manual page (roff) of `teamsync`, on stdout; with `dir`, one page per command
/// and subcommand (`teamsync.1`, `teamsync-sync.1`, `teamsync-jobs-show.1`, …) there.
pub(super) fn man(dir: Option<&std::path::Path>) -> CmdResult {
    let cmd = Cli::command();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(cmd, dir))
            .map_err(super::CliError::output(dir))?;
        errln!("manual pages written to {}", dir.display());
        return Ok(Exit::Done);
    }
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .map_err(super::CliError::Stdout)?;
    out!("{}", String::from_utf8_lossy(&buf))?;
    Ok(Exit::Done)
}
