//! A small, bounded Server-Sent Events parser (the WHATWG event-stream format): bytes in,
//! complete `event`/`data` pairs out, never holding more than one event of at most
//! `max_event` bytes.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, empty when the event had none.
    pub(crate) event: String,
    /// The `data:` lines, joined with `\n`.
    pub(crate) data: String,
}

/// The stream broke the format or the size bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseError(pub(crate) String);

/// Incremental parser state.
#[derive(Debug)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    /// A `\r` ended the last line: a `\n` right after it belongs to the same line break.
    after_cr: bool,
    max_event: usize,
}

impl SseParser {
    /// A parser refusing events (or lines) longer than `max_event` bytes.
    pub(crate) fn new(max_event: usize) -> Self {
        Self {
            line: Vec::new(),
            event: String::new(),
            data: String::new(),
            has_data: false,
            after_cr: false,
            max_event,
        }
    }

    /// Feeds `bytes`, appending every event they complete to `out`.
    pub(crate) fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(out)?;
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() + self.data.len() >= self.max_event {
                        return Err(SseError(format!(
                            "an event is longer than {} bytes",
                            self.max_event
                        )));
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event.clear();
            self.has_data = false;
            return Ok(());
        }
        let line = std::str::from_utf8(&self.line)
            .map_err(|_| SseError("an event line is not UTF-8".into()))?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "" => {} // a comment (`: keep-alive`)
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // `id`, `retry` and unknown fields: nothing this client uses
        }
        self.line.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new(64);
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn events_are_split_on_blank_lines_whatever_the_chunking() {
        let text =
            b"event: a\ndata: 1\n\n: comment\r\ndata: x\r\ndata:y\r\n\r\ndata: z\r\rdata: partial";
        let whole = parse(&[text]);
        let bytewise: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(parse(&bytewise), whole);
        assert_eq!(
            whole,
            [
                SseEvent {
                    event: "a".into(),
                    data: "1".into()
                },
                SseEvent {
                    event: String::new(),
                    data: "x\ny".into()
                },
                SseEvent {
                    event: String::new(),
                    data: "z".into()
                },
            ]
        );
    }

    #[test]
    fn an_oversized_event_is_refused() {
        let mut parser = SseParser::new(16);
        let mut out = Vec::new();
        let err = parser.feed(&[b'a'; 32], &mut out).unwrap_err();
        assert!(err.0.contains("16 bytes"));
        let mut parser = SseParser::new(16);
        let err = parser
            .feed(b"data: 0123456\ndata: 0123456789\n", &mut out)
            .unwrap_err();
        assert!(err.0.contains("longer"), "{err:?}");
    }
}
