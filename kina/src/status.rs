//! The status lines users see: a spinner per step, then ✓ or ✗ with the time it took.
