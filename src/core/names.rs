//! Upstream-compatible name sanitising (quarks-utils `pkg/names`): the same input gives the same
//! Secret name or label value as upstream Quarks Job, so existing Secrets keep being found.
//!
//! Layer: core: plain data and pure functions, no I/O (see `crate::core`).

/// Keep `s` within `max` bytes: longer strings become `s[..max-33] + "-" + md5hex(s)` (or only
/// the first `max` characters of the hex sum when there is no room for a prefix), which keeps
/// different long names distinct. Upstream `TruncateMD5`.
pub fn truncate_md5(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let sum = md5_hex(s);
    const SUFFIX_LEN: usize = 33; // "-" + 32 hex characters
    if max < SUFFIX_LEN {
        return sum[..max].to_string();
    }
    if max == SUFFIX_LEN {
        return sum;
    }
    // Go slices bytes; the callers pass ASCII (sanitised) strings, but never split a character.
    let mut cut = max - SUFFIX_LEN;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{sum}", &s[..cut])
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `_` → `-`, lower-case, drop everything outside `[-a-z0-9]`, trim every leading and trailing
/// `-`. Does not limit the length (see [`sanitize`]). Upstream `DNSLabelSafe`.
pub fn dns_label_safe(s: &str) -> String {
    let kept: String = s
        .replace('_', "-")
        .to_lowercase()
        .chars()
        .filter(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        .collect();
    kept.trim_matches('-').to_string()
}

/// A DNS label (at most 63 characters): [`dns_label_safe`], then [`truncate_md5`] to 63. Used
/// for label values. Upstream `Sanitize`.
pub fn sanitize(s: &str) -> String {
    truncate_md5(&dns_label_safe(s), 63)
}

/// A DNS subdomain (at most 253 characters) for object names: `_` → `-`, lower-case, drop
/// everything outside `[-.a-z0-9]`, trim ONE leading/trailing `-`, then ONE leading/trailing
/// `.`, then [`truncate_md5`] to 253. Upstream `SanitizeSubdomain`, including its quirks (so
/// `"--a"` keeps a leading `-`; the apiserver then rejects the name with a clear message).
pub fn sanitize_subdomain(s: &str) -> String {
    let kept: String = s
        .replace('_', "-")
        .to_lowercase()
        .chars()
        .filter(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '.'))
        .collect();
    let t = kept.as_str();
    let t = t.strip_prefix('-').unwrap_or(t);
    let t = t.strip_suffix('-').unwrap_or(t);
    let t = t.strip_prefix('.').unwrap_or(t);
    let t = t.strip_suffix('.').unwrap_or(t);
    truncate_md5(t, 253)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG31: &str = "a123456789012345678901234567890";

    fn long63() -> String {
        format!("{LONG31}b123456789012345678901234567890c")
    }

    fn long253() -> String {
        let l = long63();
        format!("{l}{l}{l}{l}d")
    }

    /// Shared rows of upstream's `Sanitize` and `SanitizeSubdomain` tables (names_test.go).
    const COMMON: &[(&str, &str)] = &[
        ("AB1", "ab1"),
        ("ab1", "ab1"),
        ("1bc", "1bc"),
        ("a-b", "a-b"),
        ("a_b", "a-b"),
        ("a_b_123", "a-b-123"),
        ("-abc", "abc"),
        ("abc-", "abc"),
        ("_abc_", "abc"),
        ("-abc-", "abc"),
    ];

    #[test]
    fn sanitize_matches_upstream_table() {
        for (input, want) in COMMON {
            assert_eq!(sanitize(input), *want, "{input:?}");
        }
        assert_eq!(sanitize("abcü.123:4"), "abc1234");
        assert_eq!(sanitize(&long63()), long63());
        // the dash version of TruncateMD5 that upstream's pinned quarks-utils has
        assert_eq!(
            sanitize(&format!("{}0", long63())),
            format!("{}-f61acdbce0e8ea6e4912f53bde4de866", &LONG31[..30])
        );
    }

    #[test]
    fn sanitize_subdomain_matches_upstream_table() {
        for (input, want) in COMMON {
            assert_eq!(sanitize_subdomain(input), *want, "{input:?}");
        }
        assert_eq!(sanitize_subdomain(".a.b.c."), "a.b.c");
        assert_eq!(sanitize_subdomain("abcü.123:4"), "abc.1234");
        assert_eq!(sanitize_subdomain(&long253()), long253());
        assert_eq!(sanitize_subdomain(&format!("{}1", long253())).len(), 253);
    }

    #[test]
    fn sanitize_subdomain_keeps_upstream_quirks() {
        // kubecf's `link-kubecf-routing_api-routing_api` (the bug that introduced sanitising)
        assert_eq!(
            sanitize_subdomain("link-kubecf-routing_api-routing_api"),
            "link-kubecf-routing-api-routing-api"
        );
        // only one dash and one dot are trimmed on each side
        assert_eq!(sanitize_subdomain("--a--"), "-a-");
        assert_eq!(sanitize_subdomain("-.a.-"), "a");
        // while the DNS label variant trims all dashes
        assert_eq!(dns_label_safe("--a--"), "a");
    }

    #[test]
    fn dns_label_safe_matches_upstream_table() {
        assert_eq!(dns_label_safe("-Name"), "name");
        assert_eq!(dns_label_safe("--_Name--"), "name");
        assert_eq!(dns_label_safe("nA!müe123"), "name123");
    }

    #[test]
    fn truncate_md5_matches_upstream_table() {
        const STR32: &str = "123456789012345678901234567890AA";
        let longstring_md5 = "d3b442d33a939d736f8d44a1fbefa679";
        assert_eq!(truncate_md5("longstring", 3), &longstring_md5[..3]);
        assert_eq!(truncate_md5("longstring", 10), "longstring");
        assert_eq!(truncate_md5("longstring", 11), "longstring");
        let s = format!("longstring{STR32}");
        assert_eq!(truncate_md5(&s, 32), "4fa56ac8cd8f1badfb3226365b0771e8");
        assert_eq!(truncate_md5(&s, 33), "4fa56ac8cd8f1badfb3226365b0771e8");
        assert_eq!(
            truncate_md5(&format!("longstringAA{STR32}"), 43),
            "longstring-07b4553eabfa74c177f570f0b87ce33e"
        );
        assert_eq!(
            truncate_md5(&format!("longstring{STR32}{STR32}"), 63),
            "longstring12345678901234567890-e42ccf2f5a0b4aca30676ffa42b15d16"
        );
    }

    #[test]
    fn truncate_md5_edges() {
        assert_eq!(truncate_md5("abc", 3), "abc");
        let sum = md5_hex("abcd");
        assert_eq!(sum, "e2fc714c4727ee9395f324cd2e7f331f");
        assert_eq!(truncate_md5("abcd", 3), &sum[..3]);
        let long = "x".repeat(40);
        assert_eq!(truncate_md5(&long, 33), md5_hex(&long));
        let t = truncate_md5(&long, 35);
        assert_eq!(t, format!("xx-{}", md5_hex(&long)));
        assert_eq!(t.len(), 35);
        // different long inputs stay different
        assert_ne!(
            truncate_md5(&format!("{long}a"), 35),
            truncate_md5(&format!("{long}b"), 35)
        );
    }

    #[test]
    fn truncate_md5_never_splits_a_character() {
        let s = format!("aé{}", "b".repeat(40));
        let t = truncate_md5(&s, 35); // cut at byte 2, inside 'é'
        assert!(t.starts_with("a-"), "{t}");
    }
}
