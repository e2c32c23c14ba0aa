//! Snex NIF: starts Python interpreter processes, writes requests to them, and routes their
//! replies straight to the waiting BEAM processes.
//!
//! A thin layer over `snex_core`: resources, term <-> pickle, and the per-interpreter I/O
//! threads. No function here blocks a normal scheduler for long: large encodes are retried on a
//! dirty scheduler (see [`encode::Budget`]), and all reading and decoding happens on the
//! interpreter's own reader thread.

mod atoms;
mod calendar;
mod core;
mod decode;
mod encode;
mod nifs;
mod py_keys;
mod reader;
mod resources;
mod route;
mod writer;

rustler::init!("Elixir.Snex.Native");
