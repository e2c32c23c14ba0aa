//! Reading the pickles Python sends (Python → Elixir).
//!
//! This is a restricted unpickler: it accepts only the opcodes listed in `docs/protocol.md`,
//! never imports or calls anything, and the only globals it knows are the `snex._wire`
//! markers `atom`, `term` and `value`, each only as the callable of a `REDUCE` on a 1-tuple.
//! Values are made by a [`Builder`], so the caller decides what a value is (Erlang terms in
//! the NIF, a Rust enum in tests, nothing at all in [`validate`]).
//!
//! # How it works
//!
//! The unpickler keeps Python's value stack, with marks on a separate stack (like CPython's
//! C unpickler, where a mark is a fence that values below it cannot be popped through).
//! Lists, dicts and sets are mutable while a pickle is read (`EMPTY_LIST` then `APPENDS`), so
//! they stay *open* on the stack and are only built ("frozen") when consumed: by a parent
//! container, a tuple, `REDUCE`, `POP` or `STOP`. Python memoises a container before filling
//! it; its memo entry points at the open container's stack slot until it is frozen, and then
//! holds the built value.
//!
//! A memo fetch (`BINGET`) of a container that is still open freezes it on the spot, and any
//! later attempt to add to it is an error. That is how recursive structures are refused
//! (`l = []; l.append(l)` fetches `l` while it is being filled) while shared ones still work
//! (`[l, l]` fetches `l` after it is complete).
//!
//! Strings and bytes stay as slices of the input until their value is needed, so the builder
//! gets them without a copy and `STACK_GLOBAL` / `snex._wire.atom` can read them.
//!
//! The loop is iterative, every length is checked against the remaining input before use,
//! and arithmetic is checked, so no input can panic, overflow the native stack or make the
//! unpickler allocate more than a small multiple of the input.

use std::collections::HashMap;
use std::fmt;

use super::op;

/// Makes values for [`decode`]. Each method turns one decoded piece into a value; containers
/// get their already built items. An error from a builder method aborts decoding and is
/// returned unchanged.
pub trait Builder {
    /// The values built; cloned when a value is shared through the memo.
    type Value: Clone;
    /// `None`.
    fn none(&mut self) -> Result<Self::Value, DecodeError>;
    /// `True` or `False`.
    fn bool(&mut self, v: bool) -> Result<Self::Value, DecodeError>;
    /// An `int` that fits in `i64`.
    fn int(&mut self, v: i64) -> Result<Self::Value, DecodeError>;
    /// An `int` outside the `i64` range, as little-endian two's complement bytes.
    fn big_int(&mut self, le_twos_complement: &[u8]) -> Result<Self::Value, DecodeError>;
    /// A `float`, as is (infinities and NaN included).
    fn float(&mut self, v: f64) -> Result<Self::Value, DecodeError>;
    /// A `str`.
    fn str(&mut self, v: &str) -> Result<Self::Value, DecodeError>;
    /// A `bytes` or `bytearray`.
    fn bytes(&mut self, v: &[u8]) -> Result<Self::Value, DecodeError>;
    /// A `list`.
    fn list(&mut self, items: Vec<Self::Value>) -> Result<Self::Value, DecodeError>;
    /// A `tuple`.
    fn tuple(&mut self, items: Vec<Self::Value>) -> Result<Self::Value, DecodeError>;
    /// A `dict`, pairs in insertion order (a key may repeat; Python keeps the last value).
    fn map(&mut self, pairs: Vec<(Self::Value, Self::Value)>) -> Result<Self::Value, DecodeError>;
    /// A `set` or `frozenset` (items may repeat).
    fn set(&mut self, items: Vec<Self::Value>) -> Result<Self::Value, DecodeError>;
    /// `snex._wire.atom(name)`.
    fn atom(&mut self, name: &str) -> Result<Self::Value, DecodeError>;
    /// `snex._wire.term(etf)`: an Erlang term in external term format.
    fn term(&mut self, external_term_format: &[u8]) -> Result<Self::Value, DecodeError>;
    /// `NEXT_BUFFER`: the out-of-band buffer number `index` (counted from 0 in the order the
    /// pickle takes them) of the frame the pickle came with. By default there are none.
    fn buffer(&mut self, index: usize) -> Result<Self::Value, DecodeError> {
        Err(DecodeError::new(format!(
            "pickle takes out-of-band buffer {index}, but none came with it"
        )))
    }
}

/// Why a pickle was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    message: String,
}

impl DecodeError {
    /// An error with this message (for builders that refuse a value).
    pub fn new(message: impl Into<String>) -> Self {
        DecodeError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes the pickle `data` into a value made by `builder`.
///
/// The pickle must hold exactly one value and end with `STOP`, with nothing after it.
pub fn decode<B: Builder>(data: &[u8], builder: &mut B) -> Result<B::Value, DecodeError> {
    Unpickler::new(data, builder).run()
}

/// Checks that `data` is a pickle [`decode`] accepts, building nothing.
///
/// Builders can still refuse values that pass (an atom name that is too long, say).
pub fn validate(data: &[u8]) -> Result<(), DecodeError> {
    validate_with_buffers(data, 0)
}

/// Like [`validate`], for a pickle that came with `buffers` out-of-band buffers.
pub fn validate_with_buffers(data: &[u8], buffers: usize) -> Result<(), DecodeError> {
    decode(data, &mut NoopBuilder { buffers })
}

/// The builder of [`validate`]: knows only how many buffers there are.
struct NoopBuilder {
    buffers: usize,
}

impl Builder for NoopBuilder {
    fn buffer(&mut self, index: usize) -> Result<(), DecodeError> {
        if index < self.buffers {
            Ok(())
        } else {
            Err(DecodeError::new(format!(
                "pickle takes out-of-band buffer {index}, but only {} came with it",
                self.buffers
            )))
        }
    }
    type Value = ();
    fn none(&mut self) -> Result<(), DecodeError> {
        Ok(())
    }
    fn bool(&mut self, _: bool) -> Result<(), DecodeError> {
        Ok(())
    }
    fn int(&mut self, _: i64) -> Result<(), DecodeError> {
        Ok(())
    }
    fn big_int(&mut self, _: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
    fn float(&mut self, _: f64) -> Result<(), DecodeError> {
        Ok(())
    }
    fn str(&mut self, _: &str) -> Result<(), DecodeError> {
        Ok(())
    }
    fn bytes(&mut self, _: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
    fn list(&mut self, _: Vec<()>) -> Result<(), DecodeError> {
        Ok(())
    }
    fn tuple(&mut self, _: Vec<()>) -> Result<(), DecodeError> {
        Ok(())
    }
    fn map(&mut self, _: Vec<((), ())>) -> Result<(), DecodeError> {
        Ok(())
    }
    fn set(&mut self, _: Vec<()>) -> Result<(), DecodeError> {
        Ok(())
    }
    fn atom(&mut self, _: &str) -> Result<(), DecodeError> {
        Ok(())
    }
    fn term(&mut self, _: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
}

/// The `snex._wire` callables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Global {
    /// `atom(name: str)`.
    Atom,
    /// `term(etf: bytes)`.
    Term,
    /// `value(v)`: `v` itself.
    Value,
}

impl Global {
    fn lookup(module: &str, name: &str) -> Option<Global> {
        match (module, name) {
            ("snex._wire", "atom") => Some(Global::Atom),
            ("snex._wire", "term") => Some(Global::Term),
            ("snex._wire", "value") => Some(Global::Value),
            _ => None,
        }
    }
}

/// A finished value that may still be needed in raw form: strings and bytes are kept as
/// input slices (for `STACK_GLOBAL` and the `snex._wire` markers) together with their built
/// value once there is one (so that memo fetches share it).
#[derive(Clone, Debug)]
enum Leaf<'a, V> {
    Built(V),
    Str(&'a str, Option<V>),
    Bytes(&'a [u8], Option<V>),
}

/// Memo indices that refer to an open container.
#[derive(Debug, Default)]
struct Refs {
    first: Option<u32>,
    more: Vec<u32>,
}

impl Refs {
    fn add(&mut self, idx: u32) {
        match self.first {
            None => self.first = Some(idx),
            Some(_) => self.more.push(idx),
        }
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.first.into_iter().chain(self.more.iter().copied())
    }
}

/// An entry of the value stack.
#[derive(Debug)]
enum Slot<'a, V> {
    Leaf(Leaf<'a, V>),
    /// A 1-tuple, kept unbuilt because it may be the argument of a `REDUCE`.
    Tuple1(Leaf<'a, V>),
    /// An open list.
    List(Vec<V>, Refs),
    /// An open dict.
    Dict(Vec<(V, V)>, Refs),
    /// An open set.
    Set(Vec<V>, Refs),
    /// A container frozen by a memo fetch while still on the stack; adding to it is an error.
    Closed(V),
    /// A `snex._wire` callable.
    Global(Global),
}

/// An entry of the memo.
#[derive(Clone, Debug)]
enum MemoEntry<'a, V> {
    Leaf(Leaf<'a, V>),
    Tuple1(Leaf<'a, V>),
    /// The open container at this stack position.
    Open(usize),
    Global(Global),
}

/// Python's memo: dense for the usual sequential indices, a map for any others (so that a
/// huge index costs nothing).
struct Memo<'a, V> {
    dense: Vec<MemoEntry<'a, V>>,
    sparse: HashMap<u32, MemoEntry<'a, V>>,
}

impl<'a, V> Memo<'a, V> {
    fn new() -> Self {
        Memo {
            dense: Vec::new(),
            sparse: HashMap::new(),
        }
    }

    /// The index `MEMOIZE` uses: the number of entries, as in CPython.
    fn next_index(&self) -> Option<u32> {
        u32::try_from(self.dense.len().checked_add(self.sparse.len())?).ok()
    }

    fn get(&self, idx: u32) -> Option<&MemoEntry<'a, V>> {
        match self.dense.get(idx as usize) {
            Some(entry) => Some(entry),
            None => self.sparse.get(&idx),
        }
    }

    fn get_mut(&mut self, idx: u32) -> Option<&mut MemoEntry<'a, V>> {
        match self.dense.get_mut(idx as usize) {
            Some(entry) => Some(entry),
            None => self.sparse.get_mut(&idx),
        }
    }

    fn put(&mut self, idx: u32, entry: MemoEntry<'a, V>) {
        let i = idx as usize;
        if let Some(slot) = self.dense.get_mut(i) {
            *slot = entry;
        } else if i == self.dense.len() {
            if !self.sparse.is_empty() {
                self.sparse.remove(&idx);
            }
            self.dense.push(entry);
        } else {
            self.sparse.insert(idx, entry);
        }
    }
}

/// The input with a read position.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes, or `None` if fewer are left.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        let [b] = self.array::<1>()?;
        Some(b)
    }
}

/// State of one decoding: the input, the stack and marks, and the [`Cx`] that builds values.
struct Unpickler<'a, 'b, B: Builder> {
    input: Input<'a>,
    stack: Vec<Slot<'a, B::Value>>,
    /// Stack lengths at each `MARK`, innermost last.
    marks: Vec<usize>,
    cx: Cx<'a, 'b, B>,
}

/// What freezing a slot needs besides the stack: the builder, the memo, and the current
/// opcode for error messages. Kept apart from the stack so that slots can be frozen while
/// they are drained from it.
struct Cx<'a, 'b, B: Builder> {
    builder: &'b mut B,
    memo: Memo<'a, B::Value>,
    /// Offset and value of the opcode being executed.
    op_pos: usize,
    op: u8,
    /// Out-of-band buffers taken so far (`NEXT_BUFFER`).
    next_buffer: usize,
    /// The opcode executed before this one.
    prev_op: u8,
}

type Res<T> = Result<T, DecodeError>;

impl<'a, B: Builder> Cx<'a, '_, B> {
    /// An error about the current opcode.
    fn err(&self, msg: &str) -> DecodeError {
        DecodeError::new(format!(
            "pickle opcode {} (0x{:02x}) at byte {}: {}",
            op::name(self.op),
            self.op,
            self.op_pos,
            msg
        ))
    }

    /// Turns `slot`, which was at stack position `pos`, into a value.
    fn freeze(&mut self, slot: Slot<'a, B::Value>, pos: usize) -> Res<B::Value> {
        match slot {
            Slot::Leaf(leaf) => self.leaf_value(leaf),
            Slot::Tuple1(leaf) => {
                let item = self.leaf_value(leaf)?;
                self.builder.tuple(vec![item])
            }
            Slot::List(items, refs) => {
                let v = self.builder.list(items)?;
                self.resolve_refs(&refs, pos, &v);
                Ok(v)
            }
            Slot::Dict(pairs, refs) => {
                let v = self.builder.map(pairs)?;
                self.resolve_refs(&refs, pos, &v);
                Ok(v)
            }
            Slot::Set(items, refs) => {
                let v = self.builder.set(items)?;
                self.resolve_refs(&refs, pos, &v);
                Ok(v)
            }
            Slot::Closed(v) => Ok(v),
            Slot::Global(_) => Err(self.err("a snex._wire global can only be called")),
        }
    }

    fn leaf_value(&mut self, leaf: Leaf<'a, B::Value>) -> Res<B::Value> {
        match leaf {
            Leaf::Built(v) | Leaf::Str(_, Some(v)) | Leaf::Bytes(_, Some(v)) => Ok(v),
            Leaf::Str(s, None) => self.builder.str(s),
            Leaf::Bytes(b, None) => self.builder.bytes(b),
        }
    }

    /// Turns `slot` into a leaf, building it unless it already is one.
    fn leaf_of(&mut self, slot: Slot<'a, B::Value>, pos: usize) -> Res<Leaf<'a, B::Value>> {
        match slot {
            Slot::Leaf(leaf) => Ok(leaf),
            other => Ok(Leaf::Built(self.freeze(other, pos)?)),
        }
    }

    /// Points the memo entries of the container that was at `pos` at its value `v`.
    fn resolve_refs(&mut self, refs: &Refs, pos: usize, v: &B::Value) {
        for idx in refs.iter() {
            if let Some(entry) = self.memo.get_mut(idx) {
                if matches!(entry, MemoEntry::Open(p) if *p == pos) {
                    *entry = MemoEntry::Leaf(Leaf::Built(v.clone()));
                }
            }
        }
    }
}

impl<'a, 'b, B: Builder> Unpickler<'a, 'b, B> {
    fn new(data: &'a [u8], builder: &'b mut B) -> Self {
        Unpickler {
            input: Input { data, pos: 0 },
            stack: Vec::new(),
            marks: Vec::new(),
            cx: Cx {
                builder,
                memo: Memo::new(),
                op_pos: 0,
                op: 0,
                next_buffer: 0,
                prev_op: 0,
            },
        }
    }

    fn run(mut self) -> Res<B::Value> {
        while let Some(opcode) = self.input.u8() {
            self.cx.op_pos = self.input.pos.saturating_sub(1);
            self.cx.prev_op = self.cx.op;
            self.cx.op = opcode;
            if opcode == op::STOP {
                return self.stop();
            }
            self.step(opcode)?;
        }
        Err(DecodeError::new(format!(
            "pickle ends without STOP after {} bytes",
            self.input.data.len()
        )))
    }

    /// Executes one opcode other than `STOP`.
    fn step(&mut self, opcode: u8) -> Res<()> {
        match opcode {
            op::PROTO => self.proto(),
            op::FRAME => self.frame(),
            op::NONE => self.push_built(|b| b.none()),
            op::NEWTRUE => self.push_built(|b| b.bool(true)),
            op::NEWFALSE => self.push_built(|b| b.bool(false)),
            op::BININT1 => {
                let [v] = self.fixed()?;
                self.push_built(|b| b.int(i64::from(v)))
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.fixed()?);
                self.push_built(|b| b.int(i64::from(v)))
            }
            op::BININT => {
                let v = i32::from_le_bytes(self.fixed()?);
                self.push_built(|b| b.int(i64::from(v)))
            }
            op::LONG1 => {
                let [n] = self.fixed()?;
                self.long(u64::from(n))
            }
            op::LONG4 => {
                let n = i32::from_le_bytes(self.fixed()?);
                let n = u64::try_from(n).map_err(|_| self.err("negative length"))?;
                self.long(n)
            }
            op::BINFLOAT => {
                let v = f64::from_bits(u64::from_be_bytes(self.fixed()?));
                self.push_built(|b| b.float(v))
            }
            op::SHORT_BINUNICODE => self.string(1),
            op::BINUNICODE => self.string(4),
            op::BINUNICODE8 => self.string(8),
            op::SHORT_BINBYTES => self.binary(1),
            op::BINBYTES => self.binary(4),
            op::BINBYTES8 | op::BYTEARRAY8 => self.binary(8),
            op::NEXT_BUFFER => {
                let index = self.cx.next_buffer;
                self.cx.next_buffer += 1;
                let value = self
                    .cx
                    .builder
                    .buffer(index)
                    .map_err(|e| self.err(e.message()))?;
                self.push(Slot::Leaf(Leaf::Built(value)))
            }
            // Makes the buffer just taken read-only in Python; a binary is anyway.
            op::READONLY_BUFFER => {
                if self.cx.prev_op == op::NEXT_BUFFER {
                    Ok(())
                } else {
                    Err(self.err("does not follow NEXT_BUFFER"))
                }
            }
            op::EMPTY_LIST => self.push(Slot::List(Vec::new(), Refs::default())),
            op::EMPTY_DICT => self.push(Slot::Dict(Vec::new(), Refs::default())),
            op::EMPTY_SET => self.push(Slot::Set(Vec::new(), Refs::default())),
            op::EMPTY_TUPLE => self.push_built(|b| b.tuple(Vec::new())),
            op::APPEND => self.append(),
            op::APPENDS => self.appends(),
            op::SETITEM => self.setitem(),
            op::SETITEMS => self.setitems(),
            op::ADDITEMS => self.additems(),
            op::TUPLE1 => self.tuple_n(1),
            op::TUPLE2 => self.tuple_n(2),
            op::TUPLE3 => self.tuple_n(3),
            op::TUPLE => self.tuple_mark(),
            op::FROZENSET => self.frozenset(),
            op::MARK => self.push_mark(),
            op::POP => self.pop_any(),
            op::POP_MARK => self.pop_mark(),
            op::MEMOIZE => {
                let idx = self
                    .cx
                    .memo
                    .next_index()
                    .ok_or_else(|| self.err("memo is full"))?;
                self.memo_put(idx)
            }
            op::BINPUT => {
                let [idx] = self.fixed()?;
                self.memo_put(u32::from(idx))
            }
            op::LONG_BINPUT => {
                let idx = u32::from_le_bytes(self.fixed()?);
                self.memo_put(idx)
            }
            op::BINGET => {
                let [idx] = self.fixed()?;
                self.memo_get(u32::from(idx))
            }
            op::LONG_BINGET => {
                let idx = u32::from_le_bytes(self.fixed()?);
                self.memo_get(idx)
            }
            op::STACK_GLOBAL => self.stack_global(),
            op::REDUCE => self.reduce(),
            _ => Err(self.err("is not allowed")),
        }
    }

    // ----- errors and input -----

    fn err(&self, msg: &str) -> DecodeError {
        self.cx.err(msg)
    }

    /// The opcode's fixed-size argument.
    fn fixed<const N: usize>(&mut self) -> Res<[u8; N]> {
        match self.input.array::<N>() {
            Some(bytes) => Ok(bytes),
            None => Err(self.err("argument runs past the end of the input")),
        }
    }

    /// A length-prefixed argument whose length field has `width` bytes.
    fn counted(&mut self, width: usize) -> Res<&'a [u8]> {
        let len = match width {
            1 => u64::from(u8::from_le_bytes(self.fixed()?)),
            4 => u64::from(u32::from_le_bytes(self.fixed()?)),
            _ => u64::from_le_bytes(self.fixed()?),
        };
        self.bytes_of_len(len)
    }

    /// The next `len` bytes; a length beyond the input is refused before anything happens.
    fn bytes_of_len(&mut self, len: u64) -> Res<&'a [u8]> {
        let remaining = self.input.remaining();
        let taken = usize::try_from(len)
            .ok()
            .filter(|&n| n <= remaining)
            .and_then(|n| self.input.take(n));
        match taken {
            Some(bytes) => Ok(bytes),
            None => Err(self.err(&format!(
                "length {len} is more than the {remaining} bytes left"
            ))),
        }
    }

    // ----- stack -----

    /// The stack length values cannot be popped below: the innermost mark.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, slot: Slot<'a, B::Value>) -> Res<()> {
        self.stack.push(slot);
        Ok(())
    }

    fn push_built(&mut self, f: impl FnOnce(&mut B) -> Res<B::Value>) -> Res<()> {
        let v = f(self.cx.builder)?;
        self.push(Slot::Leaf(Leaf::Built(v)))
    }

    fn push_mark(&mut self) -> Res<()> {
        self.marks.push(self.stack.len());
        Ok(())
    }

    /// Pops the top slot, which must be above the innermost mark.
    fn pop(&mut self) -> Res<Slot<'a, B::Value>> {
        if self.stack.len() <= self.fence() {
            return Err(self.err("stack underflow"));
        }
        self.pop_unchecked()
    }

    /// Pops the top slot without looking at marks.
    fn pop_unchecked(&mut self) -> Res<Slot<'a, B::Value>> {
        match self.stack.pop() {
            Some(slot) => Ok(slot),
            None => Err(self.err("stack underflow")),
        }
    }

    /// Pops the innermost mark; returns the stack length it was set at.
    fn pop_mark_position(&mut self) -> Res<usize> {
        match self.marks.pop() {
            Some(mark) => Ok(mark),
            None => Err(self.err("no MARK to match")),
        }
    }

    /// Pops the top value and builds it.
    fn pop_value(&mut self) -> Res<B::Value> {
        let slot = self.pop()?;
        let pos = self.stack.len();
        self.cx.freeze(slot, pos)
    }

    /// Builds the values from stack position `from` up, removing them, into `into`.
    fn drain_values(&mut self, from: usize, into: &mut Vec<B::Value>) -> Res<()> {
        let from = from.min(self.stack.len());
        into.reserve(self.stack.len() - from);
        for (pos, slot) in (from..).zip(self.stack.drain(from..)) {
            into.push(self.cx.freeze(slot, pos)?);
        }
        Ok(())
    }

    /// Like [`drain_values`](Self::drain_values), taking the values as key/value pairs.
    fn drain_pairs(&mut self, from: usize, into: &mut Vec<(B::Value, B::Value)>) -> Res<()> {
        let from = from.min(self.stack.len());
        into.reserve((self.stack.len() - from) / 2);
        let mut slots = (from..).zip(self.stack.drain(from..));
        while let Some((key_pos, key)) = slots.next() {
            let Some((value_pos, value)) = slots.next() else {
                return Err(self.cx.err("odd number of items for a dict"));
            };
            let key = self.cx.freeze(key, key_pos)?;
            let value = self.cx.freeze(value, value_pos)?;
            into.push((key, value));
        }
        Ok(())
    }

    // ----- opcodes -----

    fn proto(&mut self) -> Res<()> {
        let [version] = self.fixed()?;
        if (2..=5).contains(&version) {
            Ok(())
        } else {
            Err(self.err(&format!("protocol {version} is not supported")))
        }
    }

    /// `FRAME` only announces the length of the next frame, which is not needed here.
    fn frame(&mut self) -> Res<()> {
        let len = u64::from_le_bytes(self.fixed()?);
        let remaining = self.input.remaining();
        if usize::try_from(len).map_or(true, |n| n > remaining) {
            return Err(self.err(&format!(
                "frame length {len} is more than the {remaining} bytes left"
            )));
        }
        Ok(())
    }

    /// `LONG1`, `LONG4`: an `int` of `n` little-endian two's complement bytes.
    fn long(&mut self, n: u64) -> Res<()> {
        let bytes = self.bytes_of_len(n)?;
        let builder = &mut *self.cx.builder;
        let v = match long_to_i64(bytes) {
            Some(i) => builder.int(i)?,
            None => builder.big_int(bytes)?,
        };
        self.push(Slot::Leaf(Leaf::Built(v)))
    }

    fn string(&mut self, width: usize) -> Res<()> {
        let bytes = self.counted(width)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => self.push(Slot::Leaf(Leaf::Str(s, None))),
            Err(e) => Err(self.err(&format!(
                "string is not valid UTF-8 (at byte {} of the string)",
                e.valid_up_to()
            ))),
        }
    }

    fn binary(&mut self, width: usize) -> Res<()> {
        let bytes = self.counted(width)?;
        self.push(Slot::Leaf(Leaf::Bytes(bytes, None)))
    }

    /// `APPEND`: `list.append(top)`.
    fn append(&mut self) -> Res<()> {
        let v = self.pop_value()?;
        let target = self.target(self.stack.len())?;
        match self.stack.get_mut(target) {
            Some(Slot::List(items, _)) => {
                items.push(v);
                Ok(())
            }
            _ => Err(self.not_open(target, "list")),
        }
    }

    /// `APPENDS`: `list.extend(values above the mark)`.
    fn appends(&mut self) -> Res<()> {
        let mark = self.pop_mark_position()?;
        let target = self.target(mark)?;
        let mut items = match self.stack.get_mut(target) {
            Some(Slot::List(items, _)) => std::mem::take(items),
            _ => return Err(self.not_open(target, "list")),
        };
        let drained = self.drain_values(mark, &mut items);
        if let Some(Slot::List(slot, _)) = self.stack.get_mut(target) {
            *slot = items;
        }
        drained
    }

    /// `SETITEM`: `dict[key] = value`.
    fn setitem(&mut self) -> Res<()> {
        let value = self.pop_value()?;
        let key = self.pop_value()?;
        let target = self.target(self.stack.len())?;
        match self.stack.get_mut(target) {
            Some(Slot::Dict(pairs, _)) => {
                pairs.push((key, value));
                Ok(())
            }
            _ => Err(self.not_open(target, "dict")),
        }
    }

    /// `SETITEMS`: `dict.update(pairs above the mark)`.
    fn setitems(&mut self) -> Res<()> {
        let mark = self.pop_mark_position()?;
        let target = self.target(mark)?;
        let mut pairs = match self.stack.get_mut(target) {
            Some(Slot::Dict(pairs, _)) => std::mem::take(pairs),
            _ => return Err(self.not_open(target, "dict")),
        };
        let drained = self.drain_pairs(mark, &mut pairs);
        if let Some(Slot::Dict(slot, _)) = self.stack.get_mut(target) {
            *slot = pairs;
        }
        drained
    }

    /// `ADDITEMS`: `set.update(values above the mark)`.
    fn additems(&mut self) -> Res<()> {
        let mark = self.pop_mark_position()?;
        let target = self.target(mark)?;
        let mut items = match self.stack.get_mut(target) {
            Some(Slot::Set(items, _)) => std::mem::take(items),
            _ => return Err(self.not_open(target, "set")),
        };
        let drained = self.drain_values(mark, &mut items);
        if let Some(Slot::Set(slot, _)) = self.stack.get_mut(target) {
            *slot = items;
        }
        drained
    }

    /// The stack position just below `above`, where the container being added to must be;
    /// it may not be below the innermost mark.
    fn target(&self, above: usize) -> Res<usize> {
        match above.checked_sub(1) {
            Some(t) if t >= self.fence() => Ok(t),
            _ => Err(self.err("stack underflow")),
        }
    }

    /// The error for adding to the slot at `pos`, which is not an open `what`.
    fn not_open(&self, pos: usize, what: &str) -> DecodeError {
        match self.stack.get(pos) {
            Some(Slot::Closed(_)) => self.err(&format!(
                "adds to a {what} that was referenced before it was complete \
                 (a recursive structure)"
            )),
            _ => self.err(&format!("target is not a {what}")),
        }
    }

    /// `TUPLE1` to `TUPLE3`.
    fn tuple_n(&mut self, n: usize) -> Res<()> {
        match self.stack.len().checked_sub(n) {
            Some(from) if from >= self.fence() => self.tuple_from(from),
            _ => Err(self.err("stack underflow")),
        }
    }

    /// `TUPLE`: a tuple of the values above the mark.
    fn tuple_mark(&mut self) -> Res<()> {
        let mark = self.pop_mark_position()?;
        self.tuple_from(mark)
    }

    /// Replaces the slots from `from` up with a tuple of them (an unbuilt 1-tuple for one).
    fn tuple_from(&mut self, from: usize) -> Res<()> {
        if self.stack.len() == from.saturating_add(1) {
            let slot = self.pop_unchecked()?;
            let leaf = self.cx.leaf_of(slot, from)?;
            return self.push(Slot::Tuple1(leaf));
        }
        let mut items = Vec::new();
        self.drain_values(from, &mut items)?;
        self.push_built(|b| b.tuple(items))
    }

    /// `FROZENSET`: a set of the values above the mark.
    fn frozenset(&mut self) -> Res<()> {
        let mark = self.pop_mark_position()?;
        let mut items = Vec::new();
        self.drain_values(mark, &mut items)?;
        self.push_built(|b| b.set(items))
    }

    /// `POP`: discards the top value or, at a mark, the mark (as CPython does).
    fn pop_any(&mut self) -> Res<()> {
        if self.stack.len() > self.fence() {
            let slot = self.pop_unchecked()?;
            let pos = self.stack.len();
            self.discard(slot, pos)
        } else if self.marks.pop().is_some() {
            Ok(())
        } else {
            Err(self.err("stack underflow"))
        }
    }

    /// `POP_MARK`: discards the values above the mark, and the mark.
    fn pop_mark(&mut self) -> Res<()> {
        let mark = self.pop_mark_position()?;
        while self.stack.len() > mark {
            let slot = self.pop_unchecked()?;
            let pos = self.stack.len();
            self.discard(slot, pos)?;
        }
        Ok(())
    }

    /// Drops a slot; a memoised container is built first, as the memo still refers to it.
    fn discard(&mut self, slot: Slot<'a, B::Value>, pos: usize) -> Res<()> {
        if let Slot::List(_, refs) | Slot::Dict(_, refs) | Slot::Set(_, refs) = &slot {
            if refs.first.is_some() {
                self.cx.freeze(slot, pos)?;
            }
        }
        Ok(())
    }

    /// `MEMOIZE`, `BINPUT`, `LONG_BINPUT`: `memo[idx] = top`.
    fn memo_put(&mut self, idx: u32) -> Res<()> {
        let fence = self.fence();
        let pos = match self.stack.len().checked_sub(1) {
            Some(pos) if pos >= fence => pos,
            _ => return Err(self.err("stack underflow")),
        };
        let entry = match self.stack.get_mut(pos) {
            Some(Slot::Leaf(leaf)) => MemoEntry::Leaf(leaf.clone()),
            Some(Slot::Tuple1(leaf)) => MemoEntry::Tuple1(leaf.clone()),
            Some(Slot::List(_, refs) | Slot::Dict(_, refs) | Slot::Set(_, refs)) => {
                refs.add(idx);
                MemoEntry::Open(pos)
            }
            Some(Slot::Closed(v)) => MemoEntry::Leaf(Leaf::Built(v.clone())),
            Some(Slot::Global(g)) => MemoEntry::Global(*g),
            None => return Err(self.err("stack underflow")),
        };
        self.cx.memo.put(idx, entry);
        Ok(())
    }

    /// `BINGET`, `LONG_BINGET`: pushes `memo[idx]`.
    fn memo_get(&mut self, idx: u32) -> Res<()> {
        let entry = match self.cx.memo.get(idx) {
            Some(entry) => entry.clone(),
            None => return Err(self.err(&format!("memo has no entry {idx}"))),
        };
        let slot = match entry {
            MemoEntry::Leaf(leaf) => Slot::Leaf(self.shared_leaf(idx, leaf)?),
            MemoEntry::Tuple1(leaf) => Slot::Tuple1(leaf),
            MemoEntry::Global(g) => Slot::Global(g),
            MemoEntry::Open(pos) => Slot::Leaf(Leaf::Built(self.close(pos)?)),
        };
        self.push(slot)
    }

    /// A memoised string or bytes pushed again: built once and shared from then on, unless
    /// it is about to be the argument of a `snex._wire` call.
    fn shared_leaf(&mut self, idx: u32, leaf: Leaf<'a, B::Value>) -> Res<Leaf<'a, B::Value>> {
        if matches!(self.stack.last(), Some(Slot::Global(_))) {
            return Ok(leaf);
        }
        let built = match leaf {
            Leaf::Str(s, None) => Leaf::Str(s, Some(self.cx.builder.str(s)?)),
            Leaf::Bytes(b, None) => Leaf::Bytes(b, Some(self.cx.builder.bytes(b)?)),
            other => return Ok(other),
        };
        self.cx.memo.put(idx, MemoEntry::Leaf(built.clone()));
        Ok(built)
    }

    /// Freezes the open container at stack position `pos` where it stands, because it is
    /// being referenced, and returns its value. Adding to it afterwards is an error.
    fn close(&mut self, pos: usize) -> Res<B::Value> {
        let slot = match self.stack.get_mut(pos) {
            Some(slot @ (Slot::List(..) | Slot::Dict(..) | Slot::Set(..))) => {
                std::mem::replace(slot, Slot::Global(Global::Value))
            }
            _ => return Err(self.err("memo entry refers to a value that no longer exists")),
        };
        let v = self.cx.freeze(slot, pos)?;
        if let Some(place) = self.stack.get_mut(pos) {
            *place = Slot::Closed(v.clone());
        }
        Ok(v)
    }

    /// `STACK_GLOBAL`: looks up `module.name`, both strings popped from the stack.
    fn stack_global(&mut self) -> Res<()> {
        let name = self.pop()?;
        let module = self.pop()?;
        let (Slot::Leaf(Leaf::Str(module, _)), Slot::Leaf(Leaf::Str(name, _))) = (module, name)
        else {
            return Err(self.err("module and name must be strings"));
        };
        match Global::lookup(module, name) {
            Some(global) => self.push(Slot::Global(global)),
            None => Err(self.err(&format!("global {module}.{name} is not allowed"))),
        }
    }

    /// `REDUCE`: calls a `snex._wire` global on its 1-tuple argument.
    fn reduce(&mut self) -> Res<()> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Slot::Global(global) = callable else {
            return Err(self.err("callable is not a snex._wire global"));
        };
        let Slot::Tuple1(arg) = args else {
            return Err(self.err("argument is not a 1-tuple"));
        };
        let result = match (global, arg) {
            (Global::Atom, Leaf::Str(name, _)) => Leaf::Built(self.cx.builder.atom(name)?),
            (Global::Term, Leaf::Bytes(etf, _)) => Leaf::Built(self.cx.builder.term(etf)?),
            (Global::Value, leaf) => leaf,
            (Global::Atom, _) => return Err(self.err("snex._wire.atom needs a str")),
            (Global::Term, _) => return Err(self.err("snex._wire.term needs bytes")),
        };
        self.push(Slot::Leaf(result))
    }

    /// `STOP`: the end; exactly one value must be left, and no input after it.
    fn stop(&mut self) -> Res<B::Value> {
        let left = self.input.remaining();
        if left != 0 {
            return Err(self.err(&format!("{left} bytes after the end of the pickle")));
        }
        if !self.marks.is_empty() {
            return Err(self.err("a MARK is still open"));
        }
        if self.stack.len() != 1 {
            let n = self.stack.len();
            return Err(self.err(&format!("{n} values on the stack instead of 1")));
        }
        self.pop_value()
    }
}

/// The value of a `LONG1`/`LONG4` argument (little-endian two's complement) if it fits.
fn long_to_i64(bytes: &[u8]) -> Option<i64> {
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0x00 };
    let (low, high) = bytes.split_at(bytes.len().min(8));
    if high.iter().any(|&b| b != fill) {
        return None;
    }
    let mut word = [fill; 8];
    word.get_mut(..low.len())?.copy_from_slice(low);
    let v = i64::from_le_bytes(word);
    // The high bytes are all sign fill, so the value fits iff the sign of `v` agrees.
    if (v < 0) == negative {
        Some(v)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders values as a compact string, to keep expectations short.
    struct Show;

    impl Builder for Show {
        type Value = String;
        fn none(&mut self) -> Res<String> {
            Ok("N".into())
        }
        fn bool(&mut self, v: bool) -> Res<String> {
            Ok(if v { "T" } else { "F" }.into())
        }
        fn int(&mut self, v: i64) -> Res<String> {
            Ok(v.to_string())
        }
        fn big_int(&mut self, le: &[u8]) -> Res<String> {
            Ok(format!("big{le:?}"))
        }
        fn float(&mut self, v: f64) -> Res<String> {
            Ok(format!("{v:?}"))
        }
        fn str(&mut self, v: &str) -> Res<String> {
            Ok(format!("{v:?}"))
        }
        fn bytes(&mut self, v: &[u8]) -> Res<String> {
            Ok(format!("b{v:?}"))
        }
        fn list(&mut self, items: Vec<String>) -> Res<String> {
            Ok(format!("[{}]", items.join(",")))
        }
        fn tuple(&mut self, items: Vec<String>) -> Res<String> {
            Ok(format!("({})", items.join(",")))
        }
        fn map(&mut self, pairs: Vec<(String, String)>) -> Res<String> {
            let pairs: Vec<String> = pairs.into_iter().map(|(k, v)| k + ":" + &v).collect();
            Ok(format!("{{{}}}", pairs.join(",")))
        }
        fn set(&mut self, items: Vec<String>) -> Res<String> {
            Ok(format!("<{}>", items.join(",")))
        }
        fn atom(&mut self, name: &str) -> Res<String> {
            Ok(format!(":{name}"))
        }
        fn term(&mut self, etf: &[u8]) -> Res<String> {
            Ok(format!("term{etf:?}"))
        }
    }

    /// [`Show`] with `n` out-of-band buffers.
    struct WithBuffers(usize);

    impl Builder for WithBuffers {
        type Value = String;
        fn buffer(&mut self, index: usize) -> Res<String> {
            if index < self.0 {
                Ok(format!("buf{index}"))
            } else {
                Err(DecodeError::new("no such buffer"))
            }
        }
        fn none(&mut self) -> Res<String> {
            Show.none()
        }
        fn bool(&mut self, v: bool) -> Res<String> {
            Show.bool(v)
        }
        fn int(&mut self, v: i64) -> Res<String> {
            Show.int(v)
        }
        fn big_int(&mut self, le: &[u8]) -> Res<String> {
            Show.big_int(le)
        }
        fn float(&mut self, v: f64) -> Res<String> {
            Show.float(v)
        }
        fn str(&mut self, v: &str) -> Res<String> {
            Show.str(v)
        }
        fn bytes(&mut self, v: &[u8]) -> Res<String> {
            Show.bytes(v)
        }
        fn list(&mut self, items: Vec<String>) -> Res<String> {
            Show.list(items)
        }
        fn tuple(&mut self, items: Vec<String>) -> Res<String> {
            Show.tuple(items)
        }
        fn map(&mut self, pairs: Vec<(String, String)>) -> Res<String> {
            Show.map(pairs)
        }
        fn set(&mut self, items: Vec<String>) -> Res<String> {
            Show.set(items)
        }
        fn atom(&mut self, name: &str) -> Res<String> {
            Show.atom(name)
        }
        fn term(&mut self, etf: &[u8]) -> Res<String> {
            Show.term(etf)
        }
    }

    #[test]
    fn next_buffer_takes_the_buffers_in_order() {
        // [buffer 0, read-only buffer 1, buffer 0 again through the memo]
        let data = b"\x80\x05](\x97\x94\x97\x98h\x00e.";
        assert_eq!(
            decode(data, &mut WithBuffers(2)).unwrap(),
            "[buf0,buf1,buf0]"
        );
        assert!(decode(data, &mut WithBuffers(1)).is_err());
        assert!(validate_with_buffers(data, 2).is_ok());
        assert!(validate_with_buffers(data, 1).is_err());
        // Builders without buffers, and `validate`, refuse them.
        assert!(decode(data, &mut Show).is_err());
        assert!(validate(data).is_err());
        // READONLY_BUFFER needs a value under it.
        assert!(validate_with_buffers(b"\x80\x05\x98\x97.", 1).is_err());
        assert!(validate_with_buffers(b"\x80\x05(\x98\x97.", 1).is_err());
    }

    fn show(body: &[u8]) -> Res<String> {
        let mut data = vec![op::PROTO, 5];
        data.extend_from_slice(body);
        data.push(op::STOP);
        decode(&data, &mut Show)
    }

    #[test]
    fn scalars() {
        assert_eq!(show(b"N").unwrap(), "N");
        assert_eq!(show(b"\x88").unwrap(), "T");
        assert_eq!(show(b"K\xff").unwrap(), "255");
        assert_eq!(show(b"M\xff\xff").unwrap(), "65535");
        assert_eq!(show(b"J\xff\xff\xff\xff").unwrap(), "-1");
        assert_eq!(show(b"\x8a\x00").unwrap(), "0");
        assert_eq!(show(b"\x8a\x01\x80").unwrap(), "-128");
        assert_eq!(show(b"\x8b\x02\x00\x00\x00\xff\x00").unwrap(), "255");
        assert_eq!(
            show(b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00").unwrap(),
            "big[0, 0, 0, 0, 0, 0, 0, 128, 0]"
        );
        assert_eq!(show(b"G\x3f\xf8\0\0\0\0\0\0").unwrap(), "1.5");
        assert_eq!(show(b"\x8c\x02hi").unwrap(), "\"hi\"");
        assert_eq!(show(b"X\x02\0\0\0hi").unwrap(), "\"hi\"");
        assert_eq!(show(b"C\x01\x00").unwrap(), "b[0]");
    }

    #[test]
    fn containers() {
        assert_eq!(show(b"](K\x01K\x02eK\x03a").unwrap(), "[1,2,3]");
        assert_eq!(show(b"}(K\x01K\x02uK\x03K\x04s").unwrap(), "{1:2,3:4}");
        assert_eq!(show(b"\x8f(K\x01\x90").unwrap(), "<1>");
        assert_eq!(show(b"(K\x01\x91").unwrap(), "<1>");
        assert_eq!(show(b")").unwrap(), "()");
        assert_eq!(show(b"K\x01\x85").unwrap(), "(1)");
        assert_eq!(show(b"(K\x01t").unwrap(), "(1)");
        assert_eq!(show(b"(K\x01K\x02K\x03K\x04t").unwrap(), "(1,2,3,4)");
        assert_eq!(show(b"](e").unwrap(), "[]");
    }

    #[test]
    fn pops() {
        assert_eq!(show(b"K\x01K\x020").unwrap(), "1");
        assert_eq!(show(b"K\x01(K\x02K\x031").unwrap(), "1");
        // POP at a mark pops the mark, as in CPython.
        assert_eq!(show(b"K\x01(0").unwrap(), "1");
        // A discarded memoised list can still be fetched.
        assert_eq!(show(b"](K\x01e\x940h\x00").unwrap(), "[1]");
    }

    #[test]
    fn memo() {
        assert!(show(b"]\x94(h\x00e")
            .unwrap_err()
            .message()
            .contains("recursive"));
        assert_eq!(show(b"](]\x94K\x01ah\x00e").unwrap(), "[[1],[1]]");
        assert_eq!(
            show(b"\x8c\x01a\x94K\x01\x94\x86(h\x00h\x01h\x00t\x86").unwrap(),
            "((\"a\",1),(\"a\",1,\"a\"))"
        );
        assert_eq!(
            show(b"K\x01q\x05K\x02r\x00\x01\x00\x00\x86h\x05\x86").unwrap(),
            "((1,2),1)"
        );
        // MEMOIZE after a sparse BINPUT counts entries, as CPython does.
        assert_eq!(
            show(b"K\x01q\x05K\x02\x94\x86h\x01\x86").unwrap(),
            "((1,2),2)"
        );
        // Overwriting an entry that pointed at an open list leaves the list alone.
        assert_eq!(show(b"]\x94K\x07q\x000h\x00a").unwrap(), "[7]");
    }

    #[test]
    fn snex_wire_globals() {
        let g = |name: &str| {
            let mut v = b"\x8c\x0asnex._wire\x8c".to_vec();
            v.push(name.len() as u8);
            v.extend_from_slice(name.as_bytes());
            v.push(op::STACK_GLOBAL);
            v
        };
        let mut body = g("atom");
        body.extend_from_slice(b"\x94\x8c\x02ok\x85R\x94h\x00\x8c\x02no\x85R\x86");
        assert_eq!(show(&body).unwrap(), "(:ok,:no)");
        let mut body = g("term");
        body.extend_from_slice(b"C\x02\x83a\x85R");
        assert_eq!(show(&body).unwrap(), "term[131, 97]");
        let mut body = g("value");
        body.extend_from_slice(b"K\x01K\x02\x86\x85R");
        assert_eq!(show(&body).unwrap(), "(1,2)");
        let mut body = g("value");
        body.extend_from_slice(b"\x8c\x01x\x85R\x85");
        assert_eq!(show(&body).unwrap(), "(\"x\")");
        assert!(show(&g("make_object"))
            .unwrap_err()
            .message()
            .contains("not allowed"));
    }

    #[test]
    fn long_conversion() {
        assert_eq!(long_to_i64(&[]), Some(0));
        assert_eq!(long_to_i64(&[0xff]), Some(-1));
        assert_eq!(long_to_i64(&[0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Some(127));
        assert_eq!(long_to_i64(&[0xff; 12]), Some(-1));
        assert_eq!(long_to_i64(&[0, 0, 0, 0, 0, 0, 0, 0x80]), Some(i64::MIN));
        assert_eq!(long_to_i64(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0]), None);
        assert_eq!(long_to_i64(&[0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff]), None);
        assert_eq!(long_to_i64(&[1, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }
}
