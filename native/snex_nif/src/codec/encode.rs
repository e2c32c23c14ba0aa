//! Elixir terms → restricted pickle (see `docs/protocol.md`).
//!
//! The walk is iterative (an explicit work stack), so deeply nested terms cannot overflow the
//! native stack. On a normal scheduler the walk runs with a [`Budget`]; when it runs out the
//! NIF returns `:dirty` and Elixir repeats the call on a dirty scheduler, so a normal scheduler
//! never spends more than about a millisecond here.

use rustler::types::{Binary, MapIterator};
use rustler::{BigInt, Term, TermType};
use snex_core::pickle::ExternalKind;

use crate::atoms;
use crate::codec::atom_text::atom_name;
use crate::codec::beam_bytes::{BeamBytes, Pickle, OUT_OF_BAND_MIN};
pub use crate::codec::opts::{BinaryAs, EncodeError, EncodeOpts};

/// Work allowed before yielding to a dirty scheduler; `None` means unlimited.
pub struct Budget(Option<i64>);

/// Work units allowed on a normal scheduler: a unit is one term, or [`BINARY_BYTES_PER_UNIT`]
/// bytes of a binary. The budget is measured to stay well under a millisecond on a slow
/// machine (`docs/decisions.md`, "Where requests are encoded").
pub const NORMAL_SCHEDULER_BUDGET: i64 = 4_000;

/// Bytes of a binary (copied, and checked to be UTF-8 for `str`) per work unit.
pub const BINARY_BYTES_PER_UNIT: usize = 16;

impl Budget {
    pub fn for_normal_scheduler() -> Self {
        Budget(Some(NORMAL_SCHEDULER_BUDGET))
    }

    pub fn unlimited() -> Self {
        Budget(None)
    }

    fn spend(&mut self, units: usize) -> Result<(), EncodeError> {
        if let Some(left) = &mut self.0 {
            *left -= units as i64;
            if *left < 0 {
                return Err(EncodeError::Dirty);
            }
        }
        Ok(())
    }
}

enum Work<'a> {
    Value(Term<'a>),
    Key(Term<'a>),
    ListRest(Term<'a>),
    EndList(usize),
    EndTuple(usize),
    EndDict(usize),
    EndSet(usize, bool),
    Reduce,
}

/// Writes a map of variables (binary keys, checked by Elixir) as a `dict` whose keys are
/// always `str`, whatever `binary_as` says: they are Python names.
pub fn encode_vars<'a>(
    w: &mut Pickle,
    vars: Term<'a>,
    opts: &EncodeOpts,
    budget: &mut Budget,
) -> Result<(), EncodeError> {
    let iter =
        MapIterator::new(vars).ok_or_else(|| EncodeError::Invalid("vars must be a map".into()))?;
    let pairs: Vec<(Term<'a>, Term<'a>)> = iter.collect();
    let n = pairs.len();
    w.begin_dict(n);
    for (key, value) in pairs {
        let name = Binary::from_term(key)
            .map_err(|_| EncodeError::Invalid("variable names must be strings".into()))?;
        let name = std::str::from_utf8(name.as_slice())
            .map_err(|_| EncodeError::Invalid("variable names must be UTF-8".into()))?;
        w.key_str(name);
        encode_term(w, value, opts, budget)?;
    }
    w.end_dict(n);
    Ok(())
}

/// Writes `term` as one pickled value.
pub fn encode_term<'a>(
    w: &mut Pickle,
    term: Term<'a>,
    opts: &EncodeOpts,
    budget: &mut Budget,
) -> Result<(), EncodeError> {
    let mut stack: Vec<Work<'a>> = vec![Work::Value(term)];
    while let Some(work) = stack.pop() {
        budget.spend(1)?;
        match work {
            Work::Value(t) => encode_one(w, t, opts, budget, &mut stack, false)?,
            Work::Key(t) => encode_one(w, t, opts, budget, &mut stack, true)?,
            Work::ListRest(t) => {
                if let Ok((head, tail)) = t.list_get_cell() {
                    stack.push(Work::ListRest(tail));
                    stack.push(Work::Value(head));
                }
            }
            Work::EndList(n) => w.end_list(n),
            Work::EndTuple(n) => w.end_tuple(n),
            Work::EndDict(n) => w.end_dict(n),
            Work::EndSet(n, frozen) => w.end_set(n, frozen),
            Work::Reduce => w.reduce(),
        }
    }
    Ok(())
}

fn encode_one<'a>(
    w: &mut Pickle,
    t: Term<'a>,
    opts: &EncodeOpts,
    budget: &mut Budget,
    stack: &mut Vec<Work<'a>>,
    is_key: bool,
) -> Result<(), EncodeError> {
    match t.get_type() {
        TermType::Atom => encode_atom(w, t, opts),
        TermType::Integer => {
            if let Ok(i) = t.decode::<i64>() {
                w.int(i);
            } else {
                let big: BigInt = t
                    .decode()
                    .map_err(|_| EncodeError::Invalid("cannot read integer".into()))?;
                let bytes = big.to_signed_bytes_le();
                budget.spend(bytes.len() / 64)?;
                w.big_int_le(&bytes);
            }
            Ok(())
        }
        TermType::Float => {
            let f: f64 = t
                .decode()
                .map_err(|_| EncodeError::Invalid("cannot read float".into()))?;
            w.float(f);
            Ok(())
        }
        TermType::Binary => match Binary::from_term(t) {
            Ok(bin) => {
                budget.spend(bin.len() / BINARY_BYTES_PER_UNIT)?;
                if bin.len() >= OUT_OF_BAND_MIN && !is_key {
                    encode_out_of_band(w, t, bin.as_slice(), opts.binary_as)
                } else {
                    encode_binary(w, bin.as_slice(), opts.binary_as, is_key)
                }
            }
            // A bitstring that is not a whole number of bytes.
            Err(_) => encode_opaque(w, t),
        },
        TermType::List => match t.list_length() {
            Ok(n) => {
                w.begin_list(n);
                stack.push(Work::EndList(n));
                stack.push(Work::ListRest(t));
                Ok(())
            }
            // An improper list.
            Err(_) => encode_opaque(w, t),
        },
        TermType::Tuple => {
            let items = rustler::types::tuple::get_tuple(t)
                .map_err(|_| EncodeError::Invalid("cannot read tuple".into()))?;
            w.begin_tuple(items.len());
            stack.push(Work::EndTuple(items.len()));
            stack.extend(items.into_iter().rev().map(Work::Value));
            Ok(())
        }
        TermType::Map => encode_map(w, t, opts, stack),
        _ => encode_opaque(w, t),
    }
}

fn encode_atom(w: &mut Pickle, t: Term, opts: &EncodeOpts) -> Result<(), EncodeError> {
    if t == atoms::nil().to_term(t.get_env()) {
        w.none();
    } else if t == rustler::types::atom::true_().to_term(t.get_env()) {
        w.bool(true);
    } else if t == rustler::types::atom::false_().to_term(t.get_env()) {
        w.bool(false);
    } else {
        let name = atom_name(t)
            .ok_or_else(|| EncodeError::Invalid("atom name is not representable".into()))?;
        w.atom(&name, opts.distinct_atoms);
    }
    Ok(())
}

fn encode_binary(
    w: &mut Pickle,
    bytes: &[u8],
    binary_as: BinaryAs,
    is_key: bool,
) -> Result<(), EncodeError> {
    match binary_as {
        BinaryAs::Str => {
            let s = std::str::from_utf8(bytes).map_err(|_| not_utf8(bytes))?;
            if is_key {
                w.key_str(s);
            } else {
                w.str(s);
            }
        }
        BinaryAs::Bytes => w.bytes(bytes),
        BinaryAs::ByteArray => w.bytearray(bytes),
    }
    Ok(())
}

/// A large binary: its bytes travel after the pickle, straight from the BEAM binary.
fn encode_out_of_band(
    w: &mut Pickle,
    t: Term,
    bytes: &[u8],
    binary_as: BinaryAs,
) -> Result<(), EncodeError> {
    let kind = match binary_as {
        BinaryAs::Str => ExternalKind::Str,
        BinaryAs::Bytes => ExternalKind::Bytes,
        BinaryAs::ByteArray => ExternalKind::ByteArray,
    };
    let Some(shared) = BeamBytes::of(t) else {
        return encode_binary(w, bytes, binary_as, false);
    };
    w.out_of_band(kind, shared).map_err(|_| not_utf8(bytes))
}

fn not_utf8(bytes: &[u8]) -> EncodeError {
    let valid_up_to = std::str::from_utf8(bytes)
        .err()
        .map_or(0, |e| e.valid_up_to());
    EncodeError::Invalid(format!(
        "binary is not valid UTF-8 (at byte {valid_up_to}): {}; use binary_as: :bytes or Snex.Serde.binary/2",
        describe_bytes(bytes)
    ))
}

/// A short Elixir-like rendering of a binary for error messages.
fn describe_bytes(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(16).map(|b| b.to_string()).collect();
    let more = if bytes.len() > 16 { ", ..." } else { "" };
    format!("<<{}{}>>", shown.join(", "), more)
}

fn encode_map<'a>(
    w: &mut Pickle,
    t: Term<'a>,
    opts: &EncodeOpts,
    stack: &mut Vec<Work<'a>>,
) -> Result<(), EncodeError> {
    let env = t.get_env();
    if let Ok(module) = t.map_get(atoms::__struct__().to_term(env)) {
        if let Some(done) = encode_known_struct(w, t, module, opts, stack)? {
            return Ok(done);
        }
        if !opts.structs_resolved && module.is_atom() {
            return Err(EncodeError::NeedsProtocol);
        }
    }
    let iter = MapIterator::new(t).ok_or_else(|| EncodeError::Invalid("cannot read map".into()))?;
    let pairs: Vec<(Term<'a>, Term<'a>)> = iter.collect();
    crate::codec::py_keys::check(&pairs, |(k, _)| *k, opts)
        .map_err(|e| EncodeError::Invalid(format!("map keys {e}")))?;
    w.begin_dict(pairs.len());
    stack.push(Work::EndDict(pairs.len()));
    for (k, v) in pairs.into_iter().rev() {
        stack.push(Work::Value(v));
        stack.push(Work::Key(k));
    }
    Ok(())
}

/// `MapSet`, Snex's own wrappers and the calendar structs; `None` for any other struct.
fn encode_known_struct<'a>(
    w: &mut Pickle,
    t: Term<'a>,
    module: Term<'a>,
    opts: &EncodeOpts,
    stack: &mut Vec<Work<'a>>,
) -> Result<Option<()>, EncodeError> {
    let env = t.get_env();
    let field = |name: rustler::Atom| {
        t.map_get(name.to_term(env))
            .map_err(|_| EncodeError::Invalid(format!("malformed {}", describe_module(module))))
    };
    if module == atoms::map_set().to_term(env) {
        encode_set(w, field(atoms::map())?, opts, stack)?;
    } else if module == atoms::serde_float().to_term(env) {
        let value = field(atoms::value())?;
        w.float(if value == atoms::inf().to_term(env) {
            f64::INFINITY
        } else if value == atoms::neg_inf().to_term(env) {
            f64::NEG_INFINITY
        } else if value == atoms::nan().to_term(env) {
            f64::NAN
        } else if let Ok(x) = value.decode::<f64>() {
            x
        } else {
            return Err(EncodeError::Invalid(
                "Snex.Serde.float/1 takes a float, :inf, :\"-inf\" or :nan".into(),
            ));
        });
    } else if module == atoms::serde_binary().to_term(env) {
        encode_iodata(w, field(atoms::data())?, field(atoms::as_())?)?;
    } else if module == atoms::serde_term().to_term(env) {
        encode_opaque(w, field(atoms::value())?)?;
    } else if module == atoms::serde_object().to_term(env) {
        let (m, n, args) = (
            field(atoms::module())?,
            field(atoms::name())?,
            field(atoms::args())?,
        );
        w.global("snex._wire", "make_object");
        w.begin_tuple(3);
        stack.push(Work::Reduce);
        stack.push(Work::EndTuple(3));
        stack.push(Work::Value(args));
        stack.push(Work::Value(n));
        stack.push(Work::Value(m));
    } else if !crate::codec::calendar::encode_calendar_struct(w, t, module)? {
        return Ok(None);
    }
    Ok(Some(()))
}

fn describe_module(module: Term) -> String {
    module
        .atom_to_string()
        .map(|m| m.trim_start_matches("Elixir.").to_string())
        .unwrap_or_else(|_| "struct".into())
}

/// Writes `Snex.Serde.binary(iodata, as)`: the pieces are copied once, straight into the pickle.
fn encode_iodata<'a>(w: &mut Pickle, data: Term<'a>, as_: Term<'a>) -> Result<(), EncodeError> {
    static BYTE_VALUES: [u8; 256] = {
        let mut table = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            table[i] = i as u8;
            i += 1;
        }
        table
    };
    let env = data.get_env();
    let kind = if as_ == atoms::str().to_term(env) {
        ExternalKind::Str
    } else if as_ == atoms::bytearray().to_term(env) {
        ExternalKind::ByteArray
    } else {
        ExternalKind::Bytes
    };
    let bad = || EncodeError::Invalid("Snex.Serde.binary/2 needs iodata".into());
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut todo = vec![data];
    while let Some(item) = todo.pop() {
        if let Ok(bin) = Binary::from_term(item) {
            pieces.push(bin.as_slice());
        } else if let Ok(byte) = item.decode::<u8>() {
            pieces.push(&BYTE_VALUES[byte as usize..byte as usize + 1]);
        } else if let Ok((head, tail)) = item.list_get_cell() {
            todo.push(tail);
            todo.push(head);
        } else if !item.is_empty_list() {
            return Err(bad());
        }
    }
    let len = pieces.iter().map(|p| p.len()).sum();
    w.chunked_bytes(kind, len, pieces)
        .map_err(|e| EncodeError::Invalid(format!("Snex.Serde.binary/2: {e}")))
}

fn encode_set<'a>(
    w: &mut Pickle,
    inner: Term<'a>,
    opts: &EncodeOpts,
    stack: &mut Vec<Work<'a>>,
) -> Result<(), EncodeError> {
    let iter =
        MapIterator::new(inner).ok_or_else(|| EncodeError::Invalid("cannot read MapSet".into()))?;
    let items: Vec<Term<'a>> = iter.map(|(k, _)| k).collect();
    crate::codec::py_keys::check(&items, |k| *k, opts)
        .map_err(|e| EncodeError::Invalid(format!("MapSet items {e}")))?;
    let n = items.len();
    w.begin_set(n, opts.frozenset);
    stack.push(Work::EndSet(n, opts.frozenset));
    stack.extend(items.into_iter().rev().map(Work::Key));
    Ok(())
}

/// Pids, ports, references, funs, improper lists, bitstrings: `snex.Term(etf_bytes)`.
fn encode_opaque(w: &mut Pickle, t: Term) -> Result<(), EncodeError> {
    let etf = t.to_binary();
    w.global("snex", "Term");
    w.begin_tuple(1);
    w.bytes(etf.as_slice());
    w.end_tuple(1);
    w.reduce();
    Ok(())
}
