//! How a stored message reads in a transcript, whoever prints it: `chat` draws these parts
//! in its message pane, `history` prints them one message a line, `receive` names bodies the
//! same way.

use confianza_client::store::StoredMessage;

/// Who wrote one of this user's own messages.
pub const ME: &str = "me";
/// The history kind of a message that carries an attachment.
pub const ATTACHMENT_KIND: &str = "attachment";

/// Who wrote `message`: [`ME`], or the sender's address.
pub fn author(message: &StoredMessage) -> &str {
    if message.outgoing { ME } else { &message.peer }
}

/// The body as shown: the text, an attachment by its file name, a refused message with why,
/// else the kind in parentheses (a call offer, a group change).
pub fn body(message: &StoredMessage) -> String {
    match message.kind.as_str() {
        "text" => message.body.clone(),
        "refused" => format!("(refused: {})", message.body),
        ATTACHMENT_KIND => format!("(attachment {:?})", message.body),
        other => format!("({other})"),
    }
}

/// The state beside a message: for one of this user's, how far it got (`sent`, `delivered`,
/// `read`, or for a group message `delivered to D of N` then `read by R of N` members); for an
/// incoming one, what was known of its sender's identity key.
pub fn state(message: &StoredMessage) -> String {
    if !message.outgoing {
        return message.verification.clone();
    }
    match message.group_receipts {
        Some(receipts) if receipts.read > 0 => {
            format!("read by {} of {}", receipts.read, receipts.recipients)
        }
        Some(receipts) if receipts.delivered > 0 => {
            format!(
                "delivered to {} of {}",
                receipts.delivered, receipts.recipients
            )
        }
        _ if message.read => "read".to_owned(),
        _ if message.delivered => "delivered".to_owned(),
        _ => "sent".to_owned(),
    }
}

/// When the message was accepted by the server (else when it was written), in UTC.
pub fn time(message: &StoredMessage) -> String {
    super::profile::format_time(message.server_at_ms.unwrap_or(message.sent_at_ms))
}

#[cfg(test)]
mod tests {
    use confianza_client::store::GroupReceipts;

    use super::*;

    fn outgoing(
        group_receipts: Option<GroupReceipts>,
        delivered: bool,
        read: bool,
    ) -> StoredMessage {
        StoredMessage {
            id: 1,
            conversation: "group:00".into(),
            outgoing: true,
            peer: "group:00".into(),
            peer_device_id: 0,
            client_message_id: vec![0; 16],
            kind: "text".into(),
            body: "hello".into(),
            sent_at_ms: 0,
            server_at_ms: Some(1_000),
            verification: "certified".into(),
            delivered,
            read,
            group_receipts,
        }
    }

    #[test]
    fn a_group_message_is_delivered_and_read_per_member() {
        let receipts = |delivered, read| {
            Some(GroupReceipts {
                recipients: 3,
                delivered,
                read,
            })
        };
        assert_eq!(
            state(&outgoing(receipts(3, 2), true, true)),
            "read by 2 of 3"
        );
        assert_eq!(
            state(&outgoing(receipts(3, 3), true, true)),
            "read by 3 of 3"
        );
        // A read receipt can come before the server's delivery receipt: read wins.
        assert_eq!(
            state(&outgoing(receipts(0, 1), false, true)),
            "read by 1 of 3"
        );
        assert_eq!(
            state(&outgoing(receipts(1, 0), true, false)),
            "delivered to 1 of 3"
        );
        assert_eq!(
            state(&outgoing(receipts(3, 0), true, false)),
            "delivered to 3 of 3"
        );
        assert_eq!(state(&outgoing(receipts(0, 0), false, false)), "sent");
        // Sent before per-member state was kept: read by at least one member.
        assert_eq!(state(&outgoing(None, false, true)), "read");
        assert_eq!(state(&outgoing(None, true, false)), "delivered");
    }

    #[test]
    fn incoming_messages_show_their_sender_and_verification() {
        let mut message = outgoing(None, false, false);
        message.outgoing = false;
        message.peer = "bob@example.org".into();
        message.kind = ATTACHMENT_KIND.into();
        message.body = "photo.jpg".into();
        assert_eq!(author(&message), "bob@example.org");
        assert_eq!(state(&message), "certified");
        assert_eq!(body(&message), "(attachment \"photo.jpg\")");
        assert_eq!(time(&message), "1970-01-01 00:00:01 UTC");
    }
}
