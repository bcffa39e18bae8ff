//! `delete <id>`: remove a stopped (or, with --force, any) container.

use super::CliError;
use crate::container::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill a running container first.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Container id.
    pub id: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    rt.delete(&a.id, a.force)?;
    Ok(0)
}
