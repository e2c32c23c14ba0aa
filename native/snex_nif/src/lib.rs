//! Snex NIF: starts Python interpreter processes, writes requests to them, and routes their
//! replies straight to the waiting BEAM processes.
//!
//! A thin layer over `snex_core`. Modules, each depending only on those above it:
//!
//! * [`atoms`] - the atoms the NIF uses;
//! * [`codec`] - terms to pickle and back, and where a request is encoded;
//! * [`loss`] - how the transport to Python was lost;
//! * [`writer`] - the interpreter's writer (requests into the pipe);
//! * [`interpreter`] - one interpreter's shared state (pending requests, turns, cancel);
//! * [`reader`] - the reader thread (Python's frames, passed on undecoded);
//! * [`lifecycle`] - spawning Python and starting its threads;
//! * [`resources`] - the interpreter and env resources held by Elixir;
//! * [`request`] - submitting a request (routing, frame body, pending entry);
//! * [`nifs`] - the NIF functions.
//!
//! No function here blocks a normal scheduler for long: large requests go to a dirty scheduler
//! before they are encoded (see [`codec::route`]), and bodies from Python are decoded by the
//! receiving process, on a dirty scheduler when large.

mod atoms;
mod codec;
mod interpreter;
mod lifecycle;
mod loss;
mod nifs;
mod reader;
mod request;
mod resources;
mod writer;

rustler::init!("Elixir.Snex.Native");
