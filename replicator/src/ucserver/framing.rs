//! Framing of JSON ROSE messages on a raw byte stream (the UCServer's TCP
//! port 7222): `J`, seven ASCII digits giving the length of the JSON in
//! bytes, then the JSON. [`super::native::NativeTransport`] and the
//! simulator's native listener use this codec.

use bytes::{Buf, BytesMut};

/// Longest JSON a 7-digit length can announce.
pub const MAX_FRAME_LEN: usize = 9_999_999;
const HEADER_LEN: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("message of {0} bytes exceeds the 7-digit frame length limit of {MAX_FRAME_LEN}")]
    TooLong(usize),
    #[error(
        "frame does not start with 'J' (got byte 0x{0:02x}); BER-encoded ROSE is not supported"
    )]
    NotJson(u8),
    #[error("frame length {0:?} is not 7 ASCII digits")]
    BadLength(String),
    #[error("frame payload is not UTF-8")]
    NotUtf8,
    #[error("frame announces {len} bytes, more than the limit of {limit} bytes")]
    Oversize { len: usize, limit: usize },
}

/// Appends the frame of `json` to `out`.
pub fn encode_frame(json: &str, out: &mut BytesMut) -> Result<(), FramingError> {
    if json.len() > MAX_FRAME_LEN {
        return Err(FramingError::TooLong(json.len()));
    }
    out.extend_from_slice(format!("J{:07}", json.len()).as_bytes());
    out.extend_from_slice(json.as_bytes());
    Ok(())
}

/// Takes one complete frame off the front of `buf`; `Ok(None)` when more
/// bytes are needed.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<String>, FramingError> {
    decode_frame_limited(buf, MAX_FRAME_LEN)
}

/// Like [`decode_frame`], refusing a frame that announces more than `limit`
/// bytes as soon as its header is read, so a reader never buffers more than
/// `limit` plus the header.
pub fn decode_frame_limited(
    buf: &mut BytesMut,
    limit: usize,
) -> Result<Option<String>, FramingError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'J' {
        return Err(FramingError::NotJson(buf[0]));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let digits = &buf[1..HEADER_LEN];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::BadLength(
            String::from_utf8_lossy(digits).into_owned(),
        ));
    }
    let len: usize = std::str::from_utf8(digits)
        .expect("ASCII digits")
        .parse()
        .expect("seven digits fit usize");
    if len > limit {
        return Err(FramingError::Oversize { len, limit });
    }
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let payload = buf.split_to(len);
    String::from_utf8(payload.to_vec())
        .map(Some)
        .map_err(|_| FramingError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_partial_input_waits() {
        let mut buf = BytesMut::new();
        encode_frame(r#"{"a":1}"#, &mut buf).unwrap();
        encode_frame("{}", &mut buf).unwrap();
        assert_eq!(&buf[..8], b"J0000007");
        let mut partial = BytesMut::from(&buf[..10]);
        assert_eq!(decode_frame(&mut partial), Ok(None));
        assert_eq!(decode_frame(&mut buf), Ok(Some(r#"{"a":1}"#.to_owned())));
        assert_eq!(decode_frame(&mut buf), Ok(Some("{}".to_owned())));
        assert_eq!(decode_frame(&mut buf), Ok(None));
    }

    #[test]
    fn malformed_headers_are_named() {
        let mut ber = BytesMut::from(&[0x30u8, 0x03][..]);
        assert_eq!(decode_frame(&mut ber), Err(FramingError::NotJson(0x30)));
        let mut bad = BytesMut::from(&b"J00x0002{}"[..]);
        assert_eq!(
            decode_frame(&mut bad),
            Err(FramingError::BadLength("00x0002".into()))
        );
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_from_its_header() {
        let mut buf = BytesMut::from(&b"J0000100{"[..]);
        assert_eq!(
            decode_frame_limited(&mut buf, 99),
            Err(FramingError::Oversize {
                len: 100,
                limit: 99
            })
        );
    }
}
