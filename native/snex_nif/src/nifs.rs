//! The NIF functions (`Snex.Native`): a thin layer that decodes arguments and calls the module
//! that does the work. Submitting a request is [`crate::request`]; starting an interpreter is
//! [`crate::lifecycle`]; decoding Python's bodies is [`crate::codec::decode`].

use std::ffi::OsString;

use rustler::types::Binary;
use rustler::{Encoder, Env, NifResult, ResourceArc, Term};
use snex_core::process::SpawnSpec;

use crate::atoms;
use crate::codec::decode::Decoded;
use crate::interpreter::Transport;
use crate::lifecycle;
use crate::request::{self, resolve_target, Sched};
use crate::resources::{EnvRes, InterpreterRes};

/// Options of `start/1`, as a map from Elixir.
#[derive(rustler::NifMap)]
struct StartOpts {
    /// Path of the `snex_helper` program that starts and watches Python.
    helper: String,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cd: Option<String>,
    use_stdio: bool,
    busy_limits_port: Option<(usize, usize)>,
    busy_limits_msgq: Option<(usize, usize)>,
    parallelism: bool,
    encoding_opts: u32,
    capture_output: bool,
}

/// Queue sizes and submission statistics of an interpreter, for tests and diagnostics.
#[derive(rustler::NifMap)]
struct Stats {
    /// Bytes handed over and not yet accepted by the pipe.
    port_queued: usize,
    /// Bytes handed over and not yet taken by the writer thread.
    msgq_queued: usize,
    /// The most callers ever seen encoding and queueing at once.
    max_concurrent_submits: usize,
    /// Frames the submitting caller wrote into the pipe itself, completely.
    direct_writes: u64,
    /// Frames the submitting caller began to write, whose rest the writer thread wrote.
    direct_partial_writes: u64,
    /// Bytes of large binaries spliced into the pipe (handed over by reference, not copied).
    spliced_bytes: u64,
    /// Requests waiting for their reply (the load `Snex.Pool` balances on).
    pending: usize,
    /// Requests ever submitted, the init script's included (for `Snex.Pool`'s `max_calls`).
    submitted: u64,
}

/// Starts Python; the calling process becomes the owner (it gets `{:snex_exit, status}` and
/// Python's requests, and its death stops Python).
#[rustler::nif(schedule = "DirtyIo")]
fn start(env: Env, opts: StartOpts) -> Term {
    let spec = SpawnSpec {
        helper: OsString::from(opts.helper),
        program: OsString::from(opts.program),
        args: opts.args.into_iter().map(OsString::from).collect(),
        env: opts
            .env
            .into_iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect(),
        cd: opts.cd.map(OsString::from),
        use_stdio: opts.use_stdio,
    };
    let owner = env.pid();
    let transport = Transport {
        port_limits: opts.busy_limits_port,
        msgq_limits: opts.busy_limits_msgq,
        parallelism: opts.parallelism,
    };
    match lifecycle::start(
        &spec,
        owner,
        transport,
        opts.encoding_opts,
        opts.capture_output,
    ) {
        Ok(state) => {
            let res = ResourceArc::new(InterpreterRes { state });
            env.monitor(&res, &owner);
            (atoms::ok(), res).encode(env)
        }
        Err(e) => (atoms::error(), e.to_string()).encode(env),
    }
}

/// The largest body [`decode_body`] decodes on a normal scheduler: well under a millisecond
/// for any content (see `docs/decisions.md`, "Where terms are built").
const NORMAL_DECODE_MAX: usize = 4 * 1024;

/// Decodes a body Python sent (a reply or a request) into a term: `{:ok, term}`,
/// `{:error, message}`, `:new_atoms` when it names atoms that do not exist and `new_atoms` is
/// `nil`, or `:dirty` when it is too large for a normal scheduler (then call
/// [`decode_body_dirty`]). With `new_atoms` an integer, at most that many atoms are created.
/// `body` is the pickle (a binary), or `{pickle, buffers}` for a body with out-of-band buffers
/// (a list of binaries).
#[rustler::nif]
fn decode_body<'a>(env: Env<'a>, body: Term<'a>, new_atoms: Option<usize>) -> NifResult<Term<'a>> {
    let (pickle, buffers) = split_body(body)?;
    if pickle.len() > NORMAL_DECODE_MAX {
        return Ok(atoms::dirty().encode(env));
    }
    Ok(decode_with(env, pickle, buffers, new_atoms))
}

/// [`decode_body`] on a dirty CPU scheduler, for bodies of any size.
#[rustler::nif(schedule = "DirtyCpu")]
fn decode_body_dirty<'a>(
    env: Env<'a>,
    body: Term<'a>,
    new_atoms: Option<usize>,
) -> NifResult<Term<'a>> {
    let (pickle, buffers) = split_body(body)?;
    Ok(decode_with(env, pickle, buffers, new_atoms))
}

/// The pickle and the out-of-band buffers of a body (see [`decode_body`]).
fn split_body(body: Term) -> NifResult<(Binary, Vec<Term>)> {
    if let Ok(pickle) = body.decode::<Binary>() {
        return Ok((pickle, Vec::new()));
    }
    let (pickle, buffers): (Binary, Vec<Term>) = body.decode()?;
    Ok((pickle, buffers))
}

fn decode_with<'a>(
    env: Env<'a>,
    body: Binary<'a>,
    buffers: Vec<Term<'a>>,
    new_atoms: Option<usize>,
) -> Term<'a> {
    match crate::codec::decode::decode(env, body, buffers, new_atoms) {
        Ok(Decoded::Value(term)) => (atoms::ok(), term).encode(env),
        Ok(Decoded::NeedsNewAtoms) => atoms::new_atoms().encode(env),
        Err(e) => (atoms::error(), e.to_string()).encode(env),
    }
}

/// Remembers the shape of an empty `MapSet` for decoding Python sets.
#[rustler::nif]
fn set_mapset_template(empty: Term) -> rustler::Atom {
    crate::codec::decode::set_mapset_template(empty);
    atoms::ok()
}

#[rustler::nif]
fn stats(res: ResourceArc<InterpreterRes>) -> Stats {
    let queued = res.state.writer.queued();
    let direct = res.state.writer.direct_writes();
    Stats {
        port_queued: queued.port,
        msgq_queued: queued.msgq,
        max_concurrent_submits: res.state.max_concurrent_submits(),
        direct_writes: direct.complete,
        direct_partial_writes: direct.partial,
        spliced_bytes: res.state.writer.spliced_bytes(),
        pending: res.state.pending_count(),
        submitted: res.state.submitted_count(),
    }
}

#[rustler::nif]
fn os_pid(res: ResourceArc<InterpreterRes>) -> u32 {
    res.state.child.pid()
}

/// Closes the pipe to Python and makes sure it is gone soon (SIGTERM, then SIGKILL).
#[rustler::nif]
fn shutdown(res: ResourceArc<InterpreterRes>) -> rustler::Atom {
    res.state.shutdown();
    atoms::ok()
}

/// Forgets request `id` and cancels its Python task; true if it was still pending.
#[rustler::nif]
fn cancel(env: Env, target: Term, id: u64) -> NifResult<bool> {
    let (interp, _) = resolve_target(target, 0)?;
    Ok(interp.state.cancel(env, id))
}

/// The calling process stops waiting for `:snex_writable`; false if that message has been or
/// is being sent to it.
#[rustler::nif]
fn forget_waiter(env: Env, target: Term) -> NifResult<bool> {
    let (interp, _) = resolve_target(target, 0)?;
    Ok(interp.state.writer.forget_waiter(&env.pid()))
}

/// Frees an environment in Python: `target` is the env's resource, or (for an env that has
/// been to another node and back) the interpreter's resource with the env's id.
#[rustler::nif]
fn destroy_env(target: Term, env_id: i64) -> NifResult<rustler::Atom> {
    if let Ok(env_res) = target.decode::<ResourceArc<EnvRes>>() {
        env_res.destroy();
    } else {
        let interp: ResourceArc<InterpreterRes> = target.decode()?;
        crate::resources::destroy_env(&interp.state, env_id);
    }
    Ok(atoms::ok())
}

/// Whether `term` is an env resource made on this node (envs that travelled to another node and
/// back are plain references).
#[rustler::nif]
fn is_env(term: Term) -> bool {
    term.decode::<ResourceArc<EnvRes>>().is_ok()
}

#[rustler::nif]
fn disable_gc(env_res: ResourceArc<EnvRes>) -> rustler::Atom {
    env_res.disable_gc();
    atoms::ok()
}

/// Submits a request (see [`crate::request`]) on a normal scheduler; large requests answer
/// `:dirty`.
#[rustler::nif]
fn submit<'a>(env: Env<'a>, request: Term<'a>) -> NifResult<Term<'a>> {
    request::submit(env, request, Sched::Normal)
}

/// [`submit`] on a dirty CPU scheduler, for requests of any size.
#[rustler::nif(schedule = "DirtyCpu")]
fn submit_dirty<'a>(env: Env<'a>, request: Term<'a>) -> NifResult<Term<'a>> {
    request::submit(env, request, Sched::DirtyCpu)
}

/// [`submit`] on a dirty I/O scheduler, which waits for the caller's turn with
/// `parallelism: false`.
#[rustler::nif(schedule = "DirtyIo")]
fn submit_serial<'a>(env: Env<'a>, request: Term<'a>) -> NifResult<Term<'a>> {
    request::submit(env, request, Sched::DirtyIo)
}
