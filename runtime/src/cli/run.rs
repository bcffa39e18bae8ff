//! `run <id>`: create + start; in the foreground it waits and propagates the exit status.

use super::CliError;
use super::create::CreateArgs;
use crate::container::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Return after starting instead of waiting.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub common: CreateArgs,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    Ok(rt.run(&a.common.options(), a.detach)?)
}
