//! Restricted pickle from Python → Elixir terms, built directly in the destination env.
//!
//! Atoms are permanent in the BEAM, so no atom may be created from a message that then fails
//! to parse: the first pass only accepts atoms that already exist; if it meets a new one, the
//! whole message is validated first and then decoded again with atom creation allowed.

use rustler::types::{atom::Atom, NewBinary};
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

/// Decodes a pickle body into a term in `env`.
pub fn decode<'a>(env: Env<'a>, data: &[u8]) -> Result<Term<'a>, DecodeError> {
    let mut builder = TermBuilder {
        env,
        create_atoms: false,
        missing_atom: false,
    };
    match pickle::decode(data, &mut builder) {
        Err(_) if builder.missing_atom => {
            pickle::validate(data)?;
            builder.create_atoms = true;
            builder.missing_atom = false;
            pickle::decode(data, &mut builder)
        }
        other => other,
    }
}

struct TermBuilder<'a> {
    env: Env<'a>,
    create_atoms: bool,
    missing_atom: bool,
}

impl<'a> Builder for TermBuilder<'a> {
    type Value = Term<'a>;

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
        if let Ok(atom) = Atom::existing_from_utf8_bytes(self.env, name.as_bytes()) {
            return Ok(atom.encode(self.env));
        }
        if !self.create_atoms {
            self.missing_atom = true;
            return Err(DecodeError::new("new atom".to_string()));
        }
        Atom::from_utf8_bytes(self.env, name.as_bytes())
            .map(|a| a.encode(self.env))
            .map_err(|_| DecodeError::new(format!("cannot make atom {name:?}")))
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
