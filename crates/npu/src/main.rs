//! The `npu` binary: installs the log subscriber and runs [`npu::run`].

use std::process::ExitCode;

fn main() -> ExitCode {
    let filter = npu::log_filter(std::env::args_os());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    let code = npu::run(std::env::args_os(), &mut std::io::stdout().lock(), &mut std::io::stderr().lock());
    ExitCode::from(code as u8)
}
