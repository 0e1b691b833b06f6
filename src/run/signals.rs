//! SIGTERM (systemd stop, `kill`) and SIGINT (Ctrl-C) during a write run.
//!
//! The first signal asks the run to stop ([`Stop::trigger`]): no new user starts, requests
//! under way get a few seconds to finish and be recorded, the job ends `interrupted`, the
//! lock is released and the command prints the `teamsync resume` line. A second signal
//! exits at once with code 3: the kernel releases the lock with the process, and the job,
//! left `running`, reads as interrupted (its lease is dead) for `resume` to finish.

use crate::apply::Stop;

/// The exit code of a second signal: aborted.
pub const EXIT_ON_SECOND_SIGNAL: crate::exit::Exit = crate::exit::Exit::Aborted;

/// Starts listening on the current tokio runtime. Without signal support (not Unix, or
/// registration failed) the default behaviour stays: the process dies on the signal.
pub fn install(stop: Stop) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (term, int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot listen for signals ({e}); a signal will kill the run");
                return;
            }
        };
        tokio::spawn(listen(stop, term, int));
    }
    #[cfg(not(unix))]
    let _ = stop;
}

#[cfg(unix)]
async fn listen(
    stop: Stop,
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    use std::io::Write;
    let mut seen = 0;
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        seen += 1;
        if seen == 1 {
            // Not `eprintln!`: a closed stderr must not panic the handler.
            let _ = writeln!(
                std::io::stderr(),
                "teamsync: {name}: stopping; requests under way get {}s to finish and be recorded (a second signal exits at once)",
                stop.grace().as_secs()
            );
            stop.trigger(format!("stopped by {name}"));
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "teamsync: {name} again: exiting now; `teamsync resume` finishes the job"
            );
            std::process::exit(i32::from(EXIT_ON_SECOND_SIGNAL.code()));
        }
    }
}
