//! kina binary: parse the command line, set up logging and run the command.

use std::process::ExitCode;

use clap::Parser;
use kina::cli::{self, Cli, Env};
use kina::provider::native::NativeProvider;
use kina::state::StateStore;
use kina::status::Status;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbosity) {
        (true, _) => "error",
        (false, ..=0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(format!("kina={level}")))
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(cli::CliError::Exited { status }) = e.downcast_ref::<cli::CliError>() {
                return ExitCode::from(u8::try_from(*status).unwrap_or(1));
            }
            eprintln!("ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let store = StateStore::from_env();
    let env = Env {
        provider: Box::new(NativeProvider::from_store(store.clone())),
        store,
        status: Status::stderr(cli.quiet),
    };
    cli::run(cli, &env)?;
    Ok(())
}
