//! Groups: membership through the server, Signal sender keys for the messages.
//!
//! A group's sender keys use the server's 16-byte group id as the distribution id. Before a
//! member sends to a membership revision it has not distributed for, it creates a fresh
//! sender-key chain and sends the distribution message to every other member over the
//! pairwise sessions (so each copy is encrypted and authenticated like any message); then one
//! `SendGroup` ciphertext is fanned out by the server. When the membership changes
//! (`MembershipChanged`), the member drops its own chain, so the next send distributes a new
//! one to exactly the current members: a removed member cannot read what follows.

use confianza_api::{ErrorCode, Group, GroupId, GroupSummary, RequestBody, ResponseBody};
use confianza_protocol::sender_keys::{DistributionId, SenderKeyRecord};
use prost::Message as _;

use crate::account::{Client, ClientError, now_ms};
use crate::connection::{RequestError, task_rng};
use crate::content::{Body, Content, SenderKeyDistribution, Text};
use crate::limits::MAX_TEXT_LEN;
use crate::store::NewMessage;

/// The conversation name of a group in the history.
pub fn group_conversation(group_id: &GroupId) -> String {
    format!("group:{}", hex::encode(group_id.0))
}

/// What a group send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSendReport {
    pub revision: u64,
    pub server_timestamp_ms: u64,
    /// Members the sender key was (re)distributed to before this message.
    pub distributed_to: Vec<String>,
}

fn expect_group(body: ResponseBody) -> Result<Group, ClientError> {
    match body {
        ResponseBody::Group(group) => Ok(group),
        _ => Err(RequestError::UnexpectedResponse.into()),
    }
}

impl Client {
    /// Creates a group with the others in `members`; this device's account is its admin.
    pub async fn group_create(&self, name: &str, members: &[String]) -> Result<Group, ClientError> {
        expect_group(
            self.request(RequestBody::GroupCreate {
                name: name.to_owned(),
                members: members.to_vec(),
            })
            .await?,
        )
    }

    /// Adds members (admins only).
    pub async fn group_add(
        &self,
        group_id: GroupId,
        members: &[String],
    ) -> Result<Group, ClientError> {
        expect_group(
            self.request(RequestBody::GroupAddMembers {
                group_id,
                members: members.to_vec(),
            })
            .await?,
        )
    }

    /// Removes members (admins only).
    pub async fn group_remove(
        &self,
        group_id: GroupId,
        members: &[String],
    ) -> Result<Group, ClientError> {
        expect_group(
            self.request(RequestBody::GroupRemoveMembers {
                group_id,
                members: members.to_vec(),
            })
            .await?,
        )
    }

    /// Leaves a group and forgets this device's sender key for it.
    pub async fn group_leave(&self, group_id: GroupId) -> Result<(), ClientError> {
        match self.request(RequestBody::GroupLeave { group_id }).await? {
            ResponseBody::GroupLeft => {
                self.store
                    .reset_own_sender_key(
                        &self.account.address,
                        self.account.device_id,
                        &group_id.0,
                    )
                    .await?;
                Ok(())
            }
            _ => Err(RequestError::UnexpectedResponse.into()),
        }
    }

    /// The groups this account is in.
    pub async fn group_list(&self) -> Result<Vec<GroupSummary>, ClientError> {
        match self.request(RequestBody::GroupList).await? {
            ResponseBody::Groups(groups) => Ok(groups),
            _ => Err(RequestError::UnexpectedResponse.into()),
        }
    }

    /// A group's membership.
    pub async fn group_get(&self, group_id: GroupId) -> Result<Group, ClientError> {
        expect_group(self.request(RequestBody::GroupGet { group_id }).await?)
    }

    /// The group called `name` (the first one, if several share it).
    pub async fn find_group(&self, name: &str) -> Result<GroupSummary, ClientError> {
        self.group_list()
            .await?
            .into_iter()
            .find(|group| group.name == name)
            .ok_or_else(|| ClientError::Invalid(format!("no group named {name:?}")))
    }

    /// Distributes a fresh sender key to every other member if this device has not done so
    /// for the group's current revision. Returns who received it.
    async fn ensure_distributed(&self, group: &Group) -> Result<Vec<String>, ClientError> {
        let group_id = group.id.0;
        if self.store.distributed_revision(&group_id).await? == Some(group.revision)
            && self
                .store
                .sender_key(&self.account.address, self.account.device_id, &group_id)
                .await?
                .is_some()
        {
            return Ok(Vec::new());
        }
        let mut record = SenderKeyRecord::new();
        let distribution =
            record.create_distribution(DistributionId::from_bytes(group_id), &mut task_rng());
        self.store
            .save_sender_key(
                &self.account.address,
                self.account.device_id,
                &group_id,
                &record,
            )
            .await?;
        let mut sent_to = Vec::new();
        for member in &group.members {
            if member.address == self.account.address {
                continue;
            }
            let body = Body::SenderKeyDistribution(SenderKeyDistribution {
                group_id: group_id.to_vec(),
                revision: group.revision,
                message: distribution.serialized().to_vec(),
            });
            self.send_body(&member.address, body, None).await?;
            sent_to.push(member.address.clone());
        }
        self.store
            .set_distributed_revision(&group_id, group.revision)
            .await?;
        Ok(sent_to)
    }

    /// Sends a text to a group: one sender-key ciphertext the server fans out.
    pub async fn send_group_text(
        &self,
        group_id: GroupId,
        text: &str,
    ) -> Result<GroupSendReport, ClientError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(ClientError::Invalid(format!(
                "a message is at most {MAX_TEXT_LEN} bytes; this one is {}",
                text.len()
            )));
        }
        let body = Body::Text(Text {
            body: text.to_owned(),
            group_id: group_id.0.to_vec(),
        });
        self.send_group_body(group_id, body, ("text", text)).await
    }

    /// Encrypts `body` with this device's sender key for the group (distributing a fresh
    /// key first when the membership changed) and sends one ciphertext for the server to fan
    /// out; `history` (kind, text) is what the conversation shows.
    pub(crate) async fn send_group_body(
        &self,
        group_id: GroupId,
        body: Body,
        history: (&str, &str),
    ) -> Result<GroupSendReport, ClientError> {
        let (kind, text) = history;
        let sent_at_ms = now_ms();
        let content = Content {
            sent_at_ms,
            sender_certificate: Vec::new(),
            body: Some(body),
        };
        let plaintext = content.encode_to_vec();
        let mut client_message_id = [0u8; 16];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut client_message_id);
        let mut distributed_to = Vec::new();
        // A membership change between our read and our send is answered `Conflict`: read the
        // group again, redistribute, retry once.
        for attempt in 0..2 {
            let group = self.group_get(group_id).await?;
            if attempt > 0 {
                self.store
                    .reset_own_sender_key(
                        &self.account.address,
                        self.account.device_id,
                        &group_id.0,
                    )
                    .await?;
            }
            distributed_to.extend(self.ensure_distributed(&group).await?);
            let mut record = self
                .store
                .sender_key(&self.account.address, self.account.device_id, &group_id.0)
                .await?
                .unwrap_or_default();
            let message = record
                .encrypt(
                    DistributionId::from_bytes(group_id.0),
                    &plaintext,
                    &mut task_rng(),
                )
                .map_err(|error| ClientError::Protocol(error.to_string()))?;
            // Saved before sending: a chain key is never used twice.
            self.store
                .save_sender_key(
                    &self.account.address,
                    self.account.device_id,
                    &group_id.0,
                    &record,
                )
                .await?;
            let result = self
                .request(RequestBody::SendGroup {
                    group_id,
                    revision: group.revision,
                    body: message.serialized().to_vec(),
                    client_message_id,
                })
                .await;
            match result {
                Ok(ResponseBody::Sent {
                    server_timestamp_ms,
                    ..
                }) => {
                    let conversation = group_conversation(&group_id);
                    let recipients: Vec<String> = group
                        .members
                        .iter()
                        .filter(|member| member.address != self.account.address)
                        .map(|member| member.address.clone())
                        .collect();
                    self.store
                        .insert_outgoing_group(
                            &NewMessage {
                                conversation: &conversation,
                                outgoing: true,
                                peer: &conversation,
                                peer_device_id: 0,
                                client_message_id: &client_message_id,
                                kind,
                                body: text,
                                sent_at_ms,
                                server_at_ms: Some(server_timestamp_ms),
                                stored_at_ms: now_ms(),
                                verification: "certified",
                            },
                            &recipients,
                        )
                        .await?;
                    return Ok(GroupSendReport {
                        revision: group.revision,
                        server_timestamp_ms,
                        distributed_to,
                    });
                }
                Ok(_) => return Err(RequestError::UnexpectedResponse.into()),
                Err(ClientError::Request(RequestError::Refused(error)))
                    if error.code == ErrorCode::Conflict && attempt == 0 => {}
                Err(error) => return Err(error),
            }
        }
        Err(ClientError::Protocol(
            "the group kept changing while sending".into(),
        ))
    }
}
