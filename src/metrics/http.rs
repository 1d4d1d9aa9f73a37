//! A deliberately small HTTP/1.x server for `GET /metrics`: one request per connection, then
//! close. Bounded in every dimension an outside client controls: request head size
//! (`max_head`), time to send it (`read_deadline`, for the whole head, so a slowloris client
//! dribbling bytes cannot hold a slot), time to take the response (`write_deadline`) and
//! concurrent connections (`max_concurrent`; further connections wait in the kernel backlog).

use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpListener;
use glommio::sync::Semaphore;

use crate::sync::{deadline, unless, Latch};

/// OpenMetrics text, what prometheus-client encodes (Prometheus asks for it first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted request head (request line + headers + the blank line).
    pub max_head: usize,
    /// Time allowed for the whole request head to arrive.
    pub read_deadline: Duration,
    /// Time allowed for the whole response to be written.
    pub write_deadline: Duration,
    /// After the response, how long to keep reading (and discarding) what the client still
    /// sends; see [`linger`].
    pub linger: Duration,
    /// Connections served at once.
    pub max_concurrent: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_head: 8 * 1024,
        read_deadline: Duration::from_secs(5),
        write_deadline: Duration::from_secs(5),
        linger: Duration::from_secs(1),
        max_concurrent: 16,
    };
}

/// Why no request head could be read.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// `max_head` bytes arrived without the blank line ending the head.
    TooLarge,
    /// The peer closed before sending a whole head.
    Closed,
    Io(io::ErrorKind),
}

/// Reads up to and including the first `\r\n\r\n`, never buffering more than `max_head`
/// bytes. Bytes after the head (a body, pipelined requests) are ignored: the connection is
/// closed after one response.
pub async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    max_head: usize,
) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(max_head.min(1024));
    let mut chunk = [0u8; 1024];
    loop {
        // Invariant: head.len() <= max_head, and no terminator in `head` yet.
        let room = max_head.saturating_sub(head.len()).min(chunk.len());
        if room == 0 {
            return Err(HeadError::TooLarge);
        }
        let n = match r.read(&mut chunk[..room]).await {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => n,
            Err(e) => return Err(HeadError::Io(e.kind())),
        };
        // The terminator may straddle two reads: search from 3 bytes before the new data.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(pos) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(from + pos + 4);
            return Ok(head);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    HeaderTooLarge,
    InternalError,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::HeaderTooLarge => 431,
            Status::InternalError => 500,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::HeaderTooLarge => "Request Header Fields Too Large",
            Status::InternalError => "Internal Server Error",
        }
    }
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The metrics; `head_only` for HEAD (headers without the body).
    Metrics {
        head_only: bool,
    },
    Error(Status),
}

/// Routes a request head (as returned by [`read_head`]). Only the request line matters:
/// `GET|HEAD SP /metrics[?query] SP HTTP/1.0|HTTP/1.1`.
pub fn route(head: &[u8]) -> Route {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Route::Error(Status::BadRequest);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Error(Status::BadRequest);
    };
    if method.is_empty() || !target.starts_with('/') || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
    {
        return Route::Error(Status::BadRequest);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::Error(Status::MethodNotAllowed),
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path == "/metrics" {
        Route::Metrics { head_only }
    } else {
        Route::Error(Status::NotFound)
    }
}

/// A complete response; every response closes the connection.
pub fn response(status: Status, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        status.code(),
        status.reason(),
        body.len()
    );
    if status == Status::MethodNotAllowed {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

fn error_response(status: Status) -> Vec<u8> {
    let body = format!("{} {}\n", status.code(), status.reason());
    response(status, "text/plain; charset=utf-8", body.as_bytes(), false)
}

/// Serves one connection: reads one request head within the limits, answers it, returns the
/// status sent (None when the peer left before sending a whole head). `render` produces the
/// exposition and runs only for a valid metrics request.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    limits: &Limits,
    render: impl FnOnce() -> Result<String, fmt::Error>,
) -> Option<Status> {
    let (status, bytes) =
        match deadline(limits.read_deadline, read_head(stream, limits.max_head)).await {
            None => (
                Status::RequestTimeout,
                error_response(Status::RequestTimeout),
            ),
            Some(Err(HeadError::TooLarge)) => (
                Status::HeaderTooLarge,
                error_response(Status::HeaderTooLarge),
            ),
            Some(Err(HeadError::Closed | HeadError::Io(_))) => return None,
            Some(Ok(head)) => match route(&head) {
                Route::Error(s) => (s, error_response(s)),
                Route::Metrics { head_only } => match render() {
                    Ok(body) => (
                        Status::Ok,
                        response(Status::Ok, CONTENT_TYPE, body.as_bytes(), head_only),
                    ),
                    Err(_) => {
                        tracing::warn!("metrics encoding failed");
                        (Status::InternalError, error_response(Status::InternalError))
                    }
                },
            },
        };
    let written = deadline(limits.write_deadline, async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    })
    .await;
    if matches!(written, Some(Ok(()))) {
        linger(stream, limits.linger).await;
    } else {
        tracing::debug!(
            status = status.code(),
            "metrics client did not take the response"
        );
    }
    Some(status)
}

/// Most discarded input after a response.
const LINGER_BYTES: usize = 64 * 1024;

/// Sends FIN, then reads and discards input until the client closes, for at most `dur` and
/// `LINGER_BYTES`. Closing a socket with unread input (the rest of an oversized head, a
/// request body) makes the kernel send a reset, which can destroy the error response before
/// the client has read it.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, dur: Duration) {
    if stream.close().await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    let mut left = LINGER_BYTES;
    let _ = deadline(dur, async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Accepts scrapes until `stop` is set, at most `limits.max_concurrent` at a time.
pub async fn accept_loop(
    listener: TcpListener,
    stop: &Latch,
    limits: Limits,
    render: Rc<dyn Fn() -> Result<String, fmt::Error>>,
) {
    let slots = Rc::new(Semaphore::new(limits.max_concurrent.max(1) as u64));
    loop {
        // Take a slot before accepting: excess clients wait in the backlog, costing nothing.
        let permit = match unless(stop, slots.acquire_static_permit(1)).await {
            Some(Ok(p)) => p,
            Some(Err(_)) | None => return, // closed semaphore (never) or shutdown
        };
        let stream = match unless(stop, listener.accept()).await {
            None => return,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                // e.g. EMFILE: back off instead of spinning on the error.
                tracing::warn!(error = %e, "metrics accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let render = render.clone();
        glommio::spawn_local(async move {
            let mut stream = stream;
            handle(&mut stream, &limits, || render()).await;
            drop(stream);
            drop(permit);
        })
        .detach();
    }
}
