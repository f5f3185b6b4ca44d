//! Protocol addresses: a name (Signal uses service-id strings) and a device id.

/// Who a session is with: an account name and one of its devices.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolAddress {
    pub name: String,
    pub device_id: u32,
}

impl ProtocolAddress {
    pub fn new(name: impl Into<String>, device_id: u32) -> Self {
        Self {
            name: name.into(),
            device_id,
        }
    }

    /// Signal's 17-byte fixed-width service id: kind (0x00 ACI, 0x01 PNI) then 16 UUID bytes.
    /// `None` when the name is not a service-id string (`<uuid>` or `PNI:<uuid>`).
    pub fn service_id_binary(&self) -> Option<[u8; 17]> {
        let (kind, uuid) = match self.name.strip_prefix("PNI:") {
            Some(rest) => (0x01, rest),
            None => (0x00, self.name.as_str()),
        };
        let mut out = [0u8; 17];
        out[0] = kind;
        let hex: Vec<u8> = uuid.bytes().filter(|&b| b != b'-').collect();
        if uuid.len() != 36 || hex.len() != 32 {
            return None;
        }
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).ok()?;
            out[1 + i] = u8::from_str_radix(text, 16).ok()?;
        }
        Some(out)
    }
}

/// The 36-byte `addresses` binding of a SignalMessage (field 6): sender service id, sender
/// device, recipient service id, recipient device. `None` when either name is not a service id
/// or a device id does not fit in a byte.
pub fn address_binding(sender: &ProtocolAddress, recipient: &ProtocolAddress) -> Option<[u8; 36]> {
    let mut out = [0u8; 36];
    out[..17].copy_from_slice(&sender.service_id_binary()?);
    out[17] = u8::try_from(sender.device_id).ok()?;
    out[18..35].copy_from_slice(&recipient.service_id_binary()?);
    out[35] = u8::try_from(recipient.device_id).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids() {
        let aci = ProtocolAddress::new("9d0652a3-dcc3-4d11-975f-74d61598733f", 1);
        let bytes = aci.service_id_binary().expect("a UUID is an ACI");
        assert_eq!(bytes[0], 0);
        assert_eq!(bytes[1], 0x9d);
        let pni = ProtocolAddress::new("PNI:9d0652a3-dcc3-4d11-975f-74d61598733f", 2);
        assert_eq!(pni.service_id_binary().map(|b| b[0]), Some(1));
        assert!(
            ProtocolAddress::new("alice", 1)
                .service_id_binary()
                .is_none()
        );
        assert!(address_binding(&aci, &pni).is_some());
        assert!(address_binding(&aci, &ProtocolAddress::new("bob", 1)).is_none());
    }
}
