//! The text of atoms. OTP 25's NIF atom API reads and makes Latin-1 names only; atoms of any
//! other text are read and made through the external term format.

use rustler::Term;

/// The atom's name as UTF-8, if `t` is an atom. The NIF API of OTP 25 reads only Latin-1
/// names; others are read from the atom's external term format.
pub fn atom_name(t: Term) -> Option<String> {
    t.atom_to_string()
        .or_else(|_| atom_name_from_etf(t.to_binary().as_slice()))
        .ok()
}

/// The name in an atom's external term format (any of its four atom tags).
fn atom_name_from_etf(etf: &[u8]) -> Result<String, ()> {
    let (latin1, len, start) = match etf {
        [131, 118, a, b, ..] => (false, u16::from_be_bytes([*a, *b]) as usize, 4),
        [131, 119, n, ..] => (false, *n as usize, 3),
        [131, 100, a, b, ..] => (true, u16::from_be_bytes([*a, *b]) as usize, 4),
        [131, 115, n, ..] => (true, *n as usize, 3),
        _ => return Err(()),
    };
    let bytes = etf.get(start..start + len).ok_or(())?;
    if latin1 {
        Ok(bytes.iter().map(|&b| b as char).collect())
    } else {
        String::from_utf8(bytes.to_vec()).map_err(|_| ())
    }
}
