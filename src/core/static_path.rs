//! What a static environment may serve: a request path made into path segments inside
//! the served directory (or refused), and a file's content type from its name.
//!
//! # Security
//! The threat is a request reading outside `current/<static>`: `..`, encoded `%2e%2e`,
//! backslashes, NUL, absolute segments, or a dotfile (`.env`, `.git/`). Every segment
//! is checked after percent-decoding, and any segment starting with `.` is refused, so
//! `..` and dotfiles both end here. Symlinks inside the directory are the edge's job: it
//! resolves the final path and refuses one that lands outside (`front_door::static_files`).

/// The segments of `url_path` (the request's path, still percent-encoded), or `None`
/// when the path must not be served. An empty list is the directory itself.
pub fn safe_segments(url_path: &str) -> Option<Vec<String>> {
    let decoded = percent_encoding::percent_decode_str(url_path)
        .decode_utf8()
        .ok()?;
    let mut segments = Vec::new();
    for segment in decoded.split('/') {
        if segment.is_empty() {
            continue;
        }
        let refused = segment.starts_with('.')
            || segment.contains('\\')
            || segment.contains('\0')
            || segment.contains(':');
        if refused {
            return None;
        }
        segments.push(segment.to_owned());
    }
    Some(segments)
}

/// The `Content-Type` for a file name; unknown extensions are plain bytes, so a browser
/// never guesses (the edge also sends `X-Content-Type-Options: nosniff`).
pub fn content_type(file_name: &str) -> &'static str {
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "pdf" => "application/pdf",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// A strong validator from what the edge read of the file: size and modification time.
/// A deploy writes a new release directory, so a changed file changes both or its time.
pub fn etag(len: u64, modified_nanos: u128) -> String {
    format!("\"{len:x}-{modified_nanos:x}\"")
}

/// Whether an `If-None-Match` header names `etag` (or is `*`).
pub fn none_match(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_table() {
        fn check(path: &str, expected: Option<&[&str]>) {
            let expected = expected.map(|e| e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(safe_segments(path), expected, "{path}");
        }
        check("/", Some(&[]));
        check("", Some(&[]));
        check("/index.html", Some(&["index.html"]));
        check("/css//site.css", Some(&["css", "site.css"]));
        check("/a%20b.txt", Some(&["a b.txt"]));
        check("/../etc/passwd", None);
        check("/a/../../etc/passwd", None);
        check("/%2e%2e/etc/passwd", None);
        check("/%2E%2E%2fetc%2fpasswd", None);
        check("/..%5c..%5cetc", None);
        check("/.env", None);
        check("/.git/config", None);
        check("/assets/.hidden/x", None);
        check("/a%00b", None);
        check("/c:/windows", None);
        check("/%ff", None);
        check("/./x", None);
    }

    #[test]
    fn content_type_table() {
        fn check(name: &str, expected: &str) {
            assert_eq!(content_type(name), expected, "{name}");
        }
        check("index.html", "text/html; charset=utf-8");
        check("APP.JS", "text/javascript; charset=utf-8");
        check("logo.svg", "image/svg+xml");
        check("data.bin", "application/octet-stream");
        check("README", "application/octet-stream");
    }

    #[test]
    fn none_match_table() {
        let tag = etag(10, 255);
        assert_eq!(tag, "\"a-ff\"");
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", {tag}"), &tag));
        assert!(none_match(&format!("W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"a-fe\"", &tag));
        assert!(!none_match("", &tag));
    }
}
