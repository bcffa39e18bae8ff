//! containerd's `conf_template`: a conflist written as a Go text/template, rendered with the
//! node's pod CIDRs on UpdateRuntimeConfig. Supported: `{{.PodCIDR}}`, `{{.Subnet}}`,
//! `{{range [$i, $x :=] .PodCIDRRanges|.Routes}}…{{end}}`, `{{if $i|.Field}}…[{{else}}…]{{end}}`,
//! `{{$x}}`, `{{.}}` and the `{{-`/`-}}` whitespace trimming — what containerd's documented
//! templates use. Anything else is an error naming the action.

use std::collections::HashMap;

use ipnetwork::IpNetwork;

/// The data a template sees (containerd's `cniConfigTemplate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateData {
    /// The first pod CIDR (also as `.Subnet`, its deprecated name).
    pub pod_cidr: String,
    pub pod_cidr_ranges: Vec<String>,
    /// A default route per family of the pod CIDRs.
    pub routes: Vec<String>,
}

impl TemplateData {
    pub fn new(cidrs: &[IpNetwork]) -> Self {
        let mut routes = Vec::new();
        if cidrs.iter().any(|c| c.is_ipv4()) {
            routes.push("0.0.0.0/0".to_string());
        }
        if cidrs.iter().any(|c| c.is_ipv6()) {
            routes.push("::/0".to_string());
        }
        Self {
            pod_cidr: cidrs.first().map(|c| c.to_string()).unwrap_or_default(),
            pod_cidr_ranges: cidrs.iter().map(|c| c.to_string()).collect(),
            routes,
        }
    }
}

/// A template that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template line {line}: {reason}")]
pub struct TemplateError {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug)]
enum Node {
    Text(String),
    /// A value: `.Field`, `$var` or `.`.
    Value(String, usize),
    Range {
        idx: Option<String>,
        elem: Option<String>,
        list: String,
        body: Vec<Node>,
        line: usize,
    },
    If {
        cond: String,
        then: Vec<Node>,
        otherwise: Vec<Node>,
        line: usize,
    },
}

enum Tok {
    Text(String),
    Action(String, usize),
}

fn err(line: usize, reason: impl Into<String>) -> TemplateError {
    TemplateError {
        line,
        reason: reason.into(),
    }
}

fn tokenize(src: &str) -> Result<Vec<Tok>, TemplateError> {
    let mut toks = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    let line_of = |rest: &str| src[..src.len() - rest.len()].matches('\n').count() + 1;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        let after = &rest[start + 2..];
        let line = line_of(after);
        let end = after.find("}}").ok_or_else(|| err(line, "unclosed {{"))?;
        let mut action = &after[..end];
        if trim_next {
            text = text.trim_start();
        }
        if let Some(a) = action.strip_prefix("- ") {
            text = text.trim_end();
            action = a;
        }
        trim_next = false;
        if let Some(a) = action.strip_suffix(" -") {
            trim_next = true;
            action = a;
        }
        toks.push(Tok::Text(text.to_string()));
        toks.push(Tok::Action(action.trim().to_string(), line));
        rest = &after[end + 2..];
    }
    toks.push(Tok::Text(if trim_next {
        rest.trim_start().to_string()
    } else {
        rest.to_string()
    }));
    Ok(toks)
}

/// Parsed nodes and the `{{end}}`/`{{else}}` (with its line) that ended them, if any.
type Parsed = (Vec<Node>, Option<(String, usize)>);

/// Parses nodes until `{{end}}`/`{{else}}` (returned as the terminator) or the end.
fn parse(toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>) -> Result<Parsed, TemplateError> {
    let mut nodes = Vec::new();
    while let Some(tok) = toks.next() {
        let (action, line) = match tok {
            Tok::Text(t) => {
                nodes.push(Node::Text(t));
                continue;
            }
            Tok::Action(a, l) => (a, l),
        };
        let words: Vec<&str> = action.split_whitespace().collect();
        match words.as_slice() {
            ["end"] | ["else"] => return Ok((nodes, Some((action, line)))),
            ["range", rest @ ..] => {
                let (idx, elem, list) = match rest {
                    [list] => (None, None, *list),
                    [elem, ":=", list] => (None, Some(*elem), *list),
                    [idx, elem, ":=", list] => {
                        (Some(idx.trim_end_matches(',')), Some(*elem), *list)
                    }
                    _ => return Err(err(line, format!("unsupported range {{{{{action}}}}}"))),
                };
                let (body, term) = parse(toks)?;
                if term.as_ref().map(|t| t.0.as_str()) != Some("end") {
                    return Err(err(line, "range without {{end}}"));
                }
                nodes.push(Node::Range {
                    idx: idx.map(str::to_string),
                    elem: elem.map(str::to_string),
                    list: list.to_string(),
                    body,
                    line,
                });
            }
            ["if", cond] => {
                let (then, term) = parse(toks)?;
                let otherwise = match term.as_ref().map(|t| t.0.as_str()) {
                    Some("end") => Vec::new(),
                    Some("else") => match parse(toks)? {
                        (o, Some((t, _))) if t == "end" => o,
                        _ => return Err(err(line, "if/else without {{end}}")),
                    },
                    _ => return Err(err(line, "if without {{end}}")),
                };
                nodes.push(Node::If {
                    cond: cond.to_string(),
                    then,
                    otherwise,
                    line,
                });
            }
            [value] if value.starts_with('.') || value.starts_with('$') => {
                nodes.push(Node::Value(value.to_string(), line))
            }
            _ => return Err(err(line, format!("unsupported action {{{{{action}}}}}"))),
        }
    }
    Ok((nodes, None))
}

#[derive(Clone)]
enum Val {
    Str(String),
    Int(usize),
    List(Vec<String>),
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Str(s) => !s.is_empty(),
            Val::Int(i) => *i != 0,
            Val::List(l) => !l.is_empty(),
        }
    }
}

struct Scope<'a> {
    data: &'a TemplateData,
    vars: HashMap<String, Val>,
    dot: Option<Val>,
}

impl Scope<'_> {
    fn lookup(&self, name: &str, line: usize) -> Result<Val, TemplateError> {
        let v = match name {
            "." => self.dot.clone(),
            ".PodCIDR" | ".Subnet" => Some(Val::Str(self.data.pod_cidr.clone())),
            ".PodCIDRRanges" => Some(Val::List(self.data.pod_cidr_ranges.clone())),
            ".Routes" => Some(Val::List(self.data.routes.clone())),
            var if var.starts_with('$') => self.vars.get(var).cloned(),
            _ => None,
        };
        v.ok_or_else(|| err(line, format!("unknown value {name}")))
    }

    fn render(&mut self, nodes: &[Node], out: &mut String) -> Result<(), TemplateError> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Value(name, line) => match self.lookup(name, *line)? {
                    Val::Str(s) => out.push_str(&s),
                    Val::Int(i) => out.push_str(&i.to_string()),
                    Val::List(l) => out.push_str(&format!("[{}]", l.join(" "))),
                },
                Node::Range {
                    idx,
                    elem,
                    list,
                    body,
                    line,
                } => {
                    let Val::List(items) = self.lookup(list, *line)? else {
                        return Err(err(*line, format!("{list} is not a list")));
                    };
                    let saved_dot = self.dot.clone();
                    for (i, item) in items.into_iter().enumerate() {
                        if let Some(idx) = idx {
                            self.vars.insert(idx.clone(), Val::Int(i));
                        }
                        if let Some(elem) = elem {
                            self.vars.insert(elem.clone(), Val::Str(item.clone()));
                        }
                        self.dot = Some(Val::Str(item));
                        self.render(body, out)?;
                    }
                    self.dot = saved_dot;
                }
                Node::If {
                    cond,
                    then,
                    otherwise,
                    line,
                } => {
                    let branch = if self.lookup(cond, *line)?.truthy() {
                        then
                    } else {
                        otherwise
                    };
                    self.render(branch, out)?;
                }
            }
        }
        Ok(())
    }
}

/// Renders `template` with `data`.
pub fn render(template: &str, data: &TemplateData) -> Result<String, TemplateError> {
    let mut toks = tokenize(template)?.into_iter().peekable();
    let (nodes, term) = parse(&mut toks)?;
    if let Some((t, line)) = term {
        return Err(err(line, format!("unexpected {{{{{t}}}}}")));
    }
    let mut out = String::new();
    Scope {
        data,
        vars: HashMap::new(),
        dot: None,
    }
    .render(&nodes, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
