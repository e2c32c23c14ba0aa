//! Snex core: the wire format shared by the NIF and its tests, and Python process handling.
//!
//! Nothing in this crate depends on the BEAM, so all of it is tested with `cargo test`.

pub mod frame;
pub mod pickle;
pub mod process;
