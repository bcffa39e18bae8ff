//! Field paths (`nodes[1].extraPortMappings[0].hostPort`) and the line where a path
//! sits in a block-style YAML document.
//!
//! serde_norway reports locations for syntax and type errors but its `Value` keeps no
//! spans, so semantic errors found after decoding are mapped back to a line by walking
//! the document's indentation structure: mappings by key at one indent, sequences by
//! their `- ` items, skipping comments and block scalars (`|`, `>`). When a path leads
//! into flow style or past what the text holds, the deepest line found is returned.

use std::fmt;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path from the document root to a field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The document root.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// This path extended by a key.
    pub fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Key(k.to_string()));
        FieldPath(v)
    }

    /// This path extended by an index.
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Index(i));
        FieldPath(v)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

/// The 1-based line of `path` in `yaml`, or of its deepest ancestor present in the text.
pub fn line_of(yaml: &str, path: &FieldPath) -> Option<usize> {
    let mut cur = significant_lines(yaml);
    let mut best = None;
    for seg in &path.0 {
        let Some(first) = cur.first() else { break };
        let ind = first.indent;
        match seg {
            Segment::Key(k) => {
                let Some(i) = cur
                    .iter()
                    .position(|l| l.indent == ind && key_of(l.text) == Some(k.as_str()))
                else {
                    break;
                };
                best = Some(cur[i].no);
                let line = cur[i];
                let mut body = Vec::new();
                if let Some(rest) = value_after_key(line.text) {
                    body.push(Line {
                        no: line.no,
                        indent: line.indent + (line.text.len() - rest.len()),
                        text: rest,
                    });
                }
                body.extend(
                    cur[i + 1..]
                        .iter()
                        .take_while(|l| l.indent > ind || (l.indent == ind && is_item(l.text)))
                        .copied(),
                );
                cur = body;
            }
            Segment::Index(n) => {
                let Some(i) = cur
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.indent == ind && is_item(l.text))
                    .map(|(i, _)| i)
                    .nth(*n)
                else {
                    break;
                };
                best = Some(cur[i].no);
                let line = cur[i];
                let after = &line.text[1..];
                let rest = after.trim_start();
                let mut body = Vec::new();
                if !rest.is_empty() {
                    body.push(Line {
                        no: line.no,
                        indent: line.indent + 1 + (after.len() - rest.len()),
                        text: rest,
                    });
                }
                body.extend(cur[i + 1..].iter().take_while(|l| l.indent > ind).copied());
                cur = body;
            }
        }
    }
    best
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// The key of a `key: value` / `key:` line, unquoted.
fn key_of(text: &str) -> Option<&str> {
    if is_item(text) {
        return None;
    }
    for q in ['"', '\''] {
        if let Some(rest) = text.strip_prefix(q) {
            let end = rest.find(q)?;
            let after = rest[end + 1..].trim_start();
            return after.starts_with(':').then_some(&rest[..end]);
        }
    }
    if let Some(pos) = text.find(": ") {
        return Some(text[..pos].trim_end());
    }
    text.strip_suffix(':').map(str::trim_end)
}

/// The inline value after `key:`, unless it is empty or a block scalar header.
fn value_after_key(text: &str) -> Option<&str> {
    let rest = if let Some(q) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = text[1..].find(q)? + 1;
        let after = &text[close + 1..];
        after.trim_start().strip_prefix(':')?
    } else {
        let pos = text
            .find(": ")
            .map(|p| p + 1)
            .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
        &text[pos + 1..]
    };
    let rest = rest.trim_start();
    (!rest.is_empty() && !rest.starts_with('#') && !is_block_header(rest)).then_some(rest)
}

/// `|`, `>-`, `|2+`…: the header of a block scalar.
fn is_block_header(tok: &str) -> bool {
    let tok = tok.split(" #").next().unwrap_or(tok).trim_end();
    let mut chars = tok.chars();
    matches!(chars.next(), Some('|' | '>'))
        && tok.len() <= 3
        && chars.all(|c| c == '+' || c == '-' || c.is_ascii_digit())
}

/// Lines carrying structure: no blanks, comments, document markers or block-scalar bodies.
fn significant_lines(yaml: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut block_owner: Option<usize> = None;
    for (i, raw) in yaml.lines().enumerate() {
        let text = raw.trim_start();
        let indent = raw.len() - text.len();
        let text = text.trim_end();
        if let Some(owner) = block_owner {
            if text.is_empty() || indent > owner {
                continue;
            }
            block_owner = None;
        }
        if text.is_empty() || text.starts_with('#') || text == "---" || text == "..." {
            continue;
        }
        if let Some(last) = text.split_whitespace().last()
            && is_block_header(last)
            && text.len() > last.len()
        {
            // The body must be indented deeper than the key (or dash) that owns it.
            let owner_text = strip_items(text);
            block_owner = Some(indent + (text.len() - owner_text.len()));
        } else if is_block_header(text) {
            block_owner = Some(indent);
        }
        out.push(Line {
            no: i + 1,
            indent,
            text,
        });
    }
    out
}

/// `- - key: |` → `key: |` (the part whose indent owns a block scalar).
fn strip_items(mut text: &str) -> &str {
    while let Some(rest) = text.strip_prefix("- ") {
        text = rest.trim_start();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
# comment
nodes:
- role: control-plane
  kubeadmConfigPatches:
  - |
    kind: InitConfiguration
    nodes:
      - role: fake
  extraPortMappings:
  - containerPort: 80
    hostPort: 80
- role: worker
  extraPortMappings:
    - containerPort: 30950
      hostPort: 99999
networking:
  \"podSubnet\": bogus
";

    fn p(segs: &[&str]) -> FieldPath {
        FieldPath(
            segs.iter()
                .map(|s| match s.parse::<usize>() {
                    Ok(n) => Segment::Index(n),
                    Err(_) => Segment::Key((*s).to_string()),
                })
                .collect(),
        )
    }

    #[test]
    fn finds_nested_sequence_fields() {
        assert_eq!(line_of(DOC, &p(&["nodes"])), Some(4));
        assert_eq!(line_of(DOC, &p(&["nodes", "1"])), Some(14));
        assert_eq!(
            line_of(
                DOC,
                &p(&["nodes", "1", "extraPortMappings", "0", "hostPort"])
            ),
            Some(17)
        );
        assert_eq!(
            line_of(
                DOC,
                &p(&["nodes", "0", "extraPortMappings", "0", "containerPort"])
            ),
            Some(12)
        );
    }

    #[test]
    fn skips_block_scalars_and_reads_quoted_keys() {
        assert_eq!(
            line_of(DOC, &p(&["nodes", "0", "kubeadmConfigPatches", "0"])),
            Some(7)
        );
        assert_eq!(line_of(DOC, &p(&["networking", "podSubnet"])), Some(19));
    }

    #[test]
    fn missing_leaf_gives_deepest_ancestor() {
        assert_eq!(line_of(DOC, &p(&["nodes", "1", "image"])), Some(14));
        assert_eq!(line_of(DOC, &p(&["name"])), None);
    }

    #[test]
    fn displays_like_kubernetes_field_paths() {
        assert_eq!(
            p(&["nodes", "1", "extraPortMappings", "0", "hostPort"]).to_string(),
            "nodes[1].extraPortMappings[0].hostPort"
        );
    }
}
