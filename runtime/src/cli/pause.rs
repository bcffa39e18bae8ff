//! `pause <id>` / `resume <id>`: freeze and thaw the container's cgroup.

use super::CliError;
use crate::container::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

pub fn pause(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    rt.pause(&a.id)?;
    Ok(0)
}

pub fn resume(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    rt.resume(&a.id)?;
    Ok(0)
}
