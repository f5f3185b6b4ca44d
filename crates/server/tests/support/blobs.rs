//! Blob creations racing for one account's quota, shared by `service_blobs` (one node) and
//! `two_nodes` (devices spread over both nodes).

use std::collections::HashSet;

use confianza_api::{BlobId, ErrorCode, RequestBody, ResponseBody};

use super::TestClient;

/// What racing creations ended with.
pub struct RacingCreations {
    /// The devices, kept connected for whatever the test checks next.
    pub devices: Vec<TestClient>,
    /// The blobs created; an id handed out twice fails the test.
    pub created: HashSet<BlobId>,
    /// How many creations were refused over the quota; any other refusal fails the test.
    pub refused: usize,
}

/// Every device sends `each` creations of `size` bytes before reading any answer, all devices
/// at once, so that the creations interleave as much as they can.
pub async fn create_blobs_racing(
    devices: Vec<TestClient>,
    each: usize,
    size: u64,
) -> RacingCreations {
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|mut device| {
            tokio::spawn(async move {
                let mut requests = Vec::new();
                for _ in 0..each {
                    requests.push(device.send_request(RequestBody::BlobCreate { size }).await);
                }
                let mut outcomes = Vec::new();
                for request in requests {
                    outcomes.push(match device.response(request).await.result {
                        Ok(ResponseBody::BlobCreated { blob_id, .. }) => Ok(blob_id),
                        Ok(other) => panic!("not BlobCreated: {other:?}"),
                        Err(error) => Err(error.code),
                    });
                }
                (device, outcomes)
            })
        })
        .collect();
    let mut racing = RacingCreations {
        devices: Vec::new(),
        created: HashSet::new(),
        refused: 0,
    };
    for task in tasks {
        let (device, outcomes) = task.await.expect("creator");
        racing.devices.push(device);
        for outcome in outcomes {
            match outcome {
                Ok(blob_id) => assert!(racing.created.insert(blob_id), "one id twice"),
                Err(ErrorCode::QuotaExceeded) => racing.refused += 1,
                Err(other) => panic!("unexpected refusal {other:?}"),
            }
        }
    }
    racing
}
