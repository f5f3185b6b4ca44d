//! The fixed RTP header (RFC 3550 §5.1), as far as SRTP and the media layer need it.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! |                             ....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  defined by profile (X=1)     |   length (32-bit words)       |
//! |                        header extension                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

/// Length of the fixed RTP header, before CSRCs and extension.
pub const RTP_FIXED_HEADER_LEN: usize = 12;
/// The only RTP version (RFC 3550).
pub const RTP_VERSION: u8 = 2;

/// Why bytes are not an RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the header it announces.
    #[error("RTP packet truncated: {needed} header bytes needed, {got} present")]
    Truncated {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0} is not 2")]
    Version(u8),
    /// The padding count is zero or longer than the payload.
    #[error("RTP padding of {padding} bytes does not fit a {payload}-byte payload")]
    Padding {
        /// Announced padding (last payload byte).
        padding: usize,
        /// Payload length including the padding.
        payload: usize,
    },
}

/// A parsed RTP header: borrowed fields and the header length (fixed part, CSRCs, extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Padding bit: the payload ends with padding whose last byte gives its length.
    pub padding: bool,
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp, in samples of the payload's clock.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Length of the whole header: fixed part, CSRC list and extension.
    pub len: usize,
}

impl RtpHeader {
    /// Parses the header at the start of `packet`.
    pub fn parse(packet: &[u8]) -> Result<Self, RtpError> {
        let truncated = |needed: usize| RtpError::Truncated {
            needed,
            got: packet.len(),
        };
        let fixed: &[u8; RTP_FIXED_HEADER_LEN] = packet
            .get(..RTP_FIXED_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| truncated(RTP_FIXED_HEADER_LEN))?;
        let version = fixed[0] >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::Version(version));
        }
        let padding = fixed[0] & 0x20 != 0;
        let extension = fixed[0] & 0x10 != 0;
        let csrc_count = usize::from(fixed[0] & 0x0f);
        let mut len = RTP_FIXED_HEADER_LEN + 4 * csrc_count;
        if extension {
            let ext = packet.get(len..len + 4).ok_or_else(|| truncated(len + 4))?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            len += 4 + 4 * words;
        }
        if packet.len() < len {
            return Err(truncated(len));
        }
        Ok(Self {
            padding,
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7f,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            len,
        })
    }

    /// The payload of a plaintext `packet` this header was parsed from, without RTP padding.
    pub fn payload<'a>(&self, packet: &'a [u8]) -> Result<&'a [u8], RtpError> {
        let payload = packet.get(self.len..).ok_or(RtpError::Truncated {
            needed: self.len,
            got: packet.len(),
        })?;
        if !self.padding {
            return Ok(payload);
        }
        let padding = payload.last().map_or(0, |&n| usize::from(n));
        if padding == 0 || padding > payload.len() {
            return Err(RtpError::Padding {
                padding,
                payload: payload.len(),
            });
        }
        Ok(&payload[..payload.len() - padding])
    }

    /// Writes a header with no CSRC, extension or padding, followed by `payload`.
    pub fn write_simple(
        marker: bool,
        payload_type: u8,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut packet = Vec::with_capacity(RTP_FIXED_HEADER_LEN + payload.len());
        packet.push(RTP_VERSION << 6);
        packet.push((u8::from(marker) << 7) | (payload_type & 0x7f));
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        packet
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_csrcs_and_extension() {
        let mut packet = vec![
            0x80 | 0x10 | 2,
            0x80 | 96,
            0x12,
            0x34,
            0,
            0,
            1,
            0,
            0xde,
            0xad,
        ];
        packet.extend_from_slice(&[0xbe, 0xef]);
        packet.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]); // two CSRCs
        packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]); // one extension word
        packet.extend_from_slice(b"payload");
        let header = RtpHeader::parse(&packet).unwrap();
        assert_eq!(header.len, 12 + 8 + 8);
        assert!(header.marker);
        assert_eq!(header.payload_type, 96);
        assert_eq!(header.sequence, 0x1234);
        assert_eq!(header.timestamp, 256);
        assert_eq!(header.ssrc, 0xdead_beef);
        assert_eq!(header.payload(&packet).unwrap(), b"payload");
    }

    #[test]
    fn truncated_csrc_and_extension_are_refused() {
        let mut packet = vec![0x80 | 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            RtpHeader::parse(&packet),
            Err(RtpError::Truncated { needed: 16, .. })
        ));
        packet[0] = 0x90;
        packet.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0]);
        assert!(matches!(
            RtpHeader::parse(&packet),
            Err(RtpError::Truncated { needed: 24, .. })
        ));
        assert!(matches!(
            RtpHeader::parse(&packet[..11]),
            Err(RtpError::Truncated { needed: 12, .. })
        ));
    }

    #[test]
    fn wrong_version_and_bad_padding_are_refused() {
        let packet = RtpHeader::write_simple(false, 0, 1, 2, 3, b"ab");
        let mut v1 = packet.clone();
        v1[0] = 0x40;
        assert_eq!(RtpHeader::parse(&v1), Err(RtpError::Version(1)));
        let mut padded = packet.clone();
        padded[0] |= 0x20;
        *padded.last_mut().unwrap() = 3; // 3 bytes of padding in a 2-byte payload
        let header = RtpHeader::parse(&padded).unwrap();
        assert!(matches!(
            header.payload(&padded),
            Err(RtpError::Padding {
                padding: 3,
                payload: 2
            })
        ));
        *padded.last_mut().unwrap() = 1;
        assert_eq!(header.payload(&padded).unwrap(), b"a");
    }
}
