//! The reader thread: reads Python's frames and passes each body on, undecoded, as a binary:
//! a reply straight to the waiting caller, Python's own requests (`snex.call`, `cast`, `send`)
//! to the owner. Bodies are decoded by the receiving process in a NIF call on a scheduler
//! (see [`crate::codec::decode`]): this thread builds no term but binaries, small tuples and
//! lists of binaries, which every OTP version can build on a thread of its own.

use std::fs::File;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::sync::Arc;

use rustler::sys::{enif_alloc_binary, enif_make_binary, enif_release_binary, ErlNifBinary};
use rustler::{Encoder, Env, OwnedEnv, Term};
use snex_core::frame::{kind, BodyBuffer, FrameOf, FrameReader};

use crate::atoms;
use crate::interpreter::Interpreter;

/// Starts the reader thread of `interp` on `pipe`.
pub fn start(interp: Arc<Interpreter>, pipe: File) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("snex-reader".into())
        .spawn(move || read_loop(&interp, pipe))?;
    Ok(())
}

/// A frame body read straight into the binary that the receiving process gets. Allocated with
/// `enif_alloc_binary` directly: when an allocation fails (a frame claiming more than the
/// memory there is), the read fails and the interpreter stops; nothing aborts.
struct BinaryBody(ErlNifBinary);

// SAFETY: the binary is owned by this value alone until it is released into an env.
unsafe impl Send for BinaryBody {}

impl BodyBuffer for BinaryBody {
    fn with_len(len: usize) -> Option<Self> {
        let mut bin = MaybeUninit::<ErlNifBinary>::uninit();
        // SAFETY: enif_alloc_binary initialises `bin` when it returns true.
        unsafe {
            (enif_alloc_binary(len, bin.as_mut_ptr()) != 0).then(|| BinaryBody(bin.assume_init()))
        }
    }

    /// A new binary with the bytes copied in, rather than `enif_realloc_binary`: growing 1 MiB
    /// to 10 MB that way took 5 ms more here (`docs/decisions.md`, "Large binaries out of
    /// band").
    fn grow(&mut self, len: usize) -> bool {
        let Some(mut bigger) = BinaryBody::with_len(len) else {
            return false;
        };
        let kept = self.0.size.min(len);
        bigger.bytes_mut()[..kept].copy_from_slice(&self.bytes_mut()[..kept]);
        std::mem::swap(self, &mut bigger);
        true
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        if self.0.size == 0 {
            return &mut [];
        }
        // SAFETY: `data` points to `size` bytes owned by this binary.
        unsafe { std::slice::from_raw_parts_mut(self.0.data, self.0.size) }
    }
}

impl BinaryBody {
    /// The binary term, which now owns the bytes.
    fn release(self, env: Env<'_>) -> Term<'_> {
        let mut bin = ManuallyDrop::new(self);
        // SAFETY: enif_make_binary takes ownership of the binary; `bin` is not dropped.
        unsafe { Term::new(env, enif_make_binary(env.as_c_arg(), &mut bin.0)) }
    }
}

impl Drop for BinaryBody {
    fn drop(&mut self) {
        // SAFETY: the binary was allocated by enif_alloc_binary and not released into an env.
        unsafe { enif_release_binary(&mut self.0) };
    }
}

type Frame = FrameOf<BinaryBody>;

/// A frame's body as the receiver gets it: the pickle binary, or `{pickle, buffers}` when it
/// came with out-of-band buffers (each read into a binary of its own, see
/// `Snex.Native.decode_body/2`).
struct Body {
    pickle: BinaryBody,
    buffers: Vec<BinaryBody>,
}

impl Body {
    fn of(frame: Frame) -> Body {
        Body {
            pickle: frame.body,
            buffers: frame.buffers,
        }
    }

    fn into_term(self, env: Env<'_>) -> Term<'_> {
        let pickle = self.pickle.release(env);
        if self.buffers.is_empty() {
            return pickle;
        }
        let buffers: Vec<Term> = self.buffers.into_iter().map(|b| b.release(env)).collect();
        (pickle, buffers).encode(env)
    }
}

fn read_loop(interp: &Interpreter, pipe: File) {
    let mut reader = FrameReader::new(pipe);
    let mut request_env = OwnedEnv::new();
    loop {
        match reader.read_frame_into(|k| (kind::REPLY_OK..=kind::OUTPUT).contains(&k)) {
            Ok(Some(frame)) => {
                // A bug here must not leave callers waiting forever: stop the interpreter, so
                // that they get :call_failed.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    dispatch(interp, frame, &mut request_env)
                }))
                .unwrap_or_else(|_| Err("internal error while handling a frame".to_string()));
                if let Err(msg) = outcome {
                    interp.transport_lost(crate::loss::Loss::Protocol(msg));
                    return;
                }
            }
            // EOF: Python exited or closed its end; if it does not exit, it is killed.
            Ok(None) => {
                interp.transport_lost(crate::loss::Loss::eof());
                return;
            }
            Err(e) => {
                interp.transport_lost(crate::loss::Loss::read_failed(&e));
                return;
            }
        }
    }
}

fn dispatch(interp: &Interpreter, frame: Frame, request_env: &mut OwnedEnv) -> Result<(), String> {
    match frame.kind {
        kind::REPLY_OK | kind::REPLY_ERROR => reply(interp, frame),
        kind::CALL | kind::CAST | kind::SEND => forward_request(interp, frame, request_env),
        kind::OUTPUT => {
            output(interp, frame, request_env);
            Ok(())
        }
        kind::HELLO => {
            let pid = u32::try_from(frame.id).map_err(|_| "bad pid in HELLO".to_string())?;
            interp.interrupter.set_pid(pid);
            Ok(())
        }
        other => Err(format!("unknown frame kind {other} from Python")),
    }
}

/// Sends `{tag, :ok | :error, body}` to the caller; the caller decodes `body`.
fn reply(interp: &Interpreter, frame: Frame) -> Result<(), String> {
    // The caller timed out or died: the reply is dropped here.
    let Some(mut pending) = interp.take_pending(frame.id) else {
        return Ok(());
    };
    pending.demonitor(None);
    let kind = frame.kind;
    let body = Body::of(frame);
    let outcome = if kind == kind::REPLY_OK {
        atoms::ok()
    } else {
        atoms::error()
    };
    let caller = pending.caller;
    let tag = pending.tag;
    let _ = pending.env.send_and_clear(&caller, move |env| {
        (tag.load(env), outcome, body.into_term(env)).encode(env)
    });
    Ok(())
}

/// Sends `{:snex_request, :call | :cast | :send, id, body}` to the owner, which decodes `body`.
fn forward_request(interp: &Interpreter, frame: Frame, env: &mut OwnedEnv) -> Result<(), String> {
    let what = match frame.kind {
        kind::CALL => atoms::call(),
        kind::CAST => atoms::cast(),
        _ => atoms::send(),
    };
    let id = frame.id;
    let body = Body::of(frame);
    let _ = env.send_and_clear(&interp.owner, |env: Env| -> Term {
        (atoms::snex_request(), what, id, body.into_term(env)).encode(env)
    });
    Ok(())
}

/// Sends `{tag, :output, body}` to the caller of a request that is still pending (what its
/// code printed, with `capture_output`); dropped if the caller is gone.
fn output(interp: &Interpreter, frame: Frame, env: &mut OwnedEnv) {
    let id = frame.id;
    let body = Body::of(frame);
    interp.with_pending(id, |pending| {
        let _ = env.send_and_clear(&pending.caller, |env| {
            let tag = pending.env.run(|own| pending.tag.load(own).in_env(env));
            (tag, atoms::output(), body.into_term(env)).encode(env)
        });
    });
}
