//! Encoding options of a call, as the encoder and the key check use them, and why encoding
//! stopped.

/// How binaries are presented to Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryAs {
    Str,
    Bytes,
    ByteArray,
}

/// Per-call encoding options, packed by Elixir into one integer (see `Snex.Serde`).
#[derive(Clone, Copy, Debug)]
pub struct EncodeOpts {
    pub binary_as: BinaryAs,
    pub frozenset: bool,
    pub distinct_atoms: bool,
    /// Structs other than Snex's own and `MapSet` are final (Elixir already applied the
    /// `Snex.Serde.Encoder` protocol): encode them as dicts instead of asking Elixir.
    pub structs_resolved: bool,
}

impl EncodeOpts {
    /// Unpacks `call` (see `Snex.Serde.EncodingOpts`): options marked as given there win over
    /// the interpreter's `defaults` (packed the same way). `structs_resolved`: Elixir has
    /// already applied the `Snex.Serde.Encoder` protocol to the value.
    pub fn resolve(defaults: u32, call: u32, structs_resolved: bool) -> Self {
        let pick = |given_bit: u32, value_mask: u32| {
            if call & given_bit != 0 {
                call & value_mask
            } else {
                defaults & value_mask
            }
        };
        EncodeOpts {
            binary_as: match pick(0x10, 0x3) {
                1 => BinaryAs::Bytes,
                2 => BinaryAs::ByteArray,
                _ => BinaryAs::Str,
            },
            frozenset: pick(0x20, 0x4) != 0,
            distinct_atoms: pick(0x40, 0x8) != 0,
            structs_resolved,
        }
    }
}

/// Why encoding stopped.
#[derive(Debug)]
pub enum EncodeError {
    /// The budget for a normal scheduler ran out: retry on a dirty scheduler.
    Dirty,
    /// The term holds a struct that may implement `Snex.Serde.Encoder`: Elixir must apply the
    /// protocol first.
    NeedsProtocol,
    /// The term cannot be encoded; the message names the offending value.
    Invalid(String),
}
