//! Serving a static environment's live release: `current/<static>`, index files,
//! content types, ETag / `If-None-Match`, no listings.
//!
//! # Security
//! Which request paths may be served is decided in `core::static_path` (no `..`, no
//! dotfiles). Here the final path is resolved (symlinks followed) and refused unless it
//! is still inside the resolved directory, so a symlink committed in the repository
//! cannot reach the rest of the disk. Every refusal is a plain 404 that names nothing.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};

use crate::core::static_path::{content_type, etag, none_match, safe_segments};

/// A file that may be sent.
struct Found {
    path: PathBuf,
    len: u64,
    etag: String,
    content_type: &'static str,
}

/// Blocking: resolves links and reads metadata.
fn find(dir: &Path, segments: &[String]) -> Option<Found> {
    let base = dir.canonicalize().ok()?;
    let mut path = base.clone();
    path.extend(segments);
    let mut path = path.canonicalize().ok()?;
    if !path.starts_with(&base) {
        return None;
    }
    if path.is_dir() {
        path = path.join("index.html").canonicalize().ok()?;
        if !path.starts_with(&base) {
            return None;
        }
    }
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let name = path.file_name()?.to_str().unwrap_or_default().to_owned();
    Some(Found {
        etag: etag(meta.len(), modified),
        len: meta.len(),
        content_type: content_type(&name),
        path,
    })
}

pub fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("not found\n")
}

pub async fn serve(req: &HttpRequest, dir: PathBuf) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET, HEAD"))
            .finish();
    }
    let Some(segments) = safe_segments(req.path()) else {
        return not_found();
    };
    let found = match actix_web::rt::task::spawn_blocking(move || find(&dir, &segments)).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(_) => return HttpResponse::InternalServerError().finish(),
    };
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| none_match(v, &found.etag));
    let mut response = HttpResponse::build(if matches {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    });
    response
        .insert_header((header::ETAG, found.etag.clone()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if matches {
        return response.finish();
    }
    response.insert_header((header::CONTENT_TYPE, found.content_type));
    if req.method() == Method::HEAD {
        return response
            .insert_header((header::CONTENT_LENGTH, found.len))
            .finish();
    }
    match tokio::fs::File::open(&found.path).await {
        Ok(file) => response.body(actix_web::body::SizedStream::new(
            found.len,
            tokio_util::io::ReaderStream::new(file),
        )),
        Err(_) => not_found(),
    }
}
