//! The post-switch health check: `GET` an `http://` URL until it answers 2xx or the
//! check's time runs out. A plain HTTP/1.1 request over `std::net` on the blocking
//! pool: a health URL is a local endpoint, and this keeps the runner free of any HTTP
//! client's runtime.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Polls `url` once a second until a 2xx, or until `timeout`. Returns the last
/// problem seen on failure. Blocking.
pub fn wait_healthy(url: &str, timeout: Duration) -> Result<u16, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let attempt = get_status(url, remaining.min(Duration::from_secs(5)));
        match attempt {
            Ok(code) if (200..300).contains(&code) => return Ok(code),
            Ok(code) if Instant::now() + Duration::from_secs(1) >= deadline => {
                return Err(format!("{url} answered {code}"));
            }
            Err(e) if Instant::now() + Duration::from_secs(1) >= deadline => {
                return Err(format!("{url}: {e}"));
            }
            _ => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// The status code of `GET url` (`http://host[:port]/path` only).
pub fn get_status(url: &str, timeout: Duration) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are supported".to_string())?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let timeout = timeout.max(Duration::from_millis(100));
    let socket = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {authority}"))?;
    let mut stream = TcpStream::connect_timeout(&socket, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: stagehand-health\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut filled = 0;
    while filled < 12 {
        let n = stream
            .read(&mut head[filled..])
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let line = String::from_utf8_lossy(&head[..filled]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_once(status: &'static str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                );
            }
        });
        url
    }

    #[test]
    fn reads_status_codes() {
        assert_eq!(
            get_status(&serve_once("204 No Content"), Duration::from_secs(2)),
            Ok(204)
        );
        assert_eq!(
            get_status(&serve_once("503 Unavailable"), Duration::from_secs(2)),
            Ok(503)
        );
        assert!(get_status("https://x", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn waits_until_healthy_or_gives_up() {
        assert_eq!(
            wait_healthy(&serve_once("200 OK"), Duration::from_secs(3)),
            Ok(200)
        );
        // Nothing listens on this port after the listener is dropped.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = wait_healthy(
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_millis(1500),
        )
        .unwrap_err();
        assert!(err.contains("127.0.0.1"), "{err}");
    }
}
