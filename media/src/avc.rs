//! H.264 as RTMP carries it (AVC: length-prefixed NAL units, parameter sets out of band) turned
//! into the byte stream MPEG-TS carries (start codes, parameter sets before each keyframe), and
//! the facts health reports read from the parameter sets.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// An access unit delimiter (primary_pic_type 7: any slice type), which HLS asks for.
const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];
const NAL_SPS: u8 = 7;
const NAL_AUD: u8 = 9;

/// Why a decoder configuration was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AvcError {
    #[error("malformed AVC decoder configuration: {0}")]
    Config(String),
    #[error("the AVC decoder configuration has no SPS or PPS")]
    NoParameterSets,
}

/// A publisher's H.264 decoder configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AvcConfig {
    /// The `AVCDecoderConfigurationRecord` as the publisher sent it (the muxer's `codec_data`).
    pub(crate) record: Vec<u8>,
    length_size: usize,
    /// SPS and PPS, each behind a start code: what precedes every keyframe.
    parameter_sets: Vec<u8>,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    /// `avc1.PPCCLL`, as HLS `CODECS` attributes name it.
    pub(crate) codec: String,
}

/// The parts of an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15, 5.3.3.1) Siaran uses,
/// read with every length checked. `h264_reader`'s reader of it indexes past the end of a
/// record whose parameter set is empty or cut short (found by fuzzing `flv_tags`).
#[derive(Debug)]
struct ParameterSets<'a> {
    length_size: usize,
    sps: Vec<&'a [u8]>,
    pps: Vec<&'a [u8]>,
}

impl<'a> ParameterSets<'a> {
    fn read(record: &'a [u8]) -> Result<Self, AvcError> {
        let short = || AvcError::Config("the record is cut short".to_owned());
        let header = record.get(..6).ok_or_else(short)?;
        if header[0] != 1 {
            return Err(AvcError::Config(format!("version {}", header[0])));
        }
        let length_size = usize::from(header[4] & 0b11) + 1;
        let mut rest = &record[6..];
        let sets = |count: usize, rest: &mut &'a [u8]| -> Result<Vec<&'a [u8]>, AvcError> {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                let len = rest.get(..2).ok_or_else(short)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let set = rest.get(2..2 + len).ok_or_else(short)?;
                *rest = &rest[2 + len..];
                out.push(set);
            }
            Ok(out)
        };
        let sps = sets(usize::from(header[5] & 0x1f), &mut rest)?;
        let pps_count = usize::from(*rest.first().ok_or_else(short)?);
        rest = &rest[1..];
        let pps = sets(pps_count, &mut rest)?;
        Ok(Self {
            length_size,
            sps,
            pps,
        })
    }
}

impl AvcConfig {
    pub(crate) fn parse(record: &[u8]) -> Result<Self, AvcError> {
        let sets = ParameterSets::read(record)?;
        let mut parameter_sets = Vec::new();
        let mut dimensions = None;
        let mut count = 0;
        for sps in sets.sps.iter().copied() {
            if sps.is_empty() {
                continue;
            }
            if dimensions.is_none() {
                dimensions = SeqParameterSet::from_bits(RefNal::new(sps, &[], true).rbsp_bits())
                    .ok()
                    .and_then(|s| s.pixel_dimensions().ok());
            }
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(sps);
            count += 1;
        }
        let sps_count = count;
        for pps in sets.pps.iter().copied() {
            if !pps.is_empty() {
                parameter_sets.extend_from_slice(&START_CODE);
                parameter_sets.extend_from_slice(pps);
                count += 1;
            }
        }
        if sps_count == 0 || count == sps_count {
            return Err(AvcError::NoParameterSets);
        }
        Ok(Self {
            record: record.to_vec(),
            length_size: sets.length_size,
            parameter_sets,
            width: dimensions.map(|d| d.0),
            height: dimensions.map(|d| d.1),
            codec: format!(
                "avc1.{:02x}{:02x}{:02x}",
                record.get(1).copied().unwrap_or_default(),
                record.get(2).copied().unwrap_or_default(),
                record.get(3).copied().unwrap_or_default()
            ),
        })
    }

    /// Whether an access unit's length-prefixed NAL units add up to exactly its bytes (and it
    /// has at least one): what the muxer may be given as it is.
    pub(crate) fn is_well_formed(&self, data: &[u8]) -> bool {
        let mut rest = data;
        let mut any = false;
        while !rest.is_empty() {
            let Some(len_bytes) = rest.get(..self.length_size) else {
                return false;
            };
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            let Some(end) = self
                .length_size
                .checked_add(len)
                .filter(|&e| e <= rest.len())
            else {
                return false;
            };
            any |= len > 0;
            rest = &rest[end..];
        }
        any
    }

    /// One access unit in byte-stream form, or `None` when the NAL lengths do not add up.
    pub(crate) fn to_byte_stream(&self, data: &[u8], keyframe: bool) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() + self.parameter_sets.len() + 16);
        let mut rest = data;
        let mut first = true;
        while !rest.is_empty() {
            let len_bytes = rest.get(..self.length_size)?;
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            let nal = rest.get(self.length_size..self.length_size + len)?;
            rest = &rest[self.length_size + len..];
            let Some(&header) = nal.first() else {
                continue;
            };
            let kind = header & 0x1f;
            if first {
                first = false;
                if kind != NAL_AUD {
                    out.extend_from_slice(&AUD);
                }
                if keyframe && kind != NAL_SPS {
                    out.extend_from_slice(&self.parameter_sets);
                }
            }
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
        (!first).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An avcC for 640x360 High profile, as x264 writes it.
    const RECORD: &[u8] = &[
        0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40,
        0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c,
        0x0f, 0x16, 0x2d, 0x96, 0x01, 0x00, 0x04, 0x68, 0xef, 0xbc, 0xb0, 0xfd, 0xf8, 0xf8, 0x00,
    ];

    #[test]
    fn the_configuration_names_codec_and_size() {
        let config = AvcConfig::parse(RECORD).unwrap();
        assert_eq!(config.codec, "avc1.64001e");
        assert_eq!((config.width, config.height), (Some(640), Some(360)));
    }

    #[test]
    fn keyframes_carry_parameter_sets_and_every_unit_a_delimiter() {
        let config = AvcConfig::parse(RECORD).unwrap();
        let au = [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x06];

        let key = config.to_byte_stream(&au, true).unwrap();
        let inter = config.to_byte_stream(&au, false).unwrap();

        assert!(key.starts_with(&AUD));
        assert!(key[AUD.len()..].starts_with(&[0, 0, 0, 1, 0x67]));
        assert!(key.ends_with(&[0, 0, 0, 1, 0x65, 0xaa, 0, 0, 0, 1, 0x06]));
        assert_eq!(
            inter,
            [&AUD[..], &[0, 0, 0, 1, 0x65, 0xaa, 0, 0, 0, 1, 0x06]].concat()
        );
    }

    #[test]
    fn records_with_empty_or_cut_parameter_sets_are_refused_without_panicking() {
        // What fuzzing found: h264_reader indexed past the end of an empty PPS.
        let found = [
            1, 66, 192, 12, 247, 225, 0, 24, 103, 66, 224, 12, 218, 145, 228, 68, 54, 192, 0, 0, 4,
            0, 0, 4, 0, 3, 4, 120, 60, 80, 170, 128, 1, 0, 0, 255, 4, 60, 128,
        ];
        assert!(AvcConfig::parse(&found).is_err());
        for len in 0..RECORD.len() {
            let _ = AvcConfig::parse(&RECORD[..len]);
        }
        assert!(AvcConfig::parse(&[1, 100, 0, 30, 0xff, 0xe1, 0, 0, 1, 0, 0]).is_err());
    }

    #[test]
    fn lengths_past_the_end_are_refused() {
        let config = AvcConfig::parse(RECORD).unwrap();
        assert!(config.to_byte_stream(&[0, 0, 0, 9, 0x65], false).is_none());
        assert!(AvcConfig::parse(&[1, 2, 3]).is_err());
    }
}
