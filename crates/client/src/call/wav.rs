//! WAV files of 16-bit PCM, mono or stereo (RIFF `WAVE` with a `fmt ` chunk of format 1 and a
//! `data` chunk; other chunks are skipped). Sans-IO: bytes in, bytes out.

use super::limits::{MAX_CALL_AUDIO_BYTES, MAX_CHANNELS, MAX_SAMPLE_RATE};

/// Bits per sample this module reads and writes.
pub const BITS_PER_SAMPLE: u16 = 16;
const WAVE_FORMAT_PCM: u16 = 1;
const FMT_CHUNK_MIN_LEN: usize = 16;
/// Headroom for chunks other than `data` when reading a file (bytes).
pub const MAX_WAV_OVERHEAD: usize = 1 << 20;

/// Sample rate and channel count of 16-bit PCM audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
}

impl AudioFormat {
    /// Checks the rate and channel count against the limits.
    pub fn new(sample_rate: u32, channels: u16) -> Result<Self, WavError> {
        if sample_rate == 0 || sample_rate > MAX_SAMPLE_RATE {
            return Err(WavError::SampleRate(sample_rate));
        }
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(WavError::Channels(channels));
        }
        Ok(Self {
            sample_rate,
            channels,
        })
    }

    /// Bytes of one sample frame (one sample for every channel).
    pub fn frame_len(&self) -> usize {
        usize::from(self.channels) * usize::from(BITS_PER_SAMPLE / 8)
    }
}

/// Why bytes are not a WAV file this module accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// No `RIFF`/`WAVE` header.
    #[error("not a RIFF WAVE file")]
    NotWave,
    /// A chunk runs past the end of the file, or a required chunk is missing.
    #[error("truncated WAV file: {0}")]
    Truncated(&'static str),
    /// Not 16-bit integer PCM.
    #[error("unsupported WAV encoding (format {format}, {bits} bits): only 16-bit PCM is")]
    Unsupported {
        /// The `fmt ` format tag.
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// A sample rate outside `1..=MAX_SAMPLE_RATE`.
    #[error("unsupported sample rate {0} Hz")]
    SampleRate(u32),
    /// A channel count outside `1..=MAX_CHANNELS`.
    #[error("unsupported channel count {0}")]
    Channels(u16),
    /// Block align or byte rate disagree with the format.
    #[error("inconsistent WAV header")]
    Inconsistent,
    /// The audio is not a whole number of sample frames.
    #[error("WAV data of {0} bytes is not a whole number of sample frames")]
    PartialFrame(usize),
    /// More audio than [`MAX_CALL_AUDIO_BYTES`].
    #[error("WAV data of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Audio bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// 16-bit PCM audio: its format and its interleaved little-endian samples.
#[derive(Clone, PartialEq, Eq)]
pub struct Wav {
    /// Rate and channels.
    pub format: AudioFormat,
    /// Interleaved samples, little-endian, as in the file's `data` chunk.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Wav {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wav")
            .field("format", &self.format)
            .field("data_len", &self.data.len())
            .finish()
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl Wav {
    /// Audio of `format` from little-endian interleaved samples.
    pub fn new(format: AudioFormat, data: Vec<u8>) -> Result<Self, WavError> {
        if data.len() > MAX_CALL_AUDIO_BYTES {
            return Err(WavError::TooLong {
                len: data.len(),
                max: MAX_CALL_AUDIO_BYTES,
            });
        }
        if !data.len().is_multiple_of(format.frame_len()) {
            return Err(WavError::PartialFrame(data.len()));
        }
        Ok(Self { format, data })
    }

    /// Parses a WAV file.
    pub fn parse(file: &[u8]) -> Result<Self, WavError> {
        if file.len() < 12 || &file[..4] != b"RIFF" || &file[8..12] != b"WAVE" {
            return Err(WavError::NotWave);
        }
        let mut at = 12;
        let mut format = None;
        while let Some(chunk_header) = file.get(at..at + 8) {
            let id = &chunk_header[..4];
            let len = usize::try_from(u32_at(chunk_header, 4))
                .map_err(|_| WavError::Truncated("chunk length"))?;
            let body_start = at + 8;
            let body = body_start
                .checked_add(len)
                .and_then(|end| file.get(body_start..end));
            match id {
                b"fmt " => {
                    let body = body.ok_or(WavError::Truncated("fmt chunk"))?;
                    if body.len() < FMT_CHUNK_MIN_LEN {
                        return Err(WavError::Truncated("fmt chunk"));
                    }
                    let tag = u16_at(body, 0);
                    let channels = u16_at(body, 2);
                    let rate = u32_at(body, 4);
                    let byte_rate = u32_at(body, 8);
                    let block_align = u16_at(body, 12);
                    let bits = u16_at(body, 14);
                    if tag != WAVE_FORMAT_PCM || bits != BITS_PER_SAMPLE {
                        return Err(WavError::Unsupported { format: tag, bits });
                    }
                    let parsed = AudioFormat::new(rate, channels)?;
                    let frame = parsed.frame_len();
                    if usize::from(block_align) != frame
                        || u64::from(byte_rate) != u64::from(rate) * frame as u64
                    {
                        return Err(WavError::Inconsistent);
                    }
                    format = Some(parsed);
                }
                b"data" => {
                    let format = format.ok_or(WavError::Truncated("fmt chunk before data"))?;
                    if len > MAX_CALL_AUDIO_BYTES {
                        return Err(WavError::TooLong {
                            len,
                            max: MAX_CALL_AUDIO_BYTES,
                        });
                    }
                    let body = body.ok_or(WavError::Truncated("data chunk"))?;
                    return Self::new(format, body.to_vec());
                }
                _ => {}
            }
            // Chunks are padded to an even length.
            at = body_start
                .checked_add(len + (len & 1))
                .ok_or(WavError::Truncated("chunk length"))?;
        }
        Err(WavError::Truncated("no data chunk"))
    }

    /// The canonical 44-byte-header WAV file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let frame = self.format.frame_len();
        // Bounded by MAX_CALL_AUDIO_BYTES (checked in `new`/`parse`), so these fit in u32.
        let data_len = self.data.len() as u32;
        let mut out = Vec::with_capacity(44 + self.data.len());
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&(FMT_CHUNK_MIN_LEN as u32).to_le_bytes());
        out.extend_from_slice(&WAVE_FORMAT_PCM.to_le_bytes());
        out.extend_from_slice(&self.format.channels.to_le_bytes());
        out.extend_from_slice(&self.format.sample_rate.to_le_bytes());
        out.extend_from_slice(&(self.format.sample_rate * frame as u32).to_le_bytes());
        out.extend_from_slice(&(frame as u16).to_le_bytes());
        out.extend_from_slice(&BITS_PER_SAMPLE.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        // Whole 16-bit frames: the data chunk is of even length and needs no pad byte.
        out.extend_from_slice(&self.data);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Wav {
        let format = AudioFormat::new(8000, 2).unwrap();
        Wav::new(format, (0..=255u8).cycle().take(4 * 100).collect()).unwrap()
    }

    #[test]
    fn round_trip_and_skips_other_chunks() {
        let wav = sample();
        let bytes = wav.to_bytes();
        assert_eq!(bytes.len(), 44 + 400);
        assert_eq!(Wav::parse(&bytes).unwrap(), wav);
        // A LIST chunk of odd length (padded) before fmt.
        let mut with_list = bytes[..12].to_vec();
        with_list.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        with_list.extend_from_slice(&bytes[12..]);
        assert_eq!(Wav::parse(&with_list).unwrap(), wav);
    }

    #[test]
    fn malformed_files_are_typed_errors() {
        let bytes = sample().to_bytes();
        assert_eq!(Wav::parse(b"RIFF\0\0\0\0WAVX"), Err(WavError::NotWave));
        assert!(matches!(
            Wav::parse(&bytes[..bytes.len() - 1]),
            Err(WavError::Truncated("data chunk"))
        ));
        assert!(matches!(
            Wav::parse(&bytes[..30]),
            Err(WavError::Truncated(_))
        ));
        let mut eight_bit = bytes.clone();
        eight_bit[34] = 8;
        assert_eq!(
            Wav::parse(&eight_bit),
            Err(WavError::Unsupported { format: 1, bits: 8 })
        );
        let mut float = bytes.clone();
        float[20] = 3;
        assert!(matches!(
            Wav::parse(&float),
            Err(WavError::Unsupported { format: 3, .. })
        ));
        let mut surround = bytes.clone();
        surround[22] = 6;
        assert_eq!(Wav::parse(&surround), Err(WavError::Channels(6)));
        let mut misaligned = bytes.clone();
        misaligned[32] = 3;
        assert_eq!(Wav::parse(&misaligned), Err(WavError::Inconsistent));
        let mut huge_chunk = bytes.clone();
        huge_chunk[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Wav::parse(&huge_chunk),
            Err(WavError::Truncated(_))
        ));
        let mut odd = bytes.clone();
        odd[40..44].copy_from_slice(&399u32.to_le_bytes());
        assert_eq!(Wav::parse(&odd), Err(WavError::PartialFrame(399)));
    }

    #[test]
    fn sample_rate_limit_at_n_and_n_plus_1() {
        assert!(AudioFormat::new(MAX_SAMPLE_RATE, 1).is_ok());
        assert_eq!(
            AudioFormat::new(MAX_SAMPLE_RATE + 1, 1),
            Err(WavError::SampleRate(MAX_SAMPLE_RATE + 1))
        );
        assert!(AudioFormat::new(8000, MAX_CHANNELS).is_ok());
        assert_eq!(
            AudioFormat::new(8000, MAX_CHANNELS + 1),
            Err(WavError::Channels(MAX_CHANNELS + 1))
        );
    }

    #[test]
    fn audio_length_limit_at_n_and_n_plus_1() {
        let mono = AudioFormat::new(8000, 1).unwrap();
        assert!(Wav::new(mono, vec![0; MAX_CALL_AUDIO_BYTES]).is_ok());
        assert_eq!(
            Wav::new(mono, vec![0; MAX_CALL_AUDIO_BYTES + 2]),
            Err(WavError::TooLong {
                len: MAX_CALL_AUDIO_BYTES + 2,
                max: MAX_CALL_AUDIO_BYTES
            })
        );
    }
}
