//! Where a request is encoded, decided before any work proportional to its size: a walk of at
//! most [`MAX_VISITS`] terms, each looked at in constant time, estimates the encoding work in
//! [`Budget`](crate::codec::encode::Budget) units. A request that fits runs on the caller's normal
//! scheduler; anything larger, or anything the walk cannot size cheaply (funs, bitstrings,
//! integers beyond 64 bits), goes to a dirty CPU scheduler at once. See `docs/decisions.md`,
//! "Where requests are encoded".

use rustler::{Term, TermType};

use crate::codec::encode::{BINARY_BYTES_PER_UNIT, NORMAL_SCHEDULER_BUDGET};

/// The most terms the walk looks at; a request with more goes to a dirty scheduler.
pub const MAX_VISITS: usize = 1024;

/// Where to encode a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On the caller's normal scheduler: the work is well under a millisecond.
    Normal,
    /// On a dirty CPU scheduler.
    Dirty,
}

/// The route of a request made of `terms` plus `extra_bytes` of strings (code, file name).
pub fn route(terms: &[Term], extra_bytes: usize) -> Route {
    let budget = NORMAL_SCHEDULER_BUDGET as usize;
    let mut units = extra_bytes / BINARY_BYTES_PER_UNIT;
    let mut visits = 0;
    let mut stack: Vec<Term> = terms.to_vec();
    while let Some(t) = stack.pop() {
        visits += 1;
        units += 1;
        if visits > MAX_VISITS || units > budget {
            return Route::Dirty;
        }
        match t.get_type() {
            TermType::Binary => match rustler::types::Binary::from_term(t) {
                Ok(bin) => units += bin.len() / BINARY_BYTES_PER_UNIT,
                // A bitstring: its size is only known by encoding it.
                Err(_) => return Route::Dirty,
            },
            TermType::Integer if t.decode::<i64>().is_err() => return Route::Dirty,
            TermType::Fun => return Route::Dirty,
            TermType::List => {
                if let Ok((head, tail)) = t.list_get_cell() {
                    stack.push(tail);
                    stack.push(head);
                }
            }
            TermType::Tuple => match tuple_arity(t) {
                Some(n) if units + n <= budget => {
                    stack.extend(rustler::types::tuple::get_tuple(t).unwrap_or_default())
                }
                _ => return Route::Dirty,
            },
            TermType::Map => match t.map_size() {
                Ok(n) if units + 2 * n <= budget => {
                    if let Some(iter) = rustler::types::MapIterator::new(t) {
                        for (k, v) in iter {
                            stack.push(k);
                            stack.push(v);
                        }
                    }
                }
                _ => return Route::Dirty,
            },
            _ => {}
        }
    }
    Route::Normal
}

/// A tuple's arity, read in constant time.
fn tuple_arity(t: Term) -> Option<usize> {
    let mut arity: rustler::sys::c_int = 0;
    let mut items = std::mem::MaybeUninit::uninit();
    // SAFETY: `t` is a live term of its env; enif_get_tuple only reads it.
    let ok = unsafe {
        rustler::sys::enif_get_tuple(
            t.get_env().as_c_arg(),
            t.as_c_arg(),
            &mut arity,
            items.as_mut_ptr(),
        )
    };
    (ok == 1).then_some(arity as usize)
}
