//! Session state: one Double Ratchet (`SessionState`) and the per-address record that keeps the
//! current state and up to [`ARCHIVED_STATES_MAX_LENGTH`] archived ones (`SessionRecord`).

use std::collections::VecDeque;

use crate::keys::{IdentityKey, KeyPair, PublicKey};
use crate::limits::{ARCHIVED_STATES_MAX_LENGTH, MAX_MESSAGE_KEYS, MAX_RECEIVER_CHAINS};
use crate::ratchet::{ChainKey, MessageKeySeed, RootKey};

/// Our sending chain and the ratchet key pair it belongs to.
#[derive(Clone)]
pub(crate) struct SenderChain {
    pub(crate) ratchet: KeyPair,
    pub(crate) chain: ChainKey,
}

/// A chain for one of the peer's ratchet keys, with the keys of messages skipped on it.
#[derive(Clone)]
pub(crate) struct ReceiverChain {
    pub(crate) ratchet_key: PublicKey,
    pub(crate) chain: ChainKey,
    /// Oldest first, at most [`MAX_MESSAGE_KEYS`].
    pub(crate) skipped: VecDeque<MessageKeySeed>,
}

impl ReceiverChain {
    pub(crate) fn store_skipped(&mut self, seeds: Vec<MessageKeySeed>) {
        self.skipped.extend(seeds);
        while self.skipped.len() > MAX_MESSAGE_KEYS {
            self.skipped.pop_front();
        }
    }
}

/// What the initiator repeats in every message until the responder answers.
#[derive(Clone, Debug)]
pub(crate) struct PendingPreKey {
    pub(crate) pre_key_id: Option<u32>,
    pub(crate) signed_pre_key_id: u32,
    pub(crate) kyber: Option<(u32, Vec<u8>)>,
    pub(crate) base_key: PublicKey,
    /// Seconds since the Unix epoch when the session was set up.
    pub(crate) created_at: u64,
}

/// One Double Ratchet session with one peer device.
#[derive(Clone)]
pub struct SessionState {
    pub(crate) version: u8,
    pub(crate) local_identity: IdentityKey,
    pub(crate) remote_identity: IdentityKey,
    pub(crate) root_key: RootKey,
    pub(crate) sender: SenderChain,
    /// Oldest first, at most [`MAX_RECEIVER_CHAINS`].
    pub(crate) receivers: VecDeque<ReceiverChain>,
    pub(crate) previous_counter: u32,
    pub(crate) pending_pre_key: Option<PendingPreKey>,
    pub(crate) local_registration_id: u32,
    pub(crate) remote_registration_id: u32,
    /// The initiator's base key: identifies the session when PreKey messages repeat.
    pub(crate) alice_base_key: PublicKey,
}

impl SessionState {
    /// 3 for X3DH sessions, 4 for PQXDH.
    pub fn session_version(&self) -> u8 {
        self.version
    }
    pub fn local_identity(&self) -> &IdentityKey {
        &self.local_identity
    }
    pub fn remote_identity(&self) -> &IdentityKey {
        &self.remote_identity
    }
    pub fn remote_registration_id(&self) -> u32 {
        self.remote_registration_id
    }
    /// Whether this side still wraps messages in PreKey messages (no reply seen yet).
    pub fn awaiting_reply(&self) -> bool {
        self.pending_pre_key.is_some()
    }

    pub(crate) fn receiver_index(&self, ratchet_key: &PublicKey) -> Option<usize> {
        self.receivers
            .iter()
            .rposition(|chain| &chain.ratchet_key == ratchet_key)
    }

    pub(crate) fn push_receiver(&mut self, chain: ReceiverChain) {
        self.receivers.push_back(chain);
        while self.receivers.len() > MAX_RECEIVER_CHAINS {
            self.receivers.pop_front();
        }
    }
}

/// All sessions with one peer device: the current one and archived ones, newest first.
#[derive(Clone, Default)]
pub struct SessionRecord {
    pub(crate) current: Option<SessionState>,
    pub(crate) previous: VecDeque<SessionState>,
}

impl SessionRecord {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn current(&self) -> Option<&SessionState> {
        self.current.as_ref()
    }

    pub fn has_current_state(&self) -> bool {
        self.current.is_some()
    }

    /// Archived states, newest first.
    pub fn previous(&self) -> impl Iterator<Item = &SessionState> {
        self.previous.iter()
    }

    /// Moves the current state (if any) to the archive; late messages still decrypt with it.
    pub fn archive_current(&mut self) {
        if let Some(state) = self.current.take() {
            self.previous.push_front(state);
            self.previous.truncate(ARCHIVED_STATES_MAX_LENGTH);
        }
    }

    /// Makes `state` current, archiving the one it replaces.
    pub fn promote(&mut self, state: SessionState) {
        self.archive_current();
        self.current = Some(state);
    }
}
