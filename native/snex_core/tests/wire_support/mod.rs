//! Helpers shared by the wire format tests: a test [`Builder`], values to write, canonical
//! renderings that Python can produce too, a harness that runs the repository's `snex` package
//! (its production codec), a PRNG and an allocation tracker.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use snex_core::pickle::{Builder, DecodeError, PickleWriter};

// ---------------------------------------------------------------------------------------------
// Decoded values

/// What [`TestBuilder`] makes.
#[derive(Clone, Debug, PartialEq)]
pub enum TestValue {
    None,
    Bool(bool),
    Int(i64),
    /// Little-endian two's complement, as given to the builder.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<TestValue>),
    Tuple(Vec<TestValue>),
    Map(Vec<(TestValue, TestValue)>),
    Set(Vec<TestValue>),
    Atom(String),
    Term(Vec<u8>),
}

/// Builds [`TestValue`]s; counts string builds (to check sharing).
#[derive(Default)]
pub struct TestBuilder {
    pub str_builds: usize,
}

impl Builder for TestBuilder {
    type Value = TestValue;
    fn none(&mut self) -> Result<TestValue, DecodeError> {
        Ok(TestValue::None)
    }
    fn bool(&mut self, v: bool) -> Result<TestValue, DecodeError> {
        Ok(TestValue::Bool(v))
    }
    fn int(&mut self, v: i64) -> Result<TestValue, DecodeError> {
        Ok(TestValue::Int(v))
    }
    fn big_int(&mut self, le: &[u8]) -> Result<TestValue, DecodeError> {
        Ok(TestValue::BigInt(le.to_vec()))
    }
    fn float(&mut self, v: f64) -> Result<TestValue, DecodeError> {
        Ok(TestValue::Float(v))
    }
    fn str(&mut self, v: &str) -> Result<TestValue, DecodeError> {
        self.str_builds += 1;
        Ok(TestValue::Str(v.to_string()))
    }
    fn bytes(&mut self, v: &[u8]) -> Result<TestValue, DecodeError> {
        Ok(TestValue::Bytes(v.to_vec()))
    }
    fn list(&mut self, items: Vec<TestValue>) -> Result<TestValue, DecodeError> {
        Ok(TestValue::List(items))
    }
    fn tuple(&mut self, items: Vec<TestValue>) -> Result<TestValue, DecodeError> {
        Ok(TestValue::Tuple(items))
    }
    fn map(&mut self, pairs: Vec<(TestValue, TestValue)>) -> Result<TestValue, DecodeError> {
        Ok(TestValue::Map(pairs))
    }
    fn set(&mut self, items: Vec<TestValue>) -> Result<TestValue, DecodeError> {
        Ok(TestValue::Set(items))
    }
    fn atom(&mut self, name: &str) -> Result<TestValue, DecodeError> {
        Ok(TestValue::Atom(name.to_string()))
    }
    fn term(&mut self, etf: &[u8]) -> Result<TestValue, DecodeError> {
        Ok(TestValue::Term(etf.to_vec()))
    }
}

/// Decodes with a fresh [`TestBuilder`].
pub fn decode(data: &[u8]) -> Result<TestValue, DecodeError> {
    snex_core::pickle::decode(data, &mut TestBuilder::default())
}

/// The canonical rendering of a decoded value (see `canon` in `harness.py`).
pub fn canon(v: &TestValue) -> String {
    let mut out = String::new();
    canon_into(v, &mut out);
    out
}

fn canon_into(v: &TestValue, out: &mut String) {
    match v {
        TestValue::None => out.push('N'),
        TestValue::Bool(true) => out.push('T'),
        TestValue::Bool(false) => out.push('F'),
        TestValue::Int(i) => {
            let _ = write!(out, "i{i}");
        }
        TestValue::BigInt(le) => {
            out.push('i');
            out.push_str(&le_to_decimal(le));
        }
        TestValue::Float(f) => {
            let _ = write!(out, "f{:016x}", f.to_bits());
        }
        TestValue::Str(s) => hex_into('s', s.as_bytes(), out),
        TestValue::Bytes(b) => hex_into('b', b, out),
        TestValue::Atom(a) => hex_into('a', a.as_bytes(), out),
        TestValue::Term(t) => hex_into('t', t, out),
        TestValue::List(items) => seq_into('[', ']', items.iter().map(canon), out),
        TestValue::Tuple(items) => seq_into('(', ')', items.iter().map(canon), out),
        TestValue::Map(pairs) => seq_into(
            '{',
            '}',
            pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", canon(k), canon(v))),
            out,
        ),
        TestValue::Set(items) => set_into("", items.iter().map(canon), out),
    }
}

fn hex_into(tag: char, bytes: &[u8], out: &mut String) {
    out.push(tag);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

fn seq_into(open: char, close: char, items: impl Iterator<Item = String>, out: &mut String) {
    out.push(open);
    out.push_str(&items.collect::<Vec<_>>().join(","));
    out.push(close);
}

fn set_into(prefix: &str, items: impl Iterator<Item = String>, out: &mut String) {
    let mut items: Vec<String> = items.collect();
    items.sort();
    items.dedup();
    out.push_str(prefix);
    out.push('<');
    out.push_str(&items.join(","));
    out.push('>');
}

/// Decimal rendering of a little-endian two's complement integer.
pub fn le_to_decimal(le: &[u8]) -> String {
    let negative = le.last().is_some_and(|b| b & 0x80 != 0);
    // Big-endian magnitude.
    let mut mag: Vec<u8> = le.iter().rev().copied().collect();
    if negative {
        // Two's complement negation: invert and add one.
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    let mut digits = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    if negative {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Values to write

/// A value for [`PickleWriter`], as Elixir would send it.
#[derive(Clone, Debug)]
pub enum W {
    None,
    Bool(bool),
    Int(i64),
    /// Minimal little-endian two's complement.
    Big(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    ByteArray(Vec<u8>),
    Atom(String),
    DistinctAtom(String),
    /// `snex.Term(etf)`.
    Term(Vec<u8>),
    /// `snex._wire.make_object(m, n, args)`: in Python, `m.n(*args)` (`Snex.Serde.object/3`).
    Object(Box<W>, Box<W>, Box<W>),
    List(Vec<W>),
    Tuple(Vec<W>),
    /// String keys are written with `key_str`.
    Dict(Vec<(W, W)>),
    Set(Vec<W>),
    FrozenSet(Vec<W>),
}

/// Writes `v` (recursively; test values are shallow).
pub fn write(w: &mut PickleWriter, v: &W) {
    write_value(w, v, false)
}

fn write_value(w: &mut PickleWriter, v: &W, is_key: bool) {
    match v {
        W::None => w.none(),
        W::Bool(b) => w.bool(*b),
        W::Int(i) => w.int(*i),
        W::Big(b) => w.big_int_le(b),
        W::Float(f) => w.float(*f),
        W::Str(s) if is_key => w.key_str(s),
        W::Str(s) => w.str(s),
        W::Bytes(b) => w.bytes(b),
        W::ByteArray(b) => w.bytearray(b),
        W::Atom(a) => w.atom(a, false),
        W::DistinctAtom(a) => w.atom(a, true),
        W::Term(t) => {
            w.global("snex", "Term");
            w.begin_tuple(1);
            w.bytes(t);
            w.end_tuple(1);
            w.reduce();
        }
        W::Object(m, n, args) => {
            w.global("snex._wire", "make_object");
            w.begin_tuple(3);
            write(w, m);
            write(w, n);
            write(w, args);
            w.end_tuple(3);
            w.reduce();
        }
        W::List(items) => {
            w.begin_list(items.len());
            items.iter().for_each(|x| write(w, x));
            w.end_list(items.len());
        }
        W::Tuple(items) => {
            w.begin_tuple(items.len());
            items.iter().for_each(|x| write(w, x));
            w.end_tuple(items.len());
        }
        W::Dict(pairs) => {
            w.begin_dict(pairs.len());
            for (k, x) in pairs {
                write_value(w, k, true);
                write(w, x);
            }
            w.end_dict(pairs.len());
        }
        W::Set(items) | W::FrozenSet(items) => {
            let frozen = matches!(v, W::FrozenSet(_));
            w.begin_set(items.len(), frozen);
            items.iter().for_each(|x| write_value(w, x, true));
            w.end_set(items.len(), frozen);
        }
    }
}

/// `v` as one pickle.
pub fn pickle(v: &W) -> Vec<u8> {
    let mut w = PickleWriter::new();
    write(&mut w, v);
    w.finish().buf
}

/// Canonical rendering of a written value as Python sees it after `snex.codec.decode`
/// (`exact`, as in `canon(v, True)` of `harness.py`), or as it comes back to Elixir after a
/// round trip through Python (not `exact`).
pub fn canon_w(v: &W, exact: bool) -> String {
    let mut out = String::new();
    canon_w_into(v, exact, &mut out);
    out
}

fn canon_w_into(v: &W, exact: bool, out: &mut String) {
    let c = |x: &W| canon_w(x, exact);
    match v {
        W::None => out.push('N'),
        W::Bool(true) => out.push('T'),
        W::Bool(false) => out.push('F'),
        W::Int(i) => {
            let _ = write!(out, "i{i}");
        }
        W::Big(b) => {
            out.push('i');
            out.push_str(&le_to_decimal(b));
        }
        W::Float(f) => {
            let _ = write!(out, "f{:016x}", f.to_bits());
        }
        W::Str(s) => hex_into('s', s.as_bytes(), out),
        W::Bytes(b) => hex_into('b', b, out),
        W::ByteArray(b) => hex_into(if exact { 'y' } else { 'b' }, b, out),
        W::Atom(a) => hex_into('a', a.as_bytes(), out),
        W::DistinctAtom(a) => hex_into(if exact { 'A' } else { 'a' }, a.as_bytes(), out),
        W::Term(t) => hex_into('t', t, out),
        // Python makes the real object (`module.name(*args)`): check it with an expression.
        W::Object(..) => panic!("objects have no canonical rendering; check them by expression"),
        W::List(items) => seq_into('[', ']', items.iter().map(c), out),
        W::Tuple(items) => seq_into('(', ')', items.iter().map(c), out),
        W::Dict(pairs) => seq_into(
            '{',
            '}',
            pairs.iter().map(|(k, x)| format!("{}:{}", c(k), c(x))),
            out,
        ),
        W::Set(items) => set_into("", items.iter().map(c), out),
        W::FrozenSet(items) => set_into(if exact { "F" } else { "" }, items.iter().map(c), out),
    }
}

// ---------------------------------------------------------------------------------------------
// Python

/// The harness (`harness.py` next to this file), run with the repository's production `snex`
/// package (`python/`): Python encodes with `snex.codec.encode` and decodes with
/// `snex.codec.decode`. The interpreter is `$SNEX_TEST_PYTHON`, else `python3`.
pub struct Python {
    harness: PathBuf,
    package_dir: PathBuf,
}

impl Python {
    /// Finds the harness and the repository's `python/` directory.
    pub fn new() -> Python {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let package_dir = manifest
            .join("../../python")
            .canonicalize()
            .expect("the repository's python/ directory");
        assert!(
            package_dir.join("snex/codec.py").is_file(),
            "no snex package in {}",
            package_dir.display()
        );
        Python {
            harness: manifest.join("tests/wire_support/harness.py"),
            package_dir,
        }
    }

    /// Runs the harness in `mode` with `input` on stdin; returns its stdout lines.
    pub fn run(&self, mode: &str, input: Vec<u8>) -> Vec<String> {
        let python = std::env::var("SNEX_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            // -B: no __pycache__ in the repository's python/.
            .arg("-B")
            .arg(&self.harness)
            .arg(mode)
            .arg(&self.package_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} (set SNEX_TEST_PYTHON): {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            stdin.write_all(&input).unwrap();
        });
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        writer.join().unwrap();
        assert!(child.wait().unwrap().success(), "python harness failed");
        out.lines().map(str::to_string).collect()
    }

    /// `snex.codec.decode` each pickle in Python; each answer is `canon(v, True)` when the
    /// expression is empty, else `repr(eval(expr))` with the value as `v`, or
    /// `ERR <exception type>: <message>`.
    pub fn loads(&self, cases: &[(&str, Vec<u8>)]) -> Vec<String> {
        let lines = self.run("loads", records(cases));
        assert_eq!(lines.len(), cases.len());
        lines
    }

    /// `snex.codec.decode` then `snex.codec.encode` each pickle in Python.
    pub fn roundtrip(&self, pickles: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let cases: Vec<(&str, Vec<u8>)> = pickles.iter().map(|p| ("", p.clone())).collect();
        let lines = self.run("roundtrip", records(&cases));
        assert_eq!(lines.len(), cases.len());
        lines
            .iter()
            .map(|l| unhex(l).unwrap_or_else(|| panic!("python failed: {l}")))
            .collect()
    }

    /// Evaluates each expression in Python and encodes it with `snex.codec.encode`; returns
    /// `(pickle, canon)` or the error line (`ERR <exception type>: <message>`).
    pub fn dumps(&self, exprs: &[&str]) -> Vec<Result<(Vec<u8>, String), String>> {
        self.eval_lines("dumps", exprs)
    }

    /// Evaluates each expression in Python to a pickle (`bytes`, e.g. from the standard
    /// `pickle.dumps`): input that the production encoder never writes.
    pub fn raw(&self, exprs: &[&str]) -> Vec<Vec<u8>> {
        self.eval_lines("raw", exprs)
            .into_iter()
            .zip(exprs)
            .map(|(result, expr)| result.unwrap_or_else(|e| panic!("{expr}: {e}")).0)
            .collect()
    }

    fn eval_lines(&self, mode: &str, exprs: &[&str]) -> Vec<Result<(Vec<u8>, String), String>> {
        let input = exprs.join("\n").into_bytes();
        let lines = self.run(mode, input);
        assert_eq!(lines.len(), exprs.len());
        lines
            .into_iter()
            .map(|line| {
                let (hex, canon) = line.split_once(' ').ok_or_else(|| line.clone())?;
                match unhex(hex) {
                    Some(bytes) => Ok((bytes, canon.to_string())),
                    None => Err(line.clone()),
                }
            })
            .collect()
    }
}

fn records(cases: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut input = Vec::new();
    for (expr, data) in cases {
        input.extend_from_slice(&(expr.len() as u32).to_be_bytes());
        input.extend_from_slice(expr.as_bytes());
        input.extend_from_slice(&(data.len() as u32).to_be_bytes());
        input.extend_from_slice(data);
    }
    input
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Randomness

/// xorshift64* PRNG.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// Random bytes, fewer than `max`.
    pub fn bytes_below(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

/// A random value to write. Dict keys and set items are unique (by an index), so that Python
/// does not merge equal ones.
pub fn random_w(rng: &mut Rng, depth: usize) -> W {
    let kinds = if depth < 4 { 17 } else { 12 };
    match rng.below(kinds) {
        0 => W::None,
        1 => W::Bool(rng.chance(50)),
        2 => W::Int(random_int(rng)),
        3 => W::Big(random_big(rng)),
        4 => W::Float(f64::from_bits(rng.next_u64())),
        5 => W::Str(random_str(rng)),
        6 => W::Bytes(rng.bytes_below(40)),
        7 => W::ByteArray(rng.bytes_below(5)),
        8 => W::Atom(random_atom(rng)),
        9 => W::DistinctAtom(random_atom(rng)),
        10 => W::Term(vec![131, 97, rng.next_u64() as u8]),
        11 => W::Str("plain".into()),
        12 => W::List(random_items(rng, depth)),
        13 => W::Tuple(random_items(rng, depth)),
        14 => {
            let n = rng.below(6);
            W::Dict(
                (0..n)
                    .map(|i| {
                        let key = if rng.chance(70) {
                            W::Str(format!("k{}", i % 3 + rng.below(2) * 10))
                        } else {
                            W::Int(1000 + i as i64)
                        };
                        (key, random_w(rng, depth + 1))
                    })
                    .collect::<Vec<_>>(),
            )
            .dedup_keys()
        }
        15 => W::Set(unique_items(rng)),
        _ => W::FrozenSet(unique_items(rng)),
    }
}

impl W {
    /// Drops dict pairs whose key repeats an earlier one.
    fn dedup_keys(self) -> W {
        match self {
            W::Dict(pairs) => {
                let mut seen = Vec::new();
                let mut out = Vec::new();
                for (k, v) in pairs {
                    let c = canon_w(&k, true);
                    if !seen.contains(&c) {
                        seen.push(c);
                        out.push((k, v));
                    }
                }
                W::Dict(out)
            }
            other => other,
        }
    }
}

fn random_items(rng: &mut Rng, depth: usize) -> Vec<W> {
    (0..rng.below(7))
        .map(|_| random_w(rng, depth + 1))
        .collect()
}

fn unique_items(rng: &mut Rng) -> Vec<W> {
    (0..rng.below(6))
        .map(|i| match rng.below(3) {
            0 => W::Str(format!("s{i}")),
            1 => W::Int(i as i64 * 1_000_003),
            _ => W::Tuple(vec![W::Int(i as i64), W::Str("t".into())]),
        })
        .collect()
}

fn random_int(rng: &mut Rng) -> i64 {
    match rng.below(4) {
        0 => rng.below(300) as i64,
        1 => -(rng.below(70_000) as i64),
        2 => [
            0,
            255,
            256,
            65535,
            65536,
            -1,
            i32::MIN as i64,
            i32::MAX as i64 + 1,
            i64::MIN,
            i64::MAX,
        ][rng.below(10)],
        _ => rng.next_u64() as i64,
    }
}

/// A minimal little-endian two's complement integer outside the `i64` range.
pub fn random_big(rng: &mut Rng) -> Vec<u8> {
    let spread = if rng.chance(10) { 400 } else { 20 };
    let len = 9 + rng.below(spread);
    let mut b = rng.bytes(len);
    let negative = rng.chance(50);
    // Make the top byte significant and of the right sign.
    let last = b.len() - 1;
    b[last] = if negative {
        0x80 | (b[last] & 0x3f)
    } else {
        0x01 | (b[last] & 0x3f)
    };
    b
}

fn random_str(rng: &mut Rng) -> String {
    let pieces = ["a", "é", "日本", "😀", "\u{0}", "xyz", "\n"];
    let n = if rng.chance(5) { 200 } else { rng.below(6) };
    (0..n).map(|_| pieces[rng.below(pieces.len())]).collect()
}

fn random_atom(rng: &mut Rng) -> String {
    ["ok", "error", "nil_not", "ünïcode", "a b"][rng.below(5)].to_string()
}

// ---------------------------------------------------------------------------------------------
// Allocation tracking

/// Allocations larger than this are refused (the test then aborts): a hostile length must
/// never turn into an allocation of that size.
pub const ALLOC_LIMIT: usize = 256 * 1024 * 1024;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// A global allocator that records the largest single allocation of each thread and
/// refuses huge ones. Install it with
/// `#[global_allocator] static A: wire_support::TrackingAlloc = wire_support::TrackingAlloc;`
/// and measure with [`largest_alloc`].
pub struct TrackingAlloc;

fn note(size: usize) -> bool {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    size <= ALLOC_LIMIT
}

unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Runs `f` and returns its result with the largest single allocation this thread made
/// meanwhile (only meaningful where [`TrackingAlloc`] is the global allocator).
pub fn largest_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(|l| l.get()))
}
