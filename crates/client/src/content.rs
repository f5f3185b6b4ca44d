//! The decrypted content of a message (`proto/content.proto`).

#[allow(clippy::all, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/confianza.content.v1.rs"));
}

pub use generated::content::Body;
pub use generated::{
    AttachmentPointer, CallAnswer, CallOffer, Content, GroupChange, Receipt, ReceiptType,
    SenderKeyDistribution, Text,
};
