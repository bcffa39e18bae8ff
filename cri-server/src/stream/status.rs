//! The error-channel payload of remote command sessions: a `metav1.Status` JSON document for
//! protocol v4 and later, the plain error text for v1–v3 (nothing on success), as kubelet's
//! `v4WriteStatusFunc`/`v1WriteStatusFunc` write them.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub metadata: Meta,
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Meta {}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Details {
    pub causes: Vec<Cause>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    pub message: String,
}

fn is_zero(c: &i32) -> bool {
    *c == 0
}

impl Status {
    pub fn success() -> Self {
        Status {
            metadata: Meta {},
            status: "Success",
            message: String::new(),
            reason: "",
            details: None,
            code: 0,
        }
    }

    /// The command ran and exited non-zero: reason NonZeroExitCode, cause ExitCode = code.
    /// The message reads like containerd's (`error executing command [sh -c exit 7], exit
    /// code 7`) behind kubelet's prefix.
    pub fn exit_code(code: i32, cmd: &[String]) -> Self {
        Status {
            metadata: Meta {},
            status: "Failure",
            message: format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                cmd.join(" ")
            ),
            reason: "NonZeroExitCode",
            details: Some(Details {
                causes: vec![Cause {
                    reason: "ExitCode",
                    message: code.to_string(),
                }],
            }),
            code: 0,
        }
    }

    /// The command could not be run (apierrors.NewInternalError).
    pub fn internal(err: &str) -> Self {
        Status {
            metadata: Meta {},
            status: "Failure",
            message: format!("Internal error occurred: {err}"),
            reason: "InternalError",
            details: Some(Details {
                causes: vec![Cause {
                    reason: "",
                    message: err.to_string(),
                }],
            }),
            code: 500,
        }
    }

    /// Bytes to write on the error channel, or `None` when nothing is written.
    pub fn encode(&self, json: bool) -> Option<Vec<u8>> {
        if json {
            return serde_json::to_vec(self).ok();
        }
        (self.status != "Success").then(|| self.message.clone().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_zero_exit_matches_kubelet_json() {
        let v = String::from_utf8(
            Status::exit_code(7, &["sh".into(), "-c".into(), "exit 7".into()])
                .encode(true)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            v,
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 7], exit code 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#
        );
        assert_eq!(
            String::from_utf8(Status::success().encode(true).unwrap()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
    }

    #[test]
    fn v1_writes_text_only_on_failure() {
        assert_eq!(Status::success().encode(false), None);
        assert_eq!(
            Status::internal("boom").encode(false).unwrap(),
            b"Internal error occurred: boom"
        );
    }
}
