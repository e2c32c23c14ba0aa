//! Binaries that travel out of band (see `docs/protocol.md`): the frame refers to the BEAM
//! binary's bytes instead of copying them into the pickle, and keeps the binary alive until
//! the frame is written (or dropped), through a copy of the term in an environment of its own.

use rustler::types::Binary;
use rustler::{OwnedEnv, Term};
use snex_core::pickle::PickleWriter;

/// The pickle writer of requests: large binaries are [`BeamBytes`].
pub type Pickle = PickleWriter<BeamBytes>;

/// Binaries of at least this many bytes travel out of band. Below it, copying them into the
/// pickle costs less than keeping a reference (`docs/decisions.md`).
pub const OUT_OF_BAND_MIN: usize = 64 * 1024;

/// The bytes of a BEAM binary, kept alive by a copy of the binary term (which shares the bytes
/// of a reference-counted binary instead of copying them) in an environment of its own.
pub struct BeamBytes {
    /// Owns the term that keeps the bytes alive; freed (from any thread) when this is dropped.
    _owner: OwnedEnv,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the bytes are immutable and stay alive as long as `_owner`, which may be freed from
// any thread (`enif_free_env` on a process-independent environment).
unsafe impl Send for BeamBytes {}

impl BeamBytes {
    /// Keeps the bytes of the binary `term` (`None` if it is not a binary).
    pub fn of(term: Term) -> Option<BeamBytes> {
        let owner = OwnedEnv::new();
        let saved = owner.save(term);
        let (ptr, len) = owner.run(|env| {
            let bin = Binary::from_term(saved.load(env)).ok()?;
            Some((bin.as_slice().as_ptr(), bin.len()))
        })?;
        Some(BeamBytes {
            _owner: owner,
            ptr,
            len,
        })
    }
}

impl AsRef<[u8]> for BeamBytes {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` and `len` describe the bytes of the binary held by `_owner`, which is
        // neither cleared nor freed while `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}
