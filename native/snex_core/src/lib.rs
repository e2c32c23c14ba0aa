//! Snex core: the wire format shared by the NIF and its tests, Python process handling, and
//! the writer of the pipe to Python.
//!
//! Nothing in this crate depends on the BEAM, so all of it is tested with `cargo test`.

pub mod frame;
pub mod interrupt;
pub mod pickle;
pub mod pipe_capacity;
pub mod process;
pub mod splice;
pub mod writer;
