//! The server: unix socket listener, service wiring, graceful shutdown.
