//! Container lifecycle: create, start, kill, delete, exec, pause/resume, update.
