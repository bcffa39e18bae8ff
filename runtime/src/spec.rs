//! Loading and validating the bundle config.json (OCI runtime-spec via oci-spec).
