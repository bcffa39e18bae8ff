//! `state <id>`: runc's state JSON (ociVersion, id, pid, status, bundle, rootfs, created, owner, annotations).

use super::{CliError, print_json};
use crate::container::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id.
    pub id: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    let l = rt.load(&a.id)?;
    print_json(&l.state.runc_json(l.status))
}
