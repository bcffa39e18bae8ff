//! The init stage: the steps the container process runs between fork and execve.
