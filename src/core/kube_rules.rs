//! The apiserver's rules for what quarks-job writes (object names, Secret keys, label and
//! annotation keys, label values), checked up front: persist-output checks a whole run before it
//! writes any Secret, and the QuarksJob webhook rejects names that could never be written. Each
//! error completes "`<thing>` …".
//!
//! Layer: core: plain data and pure functions, no I/O (see `crate::core`).

/// A Secret data key: at most 253 characters of `[-._a-zA-Z0-9]`, not `.` or `..`.
pub fn data_key(key: &str) -> Result<(), &'static str> {
    let chars_ok = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if key.is_empty() || key.len() > 253 || !chars_ok || key == "." || key == ".." {
        return Err(
            "is not a valid secret key (at most 253 characters of [-._a-zA-Z0-9], not '.' or '..')",
        );
    }
    Ok(())
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most `max` characters (or empty if allowed).
fn is_label_word(s: &str, max: usize, allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    let b = s.as_bytes();
    s.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label value: empty, or at most 63 characters of `[-._a-zA-Z0-9]`, alphanumeric at both ends.
pub fn label_value(v: &str) -> Result<(), &'static str> {
    if is_label_word(v, 63, true) {
        Ok(())
    } else {
        Err(
            "is not a valid label value (at most 63 characters of [-._a-zA-Z0-9], alphanumeric at both ends)",
        )
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// An object name that must be a DNS-1123 subdomain (Secrets).
pub fn dns_subdomain(name: &str) -> Result<(), &'static str> {
    if is_dns_subdomain(name) {
        Ok(())
    } else {
        Err(
            "is not a DNS-1123 subdomain (dot-separated parts of [-a-z0-9], each alphanumeric at both ends)",
        )
    }
}

/// A label or annotation key: `[<DNS subdomain>/]<name>`, the name at most 63 characters of
/// `[-._a-zA-Z0-9]`, alphanumeric at both ends.
pub fn qualified_name(k: &str) -> Result<(), &'static str> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if prefix.is_none_or(is_dns_subdomain) && is_label_word(name, 63, false) {
        Ok(())
    } else {
        Err(
            "is not a valid key ([DNS subdomain prefix/]name, the name at most 63 characters of [-._a-zA-Z0-9])",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys() {
        for ok in ["a", "a.b-c_d", "A9", ".hidden"] {
            assert!(data_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", &"a".repeat(254)] {
            assert!(data_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qualified_names() {
        for ok in [
            "key",
            "quarks.cloudfoundry.org/container-name",
            "a_b.c",
            "example.com/X",
        ] {
            assert!(qualified_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "Ex.com/a",
            "a/b/c",
            "-a",
            "a..b/c",
            &"a".repeat(64),
        ] {
            assert!(qualified_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_values() {
        assert!(label_value("").is_ok());
        assert!(label_value("Zone_A.1").is_ok());
        assert!(label_value(&"a".repeat(63)).is_ok());
        assert!(label_value(&"a".repeat(64)).is_err());
        assert!(label_value("-a").is_err());
        assert!(label_value("a b").is_err());
    }

    #[test]
    fn subdomains() {
        for ok in ["a", "foo-v1", "a.b-c.d", "1a", &"a".repeat(253)] {
            assert!(dns_subdomain(ok).is_ok(), "{ok}");
        }
        // what upstream's SanitizeSubdomain can still produce, and more
        for bad in ["-a-", "a.-b", "a..b", "", "A", "a_b", &"a".repeat(254)] {
            assert!(dns_subdomain(bad).is_err(), "{bad}");
        }
    }
}
