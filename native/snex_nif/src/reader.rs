//! The reader thread: reads Python's frames, decodes replies into terms and sends them straight
//! to the waiting caller; Python's own requests (`snex.call`, `cast`, `send`) go to the owner.

use std::fs::File;
use std::sync::Arc;

use rustler::{Encoder, Env, OwnedEnv, Term};
use snex_core::frame::{kind, Frame, FrameReader};

use crate::atoms;
use crate::core::Core;
use crate::decode;

/// Starts the reader thread of `core` on `pipe`.
pub fn start(core: Arc<Core>, pipe: File) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("snex-reader".into())
        .spawn(move || read_loop(&core, pipe))?;
    Ok(())
}

fn read_loop(core: &Core, pipe: File) {
    let mut reader = FrameReader::new(pipe);
    let mut request_env = OwnedEnv::new();
    loop {
        match reader.read_frame_of(|k| (kind::REPLY_OK..=kind::SEND).contains(&k)) {
            Ok(Some(frame)) => {
                // A bug here must not leave callers waiting forever: stop the interpreter, so
                // that they get :call_failed.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    dispatch(core, frame, &mut request_env)
                }))
                .unwrap_or_else(|_| Err("internal error while handling a frame".to_string()));
                if let Err(msg) = outcome {
                    protocol_error(core, &msg);
                    return;
                }
            }
            // EOF: Python exited or closed its end; if it does not exit, it is killed.
            Ok(None) => {
                core.transport_lost(crate::loss::Loss::eof());
                return;
            }
            Err(e) => {
                core.transport_lost(crate::loss::Loss::read_failed(&e));
                return;
            }
        }
    }
}

/// Python broke the protocol: it is stopped, and the owner is told why.
fn protocol_error(core: &Core, msg: &str) {
    let mut env = OwnedEnv::new();
    let _ = env.send_and_clear(&core.owner, |env| {
        (atoms::snex_protocol_error(), msg).encode(env)
    });
    core.child.signal_group(nix::sys::signal::Signal::SIGKILL);
}

fn dispatch(core: &Core, frame: Frame, request_env: &mut OwnedEnv) -> Result<(), String> {
    match frame.kind {
        kind::REPLY_OK | kind::REPLY_ERROR => {
            reply(core, frame);
            Ok(())
        }
        kind::CALL | kind::CAST | kind::SEND => {
            forward_request(core, frame, request_env);
            Ok(())
        }
        other => Err(format!("unknown frame kind {other} from Python")),
    }
}

/// Sends `{tag, {:ok, value}}` or `{tag, {:error, {code, reason, traceback}}}` to the caller.
fn reply(core: &Core, frame: Frame) {
    // The caller timed out or died: the reply is dropped here.
    let Some(mut pending) = core.take_pending(frame.id) else {
        return;
    };
    pending.demonitor(None);
    let caller = pending.caller;
    let tag = pending.tag;
    let ok = frame.kind == kind::REPLY_OK;
    let body = frame.body;
    let _ = pending.env.send_and_clear(&caller, move |env| {
        let reply = if ok {
            match decode::decode(env, &body) {
                Ok(value) => (atoms::ok(), value).encode(env),
                Err(e) => decode_error(env, &e.to_string()),
            }
        } else {
            match decode::decode(env, &body) {
                Ok(error) => (atoms::error(), error).encode(env),
                Err(e) => decode_error(env, &e.to_string()),
            }
        };
        (tag.load(env), reply).encode(env)
    });
}

fn decode_error<'a>(env: Env<'a>, msg: &str) -> Term<'a> {
    let detail = format!("cannot decode the value Python returned: {msg}");
    (
        atoms::error(),
        (atoms::decode_error(), detail, atoms::nil()),
    )
        .encode(env)
}

/// Sends `{:snex_request, :call | :cast | :send, id, decoded_body}` to the owner. A body that
/// cannot be decoded becomes `{:snex_request, kind, id, {:decode_error, message}}`, so that the
/// owner can answer a call instead of leaving Python waiting.
fn forward_request(core: &Core, frame: Frame, env: &mut OwnedEnv) {
    let what = match frame.kind {
        kind::CALL => atoms::call(),
        kind::CAST => atoms::cast(),
        _ => atoms::send(),
    };
    let _ = env.send_and_clear(&core.owner, |env| {
        let body = match decode::decode(env, &frame.body) {
            Ok(term) => term,
            Err(e) => (atoms::decode_error(), e.to_string()).encode(env),
        };
        (atoms::snex_request(), what, frame.id, body).encode(env)
    });
}
