//! kind's `kubeadmConfigPatches` and `kubeadmConfigPatchesJSON6902` applied to a generated
//! kubeadm configuration stream (kind's `pkg/cluster/internal/patch/kubeyaml.go`).
//!
//! Semantics, as kind's:
//! - A merge patch is a YAML mapping (a patch string may hold several `---` documents) that
//!   names its target with `kind` and optionally `apiVersion`; it applies to every document
//!   of that kind (and apiVersion, when given). kind applies it with evanphx's
//!   `jsonpatch.MergePatch`, i.e. an RFC 7386 JSON merge patch, not a strategic merge: maps
//!   merge, `null` deletes, lists are replaced. The patch's `kind`, `apiVersion` and
//!   `metadata` only select the target (kind strips its `metadata.name` marker afterwards).
//! - A JSON 6902 patch applies its operations to every document whose group/version/kind
//!   match (an empty group and version match any apiVersion).
//! - All merge patches are applied first, in order, then all JSON 6902 patches. A patch whose
//!   target is absent (e.g. InitConfiguration on a joining node) changes nothing.
//!
//! kina generates `kubeadm.k8s.io/v1beta4` while kind users write patches for v1beta2/v1beta3:
//! see [`super::compat`] for how those still apply.

use serde::Deserialize;
use serde_json::Value;

use crate::config::PatchJson6902;

use super::compat;
use super::error::{KubeadmError, PatchKind, PatchSource};
use super::render::to_yaml;

/// Parses a YAML stream into its documents, skipping empty ones.
pub(crate) fn parse_stream(yaml: &str) -> Result<Vec<Value>, serde_norway::Error> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(yaml) {
        let v = Value::deserialize(doc)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// What a patch targets.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    kind: String,
    /// `None` matches any apiVersion.
    api_version: Option<String>,
}

impl Target {
    fn matches(&self, doc: &Value) -> bool {
        if doc.get("kind").and_then(Value::as_str) != Some(self.kind.as_str()) {
            return false;
        }
        let Some(want) = &self.api_version else {
            return true;
        };
        let have = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        have == want || compat::same_kubeadm_group(want, have)
    }
}

struct MergePatch {
    target: Target,
    body: Value,
}

fn parse_merge(
    raw: &str,
    err: &impl Fn(String) -> KubeadmError,
) -> Result<Vec<MergePatch>, KubeadmError> {
    let docs = parse_stream(raw).map_err(|e| err(format!("not valid YAML: {e}")))?;
    if docs.is_empty() {
        return Err(err("the patch is empty".into()));
    }
    docs.into_iter()
        .map(|mut body| {
            let Some(map) = body.as_object_mut() else {
                return Err(err(format!(
                    "a merge patch must be a YAML mapping, not {}",
                    kind_of(&body)
                )));
            };
            let kind = match map.remove("kind") {
                Some(Value::String(k)) if !k.is_empty() => k,
                _ => return Err(err("the patch has no `kind` naming what it patches".into())),
            };
            let api_version = match map.remove("apiVersion") {
                None | Some(Value::Null) => None,
                Some(Value::String(v)) if v.is_empty() => None,
                Some(Value::String(v)) => Some(v),
                Some(other) => {
                    return Err(err(format!(
                        "apiVersion must be a string, not {}",
                        kind_of(&other)
                    )));
                }
            };
            map.remove("metadata");
            Ok(MergePatch {
                target: Target { kind, api_version },
                body,
            })
        })
        .collect()
}

fn parse_json6902(
    p: &PatchJson6902,
    err: &impl Fn(String) -> KubeadmError,
) -> Result<(Target, json_patch::Patch), KubeadmError> {
    if p.kind.is_empty() {
        return Err(err("the patch has no `kind` naming what it patches".into()));
    }
    let api_version = match (p.group.as_str(), p.version.as_str()) {
        ("", "") => None,
        ("", v) => Some(v.to_string()),
        (g, v) => Some(format!("{g}/{v}")),
    };
    let ops: Value = serde_norway::from_str(&p.patch)
        .map_err(|e| err(format!("patch is not valid YAML or JSON: {e}")))?;
    let patch: json_patch::Patch = serde_json::from_value(ops)
        .map_err(|e| err(format!("patch is not a list of RFC 6902 operations: {e}")))?;
    Ok((
        Target {
            kind: p.kind.clone(),
            api_version,
        },
        patch,
    ))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Applies merge patches then RFC 6902 patches to every document they target.
///
/// `source` tells errors whether the lists are the cluster's or a node's. Returns the
/// patched stream (keys sorted, comments dropped, as kind's output).
pub fn apply_patches(
    yaml: &str,
    source: &PatchSource,
    merge: &[String],
    json6902: &[PatchJson6902],
) -> Result<String, KubeadmError> {
    let mut docs = parse_stream(yaml).map_err(|e| KubeadmError::Document {
        index: 0,
        reason: e.to_string(),
    })?;
    for (index, d) in docs.iter().enumerate() {
        if !d.is_object() {
            return Err(KubeadmError::Document {
                index,
                reason: format!("a document must be a mapping, not {}", kind_of(d)),
            });
        }
    }
    apply_to_documents(&mut docs, source, merge, json6902)?;
    to_yaml(&docs)
}

/// [`apply_patches`] on already-parsed documents.
pub fn apply_to_documents(
    docs: &mut [Value],
    source: &PatchSource,
    merge: &[String],
    json6902: &[PatchJson6902],
) -> Result<(), KubeadmError> {
    let error = |kind: PatchKind, index: usize| {
        move |reason: String| KubeadmError::Patch {
            source_list: source.clone(),
            kind,
            index,
            reason,
        }
    };
    for (i, raw) in merge.iter().enumerate() {
        let err = error(PatchKind::Merge, i);
        for patch in parse_merge(raw, &err)? {
            for doc in docs.iter_mut().filter(|d| patch.target.matches(d)) {
                let mut body = patch.body.clone();
                compat::merge_map_args(doc, &mut body).map_err(&err)?;
                json_patch::merge(doc, &body);
            }
        }
    }
    for (i, p) in json6902.iter().enumerate() {
        let err = error(PatchKind::Json6902, i);
        let (target, patch) = parse_json6902(p, &err)?;
        for doc in docs.iter_mut().filter(|d| target.matches(d)) {
            json_patch::patch(doc, &patch).map_err(|e| {
                err(format!(
                    "cannot apply to {}: {e}",
                    doc.get("kind").and_then(Value::as_str).unwrap_or("?")
                ))
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
