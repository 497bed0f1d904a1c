//! Versioned secrets `<name>-v<N>` (upstream quarks-utils `versionedsecretstore`), as pure
//! functions over object metadata: naming, the one "newest version" rule, "next" over a snapshot
//! (a LIST result or a reflector store), the "identical to latest" check, and which old versions
//! retention may delete. Shared by persist-output (writes versions, prunes them), the webhook
//! (points pods at the newest version) and the reconciler (resolves the newest version for the
//! config digest): all three answer "which version is the newest" with [`newest_for_reference`]
//! / [`latest`], so the digest and the mounted Secret cannot disagree.
//!
//! The rule: a version of `<prefix>` is a Secret labelled `secret-kind=versionedSecret` and named
//! `<prefix>-v<N>`, with `N` written without leading zeros and within `1..=`[`MAX_VERSION`]. Its
//! version is the `N` of its name. A `secret-version` label that says otherwise is ignored (see
//! [`mislabelled`], which callers log as a warning); upstream read the label first, so a label of
//! `18446744073709551615` pinned "latest" for ever and overflowed `v + 1`.
//!
//! Layer: core: plain data and pure functions, no I/O (see `crate::core`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::api::labels::{
    LABEL_QJOB_NAME, LABEL_SECRET_KIND, LABEL_SECRET_VERSION, SECRET_KIND_VERSIONED,
};

/// Longest object name Kubernetes accepts (DNS subdomain).
pub const MAX_NAME_LEN: usize = 253;

/// The greatest version number: nine digits. Names with a greater number are not versions, and a
/// series at this number takes no new version ([`VersionError::Exhausted`]).
pub const MAX_VERSION: u64 = 999_999_999;

/// Annotation ignored when comparing a new version with the latest (upstream meltdown's).
pub const ANNOTATION_LAST_RECONCILE: &str = "quarks.cloudfoundry.org/last-reconcile";

/// Why a versioned secret name is unusable. Messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Longer than [`MAX_NAME_LEN`].
    #[error(
        "secret name exceeds maximum number of allowed characters (actual={actual}, allowed={MAX_NAME_LEN})"
    )]
    TooLong {
        /// The name's length.
        actual: usize,
    },
    /// Contains something outside `[a-z0-9.-]`.
    #[error("secret name contains invalid characters, only lower case, dot and dash are allowed")]
    InvalidCharacters,
}

/// Why no next version can be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The newest version is already [`MAX_VERSION`].
    #[error(
        "versioned secret '{prefix}' has reached the greatest version number {MAX_VERSION}; delete its versions to start again at 1"
    )]
    Exhausted {
        /// The series.
        prefix: String,
    },
    /// The next version's name is unusable.
    #[error(transparent)]
    Name(#[from] NameError),
}

/// Check a Secret name as upstream did: at most 253 characters of `[a-z0-9.-]`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { actual: name.len() });
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'))
    {
        return Err(NameError::InvalidCharacters);
    }
    Ok(())
}

/// `<prefix>-v<version>`, validated.
pub fn versioned_name(prefix: &str, version: u64) -> Result<String, NameError> {
    let name = format!("{prefix}-v{version}");
    validate_name(&name)?;
    Ok(name)
}

/// A version number as written in a name or label: decimal digits without a leading zero, within
/// `1..=`[`MAX_VERSION`].
fn parse_version(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.len() > 9 || digits.starts_with('0') {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse()
        .ok()
        .filter(|v| (1..=MAX_VERSION).contains(v))
}

/// Split `<prefix>-v<N>` (upstream regexp `^\S+-v(\d+)$`, with `N` bounded as [`parse_version`]
/// says): the prefix has no whitespace and is not empty.
fn split(name: &str) -> Option<(&str, u64)> {
    let (prefix, digits) = name.rsplit_once("-v")?;
    if prefix.is_empty() || prefix.chars().any(char::is_whitespace) {
        return None;
    }
    Some((prefix, parse_version(digits)?))
}

/// Whether `name` looks like `<prefix>-v<N>` (upstream `IsVersionedSecretName`).
pub fn is_versioned_name(name: &str) -> bool {
    split(name).is_some()
}

/// The `<prefix>` of `<prefix>-v<N>` (upstream `NamePrefix`, which returned `""` for `None`).
pub fn name_prefix(name: &str) -> Option<&str> {
    split(name).map(|(p, _)| p)
}

/// The `N` of `<prefix>-v<N>` (upstream `VersionFromName`).
pub fn version_from_name(name: &str) -> Option<u64> {
    split(name).map(|(_, v)| v)
}

/// Whether the object carries `secret-kind=versionedSecret` (upstream `IsVersionedSecret`).
pub fn is_versioned_secret(meta: &ObjectMeta) -> bool {
    label(meta, LABEL_SECRET_KIND) == Some(SECRET_KIND_VERSIONED)
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// The version of one of `prefix`'s versions: a versioned secret named exactly `<prefix>-v<N>`
/// has version `N`, whatever its `secret-version` label says.
pub fn version_of(prefix: &str, meta: &ObjectMeta) -> Option<u64> {
    let (p, version) = split(meta.name.as_deref()?)?;
    (p == prefix && is_versioned_secret(meta)).then_some(version)
}

/// The versions of `prefix` whose `secret-version` label disagrees with their name (missing
/// labels are fine): their label is ignored, and callers log a warning naming them.
pub fn mislabelled<'a>(
    prefix: &str,
    snapshot: impl IntoIterator<Item = &'a ObjectMeta>,
) -> Vec<(&'a str, &'a str)> {
    snapshot
        .into_iter()
        .filter_map(|m| {
            let v = version_of(prefix, m)?;
            let l = label(m, LABEL_SECRET_VERSION)?;
            (parse_version(l) != Some(v)).then_some((m.name.as_deref()?, l))
        })
        .collect()
}

/// Log a warning for each version of `prefix` whose label disagrees with its name.
pub fn warn_mislabelled<'a>(
    namespace: &str,
    prefix: &str,
    snapshot: impl IntoIterator<Item = &'a ObjectMeta>,
) {
    for (name, label) in mislabelled(prefix, snapshot) {
        tracing::warn!(
            "versioned secret '{namespace}/{name}' has label {LABEL_SECRET_VERSION}={label:?}, which disagrees with its name: the label is ignored"
        );
    }
}

/// All versions of `prefix` in a snapshot, newest first.
pub fn versions<'a>(
    prefix: &str,
    snapshot: impl IntoIterator<Item = &'a ObjectMeta>,
) -> Vec<(u64, &'a ObjectMeta)> {
    let mut found: Vec<_> = snapshot
        .into_iter()
        .filter_map(|m| version_of(prefix, m).map(|v| (v, m)))
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.name.cmp(&a.1.name)));
    found
}

/// The newest version of `prefix` in a snapshot (upstream `Latest`).
pub fn latest<'a>(
    prefix: &str,
    snapshot: impl IntoIterator<Item = &'a ObjectMeta>,
) -> Option<(u64, &'a ObjectMeta)> {
    versions(prefix, snapshot).into_iter().next()
}

/// What a reference to a Secret stands for: a versioned reference `<prefix>-v<N>` stands for the
/// newest existing version of `<prefix>` (whatever `N` is); `None` when `reference` is not a
/// versioned name or no version of its prefix exists (the reference is then used as written).
/// This is the one rule the webhook (mounting) and the reconciler (config digest) share.
pub fn newest_for_reference<'a>(
    reference: &str,
    snapshot: impl IntoIterator<Item = &'a ObjectMeta>,
) -> Option<(u64, &'a ObjectMeta)> {
    latest(name_prefix(reference)?, snapshot)
}

/// The name a Secret reference resolves to: [`newest_for_reference`]'s, else the reference.
pub fn resolve_reference<'a>(
    reference: &str,
    snapshot: impl IntoIterator<Item = &'a ObjectMeta>,
) -> String {
    newest_for_reference(reference, snapshot)
        .and_then(|(_, m)| m.name.clone())
        .unwrap_or_else(|| reference.to_string())
}

/// The version the next write of `prefix` gets: one more than the greatest existing (and more
/// than `taken`, a number found taken on create), 1 if none. Checked: a series at
/// [`MAX_VERSION`] is [`VersionError::Exhausted`].
pub fn next_version<'a>(
    prefix: &str,
    snapshot: impl IntoIterator<Item = &'a ObjectMeta>,
    taken: u64,
) -> Result<u64, VersionError> {
    let greatest = latest(prefix, snapshot).map_or(0, |(v, _)| v).max(taken);
    greatest
        .checked_add(1)
        .filter(|n| *n <= MAX_VERSION)
        .ok_or_else(|| VersionError::Exhausted {
            prefix: prefix.to_string(),
        })
}

/// The name of the next version of `prefix`, validated.
pub fn next_name<'a>(
    prefix: &str,
    snapshot: impl IntoIterator<Item = &'a ObjectMeta>,
    taken: u64,
) -> Result<(u64, String), VersionError> {
    let n = next_version(prefix, snapshot, taken)?;
    Ok((n, versioned_name(prefix, n)?))
}

/// What a version holds, for the identity check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// The Secret's data.
    pub data: BTreeMap<String, Vec<u8>>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Whether a new version would equal the latest: same data, and the same labels and annotations
/// apart from the bookkeeping keys (`secret-version`, `secret-kind`, the QuarksJob marker
/// `qjob-name` (versions written before it existed are not rewritten for it), `last-reconcile`).
/// Unlike upstream, which only checked that the latest's keys were present in the new one, this
/// compares both ways, so a label added by the new output also makes a new version.
pub fn is_identical(latest: &Content, desired: &Content) -> bool {
    fn without<'a>(
        m: &'a BTreeMap<String, String>,
        ignored: &[&str],
    ) -> BTreeMap<&'a str, &'a str> {
        m.iter()
            .filter(|(k, _)| !ignored.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
    let ignored_labels = [LABEL_SECRET_VERSION, LABEL_SECRET_KIND, LABEL_QJOB_NAME];
    let ignored_annotations = [ANNOTATION_LAST_RECONCILE];
    latest.data == desired.data
        && without(&latest.labels, &ignored_labels) == without(&desired.labels, &ignored_labels)
        && without(&latest.annotations, &ignored_annotations)
            == without(&desired.annotations, &ignored_annotations)
}

/// Names of the versions of `prefix` that retention deletes when at most `keep` versions are to
/// be kept: everything but the `keep` newest, except versions in `in_use` (referenced by a pod,
/// Job or QuarksJob template). The newest version is always kept; `keep == 0` keeps everything.
pub fn prune<'a>(
    prefix: &str,
    snapshot: impl IntoIterator<Item = &'a ObjectMeta>,
    keep: usize,
    in_use: &BTreeSet<String>,
) -> Vec<String> {
    if keep == 0 {
        return Vec::new();
    }
    versions(prefix, snapshot)
        .into_iter()
        .skip(keep)
        .filter_map(|(_, m)| m.name.clone())
        .filter(|name| !in_use.contains(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn version(name: &str, n: &str) -> ObjectMeta {
        meta(
            name,
            &[
                (LABEL_SECRET_KIND, SECRET_KIND_VERSIONED),
                (LABEL_SECRET_VERSION, n),
            ],
        )
    }

    #[test]
    fn names() {
        assert_eq!(versioned_name("foo", 1).unwrap(), "foo-v1");
        assert!(is_versioned_name("foo-v1"));
        assert!(is_versioned_name("a-b-v12"));
        assert!(is_versioned_name("foo-v1-v2"));
        for not in [
            "foo", "foo-v", "-v1", "foo-vx", "foo-v1a", "foo v-v1", "foov1",
        ] {
            assert!(!is_versioned_name(not), "{not}");
        }
        assert_eq!(name_prefix("foo-bar-v3"), Some("foo-bar"));
        assert_eq!(name_prefix("foo-v1-v2"), Some("foo-v1"));
        assert_eq!(name_prefix("foo"), None);
        assert_eq!(version_from_name("foo-v42"), Some(42));
        assert_eq!(
            version_from_name("foo-v99999999999999999999999"),
            None,
            "overflow is not a version"
        );
        for out_of_range in [
            "foo-v0",
            "foo-v01",
            "foo-v1000000000",
            "foo-v18446744073709551615",
        ] {
            assert!(!is_versioned_name(out_of_range), "{out_of_range}");
        }
        assert_eq!(version_from_name("foo-v999999999"), Some(MAX_VERSION));
    }

    #[test]
    fn name_validation_as_upstream() {
        let long = "a".repeat(250);
        assert_eq!(versioned_name(&long, 1).unwrap().len(), 253);
        let err = versioned_name(&long, 10).unwrap_err();
        assert_eq!(err, NameError::TooLong { actual: 254 });
        assert_eq!(
            err.to_string(),
            "secret name exceeds maximum number of allowed characters (actual=254, allowed=253)"
        );
        for bad in ["Foo", "foo_bar", "foo bar", "föo", ""] {
            assert_eq!(
                validate_name(bad),
                Err(NameError::InvalidCharacters),
                "{bad:?}"
            );
        }
        assert!(validate_name("a.b-c9").is_ok());
    }

    #[test]
    fn latest_and_next_over_a_snapshot() {
        let snapshot = [
            version("foo-v1", "1"),
            version("foo-v10", "10"),
            version("foo-v2", "2"),
            version("foobar-v99", "99"),        // other prefix
            version("foo-bar-v50", "50"),       // other prefix
            meta("foo-v77", &[]),               // not a versioned secret
            version("foo", "88"),               // not a versioned name
            version("foo-v11", "not-a-number"), // label unusable: the name counts
        ];
        let (v, m) = latest("foo", &snapshot).unwrap();
        assert_eq!((v, m.name.as_deref()), (11, Some("foo-v11")));
        assert_eq!(next_version("foo", &snapshot, 0), Ok(12));
        assert_eq!(
            next_version("foo", &snapshot, 20),
            Ok(21),
            "a taken number counts"
        );
        assert_eq!(
            next_name("foo", &snapshot, 0),
            Ok((12, "foo-v12".to_string()))
        );
        let order: Vec<u64> = versions("foo", &snapshot).iter().map(|(v, _)| *v).collect();
        assert_eq!(order, [11, 10, 2, 1]);
        assert_eq!(next_version("nothing", &snapshot, 0), Ok(1));
        assert!(latest("nothing", &snapshot).is_none());
    }

    #[test]
    fn a_forged_huge_version_label_neither_overflows_nor_pins_latest() {
        // upstream read the label: this version was "latest" for ever and `v + 1` overflowed
        let snapshot = [
            version("s-v1", "1"),
            version("s-v2", "18446744073709551615"),
        ];
        let (v, m) = latest("s", &snapshot).unwrap();
        assert_eq!((v, m.name.as_deref()), (2, Some("s-v2")));
        assert_eq!(next_version("s", &snapshot, 0), Ok(3));
        // a name beyond the range is no version at all
        let forged = [
            version("s-v1", "1"),
            version("s-v18446744073709551615", "1"),
        ];
        assert_eq!(latest("s", &forged).unwrap().0, 1);
        assert_eq!(next_version("s", &forged, 0), Ok(2));
        assert_eq!(
            next_version("s", &forged, u64::MAX),
            Err(VersionError::Exhausted { prefix: "s".into() })
        );
    }

    #[test]
    fn the_range_is_bounded_and_a_full_series_takes_no_new_version() {
        let full = [version("s-v999999999", "999999999")];
        let err = next_version("s", &full, 0).unwrap_err();
        assert_eq!(err, VersionError::Exhausted { prefix: "s".into() });
        assert!(
            err.to_string()
                .contains("greatest version number 999999999"),
            "{err}"
        );
        assert_eq!(
            next_version("s", &[version("s-v999999998", "")], 0),
            Ok(MAX_VERSION)
        );
    }

    #[test]
    fn a_label_that_disagrees_with_the_name_is_ignored_and_reported() {
        let snapshot = [
            version("s-v1", "5"),
            version("s-v2", "2"),
            version("s-v3", ""),
            meta("s-v4", &[(LABEL_SECRET_KIND, SECRET_KIND_VERSIONED)]), // no label: fine
            version("t-v1", "9"),                                        // another series
        ];
        assert_eq!(
            latest("s", &snapshot).unwrap().1.name.as_deref(),
            Some("s-v4")
        );
        assert_eq!(mislabelled("s", &snapshot), [("s-v1", "5"), ("s-v3", "")]);
        assert_eq!(resolve_reference("s-v1", &snapshot), "s-v4");
        assert_eq!(resolve_reference("t-v7", &snapshot), "t-v1");
        assert_eq!(
            resolve_reference("u-v1", &snapshot),
            "u-v1",
            "no versions: as written"
        );
        assert_eq!(
            resolve_reference("s", &snapshot),
            "s",
            "bare names are not versioned references"
        );
    }

    #[test]
    fn prefixes_are_compared_literally_not_as_regexps() {
        // upstream built `^<name>-v\d+$` without escaping: `a.c` also matched `abc-v1`
        let snapshot = [version("abc-v5", "5")];
        assert!(latest("a.c", &snapshot).is_none());
    }

    fn content(
        data: &[(&str, &str)],
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> Content {
        let s = |m: &[(&str, &str)]| {
            m.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Content {
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            labels: s(labels),
            annotations: s(annotations),
        }
    }

    #[test]
    fn identity_ignores_bookkeeping_keys_only() {
        let latest = content(
            &[("a", "1")],
            &[
                ("l", "x"),
                (LABEL_SECRET_VERSION, "3"),
                (LABEL_SECRET_KIND, SECRET_KIND_VERSIONED),
            ],
            &[("an", "y"), (ANNOTATION_LAST_RECONCILE, "yesterday")],
        );
        let same = content(&[("a", "1")], &[("l", "x")], &[("an", "y")]);
        assert!(is_identical(&latest, &same));
        assert!(!is_identical(
            &latest,
            &content(&[("a", "2")], &[("l", "x")], &[("an", "y")])
        ));
        assert!(!is_identical(
            &latest,
            &content(&[("a", "1"), ("b", "")], &[("l", "x")], &[("an", "y")])
        ));
        assert!(!is_identical(
            &latest,
            &content(&[("a", "1")], &[("l", "z")], &[("an", "y")])
        ));
        assert!(!is_identical(
            &latest,
            &content(&[("a", "1")], &[("l", "x")], &[("an", "z")])
        ));
    }

    #[test]
    fn identity_compares_both_ways() {
        // upstream missed a label or annotation that only the new version has
        let latest = content(&[("a", "1")], &[("l", "x")], &[]);
        assert!(!is_identical(
            &latest,
            &content(&[("a", "1")], &[("l", "x"), ("new", "y")], &[])
        ));
        assert!(!is_identical(
            &latest,
            &content(&[("a", "1")], &[("l", "x")], &[("new", "y")])
        ));
        assert!(!is_identical(&latest, &content(&[("a", "1")], &[], &[])));
    }

    #[test]
    fn prune_keeps_newest_and_in_use() {
        let snapshot: Vec<ObjectMeta> = (1..=6)
            .map(|n| version(&format!("s-v{n}"), &n.to_string()))
            .collect();
        let none = BTreeSet::new();
        assert!(
            prune("s", &snapshot, 0, &none).is_empty(),
            "0 keeps everything"
        );
        assert_eq!(
            prune("s", &snapshot, 2, &none),
            ["s-v4", "s-v3", "s-v2", "s-v1"]
        );
        assert_eq!(
            prune("s", &snapshot, 1, &none).len(),
            5,
            "the newest always stays"
        );
        assert!(prune("s", &snapshot, 6, &none).is_empty());
        let in_use: BTreeSet<String> = ["s-v1".to_string(), "s-v3".to_string()].into();
        assert_eq!(prune("s", &snapshot, 2, &in_use), ["s-v4", "s-v2"]);
        assert!(prune("other", &snapshot, 1, &none).is_empty());
    }
}
