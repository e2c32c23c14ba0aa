//! The pickle codec against a real Python (`python3`, or `$SNEX_TEST_PYTHON`) running the
//! repository's `snex` package: what [`PickleWriter`] writes must load with the production
//! `snex.codec.decode` as expected, and what the production `snex.codec.encode` writes must
//! decode as expected.

mod wire_support;

use wire_support::{canon, canon_w, decode, pickle, random_w, Python, Rng, TestValue, W};

fn s(x: &str) -> W {
    W::Str(x.to_string())
}

/// Values whose canonical rendering in Python after `pickle.loads` is checked.
fn writer_cases() -> Vec<W> {
    let big_2_100 = {
        let mut b = vec![0u8; 13];
        b[12] = 0x10;
        b
    };
    let minus_big: Vec<u8> = {
        // -(2**2400): 300 zero bytes then 0xff; two's complement little-endian.
        let mut b = vec![0u8; 301];
        b[300] = 0xff;
        b
    };
    vec![
        W::None,
        W::Bool(true),
        W::Bool(false),
        W::Int(0),
        W::Int(255),
        W::Int(256),
        W::Int(65535),
        W::Int(65536),
        W::Int(-1),
        W::Int(i32::MIN.into()),
        W::Int(i32::MAX.into()),
        W::Int(i64::from(i32::MAX) + 1),
        W::Int(i64::from(i32::MIN) - 1),
        W::Int(i64::MAX),
        W::Int(i64::MIN),
        W::Big(big_2_100),
        W::Big(minus_big),
        W::Big(vec![0xff; 2000]),
        W::Float(0.0),
        W::Float(-0.0),
        W::Float(1.5),
        W::Float(f64::INFINITY),
        W::Float(f64::NEG_INFINITY),
        W::Float(f64::NAN),
        W::Float(f64::from_bits(0x7ff8_0000_dead_beef)),
        W::Float(f64::MIN_POSITIVE / 2.0),
        s(""),
        s("héllo 日本 😀"),
        W::Str("x".repeat(255)),
        W::Str("y".repeat(256)),
        W::Str("z".repeat(70_000)),
        W::Bytes(vec![]),
        W::Bytes((0..=255).collect()),
        W::Bytes(vec![7; 70_000]),
        W::ByteArray(vec![]),
        W::ByteArray(b"abc".to_vec()),
        W::Atom("ok".into()),
        W::Atom("with space é".into()),
        W::DistinctAtom("ok".into()),
        W::Term(vec![131, 100, 0, 1, b'x']),
        W::List(vec![]),
        W::List(vec![W::Int(1), s("a"), W::List(vec![W::None])]),
        W::Tuple(vec![]),
        W::Tuple(vec![W::Int(1)]),
        W::Tuple(vec![W::Int(1), W::Int(2)]),
        W::Tuple(vec![W::Int(1), W::Int(2), W::Int(3)]),
        W::Tuple((0..10).map(W::Int).collect()),
        W::Dict(vec![]),
        W::Dict(vec![(s("a"), W::Int(1)), (W::Int(2), s("b"))]),
        W::Set(vec![]),
        W::Set(vec![W::Int(1), s("x")]),
        W::FrozenSet(vec![]),
        W::FrozenSet(vec![W::Int(1), W::Tuple(vec![s("a")])]),
        W::List(
            (0..3)
                .map(|i| {
                    W::Dict(vec![
                        (s("name"), s("n")),
                        (s("id"), W::Int(i)),
                        (s("status"), W::Atom("ok".into())),
                    ])
                })
                .collect(),
        ),
        W::Tuple(vec![
            W::Atom("a".into()),
            W::DistinctAtom("a".into()),
            W::Atom("a".into()),
            W::Term(vec![1]),
            W::Term(vec![2]),
        ]),
    ]
}

#[test]
fn python_loads_what_the_writer_writes() {
    let py = Python::new();
    let cases = writer_cases();
    let pickles: Vec<(&str, Vec<u8>)> = cases.iter().map(|v| ("", pickle(v))).collect();
    let answers = py.loads(&pickles);
    for (case, answer) in cases.iter().zip(&answers) {
        let expected = canon_w(case, true);
        assert_eq!(
            answer,
            &expected,
            "for {:?}",
            format!("{case:?}").chars().take(200).collect::<String>()
        );
    }
}

fn object(module: &str, name: &str, args: Vec<W>) -> W {
    W::Object(
        Box::new(s(module)),
        Box::new(s(name)),
        Box::new(W::List(args)),
    )
}

#[test]
fn python_makes_the_objects_the_writer_names() {
    let py = Python::new();
    let fraction = |n| object("fractions", "Fraction", vec![W::Int(n), W::Int(3)]);
    // Several objects in one pickle (later ones fetch the memoised global), dotted names,
    // arguments of any kind.
    let several = pickle(&W::List(vec![
        fraction(1),
        fraction(2),
        object(
            "datetime",
            "date",
            vec![W::Int(2024), W::Int(1), W::Int(31)],
        ),
        object("datetime", "date.fromisoformat", vec![s("2024-01-31")]),
        object(
            "builtins",
            "tuple",
            vec![W::List(vec![W::Atom("ok".into()), W::Term(vec![1])])],
        ),
    ]));
    let global = b"make_object";
    assert_eq!(
        several
            .windows(global.len())
            .filter(|w| w == global)
            .count(),
        1
    );
    let answers = py.loads(&[
        ("v", pickle(&fraction(1))),
        ("v", several),
        ("v", pickle(&object("no_such_module_for_snex", "x", vec![]))),
        ("v", pickle(&object("fractions", "NoSuchName", vec![]))),
    ]);
    assert_eq!(answers[0], "Fraction(1, 3)");
    assert_eq!(
        answers[1],
        "[Fraction(1, 3), Fraction(2, 3), datetime.date(2024, 1, 31), \
         datetime.date(2024, 1, 31), (Atom('ok'), Term(b'\\x01'))]"
    );
    assert!(
        answers[2].starts_with("ERR ModuleNotFoundError: No module named 'no_such_module"),
        "{}",
        answers[2]
    );
    assert!(
        answers[3].starts_with("ERR AttributeError:") && answers[3].contains("NoSuchName"),
        "{}",
        answers[3]
    );
}

#[test]
fn python_sees_memoised_objects_as_the_same() {
    let py = Python::new();
    let keys = W::List(vec![
        W::Dict(vec![(s("key"), W::Int(1))]),
        W::Dict(vec![(s("key"), W::Int(2))]),
    ]);
    let atoms = W::List(vec![
        W::Atom("x".into()),
        W::Atom("x".into()),
        W::DistinctAtom("x".into()),
    ]);
    let terms = W::List(vec![W::Term(vec![1]), W::Term(vec![2])]);
    let answers = py.loads(&[
        (
            "[k for d in v for k in d][0] is [k for d in v for k in d][1]",
            pickle(&keys),
        ),
        (
            "(v[0] is v[1], v[1] is v[2], type(v[2]).__name__)",
            pickle(&atoms),
        ),
        ("type(v[0]) is type(v[1])", pickle(&terms)),
        ("repr(v)", pickle(&atoms)),
    ]);
    assert_eq!(answers[0], "True");
    assert_eq!(answers[1], "(True, False, 'DistinctAtom')");
    assert_eq!(answers[2], "True");
    assert_eq!(answers[3], "\"[Atom('x'), Atom('x'), DistinctAtom('x')]\"");
}

#[test]
fn python_loads_random_values() {
    let py = Python::new();
    let mut rng = Rng::new(0x5eed_0001);
    let values: Vec<W> = (0..500).map(|_| random_w(&mut rng, 0)).collect();
    let pickles: Vec<(&str, Vec<u8>)> = values.iter().map(|v| ("", pickle(v))).collect();
    let answers = py.loads(&pickles);
    for (v, answer) in values.iter().zip(&answers) {
        assert_eq!(answer, &canon_w(v, true), "for {v:?}");
    }
}

#[test]
fn many_memo_entries_use_long_binget() {
    let py = Python::new();
    let keys: Vec<String> = (0..700).map(|i| format!("key{i}")).collect();
    let dict = |offset: i64| {
        W::Dict(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (s(k), W::Int(i as i64 + offset)))
                .collect(),
        )
    };
    let atoms = W::List((0..700).map(|i| W::Atom(format!("a{}", i % 350))).collect());
    let v = W::List(vec![dict(0), dict(1000), atoms]);
    let data = pickle(&v);
    assert!(data.contains(&b'j'), "expected LONG_BINGET");
    let answers = py.loads(&[("", data)]);
    assert_eq!(answers[0], canon_w(&v, true));
}

/// Python expressions and the values they must decode to.
fn decode_cases() -> Vec<(&'static str, TestValue)> {
    use TestValue as T;
    let st = |x: &str| T::Str(x.to_string());
    vec![
        ("None", T::None),
        (
            "(True, False)",
            T::Tuple(vec![T::Bool(true), T::Bool(false)]),
        ),
        (
            "[0, 255, 256, 65535, 65536, -1, -2**31, 2**31, 2**63-1, -2**63]",
            T::List(vec![
                T::Int(0),
                T::Int(255),
                T::Int(256),
                T::Int(65535),
                T::Int(65536),
                T::Int(-1),
                T::Int(-(1 << 31)),
                T::Int(1 << 31),
                T::Int(i64::MAX),
                T::Int(i64::MIN),
            ]),
        ),
        ("2**63", T::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0])),
        (
            "-2**63-1",
            T::BigInt(vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff]),
        ),
        ("1.5", T::Float(1.5)),
        ("-0.0", T::Float(-0.0)),
        ("float('inf')", T::Float(f64::INFINITY)),
        ("'héllo'", st("héllo")),
        ("b'\\x00\\xff'", T::Bytes(vec![0, 0xff])),
        ("bytearray(b'ab')", T::Bytes(b"ab".to_vec())),
        ("snex.Atom('ok')", T::Atom("ok".into())),
        ("snex.DistinctAtom('ok')", T::Atom("ok".into())),
        ("snex.Term(b'\\x83a\\x01')", T::Term(vec![131, 97, 1])),
        ("Color.RED", T::Int(1)),
        ("Color.BIG", T::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 0x40])),
        ("Point(1, 'a')", T::Tuple(vec![T::Int(1), st("a")])),
        // Subclasses of built-in types travel as their base type; memoryviews as bytes.
        ("Name('n')", st("n")),
        ("Ratio(0.5)", T::Float(0.5)),
        ("memoryview(b'mv')", T::Bytes(b"mv".to_vec())),
        (
            "collections.OrderedDict(a=1)",
            T::Map(vec![(st("a"), T::Int(1))]),
        ),
        (
            "collections.Counter('aa')",
            T::Map(vec![(st("a"), T::Int(2))]),
        ),
        (
            "collections.defaultdict(list, {1: [Name('x')]})",
            T::Map(vec![(T::Int(1), T::List(vec![st("x")]))]),
        ),
        (
            "{'a': 1, 2: [3]}",
            T::Map(vec![
                (st("a"), T::Int(1)),
                (T::Int(2), T::List(vec![T::Int(3)])),
            ]),
        ),
        ("set()", T::Set(vec![])),
        ("frozenset()", T::Set(vec![])),
        ("()", T::Tuple(vec![])),
        ("((1,),)", T::Tuple(vec![T::Tuple(vec![T::Int(1)])])),
        (
            "(snex.Atom('a'), snex.Atom('a'), 'a')",
            T::Tuple(vec![T::Atom("a".into()), T::Atom("a".into()), st("a")]),
        ),
        (
            "(lambda s: [s, s, {s: s}])('shared' * 3)",
            T::List(vec![
                st("sharedsharedshared"),
                st("sharedsharedshared"),
                T::Map(vec![(st("sharedsharedshared"), st("sharedsharedshared"))]),
            ]),
        ),
        (
            "(lambda l: [l, l, (l,)])([1, 2])",
            T::List(vec![
                T::List(vec![T::Int(1), T::Int(2)]),
                T::List(vec![T::Int(1), T::Int(2)]),
                T::Tuple(vec![T::List(vec![T::Int(1), T::Int(2)])]),
            ]),
        ),
        (
            "(lambda t: [t, t])((1, 'x'))",
            T::List(vec![
                T::Tuple(vec![T::Int(1), st("x")]),
                T::Tuple(vec![T::Int(1), st("x")]),
            ]),
        ),
        (
            "(lambda t: [t, t])(('x',))",
            T::List(vec![T::Tuple(vec![st("x")]), T::Tuple(vec![st("x")])]),
        ),
        (
            "(lambda d: {'a': d, 'b': d})({'k': [1]})",
            T::Map(vec![
                (st("a"), T::Map(vec![(st("k"), T::List(vec![T::Int(1)]))])),
                (st("b"), T::Map(vec![(st("k"), T::List(vec![T::Int(1)]))])),
            ]),
        ),
        (
            "(lambda s: [s, s])({1})",
            T::List(vec![T::Set(vec![T::Int(1)]), T::Set(vec![T::Int(1)])]),
        ),
        (
            "(lambda a: [a, a, [a]])(snex.Atom('same'))",
            T::List(vec![
                T::Atom("same".into()),
                T::Atom("same".into()),
                T::List(vec![T::Atom("same".into())]),
            ]),
        ),
        (
            "(lambda b: [b, b])(b'xy')",
            T::List(vec![T::Bytes(b"xy".to_vec()), T::Bytes(b"xy".to_vec())]),
        ),
        (
            "(lambda b: [b, b])(bytearray(b'xy'))",
            T::List(vec![T::Bytes(b"xy".to_vec()), T::Bytes(b"xy".to_vec())]),
        ),
    ]
}

#[test]
fn decodes_what_python_pickles() {
    let py = Python::new();
    let cases = decode_cases();
    let exprs: Vec<&str> = cases.iter().map(|(e, _)| *e).collect();
    let results = py.dumps(&exprs);
    for ((expr, expected), result) in cases.iter().zip(results) {
        let (data, py_canon) = result.unwrap_or_else(|e| panic!("{expr}: {e}"));
        let v = decode(&data).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(&v, expected, "{expr}");
        assert_eq!(canon(&v), py_canon, "{expr}");
    }
}

#[test]
fn decodes_special_floats_bit_exactly() {
    let py = Python::new();
    let exprs = [
        "float('nan')",
        "-float('nan')",
        "struct.unpack('>d', bytes.fromhex('7ff80000deadbeef'))[0]",
        "float('-inf')",
        "5e-324",
    ];
    for (expr, result) in exprs.iter().zip(py.dumps(&exprs)) {
        let (data, py_canon) = result.unwrap();
        let v = decode(&data).unwrap();
        assert!(matches!(v, TestValue::Float(_)), "{expr}");
        assert_eq!(canon(&v), py_canon, "{expr}");
    }
}

#[test]
fn decodes_big_ints_and_large_strings() {
    let py = Python::new();
    let exprs = [
        "2**100",
        "-(2**100)",
        "2**(8*300)",
        "-(2**(8*300)) + 12345",
        "[2**64, -2**64, 2**64 - 1]",
        "'x' * 70000",
        "'é' * 40000",
        "b'\\x01' * 70000",
        "bytearray(70000)",
        "list(range(3000))",
        "{('k%d' % i): i for i in range(2500)}",
        "set(range(2500))",
        "frozenset(range(2500))",
        "[snex.Atom('a%d' % (i % 300)) for i in range(1000)]",
        "[str(i) for i in range(600)] * 2",
    ];
    for (expr, result) in exprs.iter().zip(py.dumps(&exprs)) {
        let (data, py_canon) = result.unwrap();
        let v = decode(&data).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(canon(&v), py_canon, "{expr}");
    }
}

#[test]
fn decodes_eight_byte_length_opcodes() {
    // Python only writes BINUNICODE8 / BINBYTES8 above 4 GiB; check that such pickles load
    // in Python and decode the same.
    let py = Python::new();
    let mut cases = Vec::new();
    for (opcode, payload) in [
        (0x8du8, "héllo".as_bytes()),
        (0x8e, b"\x00\x01"),
        (0x96, b"ba"),
    ] {
        let mut data = vec![0x80, 5, opcode];
        data.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        data.extend_from_slice(payload);
        data.push(b'.');
        cases.push(("", data));
    }
    let answers = py.loads(&cases);
    for ((_, data), answer) in cases.iter().zip(&answers) {
        let v = decode(data).unwrap();
        // `loads` answers in exact mode: bytearray is "y" in Python, bytes for Elixir.
        assert_eq!(canon(&v), answer.replacen('y', "b", 1));
    }
}

#[test]
fn refuses_recursive_structures() {
    let py = Python::new();
    let exprs = ["rec_list()", "rec_dict()", "rec_tuple()"];
    for (expr, result) in exprs.iter().zip(py.dumps(&exprs)) {
        let (data, _) = result.unwrap();
        let err = decode(&data).expect_err(expr);
        assert!(err.to_string().contains("recursive"), "{expr}: {err}");
        assert!(snex_core::pickle::validate(&data).is_err());
    }
}

#[test]
fn refuses_other_globals() {
    // The production encoder never writes them (see the next test); Python's standard
    // pickler stands for a peer that does.
    let py = Python::new();
    let exprs = [
        "pickle.dumps(print, protocol=5)",
        "pickle.dumps(collections.OrderedDict(a=1), protocol=5)",
        "pickle.dumps(1j, protocol=5)",
        "pickle.dumps(range(3), protocol=5)",
        "pickle.dumps(Color.RED, protocol=5)",
    ];
    for (expr, data) in exprs.iter().zip(py.raw(&exprs)) {
        let err = decode(&data).expect_err(expr);
        assert!(err.to_string().contains("pickle opcode"), "{expr}: {err}");
        assert!(snex_core::pickle::validate(&data).is_err(), "{expr}");
    }
}

#[test]
fn the_encoder_refuses_what_has_no_elixir_form() {
    let py = Python::new();
    let exprs = [
        "print",
        "1j",
        "range(3)",
        "[1, Opaque()]",
        "{'k': fractions.Fraction(1, 3)}",
    ];
    let expected = [
        "builtin_function_or_method",
        "complex",
        "range",
        "__main__.Opaque",
        "fractions.Fraction",
    ];
    for ((expr, result), type_name) in exprs.iter().zip(py.dumps(&exprs)).zip(expected) {
        let line = result.expect_err(expr);
        assert!(
            line.starts_with("ERR EncodeError: ") && line.contains(type_name),
            "{expr}: {line}"
        );
    }
}

#[test]
fn decodes_random_python_values() {
    let py = Python::new();
    let exprs: Vec<String> = (0..400).map(|i| format!("rand_value({i})")).collect();
    let refs: Vec<&str> = exprs.iter().map(String::as_str).collect();
    for (expr, result) in refs.iter().zip(py.dumps(&refs)) {
        let (data, py_canon) = result.unwrap();
        let v = decode(&data).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(canon(&v), py_canon, "{expr}");
        assert!(snex_core::pickle::validate(&data).is_ok());
    }
}

#[test]
fn round_trips_through_python() {
    let py = Python::new();
    let mut rng = Rng::new(0x5eed_0002);
    let values: Vec<W> = (0..500).map(|_| random_w(&mut rng, 0)).collect();
    let pickles: Vec<Vec<u8>> = values.iter().map(pickle).collect();
    let back = py.roundtrip(&pickles);
    for (v, data) in values.iter().zip(&back) {
        let decoded = decode(data).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(canon(&decoded), canon_w(v, false), "{v:?}");
    }
}

#[test]
fn shares_memoised_strings_between_fetches() {
    let py = Python::new();
    let results = py.dumps(&["(lambda s: [s] * 5)('abc' * 2)"]);
    let (data, _) = results.into_iter().next().unwrap().unwrap();
    let mut builder = wire_support::TestBuilder::default();
    snex_core::pickle::decode(&data, &mut builder).unwrap();
    // One build for the first occurrence, one shared by the four fetches.
    assert_eq!(builder.str_builds, 2);
}
