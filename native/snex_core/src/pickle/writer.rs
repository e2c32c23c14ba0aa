//! Writing pickles for Python's `pickle.loads` (Elixir → Python).
//!
//! [`PickleWriter`] is a streaming writer: the caller walks its own data (iteratively, with
//! its own stack) and calls one method per value, bracketing containers with `begin_*` and
//! `end_*`. Only the opcodes listed in `docs/protocol.md` are written. The writer never panics
//! and does not allocate per value beyond growing its output buffer (and, for memoised
//! strings, atoms and globals, a small hash table that refers back into that buffer).

use super::op;
use std::fmt;

/// Initial buffer size of [`PickleWriter::new`].
const DEFAULT_CAPACITY: usize = 256;

/// How data passed to [`PickleWriter::out_of_band`] is presented to Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternalKind {
    /// `str`; the data must be UTF-8.
    Str,
    /// `bytes`.
    Bytes,
    /// `bytearray`.
    ByteArray,
}

/// Why the writer refused a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// Data given as [`ExternalKind::Str`] is not UTF-8; it is valid up to this byte.
    InvalidUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The pieces given to [`PickleWriter::chunked_bytes`] do not add up to the length given.
    LengthMismatch {
        /// The length announced.
        expected: usize,
        /// The length of the pieces.
        actual: usize,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::InvalidUtf8 { valid_up_to } => {
                write!(f, "string is not valid UTF-8 (at byte {valid_up_to})")
            }
            WriteError::LengthMismatch { expected, actual } => {
                write!(f, "expected {expected} bytes, got {actual}")
            }
        }
    }
}

impl std::error::Error for WriteError {}

/// A finished pickle: `buf`, and the out-of-band buffers that travel after it.
#[derive(Debug)]
pub struct PickleOutput<E: AsRef<[u8]> = Vec<u8>> {
    /// The pickle bytes.
    pub buf: Vec<u8>,
    /// Out-of-band buffers added with [`PickleWriter::out_of_band`], in the order the pickle
    /// takes them: they travel after the pickle, not in it (see `docs/protocol.md`).
    pub buffers: Vec<(ExternalKind, E)>,
}

/// Streaming writer of a protocol 5 pickle.
///
/// Values are written in order; a container is written as `begin_*(len)`, exactly `len`
/// values (for dicts: `len` key/value pairs, key first), then `end_*(len)` with the same
/// `len`. Mismatched calls produce a pickle that Python rejects, never a panic.
///
/// Within one pickle, key strings ([`key_str`](Self::key_str)), atoms and globals are
/// memoised: the first occurrence is written and put in Python's memo, later ones are a
/// `BINGET`.
///
/// `E` is the type of large data that is referenced rather than copied (see
/// [`out_of_band`](Self::out_of_band)).
#[derive(Debug)]
pub struct PickleWriter<E: AsRef<[u8]> = Vec<u8>> {
    buf: Vec<u8>,
    buffers: Vec<(ExternalKind, E)>,
    next_memo: u32,
    strings: MemoTable,
    globals: GlobalMemo,
}

impl PickleWriter<Vec<u8>> {
    /// A writer with a small initial buffer; writes the `PROTO 5` header.
    ///
    /// For another type of out-of-band data use [`with_capacity`](PickleWriter::with_capacity) or
    /// `PickleWriter::<E>::default()`.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl<E: AsRef<[u8]>> Default for PickleWriter<E> {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl<E: AsRef<[u8]>> PickleWriter<E> {
    /// A writer whose buffer starts with room for `capacity` bytes; writes `PROTO 5`.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(3));
        buf.extend_from_slice(&[op::PROTO, 5]);
        PickleWriter {
            buf,
            buffers: Vec::new(),
            next_memo: 0,
            strings: MemoTable::default(),
            globals: GlobalMemo::default(),
        }
    }

    /// Writes `STOP` and returns the pickle.
    pub fn finish(mut self) -> PickleOutput<E> {
        self.buf.push(op::STOP);
        PickleOutput {
            buf: self.buf,
            buffers: self.buffers,
        }
    }

    /// Pickle bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Always false: the `PROTO` header is written on creation.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `None` (`NONE`).
    pub fn none(&mut self) {
        self.buf.push(op::NONE);
    }

    /// Writes `True` or `False` (`NEWTRUE` / `NEWFALSE`).
    pub fn bool(&mut self, b: bool) {
        self.buf.push(if b { op::NEWTRUE } else { op::NEWFALSE });
    }

    /// Writes an `int` in the shortest form: `BININT1` (0..=255), `BININT2` (..=65535),
    /// `BININT` (the rest of the `i32` range) or `LONG1`.
    pub fn int(&mut self, i: i64) {
        if let Ok(b) = u8::try_from(i) {
            self.buf.extend_from_slice(&[op::BININT1, b]);
        } else if let Ok(h) = u16::try_from(i) {
            let [a, b] = h.to_le_bytes();
            self.buf.extend_from_slice(&[op::BININT2, a, b]);
        } else if let Ok(w) = i32::try_from(i) {
            let [a, b, c, d] = w.to_le_bytes();
            self.buf.extend_from_slice(&[op::BININT, a, b, c, d]);
        } else {
            let bytes = i.to_le_bytes();
            let len = minimal_signed_len(&bytes);
            self.buf.extend_from_slice(&[op::LONG1, len as u8]);
            self.buf
                .extend_from_slice(bytes.get(..len).unwrap_or(&bytes));
        }
    }

    /// Writes an `int` given as little-endian two's complement bytes (minimal length, as
    /// produced by `to_signed_bytes_le`): `LONG1` below 256 bytes, else `LONG4`.
    ///
    /// A length beyond `LONG4`'s signed 32-bit range cannot come from the BEAM (its
    /// integers are far smaller); it is written as a `LONG4` with a negative length, which
    /// Python rejects.
    pub fn big_int_le(&mut self, bytes: &[u8]) {
        if let Ok(len) = u8::try_from(bytes.len()) {
            self.buf.extend_from_slice(&[op::LONG1, len]);
            self.buf.extend_from_slice(bytes);
        } else if let Ok(len) = i32::try_from(bytes.len()) {
            self.buf.push(op::LONG4);
            self.buf.extend_from_slice(&len.to_le_bytes());
            self.buf.extend_from_slice(bytes);
        } else {
            self.buf.push(op::LONG4);
            self.buf.extend_from_slice(&(-1i32).to_le_bytes());
        }
    }

    /// Writes a `float` (`BINFLOAT`), bit for bit (`-0.0`, infinities, NaN payloads).
    pub fn float(&mut self, f: f64) {
        self.buf.push(op::BINFLOAT);
        self.buf.extend_from_slice(&f.to_bits().to_be_bytes());
    }

    /// Writes a `str` (`SHORT_BINUNICODE`, `BINUNICODE` or `BINUNICODE8` by length).
    pub fn str(&mut self, s: &str) {
        self.write_str(s);
    }

    /// Writes a `str` used as a dict key: the first occurrence of each string in this pickle
    /// is memoised, repeats are a `BINGET`.
    pub fn key_str(&mut self, s: &str) {
        let key = MemoKey {
            tag: TAG_KEY,
            bytes: s.as_bytes(),
        };
        let hash = key.hash();
        if let Some(idx) = self.strings.find(&self.buf, key, hash) {
            self.get(idx);
            return;
        }
        let start = self.write_str(s);
        if let Some(idx) = self.memoize() {
            self.strings.insert(key.tag, hash, start, s.len(), idx);
        }
    }

    /// Writes `bytes` (`SHORT_BINBYTES`, `BINBYTES` or `BINBYTES8` by length).
    pub fn bytes(&mut self, b: &[u8]) {
        self.bytes_header(b.len());
        self.buf.extend_from_slice(b);
    }

    /// Writes a `bytearray` (`BYTEARRAY8`).
    pub fn bytearray(&mut self, b: &[u8]) {
        self.sized(op::BYTEARRAY8, b.len());
        self.buf.extend_from_slice(b);
    }

    /// Writes a `str`, `bytes` or `bytearray` whose content travels out of band: the pickle
    /// gets a `NEXT_BUFFER`, and `data` goes into [`PickleOutput::buffers`], to be sent after
    /// the pickle and turned into a Python object of `kind` by the receiver before it unpickles.
    ///
    /// Fails (writing nothing) if `kind` is [`ExternalKind::Str`] and `data` is not UTF-8.
    pub fn out_of_band(&mut self, kind: ExternalKind, data: E) -> Result<(), WriteError> {
        if kind == ExternalKind::Str {
            std::str::from_utf8(data.as_ref()).map_err(|e| WriteError::InvalidUtf8 {
                valid_up_to: e.valid_up_to(),
            })?;
        }
        self.buf.push(op::NEXT_BUFFER);
        self.buffers.push((kind, data));
        Ok(())
    }

    /// Writes a `str`, `bytes` or `bytearray` of `len` bytes given in pieces (e.g. iodata),
    /// copying each piece once into the buffer.
    ///
    /// Fails (writing nothing) if the pieces do not add up to `len`, or if `kind` is
    /// [`ExternalKind::Str`] and the bytes are not UTF-8.
    pub fn chunked_bytes<'c>(
        &mut self,
        kind: ExternalKind,
        len: usize,
        chunks: impl IntoIterator<Item = &'c [u8]>,
    ) -> Result<(), WriteError> {
        let mark = self.buf.len();
        match kind {
            ExternalKind::Str => self.str_header(len),
            ExternalKind::Bytes => self.bytes_header(len),
            ExternalKind::ByteArray => self.sized(op::BYTEARRAY8, len),
        }
        let start = self.buf.len();
        self.buf.reserve(len);
        for chunk in chunks {
            self.buf.extend_from_slice(chunk);
        }
        let written = self.buf.len() - start;
        if written != len {
            self.buf.truncate(mark);
            return Err(WriteError::LengthMismatch {
                expected: len,
                actual: written,
            });
        }
        if kind == ExternalKind::Str {
            if let Err(e) = std::str::from_utf8(&self.buf[start..]) {
                self.buf.truncate(mark);
                return Err(WriteError::InvalidUtf8 {
                    valid_up_to: e.valid_up_to(),
                });
            }
        }
        Ok(())
    }

    /// Writes an atom: `snex.Atom(name)`, or `snex.DistinctAtom(name)` when `distinct`.
    /// Each distinct atom is built once per pickle; repeats are a `BINGET`.
    pub fn atom(&mut self, name: &str, distinct: bool) {
        let key = MemoKey {
            tag: if distinct {
                TAG_DISTINCT_ATOM
            } else {
                TAG_ATOM
            },
            bytes: name.as_bytes(),
        };
        let hash = key.hash();
        if let Some(idx) = self.strings.find(&self.buf, key, hash) {
            self.get(idx);
            return;
        }
        self.global("snex", if distinct { "DistinctAtom" } else { "Atom" });
        let start = self.write_str(name);
        self.buf.extend_from_slice(&[op::TUPLE1, op::REDUCE]);
        if let Some(idx) = self.memoize() {
            self.strings.insert(key.tag, hash, start, name.len(), idx);
        }
    }

    /// Pushes the global `module.name` (`STACK_GLOBAL`), memoised per pickle. Follow it with
    /// a tuple of arguments and [`reduce`](Self::reduce) to call it.
    pub fn global(&mut self, module: &str, name: &str) {
        if let Some(idx) = self.globals.find(&self.buf, module, name) {
            self.get(idx);
            return;
        }
        let module_start = self.write_str(module);
        let name_start = self.write_str(name);
        self.buf.push(op::STACK_GLOBAL);
        if let Some(idx) = self.memoize() {
            self.globals
                .insert((module_start, module.len()), (name_start, name.len()), idx);
        }
    }

    /// Calls the callable below the argument tuple on the stack (`REDUCE`).
    pub fn reduce(&mut self) {
        self.buf.push(op::REDUCE);
    }

    /// Starts a `list` of `len` items (`EMPTY_LIST`, then `MARK` unless empty).
    pub fn begin_list(&mut self, len: usize) {
        self.buf.push(op::EMPTY_LIST);
        if len > 0 {
            self.buf.push(op::MARK);
        }
    }

    /// Ends a `list` started with [`begin_list`](Self::begin_list)`(len)` (`APPENDS`).
    pub fn end_list(&mut self, len: usize) {
        if len > 0 {
            self.buf.push(op::APPENDS);
        }
    }

    /// Starts a `tuple` of `len` items (`EMPTY_TUPLE` for 0, `MARK` for more than 3).
    pub fn begin_tuple(&mut self, len: usize) {
        match len {
            0 => self.buf.push(op::EMPTY_TUPLE),
            1..=3 => {}
            _ => self.buf.push(op::MARK),
        }
    }

    /// Ends a `tuple` started with [`begin_tuple`](Self::begin_tuple)`(len)` (`TUPLE1`,
    /// `TUPLE2`, `TUPLE3` or `TUPLE`).
    pub fn end_tuple(&mut self, len: usize) {
        match len {
            0 => {}
            1 => self.buf.push(op::TUPLE1),
            2 => self.buf.push(op::TUPLE2),
            3 => self.buf.push(op::TUPLE3),
            _ => self.buf.push(op::TUPLE),
        }
    }

    /// Starts a `dict` of `len` pairs (`EMPTY_DICT`, then `MARK` unless empty); write each
    /// key, then its value.
    pub fn begin_dict(&mut self, len: usize) {
        self.buf.push(op::EMPTY_DICT);
        if len > 0 {
            self.buf.push(op::MARK);
        }
    }

    /// Ends a `dict` started with [`begin_dict`](Self::begin_dict)`(len)` (`SETITEMS`).
    pub fn end_dict(&mut self, len: usize) {
        if len > 0 {
            self.buf.push(op::SETITEMS);
        }
    }

    /// Starts a `set` (`EMPTY_SET`, `MARK` unless empty) or, when `frozen`, a `frozenset`
    /// (`MARK`) of `len` items.
    pub fn begin_set(&mut self, len: usize, frozen: bool) {
        if frozen {
            self.buf.push(op::MARK);
        } else {
            self.buf.push(op::EMPTY_SET);
            if len > 0 {
                self.buf.push(op::MARK);
            }
        }
    }

    /// Ends a set started with [`begin_set`](Self::begin_set)`(len, frozen)` (`ADDITEMS` or
    /// `FROZENSET`).
    pub fn end_set(&mut self, len: usize, frozen: bool) {
        if frozen {
            self.buf.push(op::FROZENSET);
        } else if len > 0 {
            self.buf.push(op::ADDITEMS);
        }
    }

    /// Writes a `str`; returns the offset of its UTF-8 data in the buffer.
    fn write_str(&mut self, s: &str) -> usize {
        self.str_header(s.len());
        let start = self.buf.len();
        self.buf.extend_from_slice(s.as_bytes());
        start
    }

    fn str_header(&mut self, len: usize) {
        if let Ok(n) = u8::try_from(len) {
            self.buf.extend_from_slice(&[op::SHORT_BINUNICODE, n]);
        } else if let Ok(n) = u32::try_from(len) {
            self.buf.push(op::BINUNICODE);
            self.buf.extend_from_slice(&n.to_le_bytes());
        } else {
            self.sized(op::BINUNICODE8, len);
        }
    }

    fn bytes_header(&mut self, len: usize) {
        if let Ok(n) = u8::try_from(len) {
            self.buf.extend_from_slice(&[op::SHORT_BINBYTES, n]);
        } else if let Ok(n) = u32::try_from(len) {
            self.buf.push(op::BINBYTES);
            self.buf.extend_from_slice(&n.to_le_bytes());
        } else {
            self.sized(op::BINBYTES8, len);
        }
    }

    /// An opcode with an 8-byte length.
    fn sized(&mut self, opcode: u8, len: usize) {
        self.buf.push(opcode);
        self.buf.extend_from_slice(&(len as u64).to_le_bytes());
    }

    /// Memoises the top of Python's stack (`MEMOIZE`); `None` once the memo is full.
    fn memoize(&mut self) -> Option<u32> {
        let idx = self.next_memo;
        self.next_memo = idx.checked_add(1)?;
        self.buf.push(op::MEMOIZE);
        Some(idx)
    }

    /// Pushes memo entry `idx` (`BINGET` or `LONG_BINGET`).
    fn get(&mut self, idx: u32) {
        if let Ok(i) = u8::try_from(idx) {
            self.buf.extend_from_slice(&[op::BINGET, i]);
        } else {
            self.buf.push(op::LONG_BINGET);
            self.buf.extend_from_slice(&idx.to_le_bytes());
        }
    }
}

/// Length of the minimal two's complement form of the little-endian `bytes` (at least 1).
fn minimal_signed_len(bytes: &[u8]) -> usize {
    let mut len = bytes.len();
    while len > 1 {
        let (Some(&last), Some(&prev)) = (bytes.get(len - 1), bytes.get(len - 2)) else {
            break;
        };
        let redundant = (last == 0x00 && prev & 0x80 == 0) || (last == 0xff && prev & 0x80 != 0);
        if !redundant {
            break;
        }
        len -= 1;
    }
    len
}

/// What a memoised string stands for, so equal strings of different roles do not collide.
const TAG_KEY: u8 = 0;
const TAG_ATOM: u8 = 1;
const TAG_DISTINCT_ATOM: u8 = 2;

/// Probes before giving up on a slot of the memo table; bounds the cost of adversarial keys
/// (a string that does not find a slot is simply not memoised).
const MAX_PROBES: usize = 16;

/// Initial number of slots of the memo table (a power of two).
const INITIAL_SLOTS: usize = 64;

#[derive(Clone, Copy)]
struct MemoKey<'k> {
    tag: u8,
    bytes: &'k [u8],
}

impl MemoKey<'_> {
    fn hash(&self) -> u64 {
        hash_bytes(self.tag, self.bytes)
    }
}

/// A slot of [`MemoTable`]: the string lives in the writer's buffer at `start..start + len`.
#[derive(Clone, Copy, Debug)]
struct Slot {
    hash: u64,
    start: usize,
    len: usize,
    memo: u32,
    tag: u8,
    used: bool,
}

const EMPTY_SLOT: Slot = Slot {
    hash: 0,
    start: 0,
    len: 0,
    memo: 0,
    tag: 0,
    used: false,
};

/// Open-addressing hash table from strings already written to the buffer to their memo index.
/// Keys are ranges of the buffer, so no string is copied.
#[derive(Debug, Default)]
struct MemoTable {
    slots: Vec<Slot>,
    used: usize,
}

impl MemoTable {
    fn find(&self, buf: &[u8], key: MemoKey<'_>, hash: u64) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        for probe in 0..MAX_PROBES {
            let slot = self.slots.get((hash as usize).wrapping_add(probe) & mask)?;
            if !slot.used {
                return None;
            }
            if slot.hash == hash && slot.tag == key.tag && slot.len == key.bytes.len() {
                let stored = buf.get(slot.start..slot.start.saturating_add(slot.len));
                if stored == Some(key.bytes) {
                    return Some(slot.memo);
                }
            }
        }
        None
    }

    fn insert(&mut self, tag: u8, hash: u64, start: usize, len: usize, memo: u32) {
        if self.slots.is_empty() || self.used.saturating_mul(2) >= self.slots.len() {
            self.grow();
        }
        let slot = Slot {
            hash,
            start,
            len,
            memo,
            tag,
            used: true,
        };
        if self.place(slot) {
            self.used += 1;
        }
    }

    /// Puts `slot` in the first free place of its probe sequence; false if there is none.
    fn place(&mut self, slot: Slot) -> bool {
        let Some(mask) = self.slots.len().checked_sub(1) else {
            return false;
        };
        for probe in 0..MAX_PROBES {
            let i = (slot.hash as usize).wrapping_add(probe) & mask;
            if let Some(s) = self.slots.get_mut(i) {
                if !s.used {
                    *s = slot;
                    return true;
                }
            }
        }
        false
    }

    fn grow(&mut self) {
        let size = self
            .slots
            .len()
            .checked_mul(2)
            .unwrap_or(self.slots.len())
            .max(INITIAL_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY_SLOT; size]);
        self.used = 0;
        for slot in old.into_iter().filter(|s| s.used) {
            if self.place(slot) {
                self.used += 1;
            }
        }
    }
}

/// Most distinct globals memoised per pickle; further ones are written in full each time.
const MAX_GLOBALS: usize = 8;

/// A string in the writer's buffer: `(start, len)`.
type Span = (usize, usize);

/// A memoised global: where its module and name strings are in the buffer, and its index.
#[derive(Clone, Copy, Debug, Default)]
struct GlobalEntry {
    module: Span,
    name: Span,
    memo: u32,
}

/// The memoised globals of a pickle.
#[derive(Debug, Default)]
struct GlobalMemo {
    entries: [GlobalEntry; MAX_GLOBALS],
    len: usize,
}

impl GlobalMemo {
    fn find(&self, buf: &[u8], module: &str, name: &str) -> Option<u32> {
        let matches = |(start, len): Span, s: &str| {
            buf.get(start..start.saturating_add(len)) == Some(s.as_bytes())
        };
        self.entries
            .get(..self.len)?
            .iter()
            .find(|e| matches(e.module, module) && matches(e.name, name))
            .map(|e| e.memo)
    }

    fn insert(&mut self, module: Span, name: Span, memo: u32) {
        if let Some(entry) = self.entries.get_mut(self.len) {
            *entry = GlobalEntry { module, name, memo };
            self.len += 1;
        }
    }
}

/// A fast non-cryptographic hash in the style of foldhash: 8-byte reads (overlapping at the
/// end) combined with folded 64×64→128-bit multiplies.
fn hash_bytes(tag: u8, bytes: &[u8]) -> u64 {
    const K0: u64 = 0x243f_6a88_85a3_08d3;
    const K1: u64 = 0x1319_8a2e_0370_7344;
    let len = bytes.len();
    let seed = K0 ^ (u64::from(tag) << 56) ^ len as u64;
    let (a, b) = match len {
        0 => (0, 0),
        1..=3 => {
            let first = u64::from(bytes.first().copied().unwrap_or(0));
            let mid = u64::from(bytes.get(len / 2).copied().unwrap_or(0));
            let last = u64::from(bytes.last().copied().unwrap_or(0));
            ((first << 16) | (mid << 8) | last, 0)
        }
        4..=7 => (read4(bytes, 0), read4(bytes, len - 4)),
        8..=16 => (read8(bytes, 0), read8(bytes, len - 8)),
        _ => {
            let mut h = seed;
            let mut chunks = bytes.chunks_exact(16);
            for chunk in &mut chunks {
                h = fold_mul(read8(chunk, 0) ^ h, read8(chunk, 8) ^ K1);
            }
            return finish_hash(h, read8(bytes, len - 16), read8(bytes, len - 8));
        }
    };
    finish_hash(seed, a, b)
}

fn finish_hash(h: u64, a: u64, b: u64) -> u64 {
    const K1: u64 = 0x1319_8a2e_0370_7344;
    const K2: u64 = 0xa409_3822_299f_31d0;
    fold_mul(fold_mul(a ^ h, b ^ K1), K2 ^ h)
}

fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Little-endian `u64` at `at` (zero if out of range, which callers never ask for).
fn read8(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at.saturating_add(8))
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Little-endian `u32` at `at`, widened (zero if out of range).
fn read4(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at.saturating_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, |w| u64::from(u32::from_le_bytes(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(w: PickleWriter) -> Vec<u8> {
        w.finish().buf
    }

    fn body(f: impl FnOnce(&mut PickleWriter)) -> Vec<u8> {
        let mut w = PickleWriter::new();
        f(&mut w);
        let out = bytes_of(w);
        assert_eq!(&out[..2], &[op::PROTO, 5]);
        assert_eq!(out.last(), Some(&op::STOP));
        out[2..out.len() - 1].to_vec()
    }

    #[test]
    fn chunked_bytes_match_whole_writes() {
        let mut a = PickleWriter::new();
        a.chunked_bytes(ExternalKind::Str, 5, [&b"he"[..], b"llo"])
            .unwrap();
        let mut b = PickleWriter::new();
        b.str("hello");
        assert_eq!(a.finish().buf, b.finish().buf);

        let mut w = PickleWriter::new();
        let before = w.len();
        assert!(w
            .chunked_bytes(ExternalKind::Str, 2, [&[0xffu8, 0xfe][..]])
            .is_err());
        assert!(w
            .chunked_bytes(ExternalKind::Bytes, 3, [&b"ab"[..]])
            .is_err());
        assert_eq!(w.len(), before);
    }

    #[test]
    fn scalars() {
        assert_eq!(body(|w| w.none()), b"N");
        assert_eq!(body(|w| w.bool(true)), [0x88]);
        assert_eq!(body(|w| w.bool(false)), [0x89]);
        assert_eq!(body(|w| w.float(-0.0)), [b'G', 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(body(|w| w.float(1.5)), [b'G', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn ints() {
        assert_eq!(body(|w| w.int(0)), [b'K', 0]);
        assert_eq!(body(|w| w.int(255)), [b'K', 255]);
        assert_eq!(body(|w| w.int(256)), [b'M', 0, 1]);
        assert_eq!(body(|w| w.int(65535)), [b'M', 255, 255]);
        assert_eq!(body(|w| w.int(65536)), [b'J', 0, 0, 1, 0]);
        assert_eq!(body(|w| w.int(-1)), [b'J', 255, 255, 255, 255]);
        assert_eq!(body(|w| w.int(i32::MIN.into())), [b'J', 0, 0, 0, 0x80]);
        assert_eq!(
            body(|w| w.int(i64::from(i32::MAX) + 1)),
            [0x8a, 5, 0, 0, 0, 0x80, 0]
        );
        assert_eq!(
            body(|w| w.int(i64::from(i32::MIN) - 1)),
            [0x8a, 5, 0xff, 0xff, 0xff, 0x7f, 0xff]
        );
        assert_eq!(
            body(|w| w.int(i64::MAX)),
            [0x8a, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]
        );
        assert_eq!(
            body(|w| w.int(i64::MIN)),
            [0x8a, 8, 0, 0, 0, 0, 0, 0, 0, 0x80]
        );
    }

    #[test]
    fn big_ints() {
        assert_eq!(body(|w| w.big_int_le(&[1, 2])), [0x8a, 2, 1, 2]);
        let long = vec![7u8; 300];
        let out = body(|w| w.big_int_le(&long));
        assert_eq!(&out[..5], &[0x8b, 44, 1, 0, 0]);
        assert_eq!(&out[5..], &long[..]);
    }

    #[test]
    fn strings_and_bytes() {
        assert_eq!(body(|w| w.str("ab")), [0x8c, 2, b'a', b'b']);
        let s = "x".repeat(300);
        let out = body(|w| w.str(&s));
        assert_eq!(&out[..5], &[b'X', 44, 1, 0, 0]);
        assert_eq!(body(|w| w.bytes(b"ab")), [b'C', 2, b'a', b'b']);
        let out = body(|w| w.bytes(&[0; 256]));
        assert_eq!(&out[..5], &[b'B', 0, 1, 0, 0]);
        assert_eq!(
            body(|w| w.bytearray(b"a")),
            [0x96, 1, 0, 0, 0, 0, 0, 0, 0, b'a']
        );
    }

    #[test]
    fn containers() {
        assert_eq!(
            body(|w| {
                w.begin_list(0);
                w.end_list(0)
            }),
            b"]"
        );
        assert_eq!(
            body(|w| {
                w.begin_list(2);
                w.none();
                w.none();
                w.end_list(2)
            }),
            b"](NNe"
        );
        assert_eq!(
            body(|w| {
                w.begin_tuple(0);
                w.end_tuple(0)
            }),
            b")"
        );
        assert_eq!(
            body(|w| {
                w.begin_tuple(2);
                w.none();
                w.none();
                w.end_tuple(2)
            }),
            [b'N', b'N', 0x86]
        );
        assert_eq!(
            body(|w| {
                w.begin_tuple(4);
                (0..4).for_each(|_| w.none());
                w.end_tuple(4)
            }),
            b"(NNNNt"
        );
        assert_eq!(
            body(|w| {
                w.begin_dict(1);
                w.none();
                w.none();
                w.end_dict(1)
            }),
            b"}(NNu"
        );
        assert_eq!(
            body(|w| {
                w.begin_set(1, false);
                w.none();
                w.end_set(1, false)
            }),
            [0x8f, b'(', b'N', 0x90]
        );
        assert_eq!(
            body(|w| {
                w.begin_set(0, false);
                w.end_set(0, false)
            }),
            [0x8f]
        );
        assert_eq!(
            body(|w| {
                w.begin_set(0, true);
                w.end_set(0, true)
            }),
            [b'(', 0x91]
        );
    }

    #[test]
    fn key_strings_are_memoised() {
        let out = body(|w| {
            w.key_str("k");
            w.key_str("j");
            w.key_str("k");
            w.str("k");
            w.key_str("j");
        });
        assert_eq!(
            out,
            [0x8c, 1, b'k', 0x94, 0x8c, 1, b'j', 0x94, b'h', 0, 0x8c, 1, b'k', b'h', 1]
        );
    }

    #[test]
    fn atoms_and_globals_are_memoised() {
        let out = body(|w| {
            w.atom("ok", false);
            w.atom("ok", true);
            w.atom("ok", false);
            w.atom("no", false);
        });
        let mut expected = vec![0x8c, 4];
        expected.extend_from_slice(b"snex");
        expected.extend_from_slice(&[0x8c, 4]);
        expected.extend_from_slice(b"Atom");
        expected.extend_from_slice(&[0x93, 0x94, 0x8c, 2, b'o', b'k', 0x85, b'R', 0x94]);
        expected.extend_from_slice(&[0x8c, 4]);
        expected.extend_from_slice(b"snex");
        expected.extend_from_slice(&[0x8c, 12]);
        expected.extend_from_slice(b"DistinctAtom");
        expected.extend_from_slice(&[0x93, 0x94, 0x8c, 2, b'o', b'k', 0x85, b'R', 0x94]);
        expected.extend_from_slice(&[b'h', 1]);
        expected.extend_from_slice(&[b'h', 0, 0x8c, 2, b'n', b'o', 0x85, b'R', 0x94]);
        assert_eq!(out, expected);
    }

    #[test]
    fn many_keys_use_long_binget() {
        let mut w = PickleWriter::new();
        let keys: Vec<String> = (0..1000).map(|i| format!("key{i}")).collect();
        for k in &keys {
            w.key_str(k);
        }
        for k in &keys {
            w.key_str(k);
        }
        let out = bytes_of(w);
        let tail = &out[out.len() - 6..];
        assert_eq!(tail, &[b'j', 0xe7, 0x03, 0, 0, b'.']);
    }

    #[test]
    fn minimal_lengths() {
        assert_eq!(minimal_signed_len(&0i64.to_le_bytes()), 1);
        assert_eq!(minimal_signed_len(&(-1i64).to_le_bytes()), 1);
        assert_eq!(minimal_signed_len(&128i64.to_le_bytes()), 2);
        assert_eq!(minimal_signed_len(&(-128i64).to_le_bytes()), 1);
        assert_eq!(minimal_signed_len(&(-129i64).to_le_bytes()), 2);
    }

    #[test]
    fn nearly_all_distinct_keys_are_memoised() {
        let keys: Vec<String> = (0..100_000).map(|i| format!("key{i}")).collect();
        let mut w = PickleWriter::new();
        keys.iter().for_each(|k| w.key_str(k));
        let first_pass = w.len();
        keys.iter().for_each(|k| w.key_str(k));
        let second_pass = w.len() - first_pass;
        // Memoised keys cost a LONG_BINGET (5 bytes) at most; unmemoised ones 9 or more.
        let misses = second_pass.saturating_sub(5 * keys.len()) / 4;
        assert!(misses < keys.len() / 1000, "{misses} keys not memoised");
    }

    #[test]
    fn hash_reads_every_byte() {
        let base = hash_bytes(TAG_KEY, b"abcdefghijklmnopqrstuvwxyz");
        for i in 0..26 {
            let mut s = b"abcdefghijklmnopqrstuvwxyz".to_vec();
            s[i] ^= 1;
            assert_ne!(hash_bytes(TAG_KEY, &s), base, "byte {i}");
        }
        for len in 1..40 {
            let s = vec![b'x'; len];
            assert_ne!(hash_bytes(TAG_KEY, &s), hash_bytes(TAG_ATOM, &s));
            assert_ne!(hash_bytes(TAG_KEY, &s), hash_bytes(TAG_KEY, &s[..len / 2]));
        }
    }

    #[test]
    fn memo_table_survives_colliding_hashes() {
        let mut t = MemoTable::default();
        let buf = b"aaaa".to_vec();
        // Same hash for every entry: only MAX_PROBES fit, the rest are not memoised.
        for i in 0..100 {
            t.insert(TAG_KEY, 42, 0, i % 4, i as u32);
        }
        let key = MemoKey {
            tag: TAG_KEY,
            bytes: b"a",
        };
        assert_eq!(t.find(&buf, key, 42), Some(1));
    }
}
