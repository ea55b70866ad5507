//! The protobuf wire format, as much of it as the span exporter writes by hand.
//!
//! Why by hand: building `opentelemetry-proto` messages from the span records and
//! encoding them with prost cost the export thread about 36,000 instructions per
//! merge (six spans): prost sizes every nested message once per level above it,
//! and each record became a tree of owned strings and vectors only to be freed
//! again (callgrind, `fleet_throughput`'s span path). Writing the bytes straight
//! from the records skips both. The encoding is the one prost writes — fields in
//! tag order (whatever the .proto's order), proto3 defaults left out, lengths as
//! minimal varints — so a receiver decodes exactly what `opentelemetry-proto`
//! would have sent; the span module's tests hold the two side by side.

/// Wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `value` as a varint: the bytes, and how many of them are used.
fn varint_bytes(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut n = 0;
    while value >= 0x80 {
        bytes[n] = (value & 0x7f) as u8 | 0x80;
        value >>= 7;
        n += 1;
    }
    bytes[n] = value as u8;
    (bytes, n + 1)
}

fn varint(buf: &mut Vec<u8>, value: u64) {
    let (bytes, n) = varint_bytes(value);
    buf.extend_from_slice(&bytes[..n]);
}

/// A length-delimited field, written whatever its length.
fn len_delimited(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(buf, field, LEN);
    varint(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

fn key(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    varint(buf, u64::from((field << 3) | wire_type));
}

/// A `bytes` field; left out when empty (the proto3 default).
pub(crate) fn bytes(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    if !value.is_empty() {
        len_delimited(buf, field, value);
    }
}

/// A `string` field; left out when empty.
pub(crate) fn string(buf: &mut Vec<u8>, field: u32, value: &str) {
    bytes(buf, field, value.as_bytes());
}

/// A `string` field of a `oneof`: written even when empty.
pub(crate) fn oneof_string(buf: &mut Vec<u8>, field: u32, value: &str) {
    len_delimited(buf, field, value.as_bytes());
}

/// A `uint32` or enum field; left out when 0.
pub(crate) fn uint(buf: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        key(buf, field, VARINT);
        varint(buf, u64::from(value));
    }
}

/// An `int64` field of a `oneof`: written even when 0; a negative number takes
/// ten bytes, as in every protobuf encoder.
pub(crate) fn oneof_int64(buf: &mut Vec<u8>, field: u32, value: i64) {
    key(buf, field, VARINT);
    varint(buf, u64::from_ne_bytes(value.to_ne_bytes()));
}

/// A `bool` field of a `oneof`.
pub(crate) fn oneof_bool(buf: &mut Vec<u8>, field: u32, value: bool) {
    key(buf, field, VARINT);
    buf.push(u8::from(value));
}

/// A `double` field of a `oneof`.
pub(crate) fn oneof_double(buf: &mut Vec<u8>, field: u32, value: f64) {
    key(buf, field, FIXED64);
    buf.extend_from_slice(&value.to_le_bytes());
}

/// A `fixed64` field; left out when 0.
pub(crate) fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, FIXED64);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

/// A `fixed32` field; left out when 0.
pub(crate) fn fixed32(buf: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        key(buf, field, FIXED32);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

/// An embedded message (also a set optional one: written even when empty),
/// whose fields `write` appends. Its length goes before it: one byte is kept
/// for it, which most of these messages (attributes, values) fit; a longer
/// message moves over by the bytes its length needs beyond that.
pub(crate) fn message(buf: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    let at = buf.len();
    buf.push(0);
    write(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
        return;
    }
    let (prefix, n) = varint_bytes(len as u64);
    buf.splice(at..=at, prefix[..n].iter().copied());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use prost::Message as _;

    use super::*;

    /// A message of prost's own with one field of each kind written here.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Sample {
        #[prost(bytes = "vec", tag = "1")]
        id: Vec<u8>,
        #[prost(string, tag = "2")]
        name: String,
        #[prost(uint32, tag = "3")]
        kind: u32,
        #[prost(fixed64, tag = "4")]
        time: u64,
        /// Declared out of tag order, as OTLP's `Span.flags` is: prost still
        /// writes it last, and so must the writer.
        #[prost(fixed32, tag = "16")]
        flags: u32,
        #[prost(message, repeated, tag = "5")]
        children: Vec<Sample>,
        #[prost(oneof = "Choice", tags = "6, 7, 8, 9")]
        choice: Option<Choice>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    enum Choice {
        #[prost(string, tag = "6")]
        Text(String),
        #[prost(int64, tag = "7")]
        Int(i64),
        #[prost(bool, tag = "8")]
        Flag(bool),
        #[prost(double, tag = "9")]
        Real(f64),
    }

    fn write(buf: &mut Vec<u8>, sample: &Sample) {
        bytes(buf, 1, &sample.id);
        string(buf, 2, &sample.name);
        uint(buf, 3, sample.kind);
        fixed64(buf, 4, sample.time);
        for child in &sample.children {
            message(buf, 5, |buf| write(buf, child));
        }
        match &sample.choice {
            Some(Choice::Text(text)) => oneof_string(buf, 6, text),
            Some(Choice::Int(n)) => oneof_int64(buf, 7, *n),
            Some(Choice::Flag(b)) => oneof_bool(buf, 8, *b),
            Some(Choice::Real(x)) => oneof_double(buf, 9, *x),
            None => {}
        }
        fixed32(buf, 16, sample.flags);
    }

    #[test]
    fn writes_the_bytes_prost_writes() {
        let leaf = |n: i64, choice: Choice| Sample {
            id: vec![1, 2, 3],
            name: "x".repeat(usize::try_from(n).unwrap_or(0)),
            kind: u32::try_from(n).unwrap_or(0),
            choice: Some(choice),
            ..Sample::default()
        };
        let sample = Sample {
            id: Vec::new(),
            name: "root".into(),
            kind: 300,
            time: 1_700_000_000_123_456_789,
            flags: 0x301,
            children: vec![
                leaf(0, Choice::Int(0)),
                leaf(5, Choice::Int(-7)),
                leaf(130, Choice::Text(String::new())),
                leaf(20_000, Choice::Flag(false)),
                leaf(1, Choice::Flag(true)),
                leaf(2, Choice::Real(-0.5)),
                Sample::default(),
            ],
            choice: None,
        };
        let mut buf = Vec::new();
        write(&mut buf, &sample);
        assert_eq!(buf, sample.encode_to_vec());
        assert_eq!(Sample::decode(buf.as_slice()).unwrap(), sample);
    }
}
