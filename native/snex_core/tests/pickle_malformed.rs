//! Malformed and hostile pickles: the reader must never panic, overflow the stack, loop for
//! long, or allocate in proportion to a claimed length; and it must refuse what is invalid.
//! Allocations are tracked per thread by the global allocator.

mod wire_support;

use std::panic::{catch_unwind, AssertUnwindSafe};

use snex_core::pickle::{self, Builder, DecodeError, PickleWriter};
use wire_support::{
    decode, largest_alloc, pickle as pickle_w, random_w, unhex, Rng, TestBuilder, TestValue,
};

#[global_allocator]
static ALLOC: wire_support::TrackingAlloc = wire_support::TrackingAlloc;

// ---------------------------------------------------------------------------------------------
// Builders

/// Builds nesting depths: cheap to clone and to drop at any depth.
struct DepthBuilder;

impl Builder for DepthBuilder {
    type Value = u32;
    fn none(&mut self) -> Result<u32, DecodeError> {
        Ok(0)
    }
    fn bool(&mut self, _: bool) -> Result<u32, DecodeError> {
        Ok(0)
    }
    fn int(&mut self, _: i64) -> Result<u32, DecodeError> {
        Ok(0)
    }
    fn big_int(&mut self, _: &[u8]) -> Result<u32, DecodeError> {
        Ok(0)
    }
    fn float(&mut self, _: f64) -> Result<u32, DecodeError> {
        Ok(0)
    }
    fn str(&mut self, _: &str) -> Result<u32, DecodeError> {
        Ok(0)
    }
    fn bytes(&mut self, _: &[u8]) -> Result<u32, DecodeError> {
        Ok(0)
    }
    fn list(&mut self, items: Vec<u32>) -> Result<u32, DecodeError> {
        Ok(1 + items.into_iter().max().unwrap_or(0))
    }
    fn tuple(&mut self, items: Vec<u32>) -> Result<u32, DecodeError> {
        Ok(1 + items.into_iter().max().unwrap_or(0))
    }
    fn map(&mut self, pairs: Vec<(u32, u32)>) -> Result<u32, DecodeError> {
        Ok(1 + pairs.into_iter().map(|(k, v)| k.max(v)).max().unwrap_or(0))
    }
    fn set(&mut self, items: Vec<u32>) -> Result<u32, DecodeError> {
        Ok(1 + items.into_iter().max().unwrap_or(0))
    }
    fn atom(&mut self, _: &str) -> Result<u32, DecodeError> {
        Ok(0)
    }
    fn term(&mut self, _: &[u8]) -> Result<u32, DecodeError> {
        Ok(0)
    }
}

fn depth(data: &[u8]) -> Result<u32, DecodeError> {
    pickle::decode(data, &mut DepthBuilder)
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// Pickles written by CPython 3.11's C pickler (protocol 5) with Snex's `reducer_override`:
/// a dict of everything, memo sharing, and `snex._wire` markers.
const PYTHON_PICKLES: [&str; 3] = [
    "800595b6000000000000007d94288c0161945d94284b018a090000000000000000404780000000000000008c0a78787878787878787878948a060000000000ff658c0162948c0a736e65782e5f77697265948c0461746f6d9493948c026f6b948594529468058c047465726d9493944303836101948594529486948c0163948f94284b014b02908c016494284b0391948c0165949601000000000000007a948c01669443056279746573948c016794298c016894284b014b024b034b047494752e",
    "8005952f000000000000005d94288c067368617265649468015d94284b018c0374776f94656802680285947d9468016802738f9428680190652e",
    "80059568000000000000005d94288c0a736e65782e5f77697265948c0461746f6d9493948c0161948594529468038c0161948594529468018c0576616c75659493944b0185945294680b4b014b028694859452944e8889473ff80000000000008c06c3a9c3a9c3a9944dffff4a00000100652e",
];

/// A list of 1100 ints appended in batches, as Python writes long lists.
fn batched_list() -> Vec<u8> {
    let mut data = vec![0x80, 5, b']', 0x94];
    for batch in 0..2 {
        data.push(b'(');
        for i in 0..1000.min(1100 - batch * 1000) {
            data.extend_from_slice(&[b'M', (i % 256) as u8, 1]);
        }
        data.push(b'e');
    }
    data.push(b'.');
    data
}

/// Valid pickles to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = PYTHON_PICKLES.iter().map(|h| unhex(h).unwrap()).collect();
    seeds.push(batched_list());
    let mut rng = Rng::new(7);
    // The writer's own pickles use `snex.Atom`, which the reader refuses; still good input.
    seeds.extend((0..20).map(|_| pickle_w(&random_w(&mut rng, 0))));
    seeds
}

/// Opcodes the reader accepts, for random insertion.
const OPCODES: &[u8] = &[
    0x80, 0x95, b'.', b'N', 0x88, 0x89, b'K', b'M', b'J', 0x8a, 0x8b, b'G', 0x8c, b'X', 0x8d, b'C',
    b'B', 0x8e, 0x96, b']', b'a', b'e', b')', 0x85, 0x86, 0x87, b't', b'}', b's', b'u', 0x8f, 0x90,
    0x91, b'(', b'0', b'1', 0x94, b'q', b'r', b'h', b'j', 0x93, b'R',
];

/// Decodes `data` with both builders, checking that nothing panics and that they agree.
fn check(data: &[u8]) -> bool {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let valid = pickle::validate(data).is_ok();
        let decoded = decode(data).is_ok();
        let depth = depth(data).is_ok();
        assert_eq!(valid, decoded, "validate and decode disagree");
        assert_eq!(valid, depth, "validate and decode (depth) disagree");
        valid
    }));
    match result {
        Ok(valid) => valid,
        Err(_) => panic!("reader panicked on {}", hex(data)),
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn seeds_are_valid_where_expected() {
    for h in PYTHON_PICKLES {
        let data = unhex(h).unwrap();
        decode(&data).unwrap();
    }
    assert_eq!(
        decode(&batched_list()).unwrap(),
        TestValue::List(
            (0..1100)
                .map(|i| TestValue::Int(256 + (i % 1000) % 256))
                .collect()
        )
    );
}

#[test]
fn every_truncation_is_an_error() {
    for seed in seeds() {
        for end in 0..seed.len() {
            assert!(
                !check(&seed[..end]),
                "prefix of length {end} accepted: {}",
                hex(&seed)
            );
        }
        // Trailing bytes after STOP are refused too.
        let mut longer = seed.clone();
        longer.push(b'N');
        assert!(!check(&longer));
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Rng::new(0xbad_5eed);
    let seeds = seeds();
    let mut accepted = 0;
    for round in 0..40_000 {
        let seed = &seeds[round % seeds.len()];
        let mut data = seed.clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut data);
        }
        if check(&data) {
            accepted += 1;
        }
    }
    // Some mutations keep a pickle valid (a changed int); most do not.
    assert!(accepted > 0 && accepted < 40_000, "accepted {accepted}");
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    if data.is_empty() {
        data.push(b'.');
        return;
    }
    let at = rng.below(data.len());
    match rng.below(6) {
        0 => data[at] ^= 1 << rng.below(8),
        1 => data[at] = rng.next_u64() as u8,
        2 => data.insert(at, OPCODES[rng.below(OPCODES.len())]),
        3 => {
            data.remove(at);
        }
        4 => {
            let end = (at + 1 + rng.below(8)).min(data.len());
            let copy = data[at..end].to_vec();
            let to = rng.below(data.len());
            data.splice(to..to, copy);
        }
        _ => {
            // A length or index field set to an extreme.
            let extreme = [0u8, 0x7f, 0x80, 0xff][rng.below(4)];
            let end = (at + 8).min(data.len());
            data[at..end].iter_mut().for_each(|b| *b = extreme);
        }
    }
}

#[test]
fn random_byte_strings_never_panic() {
    let mut rng = Rng::new(0x5eed_f00d);
    for _ in 0..200_000 {
        let len = rng.below(48);
        let mut data = Vec::with_capacity(len + 2);
        if rng.chance(50) {
            data.extend_from_slice(&[0x80, 5]);
        }
        for _ in 0..len {
            let b = if rng.chance(60) {
                OPCODES[rng.below(OPCODES.len())]
            } else {
                rng.next_u64() as u8
            };
            data.push(b);
        }
        if rng.chance(50) {
            data.push(b'.');
        }
        let result = catch_unwind(|| pickle::validate(&data));
        assert!(result.is_ok(), "validate panicked on {}", hex(&data));
    }
}

/// `PROTO 5`, then `body`, then `STOP`.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut data = vec![0x80, 5];
    data.extend_from_slice(body);
    data.push(b'.');
    data
}

fn assert_refused(data: &[u8], needle: &str) {
    let (result, largest) = largest_alloc(|| decode(data));
    let err = result.expect_err("must be refused");
    assert!(
        err.to_string().contains(needle),
        "error {err:?} should mention {needle:?}"
    );
    assert!(largest < 1 << 20, "allocated {largest} bytes");
}

#[test]
fn huge_claimed_lengths_allocate_nothing() {
    let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
    for (opcode, len) in [
        (0x8du8, 1u64 << 63),
        (0x8d, u64::MAX),
        (0x8e, 1 << 40),
        (0x96, u64::MAX - 1),
        (0x95, u64::MAX),
    ] {
        let mut body = vec![opcode];
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(b"abc");
        cases.push((framed(&body), "length"));
    }
    for (opcode, len) in [(b'X', u32::MAX), (b'B', u32::MAX), (0x8b, 0x7fff_ffff)] {
        let mut body = vec![opcode];
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(b"abc");
        cases.push((framed(&body), "length"));
    }
    // LONG4 with a "4 GB" length is negative as the signed field it is.
    cases.push((framed(&[0x8b, 0xff, 0xff, 0xff, 0xff, 1]), "negative"));
    cases.push((framed(&[0x8c, 0xff, b'a']), "length"));
    for (data, needle) in &cases {
        assert_refused(data, needle);
    }
}

#[test]
fn huge_memo_indices_are_cheap() {
    assert_refused(
        &framed(&[b'j', 0xff, 0xff, 0xff, 0xff]),
        "memo has no entry",
    );
    assert_refused(&framed(&[b'h', 0]), "memo has no entry");
    // Sparse indices work (CPython allows them) without allocating up to the index.
    let data = framed(&[
        b'K', 7, b'r', 0xff, 0xff, 0xff, 0xff, b'0', b'j', 0xff, 0xff, 0xff, 0xff,
    ]);
    let (result, largest) = largest_alloc(|| decode(&data));
    assert_eq!(result, Ok(TestValue::Int(7)));
    assert!(largest < 1 << 20, "allocated {largest} bytes");
}

#[test]
fn a_million_marks() {
    let mut body = vec![b'('; 1_000_000];
    body.push(b'N');
    let err = depth(&framed(&body)).unwrap_err();
    assert!(err.to_string().contains("MARK"), "{err}");
    // Closing them all is fine: 1M nested empty frozensets.
    let mut body = vec![b'('; 1_000_000];
    body.extend(std::iter::repeat_n(0x91, 1_000_000));
    assert_eq!(depth(&framed(&body)), Ok(1_000_000));
}

#[test]
fn a_million_nested_lists() {
    let n = 1_000_000;
    let mut body = vec![b']'; n];
    body.extend(std::iter::repeat_n(b'a', n - 1));
    let data = framed(&body);
    assert_eq!(depth(&data), Ok(n as u32));
    assert_eq!(pickle::validate(&data), Ok(()));
    // The same with every list memoised, as Python writes them.
    let mut body = Vec::new();
    for _ in 0..n {
        body.extend_from_slice(&[b']', 0x94]);
    }
    body.extend(std::iter::repeat_n(b'a', n - 1));
    assert_eq!(depth(&framed(&body)), Ok(n as u32));
    // And unclosed: an error, not a crash.
    let body = vec![b']'; n];
    assert!(depth(&framed(&body)).is_err());
}

#[test]
fn a_million_nested_tuples_and_dicts() {
    let n = 1_000_000;
    let mut body = vec![b'N'];
    body.extend(std::iter::repeat_n(0x85, n));
    assert_eq!(depth(&framed(&body)), Ok(n as u32));
    // {0: {0: {...}}}
    let mut body = Vec::new();
    for _ in 0..n {
        body.extend_from_slice(&[b'}', b'K', 0]);
    }
    body.push(b'}');
    body.extend(std::iter::repeat_n(b's', n));
    assert_eq!(depth(&framed(&body)), Ok(n as u32 + 1));
}

#[test]
fn fetching_many_open_containers_is_linear() {
    // 200k nested memoised lists, then a fetch of each: every fetch freezes one container in
    // place, which must not scan the stack.
    let n: u32 = 200_000;
    let mut body = Vec::new();
    for _ in 0..n {
        body.extend_from_slice(&[b']', 0x94]);
    }
    for i in (0..n).rev() {
        body.push(b'j');
        body.extend_from_slice(&i.to_le_bytes());
        body.push(b'0');
    }
    body.extend(std::iter::repeat_n(b'a', n as usize - 1));
    let start = std::time::Instant::now();
    let err = depth(&framed(&body)).unwrap_err();
    assert!(err.to_string().contains("recursive"), "{err}");
    assert!(start.elapsed().as_secs() < 10);
}

#[test]
fn structural_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "without STOP"),
        (b".", "instead of 1"),
        (b"NN.", "instead of 1"),
        (b"(N.", "MARK"),
        (b"a.", "underflow"),
        (b"Na.", "underflow"),
        (b"N(Na.", "underflow"),
        (b"NNa.", "not a list"),
        (b"]NNs.", "not a dict"),
        (b"}(Nu.", "odd number"),
        (b"}(Ne.", "not a list"),
        (b"](N\x90.", "not a set"),
        (b"e.", "no MARK"),
        (b"t.", "no MARK"),
        (b"1.", "no MARK"),
        (b"0.", "underflow"),
        (b"\x94.", "underflow"),
        (b"(\x94.", "underflow"),
        (b"N\x85\x85R.", "underflow"),
        (b"NN\x85R.", "not a snex._wire global"),
        (b"\x80\x01N.", "protocol 1"),
        (b"\x80\x06N.", "protocol 6"),
        (b"c__builtin__\nprint\n.", "GLOBAL"),
        (b"P0\n.", "PERSID"),
        (b"NQ.", "BINPERSID"),
        (b"\x97.", "NEXT_BUFFER"),
        (b"N\x98.", "READONLY_BUFFER"),
        (b"N2.", "DUP"),
        (b"I1\n.", "INT"),
        (b"\xff.", "unknown"),
        (b"\x8c\x02\xc3\x28.", "UTF-8"),
        (b"K\x01K\x02\x93.", "must be strings"),
        (
            b"\x8c\x08builtins\x8c\x04eval\x93.",
            "builtins.eval is not allowed",
        ),
        (b"\x8c\x0asnex._wire\x8c\x04atom\x93.", "can only be called"),
        (
            b"\x8c\x0asnex._wire\x8c\x04atom\x93K\x01\x85R.",
            "needs a str",
        ),
        (
            b"\x8c\x0asnex._wire\x8c\x04term\x93\x8c\x01a\x85R.",
            "needs bytes",
        ),
        (
            b"\x8c\x0asnex._wire\x8c\x04atom\x93\x8c\x01a\x86R.",
            "can only be called",
        ),
        (
            b"\x8c\x0asnex._wire\x8c\x04atom\x93\x8c\x01aN\x86R.",
            "not a 1-tuple",
        ),
        (
            b"\x8c\x0asnex._wire\x8c\x04atom\x93\x8c\x01a\x85\x85R.",
            "needs a str",
        ),
        (b"\x95\x05\x00\x00\x00\x00\x00\x00\x00N.", "frame length"),
        (b"N.N", "after the end"),
    ];
    for (body, needle) in cases {
        let mut data = vec![0x80, 5];
        data.extend_from_slice(body);
        let err = decode(&data).expect_err(&hex(&data));
        assert!(
            err.to_string().contains(needle),
            "{}: error {:?} should mention {needle:?}",
            hex(&data),
            err.to_string()
        );
    }
}

#[test]
fn error_messages_name_the_opcode_and_offset() {
    let err = decode(b"\x80\x05NNc").unwrap_err();
    assert_eq!(
        err.to_string(),
        "pickle opcode GLOBAL (0x63) at byte 4: is not allowed"
    );
}

#[test]
fn builder_errors_pass_through() {
    struct Refuse;
    impl Builder for Refuse {
        type Value = ();
        fn none(&mut self) -> Result<(), DecodeError> {
            Err(DecodeError::new("no nones here"))
        }
        fn bool(&mut self, _: bool) -> Result<(), DecodeError> {
            Ok(())
        }
        fn int(&mut self, _: i64) -> Result<(), DecodeError> {
            Ok(())
        }
        fn big_int(&mut self, _: &[u8]) -> Result<(), DecodeError> {
            Ok(())
        }
        fn float(&mut self, _: f64) -> Result<(), DecodeError> {
            Ok(())
        }
        fn str(&mut self, _: &str) -> Result<(), DecodeError> {
            Ok(())
        }
        fn bytes(&mut self, _: &[u8]) -> Result<(), DecodeError> {
            Ok(())
        }
        fn list(&mut self, _: Vec<()>) -> Result<(), DecodeError> {
            Ok(())
        }
        fn tuple(&mut self, _: Vec<()>) -> Result<(), DecodeError> {
            Ok(())
        }
        fn map(&mut self, _: Vec<((), ())>) -> Result<(), DecodeError> {
            Ok(())
        }
        fn set(&mut self, _: Vec<()>) -> Result<(), DecodeError> {
            Ok(())
        }
        fn atom(&mut self, _: &str) -> Result<(), DecodeError> {
            Ok(())
        }
        fn term(&mut self, _: &[u8]) -> Result<(), DecodeError> {
            Ok(())
        }
    }
    let err = pickle::decode(b"\x80\x05]N\x85a.", &mut Refuse).unwrap_err();
    assert_eq!(err, DecodeError::new("no nones here"));
    assert_eq!(pickle::decode(b"\x80\x05]K\x01a.", &mut Refuse), Ok(()));
}

#[test]
fn writer_handles_hostile_sizes_without_panicking() {
    // Many distinct keys whose hashes are whatever they are: the memo table stays bounded.
    let mut w = PickleWriter::new();
    w.begin_list(100_000);
    for i in 0..100_000 {
        w.key_str(&format!("{i}"));
    }
    w.end_list(100_000);
    let data = w.finish().buf;
    assert_eq!(pickle::validate(&data), Ok(()));
    // A 2 GiB + 1 big int claim is not something the writer can be asked for in practice;
    // the builder is not involved here. Empty and tiny big ints are fine.
    let mut w = PickleWriter::new();
    w.begin_list(2);
    w.big_int_le(&[]);
    w.big_int_le(&[0x80]);
    w.end_list(2);
    let out = decode(&w.finish().buf).unwrap();
    assert_eq!(
        out,
        TestValue::List(vec![TestValue::Int(0), TestValue::Int(-128)])
    );
    let _ = TestBuilder::default();
}
