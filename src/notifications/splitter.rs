//! Finds complete top-level XML documents in a byte stream however its
//! pieces cut them: a GetStreamingEvents answer is one chunked HTTP body
//! holding a sequence of SOAP envelopes, each to be parsed as soon as it is
//! whole.
//!
//! A small lexer follows just enough of XML to count element depth: tags
//! (with quoted attribute values, which may hold `>`), end tags, empty
//! elements, processing instructions (the `<?xml ...?>` declaration),
//! comments, CDATA sections and declarations. Each byte is looked at once
//! (a markup start waiting for more bytes is looked at again, at most nine
//! bytes), so the work is linear in the input; the bytes held are bounded
//! by the envelope limit.

use bytes::Bytes;

/// Why the byte stream cannot be split into envelopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// One envelope is larger than allowed.
    #[error("a message in the event stream is larger than the limit of {limit} bytes; raise the stream's message size limit if the server's messages are this large")]
    TooLarge { limit: usize },
    /// The stream is not a sequence of XML documents.
    #[error("the event stream is not a sequence of XML messages at byte {offset}: {reason}")]
    Malformed { offset: u64, reason: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Character data (or nothing, between envelopes).
    Text,
    /// Inside `<name ...`; `slash` when the last byte outside quotes was `/`.
    StartTag { quote: Option<u8>, slash: bool },
    /// Inside `</name`.
    EndTag,
    /// Inside `<?...`; `question` when the last byte was `?`.
    Pi { question: bool },
    /// Inside `<!--...`; how many `-` just went by (at most 2).
    Comment { dashes: u8 },
    /// Inside `<![CDATA[...`; how many `]` just went by (at most 2).
    Cdata { brackets: u8 },
    /// Inside another `<!...` declaration (`<!DOCTYPE`, which the parser
    /// refuses later): up to its `>` outside quotes and `[...]`.
    Declaration { quote: Option<u8>, brackets: u32 },
}

/// Splits a byte stream into top-level XML documents.
#[derive(Debug)]
pub struct EnvelopeSplitter {
    buf: Vec<u8>,
    /// Bytes before this are handed out or skipped; dropped on the next push.
    consumed: usize,
    /// The next byte to look at.
    pos: usize,
    /// Where the current document starts (its first `<`).
    start: Option<usize>,
    depth: usize,
    state: State,
    max_bytes: usize,
    /// Bytes dropped from `buf` so far (for error offsets).
    dropped: u64,
}

const CDATA_OPEN: &[u8] = b"<![CDATA[";
const COMMENT_OPEN: &[u8] = b"<!--";
/// A UTF-8 byte order mark may precede a document.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

impl EnvelopeSplitter {
    /// A splitter refusing any document over `max_bytes`.
    pub fn new(max_bytes: usize) -> EnvelopeSplitter {
        EnvelopeSplitter {
            buf: Vec::new(),
            consumed: 0,
            pos: 0,
            start: None,
            depth: 0,
            state: State::Text,
            max_bytes,
            dropped: 0,
        }
    }

    /// Adds the next piece of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.consumed > 0 {
            // Only once per piece, and only what follows the documents
            // already handed out moves: linear overall.
            self.buf.drain(..self.consumed);
            self.pos -= self.consumed;
            self.start = self.start.map(|s| s - self.consumed);
            self.dropped += self.consumed as u64;
            self.consumed = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete document, if the bytes so far hold one.
    pub fn next_envelope(&mut self) -> Result<Option<Bytes>, SplitError> {
        match self.scan()? {
            Some((start, end)) => {
                if end - start > self.max_bytes {
                    return Err(self.too_large());
                }
                self.consumed = end;
                self.start = None;
                Ok(Some(Bytes::copy_from_slice(&self.buf[start..end])))
            }
            None => {
                let held = self.buf.len() - self.start.unwrap_or(self.consumed);
                if held > self.max_bytes {
                    return Err(self.too_large());
                }
                Ok(None)
            }
        }
    }

    /// Whether a document has begun and not ended (the stream must not end here).
    pub fn inside_envelope(&self) -> bool {
        self.start.is_some()
    }

    fn too_large(&self) -> SplitError {
        SplitError::TooLarge {
            limit: self.max_bytes,
        }
    }

    fn malformed(&self, reason: &'static str) -> SplitError {
        SplitError::Malformed {
            offset: self.dropped + self.pos as u64,
            reason,
        }
    }

    /// Scans on from `pos`: the bounds of a document completed, or `None`
    /// when more bytes are needed.
    fn scan(&mut self) -> Result<Option<(usize, usize)>, SplitError> {
        while self.pos < self.buf.len() {
            let byte = self.buf[self.pos];
            match self.state {
                State::Text => {
                    if byte == b'<' {
                        let Some((state, skip)) = self.markup_at(self.pos) else {
                            // Which markup this is shows only with more bytes.
                            return Ok(None);
                        };
                        if self.depth == 0 && self.start.is_none() {
                            self.start = Some(self.pos);
                        }
                        self.state = state;
                        self.pos += skip;
                        continue;
                    }
                    if self.depth == 0 {
                        if !(byte.is_ascii_whitespace() || BOM.contains(&byte)) {
                            return Err(self.malformed("text outside a message"));
                        }
                        if self.start.is_none() {
                            self.consumed = self.pos + 1;
                        }
                    }
                }
                State::StartTag { quote, slash } => match quote {
                    Some(q) => {
                        if byte == q {
                            self.state = State::StartTag {
                                quote: None,
                                slash: false,
                            };
                        }
                    }
                    None => match byte {
                        b'"' | b'\'' => {
                            self.state = State::StartTag {
                                quote: Some(byte),
                                slash: false,
                            }
                        }
                        b'>' => {
                            self.pos += 1;
                            self.state = State::Text;
                            if !slash {
                                self.depth += 1;
                            } else if self.depth == 0 {
                                return Ok(self.complete());
                            }
                            continue;
                        }
                        _ => {
                            self.state = State::StartTag {
                                quote: None,
                                slash: byte == b'/',
                            }
                        }
                    },
                },
                State::EndTag => {
                    if byte == b'>' {
                        if self.depth == 0 {
                            return Err(self.malformed("an end tag without its start tag"));
                        }
                        self.pos += 1;
                        self.state = State::Text;
                        self.depth -= 1;
                        if self.depth == 0 {
                            return Ok(self.complete());
                        }
                        continue;
                    }
                }
                State::Pi { question } => {
                    self.state = if question && byte == b'>' {
                        State::Text
                    } else {
                        State::Pi {
                            question: byte == b'?',
                        }
                    };
                }
                State::Comment { dashes } => {
                    self.state = if dashes >= 2 && byte == b'>' {
                        State::Text
                    } else if byte == b'-' {
                        State::Comment {
                            dashes: (dashes + 1).min(2),
                        }
                    } else {
                        State::Comment { dashes: 0 }
                    };
                }
                State::Cdata { brackets } => {
                    self.state = if brackets >= 2 && byte == b'>' {
                        State::Text
                    } else if byte == b']' {
                        State::Cdata {
                            brackets: (brackets + 1).min(2),
                        }
                    } else {
                        State::Cdata { brackets: 0 }
                    };
                }
                State::Declaration { quote, brackets } => {
                    self.state = match (quote, byte) {
                        (Some(q), b) if b == q => State::Declaration {
                            quote: None,
                            brackets,
                        },
                        (Some(_), _) => self.state,
                        (None, b'"' | b'\'') => State::Declaration {
                            quote: Some(byte),
                            brackets,
                        },
                        (None, b'[') => State::Declaration {
                            quote,
                            brackets: brackets + 1,
                        },
                        (None, b']') => State::Declaration {
                            quote,
                            brackets: brackets.saturating_sub(1),
                        },
                        (None, b'>') if brackets == 0 => State::Text,
                        _ => self.state,
                    };
                }
            }
            self.pos += 1;
        }
        Ok(None)
    }

    /// The document that just ended at `pos`.
    fn complete(&mut self) -> Option<(usize, usize)> {
        let start = self.start.expect("a document ends only after it began");
        Some((start, self.pos))
    }

    /// What the `<` at `at` opens and how many bytes its opening takes;
    /// `None` when that shows only with more bytes.
    fn markup_at(&self, at: usize) -> Option<(State, usize)> {
        let rest = &self.buf[at..];
        match rest.get(1)? {
            b'/' => Some((State::EndTag, 2)),
            b'?' => Some((State::Pi { question: false }, 2)),
            b'!' => {
                for (open, state) in [
                    (COMMENT_OPEN, State::Comment { dashes: 0 }),
                    (CDATA_OPEN, State::Cdata { brackets: 0 }),
                ] {
                    let known = rest.len().min(open.len());
                    if rest[..known] == open[..known] {
                        if known < open.len() {
                            return None;
                        }
                        return Some((state, open.len()));
                    }
                }
                Some((
                    State::Declaration {
                        quote: None,
                        brackets: 0,
                    },
                    2,
                ))
            }
            _ => Some((
                State::StartTag {
                    quote: None,
                    slash: false,
                },
                1,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three envelopes as Exchange streams them (declaration before each),
    /// with what could fool a splitter: `>` and `/>` inside attribute
    /// values, a comment with tags in it, CDATA with `</` in it, empty
    /// elements, whitespace and a byte order mark between them.
    const STREAM: &str = concat!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>",
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>",
        "<m:A x=\"a>b\" y='c/>d'/><!-- </s:Envelope> --><m:B><![CDATA[</m:B>]]]></m:B>",
        "</s:Body></s:Envelope>\r\n",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Envelope><Body/></Envelope>",
        "  \n<Envelope><Body>text &amp; more<?pi x?></Body></Envelope>",
    );

    fn expected() -> Vec<String> {
        let text = STREAM.trim_start_matches('\u{feff}');
        let first_end = text.find("</s:Envelope>\r\n").unwrap() + "</s:Envelope>".len();
        let second_start = text[first_end..].find("<?xml").unwrap() + first_end;
        let second_end = text.find("</Envelope>").unwrap() + "</Envelope>".len();
        let third_start = text[second_end..].find("<Envelope>").unwrap() + second_end;
        vec![
            text[..first_end].to_owned(),
            text[second_start..second_end].to_owned(),
            text[third_start..].to_owned(),
        ]
    }

    fn split(pieces: &[&[u8]], max: usize) -> Result<Vec<String>, SplitError> {
        let mut splitter = EnvelopeSplitter::new(max);
        let mut found = Vec::new();
        for piece in pieces {
            splitter.push(piece);
            while let Some(envelope) = splitter.next_envelope()? {
                found.push(String::from_utf8(envelope.to_vec()).unwrap());
            }
        }
        assert!(!splitter.inside_envelope());
        Ok(found)
    }

    #[test]
    fn every_split_point_gives_the_same_envelopes() {
        let bytes = STREAM.as_bytes();
        let expected = expected();
        for at in 0..=bytes.len() {
            let found = split(&[&bytes[..at], &bytes[at..]], 4096).unwrap();
            assert_eq!(found, expected, "split at byte {at}");
        }
        for second in 1..bytes.len() {
            let first = second / 2;
            let found = split(
                &[&bytes[..first], &bytes[first..second], &bytes[second..]],
                4096,
            )
            .unwrap();
            assert_eq!(found, expected, "split at bytes {first} and {second}");
        }
    }

    #[test]
    fn byte_by_byte_gives_the_same_envelopes() {
        let pieces: Vec<&[u8]> = STREAM.as_bytes().chunks(1).collect();
        assert_eq!(split(&pieces, 4096).unwrap(), expected());
    }

    #[test]
    fn an_envelope_over_the_limit_is_refused_before_it_ends() {
        let mut splitter = EnvelopeSplitter::new(100);
        splitter.push(b"<Envelope><Body>");
        assert_eq!(splitter.next_envelope(), Ok(None));
        splitter.push(&[b'x'; 200]);
        assert_eq!(
            splitter.next_envelope(),
            Err(SplitError::TooLarge { limit: 100 })
        );
        // A whole one over the limit in one piece, too.
        let mut splitter = EnvelopeSplitter::new(10);
        splitter.push(b"<Envelope>0123456789</Envelope>");
        assert_eq!(
            splitter.next_envelope(),
            Err(SplitError::TooLarge { limit: 10 })
        );
    }

    #[test]
    fn many_small_envelopes_do_not_grow_the_buffer() {
        let mut splitter = EnvelopeSplitter::new(64);
        for _ in 0..10_000 {
            splitter.push(b"<E><B/></E>\n");
            assert_eq!(
                splitter.next_envelope().unwrap().as_deref(),
                Some(&b"<E><B/></E>"[..])
            );
            assert_eq!(splitter.next_envelope(), Ok(None));
        }
        assert!(splitter.buf.len() < 64, "{}", splitter.buf.len());
    }

    #[test]
    fn garbage_between_envelopes_and_stray_end_tags_are_errors() {
        let mut splitter = EnvelopeSplitter::new(100);
        splitter.push(b"<E/>HTTP/1.1 200 OK");
        assert!(splitter.next_envelope().unwrap().is_some());
        assert!(matches!(
            splitter.next_envelope(),
            Err(SplitError::Malformed { offset: 4, .. })
        ));
        let mut splitter = EnvelopeSplitter::new(100);
        splitter.push(b"</E>");
        assert!(matches!(
            splitter.next_envelope(),
            Err(SplitError::Malformed { .. })
        ));
    }

    #[test]
    fn a_stream_cut_inside_an_envelope_is_noticed() {
        let mut splitter = EnvelopeSplitter::new(100);
        splitter.push(b"<E><B>");
        assert_eq!(splitter.next_envelope(), Ok(None));
        assert!(splitter.inside_envelope());
    }
}
