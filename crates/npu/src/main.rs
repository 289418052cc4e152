//! The `npu` binary: installs the log subscriber and runs [`npu::run`].
//!
//! Neither stdout nor stderr is locked for the length of the run: progress bars and log
//! lines are written from worker threads, and a lock held here would block them for
//! ever (the command hung on a terminal). Each write takes the lock for itself.

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let filter = npu::log_filter(std::env::args_os());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal, and never with NO_COLOR set (https://no-color.org).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .init();
    let code = npu::run(std::env::args_os(), &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code as u8)
}
