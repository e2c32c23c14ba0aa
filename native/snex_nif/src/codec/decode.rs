//! Restricted pickle from Python → Elixir terms, built directly in the calling process's env.
//!
//! Decoding runs only in NIF calls on a scheduler (the caller's, or a dirty one for large
//! bodies): never on one of our own threads, where OTP 25 cannot build every term (large maps
//! need scheduler data there).
//!
//! Atoms are permanent in the BEAM, so no atom may be created from a message that then fails
//! to parse, and Python may never fill the atom table: the first pass only accepts atoms that
//! already exist; if it meets a new one it stops with [`Decoded::NeedsNewAtoms`], and Elixir
//! calls again with a budget of new atoms (what keeps the atom table under its safe fraction,
//! see `Snex.Native.decode/1`). The whole message is then validated before it is decoded again
//! with atom creation allowed, up to that budget.

use rustler::types::{atom::Atom, Binary, NewBinary};
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rustler::env::SavedTerm;
use rustler::{BigInt, Encoder, Env, OwnedEnv, Term};
use snex_core::pickle::{self, Builder, DecodeError};

use crate::atoms;

/// Longest atom the BEAM accepts, in characters.
const MAX_ATOM_CHARS: usize = 255;

/// An empty `MapSet` of the running Elixir (its fields differ between versions), given by
/// `Snex.Native.set_mapset_template/1` when the application starts.
static MAPSET_TEMPLATE: Mutex<Option<(OwnedEnv, SavedTerm)>> = Mutex::new(None);

/// Remembers `empty` (`MapSet.new()`) as the shape of decoded sets.
pub fn set_mapset_template(empty: Term) {
    let env = OwnedEnv::new();
    let saved = env.save(empty);
    *MAPSET_TEMPLATE.lock().unwrap_or_else(|p| p.into_inner()) = Some((env, saved));
}

fn mapset_template(env: Env<'_>) -> Term<'_> {
    let template = MAPSET_TEMPLATE.lock().unwrap_or_else(|p| p.into_inner());
    match template.as_ref() {
        Some((owner, saved)) => owner.run(|own| saved.load(own).in_env(env)),
        // Before the application has started: the shape of Elixir 1.14.
        None => {
            let keys = [
                atoms::__struct__().encode(env),
                atoms::map().encode(env),
                atoms::version().encode(env),
            ];
            let empty = rustler::types::map::map_new(env);
            let vals = [atoms::map_set().encode(env), empty, 2.encode(env)];
            Term::map_from_term_arrays(env, &keys, &vals).unwrap_or(empty)
        }
    }
}

/// What decoding a body gave.
pub enum Decoded<'a> {
    /// The value.
    Value(Term<'a>),
    /// The body names atoms that do not exist yet, and no new atom was allowed.
    NeedsNewAtoms,
}

/// Serialises decodes that create atoms, so that their budgets do not add up.
static ATOM_CREATION: Mutex<()> = Mutex::new(());

/// Atoms created by decodes so far: a decode's budget shrinks by those created by others since
/// it began (its budget was computed from the atom count before).
static ATOMS_CREATED: AtomicUsize = AtomicUsize::new(0);

/// Binaries of at least this size that are at least a quarter of the body are not copied: they
/// become sub-binaries of the body (which they keep alive; the ratio bounds what a kept piece
/// can hold on to).
const SUB_BINARY_MIN: usize = 64 * 1024;

/// Decodes a pickle body into a term in `env`; `buffers` are the binaries of its out-of-band
/// buffers, in order (each becomes the value of a `NEXT_BUFFER`, without a copy). With
/// `new_atoms` `None`, a body naming atoms that do not exist gives [`Decoded::NeedsNewAtoms`];
/// with `Some(n)`, at most `n` of them are created, and a body needing more is refused.
pub fn decode<'a>(
    env: Env<'a>,
    body: Binary<'a>,
    buffers: Vec<Term<'a>>,
    new_atoms: Option<usize>,
) -> Result<Decoded<'a>, DecodeError> {
    let data = body.as_slice();
    let created_before = ATOMS_CREATED.load(Ordering::Acquire);
    let mut builder = TermBuilder {
        env,
        body,
        buffers,
        new_atoms: 0,
        missing_atom: false,
    };
    match pickle::decode(data, &mut builder) {
        Ok(term) => Ok(Decoded::Value(term)),
        Err(_) if builder.missing_atom => {
            let Some(new_atoms) = new_atoms else {
                return Ok(Decoded::NeedsNewAtoms);
            };
            pickle::validate_with_buffers(data, builder.buffers.len())?;
            let _creating = ATOM_CREATION.lock().unwrap_or_else(|p| p.into_inner());
            let by_others = ATOMS_CREATED.load(Ordering::Acquire) - created_before;
            builder.new_atoms = new_atoms.saturating_sub(by_others);
            builder.missing_atom = true;
            let result = pickle::decode(data, &mut builder).map(Decoded::Value);
            let created = new_atoms.saturating_sub(by_others) - builder.new_atoms;
            ATOMS_CREATED.fetch_add(created, Ordering::AcqRel);
            result
        }
        Err(e) => Err(e),
    }
}

struct TermBuilder<'a> {
    env: Env<'a>,
    /// The body being decoded, for sub-binaries of it.
    body: Binary<'a>,
    /// The out-of-band buffers that came with it (binaries).
    buffers: Vec<Term<'a>>,
    /// How many new atoms may still be created.
    new_atoms: usize,
    missing_atom: bool,
}

impl<'a> Builder for TermBuilder<'a> {
    type Value = Term<'a>;

    fn buffer(&mut self, index: usize) -> Result<Term<'a>, DecodeError> {
        self.buffers.get(index).copied().ok_or_else(|| {
            DecodeError::new(format!(
                "pickle takes out-of-band buffer {index}, but only {} came with it",
                self.buffers.len()
            ))
        })
    }

    fn none(&mut self) -> Result<Term<'a>, DecodeError> {
        Ok(atoms::nil().encode(self.env))
    }

    fn bool(&mut self, v: bool) -> Result<Term<'a>, DecodeError> {
        Ok(v.encode(self.env))
    }

    fn int(&mut self, v: i64) -> Result<Term<'a>, DecodeError> {
        Ok(v.encode(self.env))
    }

    fn big_int(&mut self, le: &[u8]) -> Result<Term<'a>, DecodeError> {
        Ok(BigInt::from_signed_bytes_le(le).encode(self.env))
    }

    fn float(&mut self, v: f64) -> Result<Term<'a>, DecodeError> {
        Ok(if v.is_nan() {
            atoms::nan().encode(self.env)
        } else if v == f64::INFINITY {
            atoms::inf().encode(self.env)
        } else if v == f64::NEG_INFINITY {
            atoms::neg_inf().encode(self.env)
        } else {
            v.encode(self.env)
        })
    }

    fn str(&mut self, v: &str) -> Result<Term<'a>, DecodeError> {
        self.bytes(v.as_bytes())
    }

    fn bytes(&mut self, v: &[u8]) -> Result<Term<'a>, DecodeError> {
        if v.len() >= SUB_BINARY_MIN && v.len() >= self.body.len() / 4 {
            let offset = (v.as_ptr() as usize).wrapping_sub(self.body.as_slice().as_ptr() as usize);
            if offset
                .checked_add(v.len())
                .is_some_and(|end| end <= self.body.len())
            {
                if let Ok(sub) = self.body.make_subbinary(offset, v.len()) {
                    return Ok(sub.to_term(self.env));
                }
            }
        }
        let mut bin = NewBinary::new(self.env, v.len());
        bin.as_mut_slice().copy_from_slice(v);
        Ok(bin.into())
    }

    fn list(&mut self, items: Vec<Term<'a>>) -> Result<Term<'a>, DecodeError> {
        Ok(items.encode(self.env))
    }

    fn tuple(&mut self, items: Vec<Term<'a>>) -> Result<Term<'a>, DecodeError> {
        Ok(rustler::types::tuple::make_tuple(self.env, &items))
    }

    fn map(&mut self, pairs: Vec<(Term<'a>, Term<'a>)>) -> Result<Term<'a>, DecodeError> {
        let (keys, values): (Vec<Term<'a>>, Vec<Term<'a>>) = pairs.into_iter().unzip();
        Term::map_from_term_arrays(self.env, &keys, &values).map_err(|_| {
            DecodeError::new(
                "dict has keys that are equal in Elixir (e.g. b\"a\" and \"a\")".to_string(),
            )
        })
    }

    fn set(&mut self, items: Vec<Term<'a>>) -> Result<Term<'a>, DecodeError> {
        let empty = Vec::<Term<'a>>::new().encode(self.env);
        let values = vec![empty; items.len()];
        let inner = Term::map_from_term_arrays(self.env, &items, &values)
            .map_err(|_| DecodeError::new("set has items that are equal in Elixir".to_string()))?;
        mapset_template(self.env)
            .map_update(atoms::map().encode(self.env), inner)
            .map_err(|_| DecodeError::new("cannot build MapSet".to_string()))
    }

    fn atom(&mut self, name: &str) -> Result<Term<'a>, DecodeError> {
        if name.chars().count() > MAX_ATOM_CHARS {
            return Err(DecodeError::new(format!(
                "atom name longer than {MAX_ATOM_CHARS} characters"
            )));
        }
        if let Some(atom) = existing_atom(self.env, name) {
            return Ok(atom);
        }
        if self.new_atoms == 0 {
            if !self.missing_atom {
                self.missing_atom = true;
                return Err(DecodeError::new("new atom".to_string()));
            }
            return Err(DecodeError::new(
                "the value holds more new atoms than Snex may create: the atom table is near \
                 its limit (see Snex.Serde, \"Atoms\")"
                    .to_string(),
            ));
        }
        self.new_atoms -= 1;
        new_atom(self.env, name)
            .ok_or_else(|| DecodeError::new(format!("cannot make atom {name:?}")))
    }

    fn term(&mut self, etf: &[u8]) -> Result<Term<'a>, DecodeError> {
        match self.env.binary_to_term(etf) {
            Some((term, used)) if used == etf.len() => Ok(term),
            _ => Err(DecodeError::new(
                "snex.Term holds bytes that are not an Erlang term".to_string(),
            )),
        }
    }
}

/// The atom named `name` (UTF-8) if it exists. Latin-1 names go through the NIF atom API; other
/// names through the external term format, which OTP 25's NIF atom API cannot take.
fn existing_atom<'a>(env: Env<'a>, name: &str) -> Option<Term<'a>> {
    match latin1(name) {
        Some(bytes) => Atom::existing_from_bytes(env, &bytes)
            .ok()
            .map(|a| a.encode(env)),
        None => env.binary_to_term(&atom_etf(name)).map(|(term, _)| term),
    }
}

/// Creates the atom named `name` (UTF-8, at most 255 characters).
fn new_atom<'a>(env: Env<'a>, name: &str) -> Option<Term<'a>> {
    match latin1(name) {
        Some(bytes) => Atom::from_bytes(env, &bytes).ok().map(|a| a.encode(env)),
        // SAFETY: `atom_etf` writes a well-formed ATOM_UTF8_EXT of valid UTF-8.
        None => unsafe { env.binary_to_term_trusted(&atom_etf(name)) }.map(|(term, _)| term),
    }
}

/// `name` in Latin-1, if every character fits (borrowed when it is ASCII, the same bytes).
fn latin1(name: &str) -> Option<Cow<'_, [u8]>> {
    if name.is_ascii() {
        return Some(Cow::Borrowed(name.as_bytes()));
    }
    name.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Cow::Owned)
}

/// The external term format of the atom named `name`: `ATOM_UTF8_EXT`.
pub fn atom_etf(name: &str) -> Vec<u8> {
    let len = name.len().min(u16::MAX as usize);
    let mut etf = Vec::with_capacity(4 + len);
    etf.extend_from_slice(&[131, 118]);
    etf.extend_from_slice(&(len as u16).to_be_bytes());
    etf.extend_from_slice(&name.as_bytes()[..len]);
    etf
}
