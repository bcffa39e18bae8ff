//! Console: pseudo-terminal for `-t`, pty master sent over `--console-socket` (SCM_RIGHTS) as runc does.
