//! A bounded AMF0 decoder for the command messages publishers send (`connect`, `createStream`,
//! `publish`, …).
//!
//! `rml_amf0` recurses once per nested value with no limit, so one message of nested arrays
//! overflowed the ingest thread's stack and aborted the whole process. This decoder refuses
//! nesting deeper than [`MAX_DEPTH`] and more than [`MAX_VALUES`] values before it recurses or
//! allocates further, and produces `rml_amf0`'s value type so that replies are still serialised
//! by `rml_rtmp`. Real commands nest two levels (the command object holds plain values).

use std::collections::HashMap;

use rml_rtmp::rml_amf0::Amf0Value;

/// Deepest nesting of objects and arrays accepted (a `connect` needs 2).
pub(crate) const MAX_DEPTH: usize = 16;
/// Most values one message may hold (a `connect` from OBS holds about 15).
pub(crate) const MAX_VALUES: usize = 1024;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const DATE: u8 = 0x0b;
const LONG_STRING: u8 = 0x0c;

/// Why a message's AMF0 was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AmfError {
    #[error("AMF0 ends in the middle of a value")]
    Truncated,
    #[error("AMF0 nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("AMF0 holds more than {MAX_VALUES} values")]
    TooMany,
    #[error("unsupported AMF0 marker {0:#04x}")]
    Marker(u8),
    #[error("AMF0 string is not UTF-8")]
    NotUtf8,
    #[error("AMF0 object property without a name")]
    EmptyName,
}

/// Decodes every value of a message body.
pub(crate) fn decode_all(bytes: &[u8]) -> Result<Vec<Amf0Value>, AmfError> {
    let mut decoder = Decoder { bytes, values: 0 };
    let mut values = Vec::new();
    while let Some(&marker) = decoder.bytes.first() {
        // Some encoders end a command with a stray object-end marker; nothing follows it.
        if marker == OBJECT_END {
            break;
        }
        values.push(decoder.value(0)?);
    }
    Ok(values)
}

struct Decoder<'a> {
    bytes: &'a [u8],
    values: usize,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], AmfError> {
        if self.bytes.len() < n {
            return Err(AmfError::Truncated);
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, AmfError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, AmfError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, AmfError> {
        let b = self.take(8)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(b);
        Ok(f64::from_be_bytes(raw))
    }

    fn string(&mut self, len: usize) -> Result<String, AmfError> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| AmfError::NotUtf8)
    }

    /// One value at nesting level `depth` (0 for the message's own values).
    fn value(&mut self, depth: usize) -> Result<Amf0Value, AmfError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(AmfError::TooMany);
        }
        let marker = self.u8()?;
        Ok(match marker {
            NUMBER => Amf0Value::Number(self.f64()?),
            BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            STRING => {
                let len = usize::from(self.u16()?);
                Amf0Value::Utf8String(self.string(len)?)
            }
            LONG_STRING => {
                let len = self.u32()? as usize;
                Amf0Value::Utf8String(self.string(len)?)
            }
            NULL => Amf0Value::Null,
            UNDEFINED => Amf0Value::Undefined,
            DATE => {
                let millis = self.f64()?;
                let _time_zone = self.u16()?;
                Amf0Value::Number(millis)
            }
            OBJECT => Amf0Value::Object(self.properties(depth + 1)?),
            ECMA_ARRAY => {
                // The count is advisory: encoders end the array like an object.
                let _count = self.u32()?;
                Amf0Value::Object(self.properties(depth + 1)?)
            }
            STRICT_ARRAY => {
                let count = self.u32()? as usize;
                if depth + 1 > MAX_DEPTH {
                    return Err(AmfError::TooDeep);
                }
                // Every value takes at least one byte: a count beyond what is left is a lie,
                // refused before anything is allocated for it.
                if count > self.bytes.len() {
                    return Err(AmfError::Truncated);
                }
                let mut items = Vec::with_capacity(count.min(64));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            other => return Err(AmfError::Marker(other)),
        })
    }

    /// Name/value pairs up to the object-end marker.
    fn properties(&mut self, depth: usize) -> Result<HashMap<String, Amf0Value>, AmfError> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        let mut properties = HashMap::new();
        loop {
            let len = usize::from(self.u16()?);
            if len == 0 {
                return match self.u8()? {
                    OBJECT_END => Ok(properties),
                    _ => Err(AmfError::EmptyName),
                };
            }
            let name = self.string(len)?;
            let value = self.value(depth)?;
            properties.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> Vec<u8> {
        let mut out = vec![STRING];
        out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
        out.extend_from_slice(s.as_bytes());
        out
    }

    #[test]
    fn a_connect_command_decodes() {
        let mut body = string("connect");
        body.push(NUMBER);
        body.extend_from_slice(&1.0f64.to_be_bytes());
        body.push(OBJECT);
        body.extend_from_slice(&3u16.to_be_bytes());
        body.extend_from_slice(b"app");
        body.extend(string("live"));
        body.extend_from_slice(&[0, 0, OBJECT_END]);

        let values = decode_all(&body).unwrap();

        assert_eq!(values[0], Amf0Value::Utf8String("connect".to_owned()));
        assert_eq!(values[1], Amf0Value::Number(1.0));
        let Amf0Value::Object(properties) = &values[2] else {
            panic!("{values:?}");
        };
        assert_eq!(
            properties.get("app"),
            Some(&Amf0Value::Utf8String("live".to_owned()))
        );
    }

    #[test]
    fn fifty_thousand_nested_arrays_are_refused_without_recursing() {
        let mut body = string("connect");
        body.push(NUMBER);
        body.extend_from_slice(&1.0f64.to_be_bytes());
        for _ in 0..50_000 {
            body.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1]);
        }

        assert_eq!(decode_all(&body), Err(AmfError::TooDeep));
    }

    #[test]
    fn nested_objects_are_refused_too() {
        let mut body = Vec::new();
        for _ in 0..10_000 {
            body.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }

        assert_eq!(decode_all(&body), Err(AmfError::TooDeep));
    }

    #[test]
    fn counts_beyond_the_message_are_refused_before_allocating() {
        let body = [STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff, NULL];
        assert_eq!(decode_all(&body), Err(AmfError::Truncated));
        let long = [LONG_STRING, 0xff, 0xff, 0xff, 0xff, b'a'];
        assert_eq!(decode_all(&long), Err(AmfError::Truncated));
    }

    #[test]
    fn too_many_values_are_refused() {
        let body = vec![NULL; MAX_VALUES + 1];
        assert_eq!(decode_all(&body), Err(AmfError::TooMany));
    }

    #[test]
    fn truncated_and_unknown_values_are_errors() {
        assert_eq!(decode_all(&[NUMBER, 0, 0]), Err(AmfError::Truncated));
        assert_eq!(decode_all(&[STRING, 0, 5, b'a']), Err(AmfError::Truncated));
        assert_eq!(decode_all(&[0x11]), Err(AmfError::Marker(0x11)));
        assert_eq!(decode_all(&[OBJECT, 0, 0, 0]), Err(AmfError::EmptyName));
    }
}
