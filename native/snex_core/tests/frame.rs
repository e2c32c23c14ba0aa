//! Framing: round trips, clean and unclean EOF, partial reads, and lying headers.

mod wire_support;

use std::io::{self, Read};

use snex_core::frame::{
    buffer_kind, encode_buffer_table, encode_header, kind, write_frame, BodyBuffer, Frame,
    FrameError, FrameReader, HEADER_LEN, OUT_OF_BAND,
};
use wire_support::{largest_alloc, Rng};

#[global_allocator]
static ALLOC: wire_support::TrackingAlloc = wire_support::TrackingAlloc;

/// Yields the data in small, irregular reads, with `Interrupted` errors in between.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    rng: Rng,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rng.chance(10) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = (1 + self.rng.below(7))
            .min(buf.len())
            .min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Claims whatever it is asked for is there, then fails: a broken pipe.
struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
}

fn frames() -> Vec<Frame> {
    vec![
        Frame {
            kind: kind::REPLY_OK,
            id: 1,
            body: b"\x80\x05N.".to_vec(),
            buffers: vec![],
        },
        Frame {
            kind: kind::CANCEL,
            id: u64::MAX,
            body: vec![],
            buffers: vec![],
        },
        Frame {
            kind: kind::CALL,
            id: 0x0102_0304_0506_0708,
            body: (0..200_000u32).map(|i| i as u8).collect(),
            buffers: vec![],
        },
        Frame {
            kind: kind::SEND,
            id: 0,
            body: vec![7; 3 * 1024 * 1024 + 5],
            buffers: vec![],
        },
    ]
}

fn stream(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        write_frame(&mut out, f.kind, f.id, &f.body).unwrap();
    }
    out
}

fn read_all<R: Read>(mut reader: FrameReader<R>) -> Result<Vec<Frame>, FrameError> {
    let mut out = Vec::new();
    while let Some(frame) = reader.read_frame()? {
        out.push(frame);
    }
    Ok(out)
}

#[test]
fn round_trip() {
    let frames = frames();
    let data = stream(&frames);
    assert_eq!(read_all(FrameReader::new(&data[..])).unwrap(), frames);
}

#[test]
fn round_trip_with_partial_reads() {
    let frames = frames()[..3].to_vec();
    let reader = Trickle {
        data: stream(&frames),
        pos: 0,
        rng: Rng::new(99),
    };
    assert_eq!(read_all(FrameReader::new(reader)).unwrap(), frames);
}

#[test]
fn header_layout_matches_the_protocol() {
    let h = encode_header(kind::REPLY_ERROR, 258, 4).unwrap();
    assert_eq!(h.len(), HEADER_LEN);
    assert_eq!(h, [0, 0, 0, 13, 129, 0, 0, 0, 0, 0, 0, 1, 2]);
}

#[test]
fn eof_at_a_boundary_is_none() {
    let data = stream(&frames()[..2]);
    let mut reader = FrameReader::new(&data[..]);
    assert!(reader.read_frame().unwrap().is_some());
    assert!(reader.read_frame().unwrap().is_some());
    assert!(reader.read_frame().unwrap().is_none());
    assert!(reader.read_frame().unwrap().is_none());
}

#[test]
fn eof_inside_a_frame_is_an_error() {
    let data = stream(&frames()[..1]);
    for end in 1..data.len() {
        let mut reader = FrameReader::new(&data[..end]);
        assert!(
            matches!(reader.read_frame(), Err(FrameError::Truncated)),
            "cut at {end}"
        );
    }
}

#[test]
fn short_length_is_an_error() {
    for length in 0u32..9 {
        let mut data = length.to_be_bytes().to_vec();
        data.extend_from_slice(&[1; 9]);
        let mut reader = FrameReader::new(&data[..]);
        assert!(matches!(
            reader.read_frame(),
            Err(FrameError::BadLength(l)) if l == length
        ));
    }
}

#[test]
fn io_errors_are_reported() {
    let mut reader = FrameReader::new(Failing);
    let err = reader.read_frame().unwrap_err();
    assert!(matches!(err, FrameError::Io(ref e) if e.kind() == io::ErrorKind::BrokenPipe));
    assert!(err.to_string().contains("I/O"));
}

#[test]
fn a_lying_header_does_not_allocate_its_length() {
    // Claims 4 GiB - 1, then the stream ends.
    let mut data = u32::MAX.to_be_bytes().to_vec();
    data.push(kind::REPLY_OK);
    data.extend_from_slice(&1u64.to_be_bytes());
    data.extend_from_slice(b"just a few bytes");
    let (result, largest) = largest_alloc(|| FrameReader::new(&data[..]).read_frame());
    assert!(matches!(result, Err(FrameError::Truncated)));
    assert!(largest <= 2 * 1024 * 1024, "allocated {largest} bytes");
}

#[test]
fn a_large_frame_grows_its_buffer_as_data_arrives() {
    let body = vec![1u8; 5 * 1024 * 1024];
    let data = stream(&[Frame {
        kind: kind::REPLY_OK,
        id: 3,
        body: body.clone(),
        buffers: vec![],
    }]);
    let (frame, largest) = largest_alloc(|| FrameReader::new(&data[..]).read_frame());
    assert_eq!(frame.unwrap().unwrap().body, body);
    assert!(largest < 3 * body.len(), "allocated {largest} bytes");
}

#[test]
fn too_large_bodies_are_refused_when_writing() {
    let err = encode_header(kind::EVAL, 1, u32::MAX as usize).unwrap_err();
    assert!(matches!(err, FrameError::TooLarge(_)));
    assert!(err.to_string().contains("larger than"));
}

#[test]
fn a_refused_kind_fails_before_the_body_is_read() {
    // Text written into the pipe by mistake: "garb" is taken for a length of ~1.7 GB, and 'a'
    // for the kind. The reader must not wait for the body.
    let data = b"garbage written by mistake".to_vec();
    let mut reader = FrameReader::new(&data[..]);
    let err = reader
        .read_frame_of(|k| (kind::REPLY_OK..=kind::SEND).contains(&k))
        .unwrap_err();
    assert!(matches!(err, FrameError::UnexpectedKind(b'a')));
    assert!(err.to_string().contains("unexpected frame kind 97"));

    // Accepted kinds are read as usual (with pickle bodies, see the next test).
    let pickles: Vec<Frame> = frames()
        .into_iter()
        .filter(|f| f.body.is_empty() || f.body[0] == 0x80)
        .collect();
    assert_eq!(pickles.len(), 2);
    let data = stream(&pickles);
    let mut reader = FrameReader::new(&data[..]);
    for expected in pickles {
        let frame = reader.read_frame_of(|_| true).unwrap().unwrap();
        assert_eq!(
            (frame.kind, frame.id, frame.body),
            (expected.kind, expected.id, expected.body)
        );
    }
}

#[test]
fn a_stray_header_is_found_before_its_body_is_read() {
    // A well-formed header written into the pipe by mistake, claiming a long body: what follows
    // is a real frame, which begins with its length, not with a pickle.
    let mut data = encode_header(kind::REPLY_OK, 7, 1 << 30).unwrap().to_vec();
    data.extend(stream(&frames()[..1]));
    let mut reader = FrameReader::new(&data[..]);
    let err = reader
        .read_frame_of(|k| (kind::REPLY_OK..=kind::SEND).contains(&k))
        .unwrap_err();
    assert!(matches!(err, FrameError::NotPickle(0)), "{err}");
    assert!(err.to_string().contains("not a pickle"));

    // The check needs only the body's first byte: it is made before more arrives.
    let mut data = encode_header(kind::CALL, 7, 1 << 30).unwrap().to_vec();
    data.push(b'x');
    let mut reader = FrameReader::new(&data[..]);
    let err = reader.read_frame_of(|_| true).unwrap_err();
    assert!(matches!(err, FrameError::NotPickle(b'x')), "{err}");

    // A header with nothing after it is a truncated frame; plain `read_frame` takes any body.
    let data = encode_header(kind::CALL, 7, 5).unwrap().to_vec();
    let mut reader = FrameReader::new(&data[..]);
    assert!(matches!(
        reader.read_frame_of(|_| true),
        Err(FrameError::Truncated)
    ));
    let data = stream(&frames());
    let mut reader = FrameReader::new(&data[..]);
    assert_eq!(reader.read_frame().unwrap().unwrap(), frames()[0]);
    assert_eq!(reader.read_frame().unwrap().unwrap(), frames()[1]);
    assert_eq!(reader.read_frame().unwrap().unwrap(), frames()[2]);
}

/// The bytes of a frame with out-of-band buffers (see `docs/protocol.md`).
fn out_of_band_frame(kind: u8, id: u64, pickle: &[u8], buffers: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let table = encode_buffer_table(buffers.iter().map(|(k, b)| (*k, b.len())));
    let len = table.len() + pickle.len() + buffers.iter().map(|(_, b)| b.len()).sum::<usize>();
    let mut out = encode_header(kind | OUT_OF_BAND, id, len).unwrap().to_vec();
    out.extend_from_slice(&table);
    out.extend_from_slice(pickle);
    for (_, b) in buffers {
        out.extend_from_slice(b);
    }
    out
}

#[test]
fn a_frame_with_buffers_gives_the_pickle_and_each_buffer_apart() {
    let pickle = b"\x80\x05(\x97\x97\x98l.".to_vec();
    let buffers = vec![
        (buffer_kind::BYTES, vec![1u8; 100_000]),
        (buffer_kind::BYTES, vec![]),
        (
            buffer_kind::BYTES,
            (0..3_000_000u32).map(|i| i as u8).collect(),
        ),
    ];
    let mut data = out_of_band_frame(kind::REPLY_OK, 7, &pickle, &buffers);
    data.extend(stream(&frames()[..1]));
    let reader = Trickle {
        data: data.clone(),
        pos: 0,
        rng: Rng::new(5),
    };
    {
        let mut reader = FrameReader::new(&data[..]);
        let f = reader
            .read_frame_of(|k| k == kind::REPLY_OK)
            .unwrap()
            .unwrap();
        assert_eq!((f.kind, f.id, &f.body), (kind::REPLY_OK, 7, &pickle));
        let expected: Vec<Vec<u8>> = buffers.iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(f.buffers, expected);
        assert_eq!(reader.read_frame().unwrap().unwrap(), frames()[0]);
    }
    let frames = read_all(FrameReader::new(reader)).unwrap();
    assert_eq!(frames[0].buffers.len(), 3);
    assert_eq!(frames[0].buffers[2], buffers[2].1);
}

#[test]
fn bad_buffer_tables_are_refused() {
    let pickle = b"\x80\x05\x97.";
    let good = out_of_band_frame(kind::REPLY_OK, 1, pickle, &[(1, vec![9; 10])]);
    let read = |data: &[u8]| FrameReader::new(data).read_frame_of(|_| true);
    assert!(read(&good).is_ok());

    let table_at = HEADER_LEN;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut zero = good.clone();
    zero[table_at..table_at + 4].copy_from_slice(&0u32.to_be_bytes());
    cases.push(("no buffers", zero));
    let mut many = good.clone();
    many[table_at..table_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    cases.push(("too many buffers", many));
    let mut kind_byte = good.clone();
    kind_byte[table_at + 4] = 3;
    cases.push(("unknown kind", kind_byte));
    let mut long = good.clone();
    long[table_at + 5..table_at + 13].copy_from_slice(&(1u64 << 40).to_be_bytes());
    cases.push(("buffer longer than the frame", long));
    let mut no_pickle = good.clone();
    no_pickle[table_at + 5..table_at + 13]
        .copy_from_slice(&((10 + pickle.len()) as u64).to_be_bytes());
    cases.push(("no room for the pickle", no_pickle));
    for (what, data) in cases {
        assert!(
            matches!(read(&data), Err(FrameError::BadBufferTable(_))),
            "{what}: {:?}",
            read(&data)
        );
    }
    // The pickle after the table is still checked to be one.
    let mut not_pickle = good.clone();
    not_pickle[table_at + 13] = b'x';
    assert!(matches!(
        read(&not_pickle),
        Err(FrameError::NotPickle(b'x'))
    ));
}

#[test]
fn a_lying_buffer_table_allocates_at_most_the_first_step() {
    // A table claiming a buffer of 3 GiB, then the stream ends.
    let pickle = b"\x80\x05\x97.";
    let claimed = 3usize << 30;
    let table = encode_buffer_table([(buffer_kind::BYTES, claimed)].into_iter());
    let len = table.len() + pickle.len() + claimed;
    let mut data = encode_header(kind::REPLY_OK | OUT_OF_BAND, 1, len)
        .unwrap()
        .to_vec();
    data.extend_from_slice(&table);
    data.extend_from_slice(pickle);
    data.extend_from_slice(b"a few bytes");
    let (result, largest) = largest_alloc(|| FrameReader::new(&data[..]).read_frame());
    assert!(matches!(result, Err(FrameError::Truncated)));
    assert!(largest <= 2 * 1024 * 1024, "allocated {largest} bytes");
}

/// A buffer that cannot be allocated beyond 4 MiB.
struct Scarce(Vec<u8>);

impl BodyBuffer for Scarce {
    fn with_len(len: usize) -> Option<Self> {
        (len <= 4 << 20).then(|| Scarce(vec![0; len]))
    }
    fn grow(&mut self, len: usize) -> bool {
        len <= 4 << 20 && {
            self.0.resize(len, 0);
            true
        }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

#[test]
fn a_buffer_that_cannot_be_allocated_fails_the_read() {
    let mut big_pickle = b"\x80\x05".to_vec();
    big_pickle.resize(5 << 20, b'N');
    let plain = stream(&[Frame {
        kind: kind::REPLY_OK,
        id: 1,
        body: big_pickle,
        buffers: vec![],
    }]);
    let with_buffer = out_of_band_frame(
        kind::REPLY_OK,
        1,
        b"\x80\x05\x97.",
        &[(buffer_kind::BYTES, vec![1u8; 5 << 20])],
    );
    for data in [plain, with_buffer] {
        let result = FrameReader::new(&data[..]).read_frame_into::<Scarce>(|_| true);
        assert!(matches!(result, Err(FrameError::OutOfMemory(_))));
    }
}
