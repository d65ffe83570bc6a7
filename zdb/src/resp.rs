//! RESP2 request parsing and reply encoding.
//!
//! The parser is incremental: bytes are appended to a `BytesMut` as they
//! arrive and [`RequestParser::next`] pulls complete requests off its front.
//! Every size it accepts is bounded by [`Limits`], so a hostile client can make
//! the server hold at most one request's worth of memory per connection:
//! - a bulk longer than [`Limits::max_arg_len`] (but below [`HARD_BULK_CAP`]) is
//!   skipped without being stored and the request becomes [`Request::TooLarge`],
//!   so the client gets a clear error and the connection survives;
//! - anything that cannot be framed (bad type byte, absurd lengths, overlong
//!   header or inline lines) is a [`ProtocolError`] and closes the connection,
//!   as redis does.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Declared bulk lengths above this are treated as garbage, not as a big value
/// (redis' `proto-max-bulk-len` default).
pub const HARD_BULK_CAP: usize = 512 * 1024 * 1024;
/// Longest `*N` / `$N` header line accepted, CRLF included.
const MAX_HEADER_LINE: usize = 32;

/// Size limits enforced while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most elements in one request array.
    pub max_args: usize,
    /// Largest single argument kept in memory.
    pub max_arg_len: usize,
    /// Largest sum of argument lengths kept for one request.
    pub max_request_len: usize,
    /// Longest inline (telnet style) command line.
    pub max_inline_len: usize,
}

/// 0-db's payload limit.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // 0-db's: no command takes more than a few arguments.
            max_args: 1024,
            max_arg_len: MAX_PAYLOAD,
            // a SET with a full payload plus key and command name
            max_request_len: MAX_PAYLOAD + 64 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Command name and arguments, as sent.
    Command(Vec<Bytes>),
    /// A well-framed request with an argument over the limits; its bytes were discarded.
    TooLarge,
    /// `*0`: a request without a command. 0-db answers `-Missing arguments` and goes on.
    Empty,
}

/// A client sent bytes that cannot be framed as RESP; the connection must close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("invalid multibulk length")]
    BadArrayLength,
    #[error("invalid bulk length")]
    BadBulkLength,
    /// 0-db's words, which its clients match.
    #[error("Too many arguments")]
    TooManyArgs(usize),
    #[error("header line too long")]
    HeaderTooLong,
    #[error("inline request too long")]
    InlineTooLong,
    #[error("bulk not terminated by CRLF")]
    MissingCrlf,
    #[error("unbalanced quotes in inline request")]
    UnbalancedQuotes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Inside a `*N` request, `remaining` elements still to come.
    Args {
        remaining: usize,
    },
    /// Waiting for a bulk body of `len` bytes plus CRLF.
    Bulk {
        remaining: usize,
        len: usize,
    },
    /// Throwing away an oversized bulk body (CRLF included).
    Discard {
        remaining: usize,
        bytes: usize,
    },
}

/// Incremental RESP2 request parser, one per connection.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    state: State,
    args: Vec<Bytes>,
    retained: usize,
    too_large: bool,
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            state: State::Idle,
            args: Vec::new(),
            retained: 0,
            too_large: false,
        }
    }

    /// True while a request has been started but not completed, counting
    /// unparsed bytes in `buf` as a started request.
    pub fn in_progress(&self, buf: &BytesMut) -> bool {
        self.state != State::Idle || !buf.is_empty()
    }

    /// Bytes still missing to finish the current bulk, used to size reads.
    pub fn bulk_bytes_missing(&self, buf: &BytesMut) -> usize {
        match self.state {
            State::Bulk { len, .. } => (len + 2).saturating_sub(buf.len()),
            _ => 0,
        }
    }

    /// Pulls the next complete request off the front of `buf`.
    /// `Ok(None)` means more bytes are needed.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            match self.state {
                State::Idle => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    if buf[0] != b'*' {
                        match self.inline(buf)? {
                            Some(args) if args.is_empty() => continue,
                            Some(args) => return Ok(Some(Request::Command(args))),
                            None => return Ok(None),
                        }
                    }
                    let Some(n) = header_line(buf)? else {
                        return Ok(None);
                    };
                    if n == 0 {
                        return Ok(Some(Request::Empty));
                    }
                    if n < 0 {
                        // `*-1` is a null array: nothing to run, nothing to answer
                        continue;
                    }
                    let n = usize::try_from(n).map_err(|_| ProtocolError::BadArrayLength)?;
                    if n > self.limits.max_args {
                        return Err(ProtocolError::TooManyArgs(self.limits.max_args));
                    }
                    self.args = Vec::with_capacity(n.min(64));
                    self.retained = 0;
                    self.too_large = false;
                    self.state = State::Args { remaining: n };
                }
                State::Args { remaining: 0 } => {
                    self.state = State::Idle;
                    let args = std::mem::take(&mut self.args);
                    return Ok(Some(if self.too_large {
                        Request::TooLarge
                    } else {
                        Request::Command(args)
                    }));
                }
                State::Args { remaining } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    if buf[0] != b'$' {
                        return Err(ProtocolError::ExpectedBulk(buf[0] as char));
                    }
                    let Some(len) = header_line(buf)? else {
                        return Ok(None);
                    };
                    let len = usize::try_from(len).map_err(|_| ProtocolError::BadBulkLength)?;
                    if len > HARD_BULK_CAP {
                        return Err(ProtocolError::BadBulkLength);
                    }
                    let remaining = remaining - 1;
                    if len > self.limits.max_arg_len
                        || self.retained + len > self.limits.max_request_len
                    {
                        self.too_large = true;
                        self.args.clear();
                        self.state = State::Discard {
                            remaining,
                            bytes: len + 2,
                        };
                    } else if self.too_large {
                        // the request is already lost, don't keep its other arguments
                        self.state = State::Discard {
                            remaining,
                            bytes: len + 2,
                        };
                    } else {
                        self.state = State::Bulk { remaining, len };
                    }
                }
                State::Bulk { remaining, len } => {
                    if buf.len() < len + 2 {
                        return Ok(None);
                    }
                    if &buf[len..len + 2] != b"\r\n" {
                        return Err(ProtocolError::MissingCrlf);
                    }
                    let arg = buf.split_to(len).freeze();
                    buf.advance(2);
                    self.retained += len;
                    self.args.push(arg);
                    self.state = State::Args { remaining };
                }
                State::Discard { remaining, bytes } => {
                    let n = bytes.min(buf.len());
                    buf.advance(n);
                    if n < bytes {
                        self.state = State::Discard {
                            remaining,
                            bytes: bytes - n,
                        };
                        return Ok(None);
                    }
                    self.state = State::Args { remaining };
                }
            }
        }
    }

    /// Parses a telnet-style line: whitespace separated words, with
    /// double or single quotes grouping words (no escapes).
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let window = buf.len().min(self.limits.max_inline_len);
        let Some(eol) = buf[..window].iter().position(|&b| b == b'\n') else {
            if buf.len() >= self.limits.max_inline_len {
                return Err(ProtocolError::InlineTooLong);
            }
            return Ok(None);
        };
        let line = buf.split_to(eol + 1);
        let line = line[..eol].strip_suffix(b"\r").unwrap_or(&line[..eol]);
        let mut args = Vec::new();
        let mut i = 0;
        while i < line.len() {
            if line[i].is_ascii_whitespace() {
                i += 1;
                continue;
            }
            if line[i] == b'"' || line[i] == b'\'' {
                let quote = line[i];
                let start = i + 1;
                let Some(end) = line[start..].iter().position(|&b| b == quote) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                args.push(Bytes::copy_from_slice(&line[start..start + end]));
                i = start + end + 1;
            } else {
                let start = i;
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    i += 1;
                }
                args.push(Bytes::copy_from_slice(&line[start..i]));
            }
            if args.len() > self.limits.max_args {
                return Err(ProtocolError::TooManyArgs(self.limits.max_args));
            }
        }
        Ok(Some(args))
    }
}

/// Parses `<type><integer>\r\n` at the front of `buf`, consuming it.
fn header_line(buf: &mut BytesMut) -> Result<Option<i64>, ProtocolError> {
    let window = buf.len().min(MAX_HEADER_LINE);
    let Some(cr) = buf[..window].iter().position(|&b| b == b'\r') else {
        if buf.len() >= MAX_HEADER_LINE {
            return Err(ProtocolError::HeaderTooLong);
        }
        return Ok(None);
    };
    if buf.len() < cr + 2 {
        return Ok(None);
    }
    let bad = if buf[0] == b'*' {
        ProtocolError::BadArrayLength
    } else {
        ProtocolError::BadBulkLength
    };
    if buf[cr + 1] != b'\n' {
        return Err(bad);
    }
    let value = parse_i64(&buf[1..cr]).ok_or(bad)?;
    buf.advance(cr + 2);
    Ok(Some(value))
}

/// Parses a decimal integer as `str::parse::<i64>` does, without the UTF-8
/// check (this runs for every header line).
fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    // accumulated as a negative number, so i64::MIN parses too
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Appends RESP2 replies to an output buffer.
pub mod reply {
    use super::*;

    pub fn simple(out: &mut BytesMut, s: &str) {
        out.put_u8(b'+');
        put_line_safe(out, s.as_bytes());
    }

    /// `-<message>` exactly, as 0-db words its errors (no `ERR` code in front: clients of
    /// 0-db match its texts); CR and LF in the message are replaced so the frame stays valid.
    pub fn error(out: &mut BytesMut, message: &str) {
        out.put_u8(b'-');
        put_line_safe(out, message.as_bytes());
    }

    pub fn int(out: &mut BytesMut, n: i64) {
        out.put_u8(b':');
        out.put_slice(itoa::Buffer::new().format(n).as_bytes());
        out.put_slice(b"\r\n");
    }

    pub fn bulk(out: &mut BytesMut, data: &[u8]) {
        out.reserve(data.len() + 16);
        out.put_u8(b'$');
        out.put_slice(itoa::Buffer::new().format(data.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(data);
        out.put_slice(b"\r\n");
    }

    pub fn nil(out: &mut BytesMut) {
        out.put_slice(b"$-1\r\n");
    }

    pub fn array(out: &mut BytesMut, len: usize) {
        out.put_u8(b'*');
        out.put_slice(itoa::Buffer::new().format(len).as_bytes());
        out.put_slice(b"\r\n");
    }

    fn put_line_safe(out: &mut BytesMut, s: &[u8]) {
        out.extend(
            s.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        out.put_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn parse_all(parser: &mut RequestParser, bytes: &[u8]) -> Result<Vec<Request>, ProtocolError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(r) = parser.next(&mut buf)? {
            out.push(r);
        }
        Ok(out)
    }

    #[test]
    fn parses_array_and_inline() {
        let mut p = RequestParser::new(Limits::default());
        let mut bytes = encode(&[b"SET", b"k", b"v\r\nx"]);
        bytes.extend_from_slice(b"PING\r\nGET 'a b' c\n\r\n");
        let got = parse_all(&mut p, &bytes).expect("valid");
        assert_eq!(
            got,
            vec![
                Request::Command(vec!["SET".into(), "k".into(), "v\r\nx".into()]),
                Request::Command(vec!["PING".into()]),
                Request::Command(vec!["GET".into(), "a b".into(), "c".into()]),
            ]
        );
    }

    #[test]
    fn byte_at_a_time() {
        let mut p = RequestParser::new(Limits::default());
        let bytes = encode(&[b"SET", b"key", b""]);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in bytes {
            buf.put_u8(b);
            if let Some(r) = p.next(&mut buf).expect("valid") {
                got.push(r);
            }
        }
        assert_eq!(
            got,
            vec![Request::Command(vec![
                "SET".into(),
                "key".into(),
                "".into()
            ])]
        );
        assert!(!p.in_progress(&buf));
    }

    #[test]
    fn oversized_argument_is_skipped_not_stored() {
        let limits = Limits {
            max_arg_len: 4,
            ..Limits::default()
        };
        let mut p = RequestParser::new(limits);
        let mut bytes = encode(&[b"SET", b"k", b"too long"]);
        bytes.extend_from_slice(&encode(&[b"PING"]));
        let got = parse_all(&mut p, &bytes).expect("valid");
        assert_eq!(
            got,
            vec![Request::TooLarge, Request::Command(vec!["PING".into()])]
        );
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for bad in [
            &b"*2\r\n:1\r\n"[..],
            b"*x\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$999999999999\r\n",
            b"*99999999\r\n",
            b"*1\r\n$1\r\nab\r\n",
            b"*11111111111111111111111111111111111111",
        ] {
            let mut p = RequestParser::new(Limits::default());
            assert!(parse_all(&mut p, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_integers_parse_as_str_parse_does() {
        for text in [
            "0",
            "7",
            "-1",
            "+5",
            "-0",
            "",
            "-",
            "+",
            "1x",
            " 1",
            "--1",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "00012",
        ] {
            assert_eq!(
                parse_i64(text.as_bytes()),
                text.parse::<i64>().ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn reply_encoding() {
        let mut out = BytesMut::new();
        reply::error(&mut out, "bad\r\nthing");
        reply::bulk(&mut out, b"ab");
        reply::nil(&mut out);
        reply::int(&mut out, -3);
        assert_eq!(&out[..], b"-bad  thing\r\n$2\r\nab\r\n$-1\r\n:-3\r\n");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512),
                                       split in 0usize..512) {
            let mut p = RequestParser::new(Limits { max_arg_len: 64, max_request_len: 128, max_args: 8, max_inline_len: 64 });
            let split = split.min(data.len());
            let mut buf = BytesMut::from(&data[..split]);
            let mut failed = false;
            loop {
                match p.next(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => { failed = true; break }
                }
            }
            if !failed {
                buf.extend_from_slice(&data[split..]);
                while let Ok(Some(_)) = p.next(&mut buf) {}
            }
        }

        #[test]
        fn roundtrip_in_random_chunks(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
                                      chunk in 1usize..17) {
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            let bytes = encode(&refs);
            let mut p = RequestParser::new(Limits::default());
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(r) = p.next(&mut buf).expect("valid encoding") {
                    got.push(r);
                }
            }
            let want: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
            prop_assert_eq!(got, vec![Request::Command(want)]);
        }
    }
}
