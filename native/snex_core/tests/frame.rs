//! Framing: round trips, clean and unclean EOF, partial reads, and lying headers.

mod wire_support;

use std::io::{self, Read};

use snex_core::frame::{
    encode_header, kind, write_frame, Frame, FrameError, FrameReader, HEADER_LEN,
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
        },
        Frame {
            kind: kind::CANCEL,
            id: u64::MAX,
            body: vec![],
        },
        Frame {
            kind: kind::CALL,
            id: 0x0102_0304_0506_0708,
            body: (0..200_000u32).map(|i| i as u8).collect(),
        },
        Frame {
            kind: kind::SEND,
            id: 0,
            body: vec![7; 3 * 1024 * 1024 + 5],
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
