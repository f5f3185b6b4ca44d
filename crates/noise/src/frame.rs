//! Length-prefixed frames: a big-endian `u16` length, then that many bytes.
//!
//! One frame carries one Noise message, so a frame is at most [`MAX_FRAME_LEN`] bytes. The
//! decoder is sans-IO: feed it whatever bytes arrived, take out whole frames. It allocates a
//! frame's buffer only after checking the declared length against its maximum, and never more
//! than that length.

use crate::error::{DecodeFrameError, EncodeFrameError, FrameLimitError};
use crate::limits::{FRAME_HEADER_LEN, MAX_FRAME_LEN};

/// Prefixes `message` with its length.
pub fn encode_frame(message: &[u8]) -> Result<Vec<u8>, EncodeFrameError> {
    let header = frame_header(message.len())?;
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + message.len());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(message);
    Ok(frame)
}

/// The 2-byte header for a message of `len` bytes.
pub fn frame_header(len: usize) -> Result<[u8; FRAME_HEADER_LEN], EncodeFrameError> {
    let too_long = EncodeFrameError::TooLong {
        len,
        max: MAX_FRAME_LEN,
    };
    u16::try_from(len)
        .map(u16::to_be_bytes)
        .map_err(|_| too_long)
}

/// Checks a received header against `max_len` and returns the body length.
pub fn check_frame_header(
    header: [u8; FRAME_HEADER_LEN],
    max_len: usize,
) -> Result<usize, DecodeFrameError> {
    let len = usize::from(u16::from_be_bytes(header));
    if len > max_len {
        return Err(DecodeFrameError::TooLong { len, max: max_len });
    }
    Ok(len)
}

#[derive(Debug)]
enum DecoderState {
    /// Collecting the header; `filled` bytes of it are in `header`.
    Header {
        header: [u8; FRAME_HEADER_LEN],
        filled: usize,
    },
    /// Collecting a body of `len` bytes.
    Body {
        body: Vec<u8>,
        len: usize,
    },
    Failed,
}

/// Reassembles frames from arbitrarily split input.
#[derive(Debug)]
pub struct FrameDecoder {
    max_len: usize,
    state: DecoderState,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting frames up to [`MAX_FRAME_LEN`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            max_len: MAX_FRAME_LEN,
            state: Self::fresh_header(),
        }
    }

    /// A decoder with a smaller maximum (e.g. for a peer that is not authenticated yet).
    pub fn with_max_len(max_len: usize) -> Result<Self, FrameLimitError> {
        if max_len > MAX_FRAME_LEN {
            return Err(FrameLimitError {
                max: max_len,
                limit: MAX_FRAME_LEN,
            });
        }
        Ok(Self {
            max_len,
            state: Self::fresh_header(),
        })
    }

    fn fresh_header() -> DecoderState {
        DecoderState::Header {
            header: [0; FRAME_HEADER_LEN],
            filled: 0,
        }
    }

    /// True when no partial frame is buffered (a clean place for the stream to end).
    #[must_use]
    pub fn is_at_frame_boundary(&self) -> bool {
        matches!(self.state, DecoderState::Header { filled: 0, .. })
    }

    /// Takes bytes from the front of `input` until one frame is complete, and returns it.
    ///
    /// Returns `Ok(None)` once `input` is empty without a complete frame; the partial frame
    /// stays buffered for the next call. Bytes after a complete frame stay in `input`.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, DecodeFrameError> {
        loop {
            match &mut self.state {
                DecoderState::Failed => return Err(DecodeFrameError::Failed),
                DecoderState::Header { header, filled } => {
                    let wanted = FRAME_HEADER_LEN - *filled;
                    let (taken, rest) = input.split_at(wanted.min(input.len()));
                    header[*filled..*filled + taken.len()].copy_from_slice(taken);
                    *filled += taken.len();
                    *input = rest;
                    if *filled < FRAME_HEADER_LEN {
                        return Ok(None);
                    }
                    match check_frame_header(*header, self.max_len) {
                        Ok(len) => {
                            self.state = DecoderState::Body {
                                body: Vec::with_capacity(len),
                                len,
                            };
                        }
                        Err(error) => {
                            self.state = DecoderState::Failed;
                            return Err(error);
                        }
                    }
                }
                DecoderState::Body { body, len } => {
                    let wanted = *len - body.len();
                    let (taken, rest) = input.split_at(wanted.min(input.len()));
                    body.extend_from_slice(taken);
                    *input = rest;
                    if body.len() < *len {
                        return Ok(None);
                    }
                    let frame = core::mem::take(body);
                    self.state = Self::fresh_header();
                    return Ok(Some(frame));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_frame_len_is_accepted_and_one_more_is_refused() {
        let largest = vec![7u8; MAX_FRAME_LEN];
        let frame = encode_frame(&largest).expect("N fits");
        assert_eq!(&frame[..2], &[0xff, 0xff]);
        let mut input = frame.as_slice();
        let decoded = FrameDecoder::new().decode(&mut input).expect("decodes");
        assert_eq!(decoded.as_deref(), Some(largest.as_slice()));
        assert!(input.is_empty());

        let over = vec![7u8; MAX_FRAME_LEN + 1];
        assert_eq!(
            encode_frame(&over),
            Err(EncodeFrameError::TooLong {
                len: MAX_FRAME_LEN + 1,
                max: MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn a_smaller_limit_rejects_the_header_before_the_body_arrives() {
        let mut decoder = FrameDecoder::with_max_len(100).expect("valid limit");
        let mut at_limit: &[u8] = &[0x00, 100];
        assert_eq!(decoder.decode(&mut at_limit), Ok(None));

        let mut decoder = FrameDecoder::with_max_len(100).expect("valid limit");
        // Only the header of a 101-byte frame: refused with no body bytes sent at all.
        let mut over: &[u8] = &[0x00, 101];
        assert_eq!(
            decoder.decode(&mut over),
            Err(DecodeFrameError::TooLong { len: 101, max: 100 })
        );
        assert_eq!(
            decoder.decode(&mut &[0u8; 4][..]),
            Err(DecodeFrameError::Failed)
        );
    }

    #[test]
    fn decoder_limit_cannot_exceed_the_noise_maximum() {
        assert!(FrameDecoder::with_max_len(MAX_FRAME_LEN).is_ok());
        assert_eq!(
            FrameDecoder::with_max_len(MAX_FRAME_LEN + 1).err(),
            Some(FrameLimitError {
                max: MAX_FRAME_LEN + 1,
                limit: MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn frames_split_across_calls_and_packed_together() {
        let mut wire = encode_frame(b"first").expect("fits");
        wire.extend(encode_frame(b"").expect("fits"));
        wire.extend(encode_frame(b"third").expect("fits"));
        let mut decoder = FrameDecoder::new();
        let mut frames = Vec::new();
        for byte in &wire {
            let mut input = core::slice::from_ref(byte);
            while let Some(frame) = decoder.decode(&mut input).expect("valid") {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            vec![b"first".to_vec(), Vec::new(), b"third".to_vec()]
        );
        assert!(decoder.is_at_frame_boundary());
    }
}
