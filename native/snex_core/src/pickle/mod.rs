//! The restricted pickle codec of the wire protocol (see `docs/protocol.md`).
//!
//! * [`PickleWriter`] writes values for Python's `pickle.loads` (Elixir → Python), using a
//!   fixed subset of protocol 5 opcodes.
//! * [`decode`] reads what Python's pickler writes (Python → Elixir). It never imports or
//!   calls anything: the only callables it accepts are the `snex._wire` markers, and it
//!   builds values through a [`Builder`], so the NIF can make Erlang terms directly.
//!
//! Neither side recurses on input-controlled depth, and the reader never panics or allocates
//! more than a small multiple of its input, whatever the input.

mod reader;
mod writer;

pub use reader::{decode, validate, validate_with_buffers, Builder, DecodeError};
pub use writer::{ExternalKind, PickleOutput, PickleWriter, WriteError};

/// Pickle opcodes (the byte values of `pickletools`), those this crate reads or writes plus the
/// rest, so that refused opcodes can be named in error messages.
pub(crate) mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const BINFLOAT: u8 = b'G';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const REDUCE: u8 = b'R';
    pub const BINUNICODE: u8 = b'X';
    pub const EMPTY_LIST: u8 = b']';
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const EMPTY_DICT: u8 = b'}';
    pub const PROTO: u8 = 0x80;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
    pub const NEXT_BUFFER: u8 = 0x97;
    pub const READONLY_BUFFER: u8 = 0x98;

    /// The `pickletools` name of an opcode, or `"unknown"`.
    pub fn name(op: u8) -> &'static str {
        match op {
            b'(' => "MARK",
            b'.' => "STOP",
            b'0' => "POP",
            b'1' => "POP_MARK",
            b'2' => "DUP",
            b'F' => "FLOAT",
            b'I' => "INT",
            b'J' => "BININT",
            b'K' => "BININT1",
            b'L' => "LONG",
            b'M' => "BININT2",
            b'N' => "NONE",
            b'P' => "PERSID",
            b'Q' => "BINPERSID",
            b'R' => "REDUCE",
            b'S' => "STRING",
            b'T' => "BINSTRING",
            b'U' => "SHORT_BINSTRING",
            b'V' => "UNICODE",
            b'X' => "BINUNICODE",
            b'a' => "APPEND",
            b'b' => "BUILD",
            b'c' => "GLOBAL",
            b'd' => "DICT",
            b'}' => "EMPTY_DICT",
            b'e' => "APPENDS",
            b'g' => "GET",
            b'h' => "BINGET",
            b'i' => "INST",
            b'j' => "LONG_BINGET",
            b'l' => "LIST",
            b']' => "EMPTY_LIST",
            b'o' => "OBJ",
            b'p' => "PUT",
            b'q' => "BINPUT",
            b'r' => "LONG_BINPUT",
            b's' => "SETITEM",
            b't' => "TUPLE",
            b')' => "EMPTY_TUPLE",
            b'u' => "SETITEMS",
            b'G' => "BINFLOAT",
            0x80 => "PROTO",
            0x81 => "NEWOBJ",
            0x82 => "EXT1",
            0x83 => "EXT2",
            0x84 => "EXT4",
            0x85 => "TUPLE1",
            0x86 => "TUPLE2",
            0x87 => "TUPLE3",
            0x88 => "NEWTRUE",
            0x89 => "NEWFALSE",
            0x8a => "LONG1",
            0x8b => "LONG4",
            b'B' => "BINBYTES",
            b'C' => "SHORT_BINBYTES",
            0x8c => "SHORT_BINUNICODE",
            0x8d => "BINUNICODE8",
            0x8e => "BINBYTES8",
            0x8f => "EMPTY_SET",
            0x90 => "ADDITEMS",
            0x91 => "FROZENSET",
            0x92 => "NEWOBJ_EX",
            0x93 => "STACK_GLOBAL",
            0x94 => "MEMOIZE",
            0x95 => "FRAME",
            0x96 => "BYTEARRAY8",
            0x97 => "NEXT_BUFFER",
            0x98 => "READONLY_BUFFER",
            _ => "unknown",
        }
    }
}
