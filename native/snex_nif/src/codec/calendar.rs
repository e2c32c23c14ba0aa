//! Elixir's calendar structs → Python `datetime` objects (see `docs/protocol.md`).
//!
//! `Date`, `Time` and `NaiveDateTime` become calls of `datetime.date`, `datetime.time` and
//! `datetime.datetime`; a `DateTime` in `Etc/UTC` a call of `datetime.datetime` with
//! `datetime.timezone.utc`, any other `DateTime` a call of `snex._wire.aware_datetime`, which
//! picks its `tzinfo`. Only structs of `Calendar.ISO` are converted: other calendars go the way of any
//! other struct.

use rustler::{Atom, Term};

use crate::codec::beam_bytes::Pickle;
use crate::codec::opts::EncodeError;

rustler::atoms! {
    calendar,
    calendar_iso = "Elixir.Calendar.ISO",
    date = "Elixir.Date",
    time = "Elixir.Time",
    naive_date_time = "Elixir.NaiveDateTime",
    date_time = "Elixir.DateTime",
    year,
    month,
    day,
    hour,
    minute,
    second,
    microsecond,
    time_zone,
    zone_abbr,
    utc_offset,
    std_offset,
}

/// Writes `t`, a struct of `module`, as a Python `datetime` object if it is one of the calendar
/// structs of `Calendar.ISO`; `Ok(false)` (nothing written) for any other struct.
pub fn encode_calendar_struct<'a>(
    w: &mut Pickle,
    t: Term<'a>,
    module: Term<'a>,
) -> Result<bool, EncodeError> {
    let env = t.get_env();
    let (py_module, py_name, name) = if module == date().to_term(env) {
        ("datetime", "date", "Date")
    } else if module == time().to_term(env) {
        ("datetime", "time", "Time")
    } else if module == naive_date_time().to_term(env) {
        ("datetime", "datetime", "NaiveDateTime")
    } else if module == date_time().to_term(env) {
        ("snex._wire", "aware_datetime", "DateTime")
    } else {
        return Ok(false);
    };
    match t.map_get(calendar().to_term(env)) {
        Ok(c) if c == calendar_iso().to_term(env) => {}
        _ => return Ok(false),
    }
    let malformed = || EncodeError::Invalid(format!("malformed {name} struct"));
    let int = |key: Atom| -> Result<i64, EncodeError> {
        t.map_get(key.to_term(env))
            .and_then(|v| v.decode::<i64>())
            .map_err(|_| malformed())
    };
    let string = |key: Atom| -> Result<String, EncodeError> {
        t.map_get(key.to_term(env))
            .and_then(|v| v.decode::<String>())
            .map_err(|_| malformed())
    };
    // `microsecond` is `{value, precision}`: Python keeps the value.
    let micro = || -> Result<i64, EncodeError> {
        let field = t
            .map_get(microsecond().to_term(env))
            .map_err(|_| malformed())?;
        match rustler::types::tuple::get_tuple(field).as_deref() {
            Ok([value, _precision]) => value.decode::<i64>().map_err(|_| malformed()),
            _ => Err(malformed()),
        }
    };

    let mut ints: Vec<i64> = Vec::with_capacity(9);
    if name != "Time" {
        ints.extend([int(year())?, int(month())?, int(day())?]);
    }
    if name != "Date" {
        ints.extend([int(hour())?, int(minute())?, int(second())?, micro()?]);
    }
    let zone = if name == "DateTime" {
        let names = (string(time_zone())?, string(zone_abbr())?);
        Some((names, int(utc_offset())?, int(std_offset())?))
    } else {
        None
    };

    // UTC, the usual case, needs no help from Python: `datetime.timezone.utc` directly.
    let utc = matches!(&zone, Some(((z, _), 0, 0)) if z == "Etc/UTC");
    let (py_module, py_name, zone) = if utc {
        ("datetime", "datetime", None)
    } else {
        (py_module, py_name, zone)
    };
    let arity = ints.len() + usize::from(utc) + if zone.is_some() { 4 } else { 0 };
    w.global(py_module, py_name);
    w.begin_tuple(arity);
    for i in ints {
        w.int(i);
    }
    if utc {
        w.global("datetime", "timezone.utc");
    }
    if let Some(((zone_name, abbr), utc_offset, std_offset)) = zone {
        // Memoised like map keys: a zone repeated in a message is sent once.
        w.key_str(&zone_name);
        w.key_str(&abbr);
        w.int(utc_offset);
        w.int(std_offset);
    }
    w.end_tuple(arity);
    w.reduce();
    Ok(true)
}
