//! Audio over RTP, sans-IO: the packetizer, the control packets and the reassembler.
//!
//! Audio travels as **L16** (RFC 3551 §4.5.11: 16-bit signed samples in network byte order,
//! channels interleaved) under the dynamic payload type [`AUDIO_PAYLOAD_TYPE`]. L16 is lossless,
//! so the saved audio equals the sent audio byte for byte; PCMU would not. A packet carries
//! 20 ms of audio ([`PACKET_DURATION`]), or fewer whole sample frames when 20 ms would exceed
//! [`MAX_RTP_PAYLOAD_LEN`] (above 15 kHz stereo or 30 kHz mono). Its RTP timestamp counts
//! sample frames.
//!
//! Confianza has no SDP, so two control packets, under payload type [`CONTROL_PAYLOAD_TYPE`],
//! carry what SDP and BYE would (integers big-endian):
//!
//! ```text
//! ready (answerer → caller):  kind = 1 ‖ version = 1 ‖ call_id (u64)
//! end   (caller → answerer):  kind = 2 ‖ version = 1 ‖ sample_rate (u32) ‖ channels (u16)
//!                             ‖ frames_per_packet (u32) ‖ total_frames (u64)
//!                             ‖ first_index (u64, SRTP index of the first audio packet)
//! ```
//!
//! Like every packet they are SRTP-protected, so only a holder of the call's keys can send
//! them. The receiver places audio packet `index` at frame
//! `(index − first_index) · frames_per_packet`, and writes silence for a packet that never came.

use std::collections::BTreeMap;

use super::limits::{
    MAX_CALL_AUDIO_BYTES, MAX_CALL_AUDIO_PACKETS, MAX_RTP_PAYLOAD_LEN, PACKET_DURATION,
};
use super::srtp::UnprotectedPacket;
use super::srtp::rtp::{RtpError, RtpHeader};
use super::wav::{AudioFormat, Wav, WavError};

/// Dynamic RTP payload type of L16 audio.
pub const AUDIO_PAYLOAD_TYPE: u8 = 96;
/// Dynamic RTP payload type of control packets (ready, end).
pub const CONTROL_PAYLOAD_TYPE: u8 = 127;
/// Version of the control payloads.
pub const CONTROL_VERSION: u8 = 1;
const KIND_READY: u8 = 1;
const KIND_END: u8 = 2;
const READY_LEN: usize = 2 + 8;
const END_LEN: usize = 2 + 4 + 2 + 4 + 8 + 8;

/// Why a media packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Bad RTP framing inside an authentic packet.
    #[error("malformed RTP: {0}")]
    Rtp(#[from] RtpError),
    /// An L16 payload longer than [`MAX_RTP_PAYLOAD_LEN`] or not whole samples.
    #[error("invalid L16 payload of {0} bytes")]
    AudioPayload(usize),
    /// A payload type this call does not use.
    #[error("unexpected RTP payload type {0}")]
    PayloadType(u8),
    /// A control payload of the wrong length, kind or version.
    #[error("malformed control packet")]
    Control,
    /// The end marker describes impossible audio.
    #[error("invalid end marker: {0}")]
    EndMarker(#[from] WavError),
    /// Two end markers disagree.
    #[error("conflicting end markers")]
    ConflictingEnd,
    /// The sender announced or sent more audio than the limits allow.
    #[error("the call's audio exceeds the limit")]
    TooMuchAudio,
}

/// What a control packet or audio packet meant to the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// An audio packet was stored.
    Audio,
    /// The audio packet was a duplicate or outside the announced stream, and was dropped.
    Ignored,
    /// The end marker arrived.
    End,
    /// The answerer is ready (its call id).
    Ready(u64),
}

/// The description carried by the end marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndMarker {
    /// Rate and channels.
    pub format: AudioFormat,
    /// Sample frames per audio packet (the last one may hold fewer).
    pub frames_per_packet: u32,
    /// Sample frames in the whole stream.
    pub total_frames: u64,
    /// SRTP index of the first audio packet.
    pub first_index: u64,
}

impl EndMarker {
    /// Number of audio packets.
    pub fn packets(&self) -> u64 {
        self.total_frames
            .div_ceil(u64::from(self.frames_per_packet))
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(END_LEN);
        out.extend_from_slice(&[KIND_END, CONTROL_VERSION]);
        out.extend_from_slice(&self.format.sample_rate.to_be_bytes());
        out.extend_from_slice(&self.format.channels.to_be_bytes());
        out.extend_from_slice(&self.frames_per_packet.to_be_bytes());
        out.extend_from_slice(&self.total_frames.to_be_bytes());
        out.extend_from_slice(&self.first_index.to_be_bytes());
        out
    }

    fn decode(body: &[u8]) -> Result<Self, MediaError> {
        let body: &[u8; END_LEN] = body.try_into().map_err(|_| MediaError::Control)?;
        let be4 =
            |at: usize| u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        let be8 = |at: usize| (u64::from(be4(at)) << 32) | u64::from(be4(at + 4));
        let format = AudioFormat::new(be4(2), u16::from_be_bytes([body[6], body[7]]))?;
        let marker = Self {
            format,
            frames_per_packet: be4(8),
            total_frames: be8(12),
            first_index: be8(20),
        };
        let frame = format.frame_len() as u64;
        if marker.frames_per_packet == 0
            || u64::from(marker.frames_per_packet) * frame > MAX_RTP_PAYLOAD_LEN as u64
        {
            return Err(MediaError::Control);
        }
        if marker.total_frames.saturating_mul(frame) > MAX_CALL_AUDIO_BYTES as u64
            || marker.packets() > MAX_CALL_AUDIO_PACKETS
        {
            return Err(MediaError::TooMuchAudio);
        }
        Ok(marker)
    }
}

/// The ready packet's payload.
pub fn ready_payload(call_id: u64) -> Vec<u8> {
    let mut out = vec![KIND_READY, CONTROL_VERSION];
    out.extend_from_slice(&call_id.to_be_bytes());
    out
}

/// Parses a control payload.
fn parse_control(payload: &[u8]) -> Result<Control, MediaError> {
    match payload {
        [KIND_READY, CONTROL_VERSION, id @ ..] if payload.len() == READY_LEN => {
            let id: [u8; 8] = id.try_into().map_err(|_| MediaError::Control)?;
            Ok(Control::Ready(u64::from_be_bytes(id)))
        }
        [KIND_END, CONTROL_VERSION, ..] => Ok(Control::End(EndMarker::decode(payload)?)),
        _ => Err(MediaError::Control),
    }
}

enum Control {
    Ready(u64),
    End(EndMarker),
}

/// Reads a plaintext packet as a control packet (used by the caller waiting for "ready").
pub fn parse_ready(packet: &[u8]) -> Result<u64, MediaError> {
    let header = RtpHeader::parse(packet)?;
    if header.payload_type != CONTROL_PAYLOAD_TYPE {
        return Err(MediaError::PayloadType(header.payload_type));
    }
    match parse_control(header.payload(packet)?)? {
        Control::Ready(call_id) => Ok(call_id),
        Control::End(_) => Err(MediaError::Control),
    }
}

/// Sample frames per packet for `format`: 20 ms, capped by [`MAX_RTP_PAYLOAD_LEN`].
pub fn frames_per_packet(format: AudioFormat) -> u32 {
    let per_20ms = (u128::from(format.sample_rate) * PACKET_DURATION.as_millis() / 1000) as u32;
    let fit = (MAX_RTP_PAYLOAD_LEN / format.frame_len()) as u32;
    per_20ms.clamp(1, fit)
}

/// Cuts audio into plaintext RTP packets, then the end marker packets.
pub struct Packetizer<'a> {
    wav: &'a Wav,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    first_index: u64,
    frames_per_packet: u32,
    offset: usize,
}

impl<'a> Packetizer<'a> {
    /// A packetizer whose first packet has `first_sequence` and `first_timestamp` (RFC 3550
    /// asks for random ones). The SRTP sender must be fresh, so the first packet's SRTP index
    /// is `first_sequence`.
    pub fn new(wav: &'a Wav, ssrc: u32, first_sequence: u16, first_timestamp: u32) -> Self {
        Self {
            wav,
            ssrc,
            sequence: first_sequence,
            timestamp: first_timestamp,
            first_index: u64::from(first_sequence),
            frames_per_packet: frames_per_packet(wav.format),
            offset: 0,
        }
    }

    /// Duration of `frames` sample frames of this audio.
    pub fn duration_of(&self, frames: u64) -> std::time::Duration {
        std::time::Duration::from_nanos(
            u64::try_from(
                u128::from(frames) * 1_000_000_000 / u128::from(self.wav.format.sample_rate),
            )
            .unwrap_or(u64::MAX),
        )
    }

    /// Sample frames packetized so far.
    pub fn frames_sent(&self) -> u64 {
        (self.offset / self.wav.format.frame_len()) as u64
    }

    /// The next audio packet, or `None` when all audio is packetized.
    pub fn next_audio(&mut self) -> Option<Vec<u8>> {
        if self.offset >= self.wav.data.len() {
            return None;
        }
        let len = (self.frames_per_packet as usize * self.wav.format.frame_len())
            .min(self.wav.data.len() - self.offset);
        let chunk = &self.wav.data[self.offset..self.offset + len];
        // WAV samples are little-endian; L16 is network byte order.
        let payload: Vec<u8> = chunk.chunks_exact(2).flat_map(|s| [s[1], s[0]]).collect();
        let packet = RtpHeader::write_simple(
            self.offset == 0,
            AUDIO_PAYLOAD_TYPE,
            self.sequence,
            self.timestamp,
            self.ssrc,
            &payload,
        );
        let frames = (len / self.wav.format.frame_len()) as u32;
        self.offset += len;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(frames);
        Some(packet)
    }

    /// The next end-marker packet (call it [`END_MARKER_REPEATS`] times after the audio).
    ///
    /// [`END_MARKER_REPEATS`]: super::limits::END_MARKER_REPEATS
    pub fn next_end_marker(&mut self) -> Vec<u8> {
        let marker = EndMarker {
            format: self.wav.format,
            frames_per_packet: self.frames_per_packet,
            total_frames: (self.wav.data.len() / self.wav.format.frame_len()) as u64,
            first_index: self.first_index,
        };
        let packet = RtpHeader::write_simple(
            true,
            CONTROL_PAYLOAD_TYPE,
            self.sequence,
            self.timestamp,
            self.ssrc,
            &marker.encode(),
        );
        self.sequence = self.sequence.wrapping_add(1);
        packet
    }
}

/// Collects authentic audio packets by SRTP index until the end marker, then rebuilds the audio.
#[derive(Default)]
pub struct Reassembler {
    packets: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
    end: Option<EndMarker>,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one authenticated packet.
    pub fn accept(&mut self, packet: &UnprotectedPacket) -> Result<MediaEvent, MediaError> {
        let header = RtpHeader::parse(&packet.packet)?;
        let payload = header.payload(&packet.packet)?;
        match header.payload_type {
            AUDIO_PAYLOAD_TYPE => {
                if payload.len() > MAX_RTP_PAYLOAD_LEN || !payload.len().is_multiple_of(2) {
                    return Err(MediaError::AudioPayload(payload.len()));
                }
                if let Some(end) = &self.end {
                    let in_stream = packet
                        .index
                        .checked_sub(end.first_index)
                        .is_some_and(|k| k < end.packets());
                    if !in_stream {
                        return Ok(MediaEvent::Ignored);
                    }
                }
                if self.packets.contains_key(&packet.index) {
                    return Ok(MediaEvent::Ignored);
                }
                if self.bytes + payload.len() > MAX_CALL_AUDIO_BYTES
                    || self.packets.len() as u64 >= MAX_CALL_AUDIO_PACKETS
                {
                    return Err(MediaError::TooMuchAudio);
                }
                self.bytes += payload.len();
                self.packets.insert(packet.index, payload.to_vec());
                Ok(MediaEvent::Audio)
            }
            CONTROL_PAYLOAD_TYPE => match parse_control(payload)? {
                Control::Ready(id) => Ok(MediaEvent::Ready(id)),
                Control::End(marker) => {
                    match self.end {
                        Some(existing) if existing != marker => {
                            return Err(MediaError::ConflictingEnd);
                        }
                        _ => self.end = Some(marker),
                    }
                    Ok(MediaEvent::End)
                }
            },
            other => Err(MediaError::PayloadType(other)),
        }
    }

    /// Whether the end marker arrived.
    pub fn has_end(&self) -> bool {
        self.end.is_some()
    }

    /// Audio packets still missing (`None` before the end marker).
    pub fn missing(&self) -> Option<u64> {
        let end = self.end?;
        let last = end.first_index + end.packets();
        let present = self.packets.range(end.first_index..last).count() as u64;
        Some(end.packets() - present)
    }

    /// Rebuilds the audio, silence in place of missing packets. `None` before the end marker.
    /// Returns the audio and the number of packets that were missing.
    pub fn finish(self) -> Option<(Wav, u64)> {
        let end = self.end?;
        let frame = end.format.frame_len();
        let total = usize::try_from(end.total_frames).ok()? * frame;
        let per_packet = end.frames_per_packet as usize * frame;
        let mut data = vec![0u8; total];
        let mut missing = 0;
        for k in 0..end.packets() {
            let start = usize::try_from(k).ok()? * per_packet;
            let len = per_packet.min(total - start);
            match self.packets.get(&(end.first_index + k)) {
                Some(payload) if payload.len() == len => {
                    for (out, sample) in data[start..start + len]
                        .chunks_exact_mut(2)
                        .zip(payload.chunks_exact(2))
                    {
                        out[0] = sample[1];
                        out[1] = sample[0];
                    }
                }
                _ => missing += 1,
            }
        }
        let wav = Wav::new(end.format, data).ok()?;
        Some((wav, missing))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn unprotected(index: u64, packet: Vec<u8>) -> UnprotectedPacket {
        UnprotectedPacket { index, packet }
    }

    fn audio(rate: u32, channels: u16, frames: usize) -> Wav {
        let format = AudioFormat::new(rate, channels).unwrap();
        let data = (0..frames * format.frame_len())
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        Wav::new(format, data).unwrap()
    }

    #[test]
    fn packet_sizes() {
        let f = |rate, channels| frames_per_packet(AudioFormat::new(rate, channels).unwrap());
        assert_eq!(f(8000, 1), 160);
        assert_eq!(f(16000, 1), 320);
        assert_eq!(f(48000, 2), 300, "capped by MAX_RTP_PAYLOAD_LEN");
        assert_eq!(f(10, 1), 1);
    }

    #[test]
    fn reassembles_out_of_order_and_fills_gaps() {
        let wav = audio(8000, 1, 1000); // 6.25 packets of 160 frames
        let mut packetizer = Packetizer::new(&wav, 9, 65533, 0);
        let mut packets = Vec::new();
        while let Some(p) = packetizer.next_audio() {
            packets.push(p);
        }
        assert_eq!(packets.len(), 7);
        let end = packetizer.next_end_marker();
        let mut reassembler = Reassembler::new();
        for &k in &[3usize, 0, 6, 2, 1, 5, 4] {
            let event = reassembler.accept(&unprotected(65533 + k as u64, packets[k].clone()));
            assert_eq!(event, Ok(MediaEvent::Audio));
        }
        assert_eq!(
            reassembler.accept(&unprotected(65533, packets[0].clone())),
            Ok(MediaEvent::Ignored)
        );
        assert_eq!(reassembler.missing(), None);
        assert_eq!(
            reassembler.accept(&unprotected(65540, end)),
            Ok(MediaEvent::End)
        );
        assert_eq!(reassembler.missing(), Some(0));
        let (got, missing) = reassembler.finish().unwrap();
        assert_eq!(missing, 0);
        assert_eq!(got, wav);

        // Again without packet 2: its 160 frames become silence.
        let mut reassembler = Reassembler::new();
        for (k, p) in packets.iter().enumerate().filter(|(k, _)| *k != 2) {
            reassembler
                .accept(&unprotected(65533 + k as u64, p.clone()))
                .unwrap();
        }
        let end = Packetizer::new(&wav, 9, 65533, 0).next_end_marker_after(7);
        reassembler.accept(&unprotected(65540, end)).unwrap();
        assert_eq!(reassembler.missing(), Some(1));
        let (got, missing) = reassembler.finish().unwrap();
        assert_eq!(missing, 1);
        // Packet 2 holds frames 320..480, bytes 640..960.
        assert_eq!(got.data[..640], wav.data[..640]);
        assert!(got.data[640..960].iter().all(|&b| b == 0));
        assert_eq!(got.data[960..], wav.data[960..]);
    }

    impl Packetizer<'_> {
        fn next_end_marker_after(mut self, packets: usize) -> Vec<u8> {
            for _ in 0..packets {
                self.next_audio();
            }
            self.next_end_marker()
        }
    }

    #[test]
    fn control_packets_are_checked() {
        let ready =
            RtpHeader::write_simple(false, CONTROL_PAYLOAD_TYPE, 1, 0, 5, &ready_payload(77));
        assert_eq!(parse_ready(&ready), Ok(77));
        let mut short = ready.clone();
        short.pop();
        assert_eq!(parse_ready(&short), Err(MediaError::Control));
        let audio = RtpHeader::write_simple(false, AUDIO_PAYLOAD_TYPE, 1, 0, 5, &[0, 0]);
        assert_eq!(parse_ready(&audio), Err(MediaError::PayloadType(96)));

        let wav = audio_wav();
        let mut packetizer = Packetizer::new(&wav, 1, 0, 0);
        let end = packetizer.next_end_marker();
        let mut bad_rate = end.clone();
        bad_rate[14..18].copy_from_slice(&0u32.to_be_bytes());
        let mut reassembler = Reassembler::new();
        assert_eq!(
            reassembler.accept(&unprotected(0, bad_rate)),
            Err(MediaError::EndMarker(WavError::SampleRate(0)))
        );
        let mut too_long = end.clone();
        too_long[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            reassembler.accept(&unprotected(0, too_long)),
            Err(MediaError::TooMuchAudio)
        );
        reassembler.accept(&unprotected(0, end.clone())).unwrap();
        let mut other = end;
        other[31] ^= 1;
        assert_eq!(
            reassembler.accept(&unprotected(1, other)),
            Err(MediaError::ConflictingEnd)
        );
    }

    fn audio_wav() -> Wav {
        audio(8000, 1, 10)
    }

    #[test]
    fn announced_audio_limit_at_n_and_n_plus_1() {
        let format = AudioFormat::new(8000, 1).unwrap();
        let at_limit = (MAX_CALL_AUDIO_BYTES / format.frame_len()) as u64;
        let marker = |total_frames| EndMarker {
            format,
            frames_per_packet: 160,
            total_frames,
            first_index: 0,
        };
        assert!(EndMarker::decode(&marker(at_limit).encode()).is_ok());
        assert_eq!(
            EndMarker::decode(&marker(at_limit + 1).encode()),
            Err(MediaError::TooMuchAudio)
        );
    }
}
