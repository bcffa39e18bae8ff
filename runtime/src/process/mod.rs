//! The container process: user and groups, capabilities, rlimits, no_new_privs, oom_score_adj, seccomp, personality, ioPriority.
