//! Devices and the prekey directory, run on the connection thread.

use confianza_api::{KyberPreKey, NoisePublicKey, OneTimePreKey, PreKeyCount, PreKeyUpload};
use confianza_api::{KyberPublicKey, SignedPreKey};
use rusqlite::{Connection, OptionalExtension, Row};

use super::super::rows::{col_array, col_kyber, col_u32, col_u64, db_int};
use super::{blob, device_row, is_unique_violation, write};
use crate::store::{ClaimedPreKeys, Device, DeviceAddress, NewDevice, StoreError};

const DEVICE_COLUMNS: &str = "address, device_id, registration_id, noise_key, identity_key, \
                              certificate, created_at_ms, last_seen_ms";

/// A device from a row of [`DEVICE_COLUMNS`].
fn device_from_row(row: &Row<'_>) -> Result<Device, StoreError> {
    Ok(Device {
        address: DeviceAddress {
            address: row.get(0)?,
            device_id: col_u32(row.get(1)?, "device_id")?,
        },
        registration_id: col_u32(row.get(2)?, "registration_id")?,
        noise_key: col_array(blob(row, 3, "noise_key")?, "noise_key")?,
        identity_key: col_array(blob(row, 4, "identity_key")?, "identity_key")?,
        certificate: blob(row, 5, "certificate")?.to_vec(),
        created_at_ms: col_u64(row.get(6)?, "created_at_ms")?,
        last_seen_ms: col_u64(row.get(7)?, "last_seen_ms")?,
    })
}

pub(super) fn enroll(connection: &mut Connection, device: NewDevice) -> Result<Device, StoreError> {
    let tx = write(connection)?;
    let taken: Option<i64> = tx
        .prepare_cached("SELECT id FROM devices WHERE noise_key = ?1")?
        .query_row([&device.noise_key[..]], |row| row.get(0))
        .optional()?;
    if taken.is_some() {
        return Err(StoreError::Conflict(
            "Noise key already registered".to_owned(),
        ));
    }
    let device_id: i64 = tx
        .prepare_cached(
            "INSERT INTO devices (address, device_id, registration_id, noise_key, identity_key, \
                                  certificate, created_at_ms, last_seen_ms) \
             SELECT ?1, COALESCE(MAX(device_id), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?6 \
             FROM devices WHERE address = ?1 \
             RETURNING device_id",
        )?
        .query_row(
            (
                &device.address,
                device.registration_id,
                &device.noise_key[..],
                &device.identity_key[..],
                &device.certificate,
                db_int(device.now_ms),
            ),
            |row| row.get(0),
        )?;
    let device_id = col_u32(device_id, "device_id")?;
    tx.commit()?;
    Ok(Device {
        address: DeviceAddress {
            address: device.address,
            device_id,
        },
        registration_id: device.registration_id,
        noise_key: device.noise_key,
        identity_key: device.identity_key,
        certificate: device.certificate,
        created_at_ms: device.now_ms,
        last_seen_ms: device.now_ms,
    })
}

pub(super) fn device_by_noise_key(
    connection: &mut Connection,
    key: &NoisePublicKey,
) -> Result<Option<Device>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE noise_key = ?1"
    ))?;
    let mut rows = statement.query([&key[..]])?;
    rows.next()?.map(device_from_row).transpose()
}

pub(super) fn devices(
    connection: &mut Connection,
    address: &str,
) -> Result<Vec<Device>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE address = ?1 ORDER BY device_id"
    ))?;
    let mut rows = statement.query([address])?;
    let mut devices = Vec::new();
    while let Some(row) = rows.next()? {
        devices.push(device_from_row(row)?);
    }
    Ok(devices)
}

pub(super) fn set_certificate(
    connection: &mut Connection,
    device: &DeviceAddress,
    certificate: &[u8],
) -> Result<(), StoreError> {
    let updated = connection
        .prepare_cached(
            "UPDATE devices SET certificate = ?3 WHERE address = ?1 AND device_id = ?2",
        )?
        .execute((&device.address, device.device_id, certificate))?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("device {device:?}")));
    }
    Ok(())
}

pub(super) fn touch(
    connection: &mut Connection,
    device: &DeviceAddress,
    now_ms: u64,
) -> Result<(), StoreError> {
    let updated = connection
        .prepare_cached(
            "UPDATE devices SET last_seen_ms = ?3 WHERE address = ?1 AND device_id = ?2",
        )?
        .execute((&device.address, device.device_id, db_int(now_ms)))?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("device {device:?}")));
    }
    Ok(())
}

/// Runs an insert of a one-time key: a key id already present is `Conflict`.
fn insert_key(result: rusqlite::Result<usize>, what: &str) -> Result<(), StoreError> {
    match result {
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Conflict(format!("{what} id already present")))
        }
        other => other.map(|_| ()).map_err(StoreError::from),
    }
}

pub(super) fn upload_pre_keys(
    connection: &mut Connection,
    device: &DeviceAddress,
    upload: &PreKeyUpload,
) -> Result<(), StoreError> {
    let tx = write(connection)?;
    let row = device_row(&tx, device)?
        .ok_or_else(|| StoreError::NotFound(format!("device {device:?}")))?;
    if let Some(key) = &upload.signed_pre_key {
        tx.prepare_cached(
            "INSERT INTO signed_pre_keys (device, key_id, public_key, signature) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (device) DO UPDATE SET key_id = excluded.key_id, \
             public_key = excluded.public_key, signature = excluded.signature",
        )?
        .execute((row, key.id, &key.public_key[..], &key.signature[..]))?;
    }
    if !upload.one_time_pre_keys.is_empty() {
        let mut insert = tx.prepare_cached(
            "INSERT INTO one_time_pre_keys (device, key_id, public_key) VALUES (?1, ?2, ?3)",
        )?;
        for key in &upload.one_time_pre_keys {
            insert_key(
                insert.execute((row, key.id, &key.public_key[..])),
                "one-time prekey",
            )?;
        }
    }
    if !upload.kyber_pre_keys.is_empty() {
        let mut insert = tx.prepare_cached(
            "INSERT INTO kyber_pre_keys (device, key_id, public_key, signature) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for key in &upload.kyber_pre_keys {
            insert_key(
                insert.execute((
                    row,
                    key.id,
                    &key.public_key.as_bytes()[..],
                    &key.signature[..],
                )),
                "Kyber prekey",
            )?;
        }
    }
    if let Some(key) = &upload.kyber_last_resort {
        tx.prepare_cached(
            "INSERT INTO kyber_last_resort_keys \
                 (device, key_id, public_key, signature, last_resort_used) \
             VALUES (?1, ?2, ?3, ?4, 0) \
             ON CONFLICT (device) DO UPDATE SET key_id = excluded.key_id, \
             public_key = excluded.public_key, signature = excluded.signature, \
             last_resort_used = 0",
        )?
        .execute((
            row,
            key.id,
            &key.public_key.as_bytes()[..],
            &key.signature[..],
        ))?;
    }
    tx.commit()?;
    Ok(())
}

/// A Kyber key from `(key_id, public_key, signature)` columns starting at `first`.
fn kyber_from_row(row: &Row<'_>, first: usize) -> Result<KyberPreKey, StoreError> {
    let public_key: KyberPublicKey = col_kyber(blob(row, first + 1, "public_key")?, "public_key")?;
    Ok(KyberPreKey {
        id: col_u32(row.get(first)?, "key_id")?,
        public_key,
        signature: col_array(blob(row, first + 2, "signature")?, "signature")?,
    })
}

pub(super) fn claim_pre_keys(
    connection: &mut Connection,
    device: &DeviceAddress,
) -> Result<Option<ClaimedPreKeys>, StoreError> {
    let tx = write(connection)?;
    // Everything is decoded before the commit: a corrupt row rolls the claim back.
    let bundle = {
        let mut statement = tx.prepare_cached(
            "SELECT d.id, d.registration_id, d.identity_key, d.certificate, \
                    s.key_id, s.public_key, s.signature, k.key_id, k.public_key, k.signature \
             FROM devices d \
             JOIN signed_pre_keys s ON s.device = d.id \
             JOIN kyber_last_resort_keys k ON k.device = d.id \
             WHERE d.address = ?1 AND d.device_id = ?2",
        )?;
        let mut rows = statement.query((&device.address, device.device_id))?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let device_row: i64 = row.get(0)?;
        let registration_id = col_u32(row.get(1)?, "registration_id")?;
        let identity_key = col_array(blob(row, 2, "identity_key")?, "identity_key")?;
        let certificate = blob(row, 3, "certificate")?.to_vec();
        let signed_pre_key = SignedPreKey {
            id: col_u32(row.get(4)?, "key_id")?,
            public_key: col_array(blob(row, 5, "public_key")?, "public_key")?,
            signature: col_array(blob(row, 6, "signature")?, "signature")?,
        };
        let last_resort = kyber_from_row(row, 7)?;
        (
            device_row,
            registration_id,
            identity_key,
            certificate,
            signed_pre_key,
            last_resort,
        )
    };
    let (row, registration_id, identity_key, certificate, signed_pre_key, last_resort) = bundle;
    let one_time_pre_key = {
        let mut statement = tx.prepare_cached(
            "DELETE FROM one_time_pre_keys WHERE id = \
                 (SELECT id FROM one_time_pre_keys WHERE device = ?1 ORDER BY key_id LIMIT 1) \
             RETURNING key_id, public_key",
        )?;
        let mut rows = statement.query([row])?;
        match rows.next()? {
            Some(key) => Some(OneTimePreKey {
                id: col_u32(key.get(0)?, "key_id")?,
                public_key: col_array(blob(key, 1, "public_key")?, "public_key")?,
            }),
            None => None,
        }
    };
    let one_time_kyber = {
        let mut statement = tx.prepare_cached(
            "DELETE FROM kyber_pre_keys WHERE id = \
                 (SELECT id FROM kyber_pre_keys WHERE device = ?1 ORDER BY key_id LIMIT 1) \
             RETURNING key_id, public_key, signature",
        )?;
        let mut rows = statement.query([row])?;
        match rows.next()? {
            Some(key) => Some(kyber_from_row(key, 0)?),
            None => None,
        }
    };
    let kyber_is_last_resort = one_time_kyber.is_none();
    let kyber_pre_key = match one_time_kyber {
        Some(key) => key,
        None => {
            tx.prepare_cached(
                "UPDATE kyber_last_resort_keys SET last_resort_used = 1 WHERE device = ?1",
            )?
            .execute([row])?;
            last_resort
        }
    };
    tx.commit()?;
    Ok(Some(ClaimedPreKeys {
        registration_id,
        identity_key,
        certificate,
        signed_pre_key,
        one_time_pre_key,
        kyber_pre_key,
        kyber_is_last_resort,
    }))
}

pub(super) fn pre_key_count(
    connection: &mut Connection,
    device: &DeviceAddress,
) -> Result<PreKeyCount, StoreError> {
    let row: Option<(i64, i64, bool)> = connection
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM one_time_pre_keys WHERE device = d.id), \
                    (SELECT COUNT(*) FROM kyber_pre_keys WHERE device = d.id), \
                    COALESCE((SELECT last_resort_used FROM kyber_last_resort_keys \
                              WHERE device = d.id), 0) \
             FROM devices d WHERE d.address = ?1 AND d.device_id = ?2",
        )?
        .query_row((&device.address, device.device_id), |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let (one_time, kyber_one_time, kyber_last_resort_used) =
        row.ok_or_else(|| StoreError::NotFound(format!("device {device:?}")))?;
    Ok(PreKeyCount {
        one_time: col_u32(one_time, "count")?,
        kyber_one_time: col_u32(kyber_one_time, "count")?,
        kyber_last_resort_used,
    })
}
