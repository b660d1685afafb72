//! ZooKeeper's path rules (`PathUtils.validatePath`), checked before anything is sent.

/// Why a path is not a valid ZooKeeper path.
///
/// # Examples
///
/// ```
/// use corral_proto::validate_path;
///
/// let err = validate_path("services/web").unwrap_err();
/// assert_eq!(err.path, "services/web");
/// assert_eq!(err.reason, "path must start with /");
/// assert_eq!(err.to_string(), r#"invalid path "services/web": path must start with /"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path {path:?}: {reason}")]
pub struct PathError {
    /// The offending path.
    pub path: String,
    /// The rule it breaks.
    pub reason: &'static str,
}

/// Checks `path` as ZooKeeper does.
///
/// A path is absolute (`/a/b`), has no trailing `/` (except the root), no empty segment, no
/// `.` or `..` segment, and none of: U+0000, control characters U+0001–U+001F and
/// U+007F–U+009F, U+D800–U+F8FF (which, as Java sees strings, rules out every character outside
/// the Basic Multilingual Plane) and U+FFF0–U+FFFF.
///
/// # Errors
///
/// [`PathError`] naming the rule the path breaks.
///
/// # Examples
///
/// ```
/// use corral_proto::validate_path;
///
/// assert!(validate_path("/services/web").is_ok());
/// assert_eq!(validate_path("/a//b").unwrap_err().reason, "empty node name");
/// ```
pub fn validate_path(path: &str) -> Result<(), PathError> {
    check(path, false)
}

/// Checks the path of a sequential create, which may end with `/` (the server appends the
/// sequence number): the path is checked with a `1` appended, as ZooKeeper does.
///
/// # Errors
///
/// [`PathError`] naming the rule the path breaks.
///
/// # Examples
///
/// ```
/// use corral_proto::{validate_path, validate_sequential_path};
///
/// assert!(validate_sequential_path("/queue/").is_ok()); // the node is named by its number
/// assert!(validate_path("/queue/").is_err());
/// assert!(validate_sequential_path("/queue//").is_err());
/// ```
pub fn validate_sequential_path(path: &str) -> Result<(), PathError> {
    check(path, true)
}

fn check(path: &str, sequential: bool) -> Result<(), PathError> {
    let fail = |reason| Err(PathError { path: path.to_owned(), reason });
    if path.is_empty() {
        return fail("path must not be empty");
    }
    if !path.starts_with('/') {
        return fail("path must start with /");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') && !sequential {
        return fail("path must not end with /");
    }
    let body = &path[1..];
    let segments: Vec<&str> = body.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if segment.is_empty() {
            if last && sequential {
                continue;
            }
            return fail("empty node name");
        }
        // With the sequence suffix appended, a final "." or ".." is a valid name.
        if (*segment == "." || *segment == "..") && !(last && sequential) {
            return fail("relative paths (. and ..) are not allowed");
        }
    }
    for c in path.chars() {
        let reason = match c {
            '\u{0}' => "null character not allowed",
            '\u{1}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => "control characters not allowed",
            // Rust strings cannot hold surrogates (U+D800–U+DFFF); the private-use area is refused.
            '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}' => "invalid character",
            c if (c as u32) > 0xffff => "characters outside the Basic Multilingual Plane are not allowed",
            _ => continue,
        };
        return fail(reason);
    }
    Ok(())
}

/// The parent of `path` (`/` for a child of the root), or `None` for the root.
///
/// The path is not validated; pass a valid one.
///
/// # Examples
///
/// ```
/// use corral_proto::path::parent;
///
/// assert_eq!(parent("/services/web"), Some("/services"));
/// assert_eq!(parent("/services"), Some("/"));
/// assert_eq!(parent("/"), None);
/// ```
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last segment of `path` (the empty string for the root).
///
/// The path is not validated; pass a valid one.
///
/// # Examples
///
/// ```
/// use corral_proto::path::name;
///
/// assert_eq!(name("/locks/lock-0000000003"), "lock-0000000003");
/// assert_eq!(name("/"), "");
/// ```
pub fn name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_rules() {
        for ok in ["/", "/a", "/a/b", "/a/.b", "/a/..b", "/zookeeper", "/ü", "/a b"] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/a/..",
            "/a/./b",
            "/a\0b",
            "/a\u{1}",
            "/\u{7f}",
            "/\u{9f}",
            "/\u{e000}",
            "/\u{fff0}",
            "/😀",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sequential_prefixes_may_end_with_slash() {
        assert!(validate_sequential_path("/a/").is_ok());
        assert!(validate_sequential_path("/a/lock-").is_ok());
        assert!(validate_sequential_path("/a/.").is_ok());
        assert!(validate_sequential_path("/a//").is_err());
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(name("/a/b"), "b");
        assert_eq!(name("/"), "");
    }
}
