//! Containers and the runtime core they share with sandboxes.
//!
//! - [`runtime`]: [`Runtime`] (stores, handlers, images, CNI, events), recovery, exit watcher.
//! - [`store`]: persisted, lock-protected metadata stores; [`record`]: the container record.
//! - [`create`], [`lifecycle`] (start/stop/remove), [`status`] (status/list/update/reopen log),
//!   [`exec`] (ExecSync), [`stream`] (the streaming server's exec/attach/port-forward backend); [`imagecfg`] and [`user`]: what comes from the image.

pub mod b64;
pub mod create;
pub mod error;
pub mod exec;
pub mod imagecfg;
pub mod lifecycle;
pub mod metrics;
pub mod propagation;
pub mod record;
pub mod runtime;
pub mod stats;
pub mod status;
pub mod store;
pub mod stream;
pub mod user;

pub use error::RuntimeError;
pub use record::{ContainerRecord, State};
pub use runtime::Runtime;
