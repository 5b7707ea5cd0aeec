//! A response whose body is read piece by piece as the server sends it: a
//! held-open GetStreamingEvents answer (`Transfer-Encoding: chunked`), on a
//! connection of its own.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::connection::{classify_hyper_error, read_body, Connection};
use super::TransportError;

/// The head of a streamed response and its body, unread.
pub struct StreamingResponse {
    /// The host that answered (for error messages).
    pub host: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    /// Kept so the connection lives as long as the stream is read; dropping
    /// both ends it.
    _connection: Connection,
}

impl std::fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("host", &self.host)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl StreamingResponse {
    pub(super) fn new(
        host: String,
        head: http::response::Parts,
        body: Incoming,
        connection: Connection,
    ) -> StreamingResponse {
        StreamingResponse {
            host,
            status: head.status,
            headers: head.headers,
            body,
            _connection: connection,
        }
    }

    /// The next piece of the body as it arrived; `None` when the body ended.
    /// Not bounded in time: the caller waits with a timeout of its own.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, TransportError>> {
        loop {
            match self.body.frame().await? {
                Err(e) => return Some(Err(classify_hyper_error(&e, &self.host))),
                Ok(frame) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Some(Ok(data)),
                    // Empty data or trailers: nothing for the reader.
                    _ => continue,
                },
            }
        }
    }

    /// The whole body, at most `limit` bytes (an error answer's fault).
    pub async fn into_body(self, limit: usize) -> Result<Bytes, TransportError> {
        let content_length = self
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        read_body(self.body, content_length, limit, &self.host).await
    }
}
