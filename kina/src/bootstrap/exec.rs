//! Running commands in nodes with errors that carry the command's output.

use super::BootstrapError;
use crate::provider::Node;

/// The last `max` bytes of `text` (at a line start when possible).
fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    match text[start..].find('\n') {
        Some(i) => &text[start + i + 1..],
        None => &text[start..],
    }
}

/// Runs `argv` in `node` (feeding `stdin`) and returns its stdout; a non-zero exit is an
/// error holding the tail of its output.
pub fn run(node: &dyn Node, argv: &[&str], stdin: Option<&[u8]>) -> Result<String, BootstrapError> {
    let args: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let out = node.exec(&args, stdin)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status != 0 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let both = format!("{stdout}{stderr}");
        return Err(BootstrapError::Command {
            node: node.name().to_string(),
            command: argv.join(" "),
            status: out.status,
            output: tail(both.trim_end(), 6000).to_string(),
        });
    }
    Ok(stdout)
}

/// Writes `content` to `path` in `node` (creating its directory).
pub fn write_file(node: &dyn Node, path: &str, content: &str) -> Result<(), BootstrapError> {
    let dir = match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    };
    run(
        node,
        &[
            "sh",
            "-c",
            "mkdir -p \"$1\" && cat > \"$2\"",
            "sh",
            dir,
            path,
        ],
        Some(content.as_bytes()),
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_whole_lines() {
        assert_eq!(tail("short", 10), "short");
        assert_eq!(tail("line one\nline two\nline three", 14), "line three");
        assert_eq!(tail("ééééé", 3), "é");
    }
}
