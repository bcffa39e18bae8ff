//! kina: a kind-compatible local Kubernetes cluster tool.
