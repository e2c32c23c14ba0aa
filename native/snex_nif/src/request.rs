//! Submitting a request (`Snex.Native.submit/1` and its dirty twins): the request tuple from
//! `Snex.Request`, where it is encoded (see [`crate::codec::route`]), its frame body, and its
//! registration in the interpreter's pending table before the frame is queued.
//!
//! Requests, as tuples:
//!
//! * `{:eval, target, tag, env_id, code, file, line, opts, capture, vars, resolved}`: `EVAL`;
//!   `target` is an env resource, or an interpreter resource with `env_id` (0: root, -1: a
//!   throw-away copy of the root); `capture` is `capture_output` (`nil`: the interpreter's);
//! * `{:make_env, interpreter, tag, sources, opts, vars, resolved}`: `MAKE_ENV`; `sources` is a
//!   list of `{env_id, mode, names}` (mode 0 all, 1 only, 2 except);
//! * `{:call_result, interpreter, call_id, ok, opts, value, resolved}`: `CALL_RESULT`, the
//!   answer to Python's `snex.call` number `call_id`;
//! * `{:call_fn, target, tag, env_id, module, function, opts, {args, kwargs}, resolved}`:
//!   `CALL_FN` (`Snex.call`); `target` and `env_id` as for `:eval`, `kwargs` a map with string
//!   keys.
//!
//! `opts` are the call's packed encoding options, `resolved` says that Elixir has already
//! applied the `Snex.Serde.Encoder` protocol to the value.

use rustler::types::Binary;
use rustler::{Encoder, Env, NifResult, OwnedEnv, ResourceArc, Term};
use snex_core::frame::kind;
use snex_core::pickle::PickleOutput;

use crate::atoms;
use crate::codec::beam_bytes::{BeamBytes, Pickle};
use crate::codec::encode::{encode_term, encode_vars, Budget, EncodeError, EncodeOpts};
use crate::codec::route::{route, Route};
use crate::interpreter::{Interpreter, Pending, Turn};
use crate::resources::{EnvRes, InterpreterRes};
use crate::writer::Outgoing;

/// Where a submitting NIF runs: decides its encoding budget and how it gets its turn.
#[derive(Clone, Copy)]
pub enum Sched {
    /// A normal scheduler: small requests only, the turn only if it is free.
    Normal,
    /// A dirty CPU scheduler: any size, the turn only if it is free.
    DirtyCpu,
    /// A dirty I/O scheduler: any size, waits for the turn.
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
    /// scheduler: only ever on a normal one.
    fn routes_dirty(self, terms: &[Term], extra_bytes: usize) -> bool {
        matches!(self, Sched::Normal) && route(terms, extra_bytes) == Route::Dirty
    }

    fn turn(self, interp: &Interpreter) -> Option<Turn<'_>> {
        match self {
            Sched::Normal | Sched::DirtyCpu => interp.try_turn(),
            Sched::DirtyIo => Some(interp.wait_turn()),
        }
    }
}

/// Submits `request` (see the module doc) on a scheduler of kind `sched`. The answer is
/// `{:ok, request_id}` (`{:ok, request_id, env}` for `make_env`, `:ok` for `call_result`),
/// `{:error, :closed}`, `{:error, {:encode_error, message}}`, or what to do next: `:dirty`,
/// `:protocol`, `:locked`, `:busy` (see `Snex.Request`).
pub fn submit<'a>(env: Env<'a>, request: Term<'a>, sched: Sched) -> NifResult<Term<'a>> {
    let items = rustler::types::tuple::get_tuple(request)?;
    let kind: rustler::Atom = items.first().ok_or(rustler::Error::BadArg)?.decode()?;
    let arg = |i: usize| items.get(i).copied().ok_or(rustler::Error::BadArg);
    if kind == atoms::eval() && items.len() == 11 {
        eval(env, &items, sched)
    } else if kind == atoms::call_fn() && items.len() == 9 {
        call_fn(env, &items, sched)
    } else if kind == atoms::make_env() && items.len() == 7 {
        make_env(
            env,
            arg(1)?.decode()?,
            arg(2)?,
            arg(3)?.decode()?,
            opts(arg(4)?, arg(6)?)?,
            arg(5)?,
            sched,
        )
    } else if kind == atoms::call_result() && items.len() == 7 {
        Ok(call_result(
            env,
            arg(1)?.decode()?,
            arg(2)?.decode()?,
            arg(3)?.decode()?,
            opts(arg(4)?, arg(6)?)?,
            arg(5)?,
            sched,
        ))
    } else {
        Err(rustler::Error::BadArg)
    }
}

/// The call's packed encoding options and the "resolved" flag.
fn opts(packed: Term, resolved: Term) -> NifResult<(u32, bool)> {
    Ok((packed.decode()?, resolved.decode()?))
}

/// The encoding options of a call to `interp`: the call's (see [`opts`]) over the interpreter's.
fn encode_opts(interp: &Interpreter, (packed, resolved): (u32, bool)) -> EncodeOpts {
    EncodeOpts::resolve(interp.default_encoding, packed, resolved)
}

fn eval<'a>(env: Env<'a>, items: &[Term<'a>], sched: Sched) -> NifResult<Term<'a>> {
    let [_, target, tag, env_id, code, file, line, packed, capture, vars, resolved] = items else {
        return Err(rustler::Error::BadArg);
    };
    let code: Option<Binary> = code.decode()?;
    let file: Binary = file.decode()?;
    let line: i64 = line.decode()?;
    let env_id: i64 = env_id.decode()?;
    let code_len = code.as_ref().map_or(0, |c| c.len());
    if sched.routes_dirty(&[*vars], code_len + file.len()) {
        return Ok(atoms::dirty().encode(env));
    }
    let (interp, env_id) = resolve_target(*target, env_id)?;
    let _turn = match begin(env, &interp.state, sched, true) {
        Ok(turn) => turn,
        Err(answer) => return Ok(answer),
    };
    let mut budget = sched.budget();
    let opts = encode_opts(&interp.state, opts(*packed, *resolved)?);
    let capture = capture
        .decode::<Option<bool>>()?
        .unwrap_or(interp.state.capture_output);
    let mut w = Pickle::default();
    w.begin_tuple(6);
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
    let encoded = encode_vars(&mut w, *vars, &opts, &mut budget);
    w.bool(capture);
    w.end_tuple(6);
    Ok(match encoded {
        Ok(()) => queued(
            env,
            register_and_queue(env, &interp, *tag, kind::EVAL, w.finish()),
        ),
        Err(e) => encode_failure(env, e),
    })
}

fn call_fn<'a>(env: Env<'a>, items: &[Term<'a>], sched: Sched) -> NifResult<Term<'a>> {
    let [_, target, tag, env_id, module, function, packed, value, resolved] = items else {
        return Err(rustler::Error::BadArg);
    };
    let module: String = module.decode()?;
    let function: String = function.decode()?;
    let (args, kwargs): (Term, Term) = value.decode()?;
    if sched.routes_dirty(&[*value], module.len() + function.len()) {
        return Ok(atoms::dirty().encode(env));
    }
    let (interp, env_id) = resolve_target(*target, env_id.decode()?)?;
    let _turn = match begin(env, &interp.state, sched, true) {
        Ok(turn) => turn,
        Err(answer) => return Ok(answer),
    };
    let mut budget = sched.budget();
    let opts = encode_opts(&interp.state, opts(*packed, *resolved)?);
    let mut w = Pickle::default();
    w.begin_tuple(5);
    w.int(env_id);
    w.str(&module);
    w.str(&function);
    let encoded = encode_term(&mut w, args, &opts, &mut budget)
        .and_then(|()| encode_vars(&mut w, kwargs, &opts, &mut budget));
    w.end_tuple(5);
    Ok(match encoded {
        Ok(()) => queued(
            env,
            register_and_queue(env, &interp, *tag, kind::CALL_FN, w.finish()),
        ),
        Err(e) => encode_failure(env, e),
    })
}

fn make_env<'a>(
    env: Env<'a>,
    interp: ResourceArc<InterpreterRes>,
    tag: Term<'a>,
    sources: Vec<(i64, i64, Vec<String>)>,
    (packed, resolved): (u32, bool),
    vars: Term<'a>,
    sched: Sched,
) -> NifResult<Term<'a>> {
    if sched.routes_dirty(&[vars], 0) {
        return Ok(atoms::dirty().encode(env));
    }
    let _turn = match begin(env, &interp.state, sched, true) {
        Ok(turn) => turn,
        Err(answer) => return Ok(answer),
    };
    let mut budget = sched.budget();
    let new_id = interp.state.next_env_id();
    let opts = encode_opts(&interp.state, (packed, resolved));
    let mut w = Pickle::default();
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
    // On success, `{:ok, id, env}`; the env frees itself in Python when dropped.
    Ok(
        match register_and_queue(env, &interp, tag, kind::MAKE_ENV, w.finish()) {
            Ok(id) => (atoms::ok(), id, (env_res, new_id)).encode(env),
            Err(answer) => {
                // Nothing was created in Python; do not send a destroy for it.
                env_res.disable_gc();
                answer
            }
        },
    )
}

fn call_result<'a>(
    env: Env<'a>,
    interp: ResourceArc<InterpreterRes>,
    call_id: u64,
    ok: bool,
    (packed, resolved): (u32, bool),
    value: Term<'a>,
    sched: Sched,
) -> Term<'a> {
    if sched.routes_dirty(&[value], 0) {
        return atoms::dirty().encode(env);
    }
    // The answer to a call Python is waiting for is never held back by the busy limits.
    let _turn = match begin(env, &interp.state, sched, false) {
        Ok(turn) => turn,
        Err(answer) => return answer,
    };
    let mut budget = sched.budget();
    let opts = encode_opts(&interp.state, (packed, resolved));
    let mut w = Pickle::default();
    w.begin_tuple(2);
    w.bool(ok);
    let encoded = encode_term(&mut w, value, &opts, &mut budget);
    w.end_tuple(2);
    if let Err(e) = encoded {
        return encode_failure(env, e);
    }
    match Outgoing::new(kind::CALL_RESULT, call_id, w.finish()) {
        Ok(frame) => {
            if interp.state.writer.send(frame) {
                atoms::ok().encode(env)
            } else {
                (atoms::error(), atoms::closed()).encode(env)
            }
        }
        Err(msg) => encode_error(env, &msg),
    }
}

/// The interpreter and env id a request is for: `target` is an env resource, or an
/// interpreter resource with the env id given.
pub fn resolve_target(target: Term, env_id: i64) -> NifResult<(ResourceArc<InterpreterRes>, i64)> {
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
    interp: &'c Interpreter,
    sched: Sched,
    check_busy: bool,
) -> Result<Turn<'c>, Term<'a>> {
    if interp.is_shut_down() {
        return Err((atoms::error(), atoms::closed()).encode(env));
    }
    let Some(turn) = sched.turn(interp) else {
        return Err(atoms::locked().encode(env));
    };
    if check_busy && interp.writer.is_busy(env.pid()) {
        return Err(atoms::busy().encode(env));
    }
    Ok(turn)
}

/// `{:ok, id}` for a queued request, else the answer `register_and_queue` gave.
fn queued<'a>(env: Env<'a>, result: Result<u64, Term<'a>>) -> Term<'a> {
    result.map_or_else(|answer| answer, |id| (atoms::ok(), id).encode(env))
}

/// Registers the caller and queues the frame: its request id, or the answer for the caller
/// (`{:error, reason}`).
fn register_and_queue<'a>(
    env: Env<'a>,
    interp: &ResourceArc<InterpreterRes>,
    tag: Term<'a>,
    frame_kind: u8,
    body: PickleOutput<BeamBytes>,
) -> Result<u64, Term<'a>> {
    let state = &interp.state;
    let caller = env.pid();
    let id = state.next_request_id();
    let frame = match Outgoing::new(frame_kind, id, body) {
        Ok(frame) => frame,
        Err(msg) => return Err(encode_error(env, &msg)),
    };
    let reply_env = OwnedEnv::new();
    let saved_tag = reply_env.save(tag);
    let monitor = crate::resources::monitor_caller(env, interp, &caller);
    let pending = Pending {
        caller,
        env: reply_env,
        tag: saved_tag,
        monitor,
    };
    match state.submit(id, pending, frame) {
        Ok(()) => Ok(id),
        Err(mut pending) => {
            pending.demonitor(Some(env));
            Err((atoms::error(), atoms::closed()).encode(env))
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
