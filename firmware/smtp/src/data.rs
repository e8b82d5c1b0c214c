//! Message bodies on the wire, without I/O: the DATA decoder (dot-unstuffing
//! up to `CRLF.CRLF`, RFC 5321 §4.1.1.4 and §4.5.2), the BDAT decoder (line
//! endings made CRLF, RFC 3030) and the DATA encoder for mail sent onward.
//!
//! Bytes in, message bytes out; the session reads the socket and writes the
//! blob. Each decoder takes its input in any chunking and gives the same
//! result, so the session can feed it whatever the socket returned.
//!
//! SMTP smuggling: only `CRLF.CRLF` ends DATA. A line after a bare LF or a
//! bare CR is not a line start, so `LF.LF`, `LF.CRLF`, `CR.CRLF` and
//! `CRLF.LF` end nothing, and the decoder reports the bare line ending
//! (RFC 5321 §2.3.8) so that the session can refuse the message. Outbound,
//! [`DotEncoder`] turns every bare CR and bare LF into CRLF before
//! dot-stuffing, so that the next hop, however it reads line endings, sees
//! one message that ends where ours did.

use std::fmt;

/// How large a message and its lines may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    /// Message bytes after decoding; more and the message is too big.
    pub max_message_bytes: u64,
    /// Bytes of one line on the wire, CRLF included (RFC 5321 §4.5.3.1.6
    /// sets 1000); `None` for no limit. The decoder never holds a line, so
    /// this is about policy, not memory.
    pub max_line_bytes: Option<u64>,
}

/// What is wrong with a message body. The decoders keep reading to the end
/// of the data after any of these, so that the session stays in step with
/// the client, and then report the gravest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataError {
    /// More than [`DataLimits::max_message_bytes`] after decoding.
    TooBig {
        /// The limit.
        limit: u64,
    },
    /// A line longer than [`DataLimits::max_line_bytes`].
    LineTooLong {
        /// The limit.
        limit: u64,
    },
    /// An LF not preceded by CR (RFC 5321 §2.3.8).
    BareLf,
    /// A CR not followed by LF (RFC 5321 §2.3.8).
    BareCr,
}

impl DataError {
    /// Which of two problems to report: the size first (as the session
    /// always did), then the line length, then bare line endings.
    fn graver(self, other: DataError) -> DataError {
        let rank = |e: DataError| match e {
            DataError::TooBig { .. } => 0,
            DataError::LineTooLong { .. } => 1,
            DataError::BareLf => 2,
            DataError::BareCr => 3,
        };
        if rank(other) < rank(self) {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::TooBig { limit } => write!(f, "message larger than {limit} bytes"),
            DataError::LineTooLong { limit } => write!(f, "line longer than {limit} bytes"),
            DataError::BareLf => f.write_str("bare LF line ending (RFC 5321 §2.3.8)"),
            DataError::BareCr => f.write_str("bare CR line ending (RFC 5321 §2.3.8)"),
        }
    }
}

impl std::error::Error for DataError {}

/// Whether the data has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// More data to come: feed the next bytes.
    Incomplete,
    /// `CRLF.CRLF` was seen; the bytes after it are the client's next
    /// command.
    End,
}

/// What one call to [`DotDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes taken: all of them unless the data ended.
    pub consumed: usize,
    /// Lines that ended (CRLF) in those bytes, the final `.CRLF` counted.
    pub lines: usize,
    /// Whether the data ended.
    pub status: Status,
}

/// Where the decoder is in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the start of the data or after CRLF.
    LineStart,
    /// After a `.` at a line start.
    Dot,
    /// After `.CR` at a line start: LF ends the data.
    DotCr,
    /// Inside a line.
    Mid,
    /// After a CR inside a line (or on an empty line).
    Cr,
}

/// Decodes DATA (RFC 5321 §4.5.2): removes the leading dot that the client
/// doubled on each line, and stops at `CRLF.CRLF`. The output is what the
/// client meant, byte for byte, the final CRLF of the last line included;
/// a message that is too big stops being output, the rest is still read.
#[derive(Debug, Clone)]
pub struct DotDecoder {
    limits: DataLimits,
    at: At,
    line_bytes: u64,
    message_bytes: u64,
    error: Option<DataError>,
    ended: bool,
}

impl DotDecoder {
    /// A decoder at the start of the data (right after `354`).
    pub fn new(limits: DataLimits) -> DotDecoder {
        DotDecoder {
            limits,
            at: At::LineStart,
            line_bytes: 0,
            message_bytes: 0,
            error: None,
            ended: false,
        }
    }

    /// Decodes `input`, appending message bytes to `out`. Takes every byte
    /// up to the end of the data; after the end, takes nothing.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Progress {
        let mut i = 0;
        let mut lines = 0;
        while i < input.len() && !self.ended {
            let b = input[i];
            match self.at {
                At::LineStart if b == b'.' => {
                    self.count_line(1);
                    self.at = At::Dot;
                    i += 1;
                }
                At::LineStart | At::Mid => {
                    let run = input[i..]
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(input.len() - i);
                    if run > 0 {
                        self.count_line(run as u64);
                        self.text(&input[i..i + run], out);
                        self.at = At::Mid;
                        i += run;
                        continue;
                    }
                    self.count_line(1);
                    self.text(&input[i..=i], out);
                    if b == b'\r' {
                        self.at = At::Cr;
                    } else {
                        // A bare LF starts no line.
                        self.problem(DataError::BareLf);
                        self.at = At::Mid;
                    }
                    i += 1;
                }
                At::Cr if b == b'\n' => {
                    self.text(b"\n", out);
                    self.line_ended();
                    lines += 1;
                    i += 1;
                }
                At::Cr => {
                    // A bare CR starts no line either; `b` is read again
                    // inside the line.
                    self.problem(DataError::BareCr);
                    self.at = At::Mid;
                }
                At::Dot if b == b'\r' => {
                    self.count_line(1);
                    self.at = At::DotCr;
                    i += 1;
                }
                At::Dot => {
                    // The stuffed dot is dropped; `b` is the line's own.
                    self.at = At::Mid;
                }
                At::DotCr if b == b'\n' => {
                    self.line_ended();
                    self.ended = true;
                    lines += 1;
                    i += 1;
                }
                At::DotCr => {
                    // `.CR` then something else: the CR was bare.
                    self.problem(DataError::BareCr);
                    self.text(b"\r", out);
                    self.at = At::Mid;
                }
            }
        }
        Progress {
            consumed: i,
            lines,
            status: if self.ended {
                Status::End
            } else {
                Status::Incomplete
            },
        }
    }

    /// Whether `CRLF.CRLF` has been seen.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Message bytes decoded so far (counted past the size limit too).
    pub fn message_bytes(&self) -> u64 {
        self.message_bytes
    }

    /// The gravest problem seen so far.
    pub fn error(&self) -> Option<DataError> {
        self.error
    }

    fn text(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if let Err(e) = take(&mut self.message_bytes, self.limits, bytes, out) {
            self.problem(e);
        }
    }

    fn count_line(&mut self, n: u64) {
        self.line_bytes += n;
        if let Some(limit) = self.limits.max_line_bytes {
            if self.line_bytes > limit {
                self.problem(DataError::LineTooLong { limit });
            }
        }
    }

    fn line_ended(&mut self) {
        self.count_line(1);
        self.line_bytes = 0;
        self.at = At::LineStart;
    }

    fn problem(&mut self, e: DataError) {
        self.error = Some(match self.error {
            Some(seen) => seen.graver(e),
            None => e,
        });
    }
}

/// Appends message bytes to `out` up to the size limit, counting them all:
/// the output is the message's first `max_message_bytes`, however the input
/// was chunked.
fn take(
    message_bytes: &mut u64,
    limits: DataLimits,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DataError> {
    let room = limits.max_message_bytes.saturating_sub(*message_bytes);
    *message_bytes += bytes.len() as u64;
    // A room beyond usize is more than any slice.
    let fits = usize::try_from(room).map_or(bytes.len(), |r| r.min(bytes.len()));
    out.extend_from_slice(&bytes[..fits]);
    if fits < bytes.len() {
        return Err(DataError::TooBig {
            limit: limits.max_message_bytes,
        });
    }
    Ok(())
}

/// A piece of text between line endings, or a line ending.
enum Piece<'a> {
    Text(&'a [u8]),
    LineEnd,
}

/// Finds line endings as RFC 5321 §2.3.8 wants them written: CRLF, bare CR
/// and bare LF each end a line, so that each becomes one CRLF.
#[derive(Debug, Clone, Default)]
struct LineEndings {
    /// A CR at the end of the last input: CRLF or bare, by the next byte.
    pending_cr: bool,
    /// Bare CRs and LFs seen.
    bare: bool,
}

impl LineEndings {
    fn split(&mut self, input: &[u8], mut piece: impl FnMut(Piece<'_>)) {
        let mut i = 0;
        while i < input.len() {
            if self.pending_cr {
                self.pending_cr = false;
                piece(Piece::LineEnd);
                if input[i] == b'\n' {
                    i += 1;
                    continue;
                }
                self.bare = true;
            }
            let run = input[i..]
                .iter()
                .position(|&c| c == b'\r' || c == b'\n')
                .unwrap_or(input.len() - i);
            if run > 0 {
                piece(Piece::Text(&input[i..i + run]));
                i += run;
                continue;
            }
            if input[i] == b'\n' {
                self.bare = true;
                piece(Piece::LineEnd);
            } else {
                self.pending_cr = true;
            }
            i += 1;
        }
    }

    fn finish(&mut self, piece: impl FnOnce(Piece<'_>)) {
        if std::mem::take(&mut self.pending_cr) {
            self.bare = true;
            piece(Piece::LineEnd);
        }
    }
}

/// Decodes a BDAT transfer (RFC 3030): the chunks are the message as it is,
/// except that bare CR and bare LF become CRLF (RFC 5321 §2.3.8), so that no
/// stored message holds a line ending that a next hop could read another
/// way. Chunk boundaries may fall anywhere, between a CR and its LF too.
#[derive(Debug, Clone)]
pub struct BdatDecoder {
    limits: DataLimits,
    endings: LineEndings,
    line_bytes: u64,
    message_bytes: u64,
    error: Option<DataError>,
}

impl BdatDecoder {
    /// A decoder at the start of the first chunk.
    pub fn new(limits: DataLimits) -> BdatDecoder {
        BdatDecoder {
            limits,
            endings: LineEndings::default(),
            line_bytes: 0,
            message_bytes: 0,
            error: None,
        }
    }

    /// Decodes chunk bytes, appending message bytes to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut endings = std::mem::take(&mut self.endings);
        endings.split(input, |p| self.piece(p, out));
        self.endings = endings;
    }

    /// Ends the message (after the LAST chunk): a CR left at the very end
    /// becomes CRLF.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let mut endings = std::mem::take(&mut self.endings);
        endings.finish(|p| self.piece(p, out));
        self.endings = endings;
    }

    /// Whether a bare CR or bare LF was made CRLF.
    pub fn normalised(&self) -> bool {
        self.endings.bare
    }

    /// Message bytes decoded so far (counted past the size limit too).
    pub fn message_bytes(&self) -> u64 {
        self.message_bytes
    }

    /// The gravest problem seen so far (never a bare line ending: those are
    /// mended).
    pub fn error(&self) -> Option<DataError> {
        self.error
    }

    fn piece(&mut self, piece: Piece<'_>, out: &mut Vec<u8>) {
        let bytes = match piece {
            Piece::Text(t) => t,
            Piece::LineEnd => b"\r\n",
        };
        self.line_bytes += bytes.len() as u64;
        if let Some(limit) = self.limits.max_line_bytes {
            if self.line_bytes > limit {
                self.problem(DataError::LineTooLong { limit });
            }
        }
        if matches!(piece, Piece::LineEnd) {
            self.line_bytes = 0;
        }
        if let Err(e) = take(&mut self.message_bytes, self.limits, bytes, out) {
            self.problem(e);
        }
    }

    fn problem(&mut self, e: DataError) {
        self.error = Some(match self.error {
            Some(seen) => seen.graver(e),
            None => e,
        });
    }
}

/// Encodes a message for DATA (RFC 5321 §4.5.2): every line ending becomes
/// CRLF (a bare CR or bare LF in a stored message included, so that the
/// next hop cannot be smuggled a second message), a dot starting a line is
/// doubled, and [`DotEncoder::finish`] ends the last line and adds `.CRLF`.
#[derive(Debug, Clone)]
pub struct DotEncoder {
    endings: LineEndings,
    line_start: bool,
}

impl Default for DotEncoder {
    fn default() -> DotEncoder {
        DotEncoder {
            endings: LineEndings::default(),
            line_start: true,
        }
    }
}

impl DotEncoder {
    /// Encodes message bytes, in any chunking, appending to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let line_start = &mut self.line_start;
        self.endings
            .split(bytes, |p| DotEncoder::piece(line_start, p, out));
    }

    /// Ends the message: the last line gets its CRLF, then `.CRLF`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        let line_start = &mut self.line_start;
        self.endings
            .finish(|p| DotEncoder::piece(line_start, p, out));
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }

    fn piece(line_start: &mut bool, piece: Piece<'_>, out: &mut Vec<u8>) {
        match piece {
            Piece::Text(t) => {
                if *line_start && t.first() == Some(&b'.') {
                    out.push(b'.');
                }
                out.extend_from_slice(t);
                *line_start = false;
            }
            Piece::LineEnd => {
                out.extend_from_slice(b"\r\n");
                *line_start = true;
            }
        }
    }
}

#[cfg(test)]
mod tests;
