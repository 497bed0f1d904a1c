//! The shipped manifests (`manifests/`) as the tests read and apply them.

use std::path::PathBuf;

use serde_json::Value;

pub use super::yaml::{apply, documents, find, temp_yaml};

/// `manifests/` of the repository.
pub fn manifests_dir() -> PathBuf {
    super::repo_root().join("manifests")
}

/// One file of `manifests/`.
pub fn read_manifest(file: &str) -> String {
    std::fs::read_to_string(manifests_dir().join(file)).expect("read manifest")
}

/// The objects `kubectl kustomize manifests/` renders.
pub fn rendered() -> Vec<Value> {
    super::yaml::kustomize(&manifests_dir())
}
