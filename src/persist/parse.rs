//! Output files: a flat JSON object whose values are all strings (upstream's rule), and the
//! fan-out form, where every value is itself such an object, JSON-encoded into a string.

use std::collections::BTreeMap;

use serde_json::Value;

/// The most a Secret can hold (the apiserver's 1 MiB object limit); a larger file cannot become
/// one Secret.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Why a file is not usable output. Each message completes `file '<f>' of container … `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Over [`MAX_FILE_BYTES`].
    #[error("is {size} bytes, more than the {MAX_FILE_BYTES} bytes (1 MiB) a Secret can hold")]
    TooLarge {
        /// The file's size.
        size: usize,
    },
    /// Not UTF-8 text.
    #[error("is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// Not JSON at all.
    #[error("is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object.
    #[error("is not a JSON object but {found}")]
    NotAnObject {
        /// What it is instead.
        found: &'static str,
    },
    /// A value that is not a string.
    #[error("has {found} as the value of key '{key}'; only string values are allowed")]
    NotAString {
        /// The key.
        key: String,
        /// What the value is.
        found: &'static str,
    },
    /// A fan-out value that is not itself a flat JSON object.
    #[error("has a fan-out value under key '{key}' that {inner}")]
    FanOut {
        /// The top-level key.
        key: String,
        /// What is wrong with its value.
        inner: Box<ParseError>,
    },
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn flat_object(text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ParseError::InvalidJson(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(ParseError::NotAnObject {
            found: kind(&value),
        });
    };
    map.into_iter()
        .map(|(key, v)| match v {
            Value::String(s) => Ok((key, s)),
            other => Err(ParseError::NotAString {
                key,
                found: kind(&other),
            }),
        })
        .collect()
}

/// A one-to-one output file: a flat JSON object of string values, at most 1 MiB of UTF-8.
pub fn parse_flat(bytes: &[u8]) -> Result<BTreeMap<String, String>, ParseError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ParseError::TooLarge { size: bytes.len() });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    flat_object(text)
}

/// A fan-out output file: a flat JSON object whose every value is a string holding a flat JSON
/// object of string values (upstream's format). Returns top-level key → that inner object.
pub fn parse_fan_out(
    bytes: &[u8],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, ParseError> {
    parse_flat(bytes)?
        .into_iter()
        .map(|(key, encoded)| match flat_object(&encoded) {
            Ok(inner) => Ok((key, inner)),
            Err(inner) => Err(ParseError::FanOut {
                key,
                inner: Box::new(inner),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flat_objects_of_strings() {
        assert_eq!(
            parse_flat(br#"{"hello": "world"}"#).unwrap(),
            map(&[("hello", "world")])
        );
        assert_eq!(parse_flat(b" {} \n").unwrap(), map(&[]));
        assert_eq!(
            parse_flat("{\"a\": \"\", \"ü\": \"line\\nbreak ✓\"}".as_bytes()).unwrap(),
            map(&[("a", ""), ("ü", "line\nbreak ✓")])
        );
    }

    #[test]
    fn upstreams_invalid_json_example() {
        let err = parse_flat(br#"{"hello"= "world"}"#).unwrap_err();
        assert!(matches!(err, ParseError::InvalidJson(_)), "{err:?}");
        assert!(err.to_string().starts_with("is not valid JSON: "), "{err}");
    }

    #[test]
    fn every_bad_input_is_named() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"",
                "is not valid JSON: EOF while parsing a value at line 1 column 0",
            ),
            (b"null", "is not a JSON object but null"),
            (b"[\"a\"]", "is not a JSON object but an array"),
            (b"\"text\"", "is not a JSON object but a string"),
            (
                br#"{"a": 1}"#,
                "has a number as the value of key 'a'; only string values are allowed",
            ),
            (
                br#"{"a": true}"#,
                "has a boolean as the value of key 'a'; only string values are allowed",
            ),
            (
                br#"{"a": null}"#,
                "has null as the value of key 'a'; only string values are allowed",
            ),
            (
                br#"{"a": {"b": "c"}}"#,
                "has an object as the value of key 'a'; only string values are allowed",
            ),
            (
                br#"{"a": ["c"]}"#,
                "has an array as the value of key 'a'; only string values are allowed",
            ),
            (
                b"{\"a\": \"\xff\"}",
                "is not UTF-8 text (invalid byte at offset 7)",
            ),
            (
                br#"{"a": "b"} trailing"#,
                "is not valid JSON: trailing characters at line 1 column 12",
            ),
        ];
        for (input, want) in cases {
            let err = parse_flat(input).unwrap_err();
            assert_eq!(
                err.to_string(),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn size_limit_is_one_mebibyte() {
        let fill = |n: usize| format!(r#"{{"k": "{}"}}"#, "x".repeat(n - 9)).into_bytes();
        let at_limit = fill(MAX_FILE_BYTES);
        assert_eq!(at_limit.len(), MAX_FILE_BYTES);
        assert!(parse_flat(&at_limit).is_ok());
        let over = fill(MAX_FILE_BYTES + 1);
        assert_eq!(
            parse_flat(&over).unwrap_err(),
            ParseError::TooLarge {
                size: MAX_FILE_BYTES + 1
            }
        );
    }

    /// The file upstream's fan-out test wrote: values are JSON-encoded flat objects.
    fn upstream_provides_json() -> Vec<u8> {
        let nats = serde_json::json!({"nats.user": "admin", "nats.password": "changeme", "nats.port": "1337"});
        let nuts = serde_json::json!({"nats.user": "udmin", "nats.password": "chungeme", "nats.port": "1337"});
        serde_json::to_vec(
            &serde_json::json!({"nats-nats": nats.to_string(), "nats-nuts": nuts.to_string()}),
        )
        .unwrap()
    }

    #[test]
    fn fan_out_as_upstream() {
        let out = parse_fan_out(&upstream_provides_json()).unwrap();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["nats-nats", "nats-nuts"]);
        assert_eq!(
            out["nats-nats"],
            map(&[
                ("nats.user", "admin"),
                ("nats.password", "changeme"),
                ("nats.port", "1337")
            ])
        );
        assert_eq!(out["nats-nuts"]["nats.password"], "chungeme");
    }

    #[test]
    fn fan_out_errors_name_the_key() {
        let err = parse_fan_out(br#"{"good": "{\"a\": \"b\"}", "bad": "not json"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("has a fan-out value under key 'bad' that is not valid JSON: "),
            "{err}"
        );
        let err = parse_fan_out(br#"{"bad": "{\"a\": 1}"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "has a fan-out value under key 'bad' that has a number as the value of key 'a'; only string values are allowed"
        );
        // a nested object instead of an encoded one is not upstream's format
        let err = parse_fan_out(br#"{"k": {"a": "b"}}"#).unwrap_err();
        assert!(matches!(err, ParseError::NotAString { .. }), "{err:?}");
    }
}
