//! A fake forge API (or notify endpoint) on 127.0.0.1: a thread that answers each
//! request as the test says and records it, so a test checks what stagehand sent.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// One request the fake API received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// By lower-case name.
    pub headers: HashMap<String, String>,
    /// The JSON body; `Null` when there was none or it was not JSON.
    pub body: Value,
}

impl Received {
    /// One header's value, empty when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// What the fake API received, in order.
pub type Seen = Arc<Mutex<Vec<Received>>>;

/// Starts the fake API: `answer` gives each request's status and JSON body. A request
/// is recorded before it is answered, unless it is answered 5xx (a simulated outage,
/// which the sender retries: the record is what the API accepted). Returns its URL.
pub fn fake_api(
    mut answer: impl FnMut(&Received) -> (u16, Value) + Send + 'static,
) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Seen::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(request) = read_request(&stream) else {
                continue;
            };
            let (status, body) = answer(&request);
            if status < 500 {
                log.lock().unwrap().push(request);
            }
            let reason = match status {
                200 => "OK",
                201 => "Created",
                404 => "Not Found",
                503 => "Service Unavailable",
                _ => "Answered",
            };
            let text = body.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, seen)
}

/// Reads one HTTP/1.1 request; `None` when the connection broke before its first line.
fn read_request(stream: &std::net::TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() {
            break;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    Some(Received {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}
