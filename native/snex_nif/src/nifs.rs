//! The NIF functions (`Snex.Native`). Each encodes on the calling process's scheduler within a
//! budget (`:dirty` asks Elixir to call the `_dirty` twin), registers the caller in the pending
//! table and submits the frame (written into the pipe at once when nothing is queued, see
//! [`snex_core::writer`]); the reply arrives as a message `{tag, reply}`.
//!
//! With `parallelism: false` a caller encodes and queues only during its turn (see
//! [`Core::try_turn`]). The normal and dirty CPU variants never wait for it: they answer
//! `:locked`, and Elixir calls the `_serial` twin, which runs on a dirty I/O scheduler and may
//! block there until the turn is free.

use std::ffi::OsString;

use rustler::types::Binary;
use rustler::{Encoder, Env, NifResult, OwnedEnv, ResourceArc, Term};
use snex_core::frame::kind;
use snex_core::pickle::{PickleOutput, PickleWriter};
use snex_core::process::SpawnSpec;

use crate::atoms;
use crate::core::{Core, Pending, Transport, Turn};
use crate::decode::Decoded;
use crate::encode::{encode_term, encode_vars, Budget, EncodeError, EncodeOpts};
use crate::resources::{EnvRes, InterpreterRes};
use crate::route::{route, Route};
use crate::writer::Outgoing;

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
    /// Requests waiting for their reply (the load `Snex.Pool` balances on).
    pending: usize,
    /// Requests ever submitted, the init script's included (for `Snex.Pool`'s `max_calls`).
    submitted: u64,
}

/// Where a submitting NIF runs: decides its encoding budget and how it gets its turn.
#[derive(Clone, Copy)]
enum Sched {
    /// A normal scheduler: encoding within a budget, the turn only if it is free.
    Normal,
    /// A dirty CPU scheduler: unlimited encoding, the turn only if it is free.
    DirtyCpu,
    /// A dirty I/O scheduler: unlimited encoding, waits for the turn.
    DirtyIo,
}

impl Sched {
    fn budget(self) -> Budget {
        match self {
            Sched::Normal => Budget::for_normal_scheduler(),
            Sched::DirtyCpu | Sched::DirtyIo => Budget::unlimited(),
        }
    }

    /// Whether a request made of `terms` and `extra_bytes` of strings is too large for this
    /// scheduler (see [`crate::route`]): only ever on a normal one.
    fn routes_dirty(self, terms: &[Term], extra_bytes: usize) -> bool {
        matches!(self, Sched::Normal) && route(terms, extra_bytes) == Route::Dirty
    }

    fn turn(self, core: &Core) -> Option<Turn<'_>> {
        match self {
            Sched::Normal | Sched::DirtyCpu => core.try_turn(),
            Sched::DirtyIo => Some(core.wait_turn()),
        }
    }
}

/// Defines the three NIFs of one kind of submission, one per kind of scheduler, all calling
/// `$with(env, args..., sched)`: `$normal` (a normal scheduler: encoding within a budget),
/// `$dirty` (a dirty CPU scheduler, for large requests) and `$serial` (a dirty I/O scheduler,
/// which waits for its turn with `parallelism: false`).
macro_rules! submitting_nifs {
    // Types are bracketed token trees: the `nif` attribute does not accept `$ty:ty` fragments.
    ($(#[$doc:meta])* $normal:ident, $dirty:ident, $serial:ident => $with:ident -> [$($ret:tt)*];
     $($arg:ident: [$($ty:tt)*]),* $(,)?) => {
        #[rustler::nif]
        #[allow(clippy::too_many_arguments)]
        $(#[$doc])*
        fn $normal<'a>(env: Env<'a>, $($arg: $($ty)*),*) -> $($ret)* {
            $with(env, $($arg,)* Sched::Normal)
        }

        #[rustler::nif(schedule = "DirtyCpu")]
        #[allow(clippy::too_many_arguments)]
        $(#[$doc])*
        fn $dirty<'a>(env: Env<'a>, $($arg: $($ty)*),*) -> $($ret)* {
            $with(env, $($arg,)* Sched::DirtyCpu)
        }

        #[rustler::nif(schedule = "DirtyIo")]
        #[allow(clippy::too_many_arguments)]
        $(#[$doc])*
        fn $serial<'a>(env: Env<'a>, $($arg: $($ty)*),*) -> $($ret)* {
            $with(env, $($arg,)* Sched::DirtyIo)
        }
    };
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
    match Core::start(&spec, owner, transport, opts.encoding_opts) {
        Ok(core) => {
            let res = ResourceArc::new(InterpreterRes { core });
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
#[rustler::nif]
fn decode_body<'a>(env: Env<'a>, body: Binary<'a>, new_atoms: Option<usize>) -> Term<'a> {
    if body.len() > NORMAL_DECODE_MAX {
        return atoms::dirty().encode(env);
    }
    decode_with(env, body, new_atoms)
}

/// [`decode_body`] on a dirty CPU scheduler, for bodies of any size.
#[rustler::nif(schedule = "DirtyCpu")]
fn decode_body_dirty<'a>(env: Env<'a>, body: Binary<'a>, new_atoms: Option<usize>) -> Term<'a> {
    decode_with(env, body, new_atoms)
}

fn decode_with<'a>(env: Env<'a>, body: Binary<'a>, new_atoms: Option<usize>) -> Term<'a> {
    match crate::decode::decode(env, body, new_atoms) {
        Ok(Decoded::Value(term)) => (atoms::ok(), term).encode(env),
        Ok(Decoded::NeedsNewAtoms) => atoms::new_atoms().encode(env),
        Err(e) => (atoms::error(), e.to_string()).encode(env),
    }
}

/// Remembers the shape of an empty `MapSet` for decoding Python sets.
#[rustler::nif]
fn set_mapset_template(empty: Term) -> rustler::Atom {
    crate::decode::set_mapset_template(empty);
    atoms::ok()
}

#[rustler::nif]
fn stats(res: ResourceArc<InterpreterRes>) -> Stats {
    let queued = res.core.writer.queued();
    let direct = res.core.writer.direct_writes();
    Stats {
        port_queued: queued.port,
        msgq_queued: queued.msgq,
        max_concurrent_submits: res.core.max_concurrent_submits(),
        direct_writes: direct.complete,
        direct_partial_writes: direct.partial,
        pending: res.core.pending_count(),
        submitted: res.core.submitted_count(),
    }
}

#[rustler::nif]
fn os_pid(res: ResourceArc<InterpreterRes>) -> u32 {
    res.core.child.pid()
}

/// Closes the pipe to Python and makes sure it is gone soon (SIGTERM, then SIGKILL).
#[rustler::nif]
fn shutdown(res: ResourceArc<InterpreterRes>) -> rustler::Atom {
    res.core.shutdown();
    atoms::ok()
}

/// Forgets request `id` and cancels its Python task; true if it was still pending.
#[rustler::nif]
fn cancel(env: Env, target: Term, id: u64) -> NifResult<bool> {
    let (interp, _) = resolve_target(target, 0)?;
    Ok(interp.core.cancel(env, id))
}

/// The calling process stops waiting for `:snex_writable`; false if that message has been or
/// is being sent to it.
#[rustler::nif]
fn forget_waiter(env: Env, target: Term) -> NifResult<bool> {
    let (interp, _) = resolve_target(target, 0)?;
    Ok(interp.core.writer.forget_waiter(&env.pid()))
}

/// Frees an environment in Python: `target` is the env's resource, or (for an env that has
/// been to another node and back) the interpreter's resource with the env's id.
#[rustler::nif]
fn destroy_env(target: Term, env_id: i64) -> NifResult<rustler::Atom> {
    if let Ok(env_res) = target.decode::<ResourceArc<EnvRes>>() {
        env_res.destroy();
    } else {
        let interp: ResourceArc<InterpreterRes> = target.decode()?;
        crate::resources::destroy_env(&interp.core, env_id);
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

submitting_nifs!(
    /// `EVAL`: runs `code` in an environment. `target` is an env resource, or an interpreter
    /// resource with `env_id` (0: root, -1: a throw-away copy of the root).
    eval, eval_dirty, eval_serial => eval_with -> [NifResult<Term<'a>>];
    target: [Term<'a>],
    env_id: [i64],
    tag: [Term<'a>],
    code: [Option<Binary<'a>>],
    file: [Binary<'a>],
    line: [i64],
    vars: [Term<'a>],
    opts: [u32],
);

#[allow(clippy::too_many_arguments)]
fn eval_with<'a>(
    env: Env<'a>,
    target: Term<'a>,
    env_id: i64,
    tag: Term<'a>,
    code: Option<Binary<'a>>,
    file: Binary<'a>,
    line: i64,
    vars: Term<'a>,
    opts: u32,
    sched: Sched,
) -> NifResult<Term<'a>> {
    let code_len = code.as_ref().map_or(0, |c| c.len());
    if sched.routes_dirty(&[vars], code_len + file.len()) {
        return Ok(atoms::dirty().encode(env));
    }
    let (interp, env_id) = resolve_target(target, env_id)?;
    let _turn = match begin(env, &interp.core, sched, true) {
        Ok(turn) => turn,
        Err(answer) => return Ok(answer),
    };
    let mut budget = sched.budget();
    let opts = EncodeOpts::resolve(interp.core.default_encoding, opts);
    let mut w = PickleWriter::new();
    w.begin_tuple(5);
    w.int(env_id);
    match code {
        Some(code) => match std::str::from_utf8(code.as_slice()) {
            Ok(src) => w.str(src),
            Err(_) => return Ok(encode_error(env, "code is not valid UTF-8")),
        },
        None => w.none(),
    }
    w.str(&String::from_utf8_lossy(file.as_slice()));
    w.int(line);
    let encoded = encode_vars(&mut w, vars, &opts, &mut budget);
    w.end_tuple(5);
    Ok(match encoded {
        Ok(()) => submit(env, &interp, tag, kind::EVAL, w.finish()),
        Err(e) => encode_failure(env, e),
    })
}

submitting_nifs!(
    /// `MAKE_ENV`: `sources` is a list of `{env_id, mode, names}` (mode 0 all, 1 only, 2 except)
    /// of envs of the same interpreter. Returns `{:ok, request_id, {env_resource, env_id}}`.
    make_env, make_env_dirty, make_env_serial => make_env_with -> [NifResult<Term<'a>>];
    interp: [ResourceArc<InterpreterRes>],
    tag: [Term<'a>],
    sources: [Vec<(i64, i64, Vec<String>)>],
    vars: [Term<'a>],
    opts: [u32],
);

fn make_env_with<'a>(
    env: Env<'a>,
    interp: ResourceArc<InterpreterRes>,
    tag: Term<'a>,
    sources: Vec<(i64, i64, Vec<String>)>,
    vars: Term<'a>,
    opts: u32,
    sched: Sched,
) -> NifResult<Term<'a>> {
    if sched.routes_dirty(&[vars], 0) {
        return Ok(atoms::dirty().encode(env));
    }
    let _turn = match begin(env, &interp.core, sched, true) {
        Ok(turn) => turn,
        Err(answer) => return Ok(answer),
    };
    let mut budget = sched.budget();
    let new_id = interp.core.next_env_id();
    let opts = EncodeOpts::resolve(interp.core.default_encoding, opts);
    let mut w = PickleWriter::new();
    w.begin_tuple(3);
    w.int(new_id);
    w.begin_list(sources.len());
    for (src, mode, names) in &sources {
        w.begin_tuple(3);
        w.int(*src);
        w.int(*mode);
        w.begin_list(names.len());
        for name in names {
            w.str(name);
        }
        w.end_list(names.len());
        w.end_tuple(3);
    }
    w.end_list(sources.len());
    let encoded = encode_vars(&mut w, vars, &opts, &mut budget);
    w.end_tuple(3);
    if let Err(e) = encoded {
        return Ok(encode_failure(env, e));
    }
    let env_res = ResourceArc::new(EnvRes::new(new_id, interp.clone()));
    let result = submit(env, &interp, tag, kind::MAKE_ENV, w.finish());
    // On success, wrap as {:ok, id, env}; the env frees itself in Python when dropped.
    Ok(match result.decode::<(rustler::Atom, u64)>() {
        Ok((ok, id)) if ok == atoms::ok() => (atoms::ok(), id, (env_res, new_id)).encode(env),
        _ => {
            // Nothing was created in Python; do not send a destroy for it.
            env_res.disable_gc();
            result
        }
    })
}

submitting_nifs!(
    /// `CALL_RESULT`: the answer to Python's `snex.call` number `call_id`.
    call_result, call_result_dirty, call_result_serial => call_result_with -> [Term<'a>];
    interp: [ResourceArc<InterpreterRes>],
    call_id: [u64],
    ok: [bool],
    value: [Term<'a>],
    opts: [u32],
);

fn call_result_with<'a>(
    env: Env<'a>,
    interp: ResourceArc<InterpreterRes>,
    call_id: u64,
    ok: bool,
    value: Term<'a>,
    opts: u32,
    sched: Sched,
) -> Term<'a> {
    if sched.routes_dirty(&[value], 0) {
        return atoms::dirty().encode(env);
    }
    // The answer to a call Python is waiting for is never held back by the busy limits.
    let _turn = match begin(env, &interp.core, sched, false) {
        Ok(turn) => turn,
        Err(answer) => return answer,
    };
    let mut budget = sched.budget();
    let opts = EncodeOpts::resolve(interp.core.default_encoding, opts);
    let mut w = PickleWriter::new();
    w.begin_tuple(2);
    w.bool(ok);
    let encoded = encode_term(&mut w, value, &opts, &mut budget);
    w.end_tuple(2);
    if let Err(e) = encoded {
        return encode_failure(env, e);
    }
    match Outgoing::new(kind::CALL_RESULT, call_id, w.finish()) {
        Ok(frame) => {
            if interp.core.writer.send(frame) {
                atoms::ok().encode(env)
            } else {
                (atoms::error(), atoms::closed()).encode(env)
            }
        }
        Err(msg) => encode_error(env, &msg),
    }
}

fn resolve_target(target: Term, env_id: i64) -> NifResult<(ResourceArc<InterpreterRes>, i64)> {
    if let Ok(env_res) = target.decode::<ResourceArc<EnvRes>>() {
        return Ok((env_res.interpreter.clone(), env_res.id));
    }
    let interp: ResourceArc<InterpreterRes> = target.decode()?;
    Ok((interp, env_id))
}

/// Before encoding: fails with `{:error, :closed}` when the interpreter is shut down, `:locked`
/// when another caller has the turn (only with `parallelism: false`, and never on
/// [`Sched::DirtyIo`], which waits for it), or `:busy` when a busy limit is exceeded (then the
/// caller gets `:snex_writable` later; only with `check_busy`).
fn begin<'a, 'c>(
    env: Env<'a>,
    core: &'c Core,
    sched: Sched,
    check_busy: bool,
) -> Result<Turn<'c>, Term<'a>> {
    if core.is_shut_down() {
        return Err((atoms::error(), atoms::closed()).encode(env));
    }
    let Some(turn) = sched.turn(core) else {
        return Err(atoms::locked().encode(env));
    };
    if check_busy && core.writer.is_busy(env.pid()) {
        return Err(atoms::busy().encode(env));
    }
    Ok(turn)
}

/// Registers the caller and queues the frame: `{:ok, id}` or `{:error, reason}`.
fn submit<'a>(
    env: Env<'a>,
    interp: &ResourceArc<InterpreterRes>,
    tag: Term<'a>,
    frame_kind: u8,
    body: PickleOutput<Vec<u8>>,
) -> Term<'a> {
    let core = &interp.core;
    let caller = env.pid();
    let id = core.next_request_id();
    let frame = match Outgoing::new(frame_kind, id, body) {
        Ok(frame) => frame,
        Err(msg) => return encode_error(env, &msg),
    };
    let reply_env = OwnedEnv::new();
    let saved_tag = reply_env.save(tag);
    let monitor = env
        .monitor(interp, &caller)
        .map(|mon| (mon, interp.clone()));
    let pending = Pending {
        caller,
        env: reply_env,
        tag: saved_tag,
        monitor,
    };
    match core.submit(id, pending, frame) {
        Ok(()) => (atoms::ok(), id).encode(env),
        Err(mut pending) => {
            pending.demonitor(Some(env));
            (atoms::error(), atoms::closed()).encode(env)
        }
    }
}

fn encode_failure(env: Env, e: EncodeError) -> Term {
    match e {
        EncodeError::Dirty => atoms::dirty().encode(env),
        EncodeError::NeedsProtocol => atoms::protocol().encode(env),
        EncodeError::Invalid(msg) => encode_error(env, &msg),
    }
}

fn encode_error<'a>(env: Env<'a>, msg: &str) -> Term<'a> {
    (atoms::error(), (atoms::encode_error(), msg)).encode(env)
}
