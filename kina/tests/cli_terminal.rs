//! Status output on a real terminal: the binary runs under a pseudo-terminal (util-linux
//! `script`), where steps get a spinner that is replaced by the ✓/✗ line, and `-q`
//! still prints nothing but the error.

use std::process::Command;

fn on_terminal(args: &str, state: &std::path::Path) -> (bool, String) {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_kina"));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("KINA_STATE_DIR", state)
        .env("KUBECONFIG", state.join("kubeconfig"))
        .env_remove("KINA_CLUSTER_NAME")
        .output()
        .expect("util-linux `script` runs the command on a pseudo-terminal");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn terminal_shows_a_spinner_then_the_result_line() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = on_terminal("create cluster --name demo", dir.path());
    assert!(!ok);
    assert!(out.contains("Creating cluster \"demo\" ..."), "{out:?}");
    // the spinner line is drawn, then cleared (ESC [2K) and replaced by the result
    assert!(out.contains("\u{1b}[2K"), "no spinner redraw in {out:?}");
    assert!(
        out.contains(" ✗ Ensuring node image (kina/node:v1.36.2) 🖼 ("),
        "{out:?}"
    );
    assert!(
        out.contains("ERROR: kina create cluster: node image \"kina/node:v1.36.2\" is not in kina's image store"),
        "{out:?}"
    );
}

#[test]
fn quiet_on_a_terminal_prints_only_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = on_terminal("-q create cluster --name demo", dir.path());
    assert!(!ok);
    assert!(!out.contains("Creating cluster"), "{out:?}");
    assert!(!out.contains("Ensuring node image"), "{out:?}");
    assert!(out.starts_with("ERROR: kina create cluster:"), "{out:?}");
}
