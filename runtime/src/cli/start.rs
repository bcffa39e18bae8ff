//! `start <id>`: let a created container run its process.

use super::CliError;
use crate::container::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    rt.start(&a.id)?;
    Ok(0)
}
