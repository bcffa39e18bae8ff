//! kina-runtime binary: a thin wrapper over [`kina_runtime::cli`].
fn main() {
    std::process::exit(kina_runtime::cli::main());
}
