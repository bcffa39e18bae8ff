//! kind v1alpha4 cluster configuration: types, defaults, validation.
