//! Terms and pickles: Elixir terms to restricted pickle ([`encode`], with [`py_keys`] for keys
//! that Python would merge, and [`beam_bytes`] for large binaries sent out of band), where a
//! request is encoded ([`route`]), and restricted pickle to terms ([`decode`]). Nothing here
//! knows about interpreters or threads.

pub mod atom_text;
pub mod beam_bytes;
pub mod calendar;
pub mod decode;
pub mod encode;
pub mod opts;
pub mod py_keys;
pub mod route;
