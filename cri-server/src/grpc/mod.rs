//! gRPC services: one file per group of RPCs, translating CRI <-> domain types, and the one
//! mapping of domain errors onto gRPC status codes.

pub mod image;
pub mod runtime;

use tonic::{Code, Status};

use crate::image::Error as ImageError;

impl From<ImageError> for Status {
    fn from(e: ImageError) -> Status {
        let code = match &e {
            ImageError::NotFound(_) => Code::NotFound,
            ImageError::InvalidArgument(_) | ImageError::Archive { .. } => Code::InvalidArgument,
            ImageError::Unavailable { .. } => Code::Unavailable,
            ImageError::Unauthenticated { .. } => Code::Unauthenticated,
            ImageError::DigestMismatch { .. }
            | ImageError::SizeMismatch { .. }
            | ImageError::UnsafeLayer { .. }
            | ImageError::BadLayer { .. }
            | ImageError::Json { .. } => Code::DataLoss,
            ImageError::Registry { .. } => Code::Unknown,
            ImageError::RegistryConfig { .. } => Code::FailedPrecondition,
            ImageError::Io { .. } | ImageError::Mount { .. } | ImageError::Internal(_) => {
                Code::Internal
            }
        };
        Status::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_codes() {
        let s: Status = ImageError::NotFound("image x".into()).into();
        assert_eq!(s.code(), Code::NotFound);
        let s: Status = ImageError::Unavailable {
            url: "http://127.0.0.1:1".into(),
            reason: "refused".into(),
        }
        .into();
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.message().contains("http://127.0.0.1:1"));
    }
}
