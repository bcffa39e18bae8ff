//! `kina version`: `kina v0.1.0 linux/amd64`, in kind's format.

/// GOARCH-style name of the architecture kina was built for.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The line `kina version` prints.
pub fn version_line() -> String {
    format!(
        "kina v{} {}/{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        arch()
    )
}
