//! Keys that are different in Elixir but equal in Python (`1`, `1.0` and `true`; `:a` and
//! `"a"`; tuples of such): a map or `MapSet` holding two of them would lose entries in Python,
//! so encoding refuses it.

use std::collections::HashMap;

use rustler::{Term, TermType};

use crate::atoms;
use crate::codec::atom_text::atom_name;
use crate::codec::opts::{BinaryAs, EncodeOpts};

/// A key as Python compares it.
#[derive(Hash, PartialEq, Eq)]
enum PyKey {
    None,
    /// `int`, `bool`, and `float`s with an integral value.
    Int(i128),
    /// Integers beyond `i128`, by their bytes.
    BigInt(Vec<u8>),
    /// Other floats, by their bits (NaN is never equal: see [`PyKey::Unique`]).
    Float(u64),
    Str(Vec<u8>),
    Bytes(Vec<u8>),
    Tuple(Vec<PyKey>),
    /// Equal to no other key of the map.
    Unique(usize),
}

/// Fails with a message naming two keys of `keys` that are equal in Python. Cheap for the usual
/// maps: keys that are all integers, all binaries or all atoms cannot collide and are not
/// compared.
/// `key` gives the key of each item (a map's pair, or a set's item).
pub fn check<'a, T>(
    items: &[T],
    key: impl Fn(&T) -> Term<'a>,
    opts: &EncodeOpts,
) -> Result<(), String> {
    if items.len() < 2 || !may_collide(items.iter().map(&key), opts) {
        return Ok(());
    }
    let mut seen: HashMap<PyKey, Term<'a>> = HashMap::with_capacity(items.len());
    let mut unique = 0;
    for k in items.iter().map(key) {
        if let Some(other) = seen.insert(py_key(k, opts, &mut unique), k) {
            return Err(format!(
                "{} and {} are different in Elixir but equal in Python, where one would \
                 replace the other",
                describe(other),
                describe(k)
            ));
        }
    }
    Ok(())
}

/// Whether two keys of different Elixir types (or two tuples) might be equal in Python.
fn may_collide<'a>(keys: impl Iterator<Item = Term<'a>>, opts: &EncodeOpts) -> bool {
    let (mut strs, mut floats_or_bools, mut atoms_seen) = (false, false, false);
    for key in keys {
        match key.get_type() {
            TermType::Float => floats_or_bools = true,
            TermType::Tuple => return true,
            TermType::Atom if is_bool(key) => floats_or_bools = true,
            TermType::Atom if !opts.distinct_atoms && !is_nil(key) => atoms_seen = true,
            TermType::Binary if opts.binary_as == BinaryAs::Str => strs = true,
            _ => {}
        }
    }
    // Floats collide with integers, and among themselves (0.0 and -0.0 are two keys in OTP
    // 27); booleans with integers.
    floats_or_bools || (atoms_seen && strs)
}

fn is_bool(t: Term) -> bool {
    let env = t.get_env();
    t == rustler::types::atom::true_().to_term(env)
        || t == rustler::types::atom::false_().to_term(env)
}

fn is_nil(t: Term) -> bool {
    t == atoms::nil().to_term(t.get_env())
}

fn py_key(t: Term, opts: &EncodeOpts, unique: &mut usize) -> PyKey {
    let env = t.get_env();
    let key = match t.get_type() {
        TermType::Integer => match t.decode::<i128>() {
            Ok(i) => Some(PyKey::Int(i)),
            Err(_) => t
                .decode::<rustler::BigInt>()
                .ok()
                .map(|big| PyKey::BigInt(big.to_signed_bytes_le())),
        },
        TermType::Float => match t.decode::<f64>() {
            Ok(f) if f.is_nan() => None,
            // -0.0 == 0.0 == 0 in Python, and 2.0 == 2.
            Ok(f) if f.fract() == 0.0 && f.abs() < 1.0e38 => Some(PyKey::Int(f as i128)),
            Ok(f) => Some(PyKey::Float(f.to_bits())),
            Err(_) => None,
        },
        TermType::Atom if is_nil(t) => Some(PyKey::None),
        TermType::Atom if t == rustler::types::atom::true_().to_term(env) => Some(PyKey::Int(1)),
        TermType::Atom if t == rustler::types::atom::false_().to_term(env) => Some(PyKey::Int(0)),
        TermType::Atom if !opts.distinct_atoms => {
            atom_name(t).map(|name| PyKey::Str(name.into_bytes()))
        }
        TermType::Binary => rustler::types::Binary::from_term(t).ok().map(|bin| {
            if opts.binary_as == BinaryAs::Str {
                PyKey::Str(bin.as_slice().to_vec())
            } else {
                PyKey::Bytes(bin.as_slice().to_vec())
            }
        }),
        TermType::Tuple => rustler::types::tuple::get_tuple(t).ok().map(|items| {
            PyKey::Tuple(items.into_iter().map(|i| py_key(i, opts, unique)).collect())
        }),
        _ => None,
    };
    key.unwrap_or_else(|| {
        *unique += 1;
        PyKey::Unique(*unique)
    })
}

/// A short Elixir rendering of a key for error messages.
fn describe(t: Term) -> String {
    match t.get_type() {
        TermType::Float => t
            .decode::<f64>()
            .map_or_else(|_| format!("{t:?}"), |f| format!("{f:?}")),
        TermType::Atom if is_nil(t) || is_bool(t) => format!("{t:?}"),
        TermType::Atom => atom_name(t).map_or_else(|| format!("{t:?}"), |n| format!(":{n:?}")),
        TermType::Binary => rustler::types::Binary::from_term(t)
            .ok()
            .and_then(|b| {
                std::str::from_utf8(b.as_slice())
                    .ok()
                    .map(|s| format!("{s:?}"))
            })
            .unwrap_or_else(|| format!("{t:?}")),
        TermType::Tuple => rustler::types::tuple::get_tuple(t).map_or_else(
            |_| format!("{t:?}"),
            |items| {
                format!(
                    "{{{}}}",
                    items
                        .into_iter()
                        .map(describe)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ),
        _ => format!("{t:?}"),
    }
}
