//! Framing of the pipes between Elixir and Python (see `docs/protocol.md`).
//!
//! A frame is a 13-byte header followed by a body:
//!
//! ```text
//! +----------------+---------+----------------+----------------------+
//! | length: u32 BE | kind: u8| id: u64 BE     | body: length-9 bytes |
//! +----------------+---------+----------------+----------------------+
//! ```
//!
//! `length` counts everything after itself, so it is at least 9. This module only deals with
//! the envelope: which kinds are valid in which direction is the caller's business.
//!
//! A kind with the [`OUT_OF_BAND`] bit set carries out-of-band buffers: its body is a table
//! (`count: u32 BE`, then per buffer `kind: u8` and `len: u64 BE`), the pickle, then the
//! buffers' bytes in order. The reader reads each buffer into a buffer of its own.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};

/// Bytes in a frame header: length (4), kind (1), id (8).
pub const HEADER_LEN: usize = 13;

/// Bytes counted by the length field that are not body: kind (1) and id (8).
const LENGTH_OVERHEAD: usize = 9;

/// The largest body a frame can carry: the length field is a `u32` and includes kind and id.
pub const MAX_BODY_LEN: usize = u32::MAX as usize - LENGTH_OVERHEAD;

/// Size of the reader's internal buffer; small frames are served from it without syscalls.
const READ_BUFFER: usize = 64 * 1024;

/// Most body bytes requested from the stream at a time, so that a header claiming a huge
/// length cannot make the reader allocate more than about what actually arrived.
const READ_CHUNK: usize = 1024 * 1024;

/// The first bytes of an out-of-band buffer are read into a buffer of this size: growing it
/// copies them.
const BUFFER_FIRST: usize = 64 * 1024;

/// Once the first [`BUFFER_FIRST`] bytes of an out-of-band buffer have arrived, the buffer
/// grows at once to its whole size, up to this much (growing it step by step as bytes arrive costs copies:
/// 10 MB from Python took 2-3 times as long); larger ones double from there. A lying table
/// gets the reader to allocate this much only after sending a whole chunk.
const BUFFER_AT_ONCE: usize = 256 * 1024 * 1024;

/// Set in a frame's kind when its body carries out-of-band buffers (see the module doc).
pub const OUT_OF_BAND: u8 = 0x40;

/// The most out-of-band buffers a frame may carry.
pub const MAX_BUFFERS: usize = 1 << 16;

/// Bytes of one entry of the buffer table: kind (1) and length (8).
const BUFFER_ENTRY_LEN: usize = 9;

/// What an out-of-band buffer becomes in Python (the `kind` of its table entry). Python sends
/// only [`buffer_kind::BYTES`]; the NIF makes every buffer a binary.
pub mod buffer_kind {
    /// A `bytearray`.
    pub const BYTEARRAY: u8 = 0;
    /// `bytes`.
    pub const BYTES: u8 = 1;
    /// A `str` (the bytes are UTF-8).
    pub const STR: u8 = 2;
}

/// The table that starts the body of a frame whose buffers are `buffers` (kind and length
/// of each).
pub fn encode_buffer_table(buffers: impl ExactSizeIterator<Item = (u8, usize)>) -> Vec<u8> {
    let mut table = Vec::with_capacity(4 + BUFFER_ENTRY_LEN * buffers.len());
    table.extend_from_slice(
        &u32::try_from(buffers.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for (kind, len) in buffers {
        table.push(kind);
        table.extend_from_slice(&(len as u64).to_be_bytes());
    }
    table
}

/// Frame kinds. Kinds below 128 go from Elixir to Python, the others from Python to Elixir.
pub mod kind {
    /// Elixir → Python: run code in an environment. Body: `(env_id, code, file, line, vars)`.
    pub const EVAL: u8 = 1;
    /// Elixir → Python: create an environment. Body: `(env_id, sources, vars)`.
    pub const MAKE_ENV: u8 = 2;
    /// Elixir → Python: drop the environment whose id is the frame id. Empty body, no reply.
    pub const DESTROY_ENV: u8 = 3;
    /// Elixir → Python: cancel the request whose id is the frame id. Empty body, no reply.
    pub const CANCEL: u8 = 4;
    /// Elixir → Python: the answer to Python's `CALL` of the same id. Body: `(ok, value)`.
    pub const CALL_RESULT: u8 = 5;
    /// Elixir → Python: call a module's function by name (`Snex.call`).
    pub const CALL_FN: u8 = 6;
    /// Python → Elixir: successful reply to a request. Body: the value.
    pub const REPLY_OK: u8 = 128;
    /// Python → Elixir: failed request. Body: `(code, reason, traceback)`.
    pub const REPLY_ERROR: u8 = 129;
    /// Python → Elixir: call an Elixir function and wait for `CALL_RESULT`.
    pub const CALL: u8 = 130;
    /// Python → Elixir: call an Elixir function without waiting. Frame id 0.
    pub const CAST: u8 = 131;
    /// Python → Elixir: send a message to a process. Frame id 0.
    pub const SEND: u8 = 132;
    /// Python → Elixir, once at start-up: the frame id is the Python process's OS pid, the
    /// body is empty. Cancellations interrupt synchronous code through a signal to this pid.
    pub const HELLO: u8 = 133;
    /// Python → Elixir: what a request with `capture_output` printed; the frame id is the
    /// request's, the body `(stream, text)`.
    pub const OUTPUT: u8 = 134;
}

/// A frame read from a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameOf<B> {
    /// The frame kind (see [`kind`]); not validated.
    pub kind: u8,
    /// Request, call or environment id, depending on the kind.
    pub id: u64,
    /// The body, usually a pickle; empty for kinds without a body. For a frame with
    /// out-of-band buffers, only the pickle.
    pub body: B,
    /// The out-of-band buffers, in order (empty unless the kind had [`OUT_OF_BAND`], which
    /// is cleared in `kind`).
    pub buffers: Vec<B>,
}

/// A frame whose body was read into a `Vec`.
pub type Frame = FrameOf<Vec<u8>>;

/// A buffer a frame body is read into (a `Vec`, or in the NIF the binary that becomes the
/// term, so that the body is not copied again). Allocations may fail: the read then fails
/// with [`FrameError::OutOfMemory`] instead of aborting the process.
pub trait BodyBuffer: Sized {
    /// A buffer of `len` bytes (their content does not matter), or `None` if it cannot be
    /// allocated.
    fn with_len(len: usize) -> Option<Self>;
    /// Grows the buffer to `len` bytes, keeping its content; false if it cannot.
    fn grow(&mut self, len: usize) -> bool;
    /// The bytes.
    fn bytes_mut(&mut self) -> &mut [u8];
}

impl BodyBuffer for Vec<u8> {
    fn with_len(len: usize) -> Option<Self> {
        let mut v = Vec::new();
        v.try_reserve_exact(len).ok()?;
        v.resize(len, 0);
        Some(v)
    }

    fn grow(&mut self, len: usize) -> bool {
        let more = len.saturating_sub(self.len());
        if self.try_reserve_exact(more).is_err() {
            return false;
        }
        self.resize(len, 0);
        true
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

/// Why a frame could not be read or written.
#[derive(Debug)]
pub enum FrameError {
    /// The underlying stream failed.
    Io(io::Error),
    /// A body of this many bytes does not fit in a frame (more than [`MAX_BODY_LEN`]).
    TooLarge(usize),
    /// The stream ended in the middle of a frame.
    Truncated,
    /// The length field is below the minimum of 9.
    BadLength(u32),
    /// The kind is not one the reader accepts (checked before the body is read).
    UnexpectedKind(u8),
    /// The body begins with this byte instead of the pickle `PROTO` opcode (checked before the
    /// rest of the body is read).
    NotPickle(u8),
    /// The table of out-of-band buffers does not fit the frame.
    BadBufferTable(String),
    /// A buffer of this many bytes could not be allocated.
    OutOfMemory(usize),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "frame I/O error: {e}"),
            FrameError::TooLarge(n) => write!(
                f,
                "frame body of {n} bytes is larger than the maximum of {MAX_BODY_LEN} bytes"
            ),
            FrameError::Truncated => write!(f, "stream ended in the middle of a frame"),
            FrameError::BadLength(n) => {
                write!(
                    f,
                    "frame length {n} is below the minimum of {LENGTH_OVERHEAD}"
                )
            }
            FrameError::UnexpectedKind(k) => write!(f, "unexpected frame kind {k}"),
            FrameError::NotPickle(b) => write!(
                f,
                "frame body begins with byte {b:#04x}, not a pickle: the header was not a \
                 frame's (a stray write into the pipe?)"
            ),
            FrameError::BadBufferTable(why) => write!(f, "bad out-of-band buffer table: {why}"),
            FrameError::OutOfMemory(n) => write!(f, "cannot allocate a buffer of {n} bytes"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    }
}

/// Encodes the header of a frame whose body is `body_len` bytes long.
///
/// Fails with [`FrameError::TooLarge`] when the body is longer than [`MAX_BODY_LEN`].
pub fn encode_header(kind: u8, id: u64, body_len: usize) -> Result<[u8; HEADER_LEN], FrameError> {
    let length = body_len
        .checked_add(LENGTH_OVERHEAD)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(FrameError::TooLarge(body_len))?;
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&length.to_be_bytes());
    header[4] = kind;
    header[5..].copy_from_slice(&id.to_be_bytes());
    Ok(header)
}

/// Writes one frame (header and body) to `writer`. Handy for tests and simple callers; the NIF
/// writes headers and bodies with vectored I/O instead.
pub fn write_frame<W: Write>(
    writer: &mut W,
    kind: u8,
    id: u64,
    body: &[u8],
) -> Result<(), FrameError> {
    let header = encode_header(kind, id, body.len())?;
    writer.write_all(&header)?;
    writer.write_all(body)?;
    Ok(())
}

/// Reads frames from a byte stream (a pipe, usually), through a 64 KiB buffer.
pub struct FrameReader<R: Read> {
    inner: BufReader<R>,
}

impl<R: Read> FrameReader<R> {
    /// Wraps `reader`.
    pub fn new(reader: R) -> Self {
        FrameReader {
            inner: BufReader::with_capacity(READ_BUFFER, reader),
        }
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        self.inner.get_ref()
    }

    /// Reads the next frame.
    ///
    /// Returns `Ok(None)` when the stream ends cleanly between frames, and
    /// [`FrameError::Truncated`] when it ends inside one. The body buffer grows as bytes
    /// arrive (at most 1 MiB ahead), so a header that lies about the length cannot cause a
    /// large allocation by itself.
    pub fn read_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        self.read_frame_checked(|_| true, false)
    }

    /// Like [`FrameReader::read_frame`], for a stream of frames whose bodies are pickles (as
    /// every frame with a body is), but fails without waiting for the body: with
    /// [`FrameError::UnexpectedKind`] as soon as the header names a kind that `accept` refuses,
    /// and with [`FrameError::NotPickle`] as soon as a body's first byte is not the pickle
    /// `PROTO` opcode. A stray write into the pipe is then found at once instead of being taken
    /// for a long frame, even a well-formed stray header: what follows it is the next real
    /// frame, which begins with its length.
    pub fn read_frame_of(
        &mut self,
        accept: impl Fn(u8) -> bool,
    ) -> Result<Option<Frame>, FrameError> {
        self.read_frame_checked(accept, true)
    }

    /// Like [`FrameReader::read_frame_of`], reading the body into a buffer of type `B`.
    pub fn read_frame_into<B: BodyBuffer>(
        &mut self,
        accept: impl Fn(u8) -> bool,
    ) -> Result<Option<FrameOf<B>>, FrameError> {
        self.read_frame_checked(accept, true)
    }

    fn read_frame_checked<B: BodyBuffer>(
        &mut self,
        accept: impl Fn(u8) -> bool,
        pickle_bodies: bool,
    ) -> Result<Option<FrameOf<B>>, FrameError> {
        let mut header = [0u8; HEADER_LEN];
        if !self.read_header(&mut header)? {
            return Ok(None);
        }
        let (length, wire_kind, id) = parse_header(&header);
        let kind = wire_kind & !OUT_OF_BAND;
        let out_of_band = wire_kind & OUT_OF_BAND != 0;
        if !accept(kind) {
            return Err(FrameError::UnexpectedKind(wire_kind));
        }
        let body_len = (length as usize)
            .checked_sub(LENGTH_OVERHEAD)
            .ok_or(FrameError::BadLength(length))?;
        let (pickle_len, buffer_lens) = if out_of_band {
            self.read_buffer_table(body_len)?
        } else {
            (body_len, Vec::new())
        };
        if pickle_bodies && pickle_len > 0 {
            let first = self.peek_byte()?;
            if first != crate::pickle::op::PROTO {
                return Err(FrameError::NotPickle(first));
            }
        }
        let body = self.read_body(pickle_len)?;
        let mut buffers = Vec::with_capacity(buffer_lens.len());
        for len in buffer_lens {
            buffers.push(self.read_growing(len, BUFFER_FIRST, BUFFER_AT_ONCE)?);
        }
        Ok(Some(FrameOf {
            kind,
            id,
            body,
            buffers,
        }))
    }

    /// Reads the buffer table at the start of a body of `body_len` bytes: the length of the
    /// pickle and of each buffer, checked to add up to the body.
    fn read_buffer_table(&mut self, body_len: usize) -> Result<(usize, Vec<usize>), FrameError> {
        let bad = |why: String| Err(FrameError::BadBufferTable(why));
        let mut count = [0u8; 4];
        self.inner.read_exact(&mut count)?;
        let count = u32::from_be_bytes(count) as usize;
        if count == 0 || count > MAX_BUFFERS {
            return bad(format!("{count} buffers (1 to {MAX_BUFFERS} allowed)"));
        }
        let mut left = body_len.checked_sub(4 + count * BUFFER_ENTRY_LEN).ok_or(
            FrameError::BadBufferTable(format!("{count} buffers in a body of {body_len} bytes")),
        )?;
        let mut lens = Vec::with_capacity(count);
        for _ in 0..count {
            let mut entry = [0u8; BUFFER_ENTRY_LEN];
            self.inner.read_exact(&mut entry)?;
            let [kind, l0, l1, l2, l3, l4, l5, l6, l7] = entry;
            if kind > buffer_kind::STR {
                return bad(format!("unknown buffer kind {kind}"));
            }
            let len = u64::from_be_bytes([l0, l1, l2, l3, l4, l5, l6, l7]);
            match usize::try_from(len).ok().and_then(|n| left.checked_sub(n)) {
                Some(rest) => left = rest,
                None => return bad(format!("buffers longer than the body of {body_len} bytes")),
            }
            lens.push(len as usize);
        }
        if left == 0 {
            return bad("no pickle before the buffers".to_string());
        }
        Ok((left, lens))
    }

    /// The next byte of the stream, left in the buffer.
    fn peek_byte(&mut self) -> Result<u8, FrameError> {
        loop {
            match self.inner.fill_buf() {
                Ok([]) => return Err(FrameError::Truncated),
                Ok(buf) => return Ok(buf[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FrameError::Io(e)),
            }
        }
    }

    /// Fills `header`; false on EOF before its first byte.
    fn read_header(&mut self, header: &mut [u8; HEADER_LEN]) -> Result<bool, FrameError> {
        let mut filled = 0;
        while filled < HEADER_LEN {
            match self.inner.read(&mut header[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(FrameError::Truncated),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FrameError::Io(e)),
            }
        }
        Ok(true)
    }

    /// Reads exactly `len` body bytes. The buffer starts at 1 MiB at most and doubles as bytes
    /// arrive, so a header that lies about the length cannot cause a large allocation.
    fn read_body<B: BodyBuffer>(&mut self, len: usize) -> Result<B, FrameError> {
        self.read_growing(len, READ_CHUNK, 0)
    }

    /// Reads exactly `len` bytes into a buffer of at most `first` bytes at first, which then
    /// grows to at least `jump` bytes (at most `len`), and doubles from there as bytes arrive.
    fn read_growing<B: BodyBuffer>(
        &mut self,
        len: usize,
        first: usize,
        jump: usize,
    ) -> Result<B, FrameError> {
        let mut size = len.min(first);
        let mut body = B::with_len(size).ok_or(FrameError::OutOfMemory(size))?;
        let mut filled = 0;
        loop {
            self.inner.read_exact(&mut body.bytes_mut()[filled..size])?;
            filled = size;
            if filled == len {
                return Ok(body);
            }
            size = len.min(size.saturating_mul(2).max(jump));
            if !body.grow(size) {
                return Err(FrameError::OutOfMemory(size));
            }
        }
    }
}

fn parse_header(header: &[u8; HEADER_LEN]) -> (u32, u8, u64) {
    let [l0, l1, l2, l3, kind, i0, i1, i2, i3, i4, i5, i6, i7] = *header;
    (
        u32::from_be_bytes([l0, l1, l2, l3]),
        kind,
        u64::from_be_bytes([i0, i1, i2, i3, i4, i5, i6, i7]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let h = encode_header(kind::EVAL, 0x0102_0304_0506_0708, 3).unwrap();
        assert_eq!(h, [0, 0, 0, 12, 1, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn header_too_large() {
        assert!(encode_header(kind::EVAL, 1, MAX_BODY_LEN).is_ok());
        assert!(matches!(
            encode_header(kind::EVAL, 1, MAX_BODY_LEN + 1),
            Err(FrameError::TooLarge(_))
        ));
        assert!(matches!(
            encode_header(kind::EVAL, 1, usize::MAX),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn bad_length() {
        let mut data = vec![0, 0, 0, 8];
        data.extend_from_slice(&[0; 9]);
        let mut r = FrameReader::new(&data[..]);
        assert!(matches!(r.read_frame(), Err(FrameError::BadLength(8))));
    }

    #[test]
    fn empty_stream_is_clean_eof() {
        let mut r = FrameReader::new(&[][..]);
        assert!(r.read_frame().unwrap().is_none());
    }
}
