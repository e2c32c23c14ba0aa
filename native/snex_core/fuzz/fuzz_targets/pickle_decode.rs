//! Fuzzes the restricted unpickler: `validate` and `decode` must never panic, and must agree
//! (with a builder that accepts everything). Run with `cargo fuzz run pickle_decode` from
//! `native/snex_core`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use snex_core::pickle::{self, Builder, DecodeError};

/// Counts the values built, so that decoding does real work without a deep value to drop.
struct Count;

impl Builder for Count {
    type Value = u64;
    fn none(&mut self) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn bool(&mut self, _: bool) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn int(&mut self, _: i64) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn big_int(&mut self, le: &[u8]) -> Result<u64, DecodeError> {
        assert!(le.len() > 8, "big_int for a value that fits in i64");
        Ok(1)
    }
    fn float(&mut self, _: f64) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn str(&mut self, _: &str) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn bytes(&mut self, _: &[u8]) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn list(&mut self, items: Vec<u64>) -> Result<u64, DecodeError> {
        Ok(sum(&items))
    }
    fn tuple(&mut self, items: Vec<u64>) -> Result<u64, DecodeError> {
        Ok(sum(&items))
    }
    fn map(&mut self, pairs: Vec<(u64, u64)>) -> Result<u64, DecodeError> {
        Ok(pairs
            .iter()
            .fold(1u64, |n, (k, v)| n.saturating_add(*k).saturating_add(*v)))
    }
    fn set(&mut self, items: Vec<u64>) -> Result<u64, DecodeError> {
        Ok(sum(&items))
    }
    fn atom(&mut self, _: &str) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn term(&mut self, _: &[u8]) -> Result<u64, DecodeError> {
        Ok(1)
    }
}

fn sum(items: &[u64]) -> u64 {
    items.iter().fold(1u64, |n, v| n.saturating_add(*v))
}

fuzz_target!(|data: &[u8]| {
    let valid = pickle::validate(data).is_ok();
    let decoded = pickle::decode(data, &mut Count).is_ok();
    assert_eq!(valid, decoded);
});
