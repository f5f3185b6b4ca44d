//! Groups, run on the connection thread.

use std::collections::{BTreeSet, HashSet};

use confianza_api::limits::{MAX_GROUP_MEMBERS, MAX_GROUPS_PER_LIST};
use confianza_api::{GroupId, GroupMember, GroupSummary};
use rusqlite::{Connection, OptionalExtension};

use super::super::rows::{col_array, col_u32, col_u64, db_int};
use super::{blob, read, write};
use crate::store::{GroupRecord, StoreError};

/// Reads a group's record; `None` if it does not exist.
fn load_group(tx: &Connection, id: GroupId) -> Result<Option<GroupRecord>, StoreError> {
    let Some((name, revision)) = name_and_revision(tx, id)? else {
        return Ok(None);
    };
    let mut statement = tx.prepare_cached(
        "SELECT address, admin FROM group_members WHERE group_id = ?1 \
         ORDER BY joined_revision, address",
    )?;
    let members = statement
        .query_map([&id.0[..]], |row| {
            Ok(GroupMember {
                address: row.get(0)?,
                admin: row.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(GroupRecord {
        id,
        name,
        revision: col_u64(revision, "revision")?,
        members,
    }))
}

fn name_and_revision(tx: &Connection, id: GroupId) -> Result<Option<(String, i64)>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT name, revision FROM chat_groups WHERE id = ?1")?
        .query_row([&id.0[..]], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

/// A group that must exist, read after a write.
fn reload(tx: &Connection, id: GroupId) -> Result<GroupRecord, StoreError> {
    load_group(tx, id)?.ok_or_else(|| StoreError::NotFound("group".to_owned()))
}

/// Checks that every account in `addresses` exists: `NotFound` names the first that does not.
fn require_accounts(tx: &Connection, addresses: &[String]) -> Result<(), StoreError> {
    let mut exists = tx.prepare_cached("SELECT 1 FROM devices WHERE address = ?1 LIMIT 1")?;
    for address in addresses {
        if !exists.exists([address])? {
            return Err(StoreError::NotFound(format!("account {address}")));
        }
    }
    Ok(())
}

/// Inserts members joining at `revision`.
fn insert_members(
    tx: &Connection,
    id: GroupId,
    members: &[(String, bool)],
    revision: i64,
) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO group_members (group_id, address, admin, joined_revision) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (address, admin) in members {
        insert.execute((&id.0[..], address, admin, revision))?;
    }
    Ok(())
}

fn set_revision(tx: &Connection, id: GroupId, revision: i64) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE chat_groups SET revision = ?2 WHERE id = ?1")?
        .execute((&id.0[..], revision))?;
    Ok(())
}

/// After members went: deletes the group if it is empty, else makes sure an admin remains (the
/// earliest member is promoted), then sets the revision. Returns the record.
fn settle_group(
    tx: &Connection,
    id: GroupId,
    name: String,
    revision: i64,
) -> Result<GroupRecord, StoreError> {
    let remaining: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM group_members WHERE group_id = ?1")?
        .query_row([&id.0[..]], |row| row.get(0))?;
    if remaining == 0 {
        tx.prepare_cached("DELETE FROM chat_groups WHERE id = ?1")?
            .execute([&id.0[..]])?;
        return Ok(GroupRecord {
            id,
            name,
            revision: col_u64(revision, "revision")?,
            members: Vec::new(),
        });
    }
    tx.prepare_cached(
        "UPDATE group_members SET admin = 1 WHERE group_id = ?1 \
         AND NOT EXISTS (SELECT 1 FROM group_members WHERE group_id = ?1 AND admin) \
         AND address = (SELECT address FROM group_members WHERE group_id = ?1 \
                        ORDER BY joined_revision, address LIMIT 1)",
    )?
    .execute([&id.0[..]])?;
    set_revision(tx, id, revision)?;
    reload(tx, id)
}

/// Removes `members` from a group (those not in it are ignored) and settles it. `None` when
/// nobody was removed.
fn remove_from_group(
    tx: &Connection,
    id: GroupId,
    name: String,
    revision: i64,
    members: &[String],
) -> Result<Option<GroupRecord>, StoreError> {
    let mut delete =
        tx.prepare_cached("DELETE FROM group_members WHERE group_id = ?1 AND address = ?2")?;
    let mut removed = 0;
    for member in members.iter().collect::<BTreeSet<_>>() {
        removed += delete.execute((&id.0[..], member))?;
    }
    if removed == 0 {
        return Ok(None);
    }
    settle_group(tx, id, name, revision.saturating_add(1)).map(Some)
}

/// The group's name and revision, and whether `address` is a member and an admin.
fn group_and_role(
    tx: &Connection,
    id: GroupId,
    address: &str,
) -> Result<(String, i64, Option<bool>), StoreError> {
    let (name, revision) =
        name_and_revision(tx, id)?.ok_or_else(|| StoreError::NotFound("group".to_owned()))?;
    let admin: Option<bool> = tx
        .prepare_cached("SELECT admin FROM group_members WHERE group_id = ?1 AND address = ?2")?
        .query_row((&id.0[..], address), |row| row.get(0))
        .optional()?;
    Ok((name, revision, admin))
}

fn too_many() -> StoreError {
    StoreError::Conflict(format!("a group has at most {MAX_GROUP_MEMBERS} members"))
}

pub(super) fn create_group(
    connection: &mut Connection,
    id: GroupId,
    name: &str,
    creator: &str,
    members: &[String],
) -> Result<GroupRecord, StoreError> {
    let others: BTreeSet<&String> = members.iter().filter(|m| *m != creator).collect();
    if others.len() + 1 > MAX_GROUP_MEMBERS {
        return Err(too_many());
    }
    let tx = write(connection)?;
    let exists = tx
        .prepare_cached("SELECT 1 FROM chat_groups WHERE id = ?1")?
        .exists([&id.0[..]])?;
    if exists {
        return Err(StoreError::Conflict("group id already taken".to_owned()));
    }
    let rows: Vec<(String, bool)> = std::iter::once((creator.to_owned(), true))
        .chain(others.into_iter().map(|m| (m.clone(), false)))
        .collect();
    let addresses: Vec<String> = rows.iter().map(|(m, _)| m.clone()).collect();
    require_accounts(&tx, &addresses)?;
    tx.prepare_cached("INSERT INTO chat_groups (id, name, revision) VALUES (?1, ?2, 1)")?
        .execute((&id.0[..], name))?;
    insert_members(&tx, id, &rows, 1)?;
    let record = reload(&tx, id)?;
    tx.commit()?;
    Ok(record)
}

pub(super) fn add_members(
    connection: &mut Connection,
    id: GroupId,
    actor: &str,
    members: &[String],
) -> Result<GroupRecord, StoreError> {
    let tx = write(connection)?;
    let (_, revision, role) = group_and_role(&tx, id, actor)?;
    if role != Some(true) {
        return Err(StoreError::Forbidden(
            "only a group admin adds members".to_owned(),
        ));
    }
    let current: HashSet<String> = tx
        .prepare_cached("SELECT address FROM group_members WHERE group_id = ?1")?
        .query_map([&id.0[..]], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let new: Vec<String> = members
        .iter()
        .filter(|m| !current.contains(*m))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();
    if !new.is_empty() {
        if current.len() + new.len() > MAX_GROUP_MEMBERS {
            return Err(too_many());
        }
        require_accounts(&tx, &new)?;
        let revision = revision.saturating_add(1);
        let rows: Vec<(String, bool)> = new.into_iter().map(|m| (m, false)).collect();
        insert_members(&tx, id, &rows, revision)?;
        set_revision(&tx, id, revision)?;
    }
    let record = reload(&tx, id)?;
    tx.commit()?;
    Ok(record)
}

pub(super) fn remove_members(
    connection: &mut Connection,
    id: GroupId,
    actor: &str,
    members: &[String],
) -> Result<GroupRecord, StoreError> {
    let tx = write(connection)?;
    let (name, revision, role) = group_and_role(&tx, id, actor)?;
    if role != Some(true) {
        return Err(StoreError::Forbidden(
            "only a group admin removes members".to_owned(),
        ));
    }
    let record = match remove_from_group(&tx, id, name, revision, members)? {
        Some(record) => record,
        None => reload(&tx, id)?,
    };
    tx.commit()?;
    Ok(record)
}

pub(super) fn leave_group(
    connection: &mut Connection,
    id: GroupId,
    member: &str,
) -> Result<GroupRecord, StoreError> {
    let tx = write(connection)?;
    let (name, revision, role) = group_and_role(&tx, id, member)?;
    if role.is_none() {
        return Err(StoreError::Forbidden(
            "not a member of the group".to_owned(),
        ));
    }
    let record = remove_from_group(&tx, id, name, revision, &[member.to_owned()])?
        .ok_or_else(|| StoreError::Forbidden("not a member of the group".to_owned()))?;
    tx.commit()?;
    Ok(record)
}

pub(super) fn group(
    connection: &mut Connection,
    id: GroupId,
) -> Result<Option<GroupRecord>, StoreError> {
    // Two reads: run them in one transaction so they see one snapshot.
    let tx = read(connection)?;
    let record = load_group(&tx, id)?;
    tx.commit()?;
    Ok(record)
}

pub(super) fn groups_of(
    connection: &mut Connection,
    address: &str,
) -> Result<Vec<GroupSummary>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT g.id, g.name, g.revision, \
                (SELECT COUNT(*) FROM group_members c WHERE c.group_id = g.id) \
         FROM group_members m JOIN chat_groups g ON g.id = m.group_id \
         WHERE m.address = ?1 ORDER BY g.id LIMIT ?2",
    )?;
    let mut rows = statement.query((address, db_int(MAX_GROUPS_PER_LIST as u64)))?;
    let mut groups = Vec::new();
    while let Some(row) = rows.next()? {
        groups.push(GroupSummary {
            id: GroupId(col_array(blob(row, 0, "group id")?, "group id")?),
            name: row.get(1)?,
            revision: col_u64(row.get(2)?, "revision")?,
            member_count: col_u32(row.get(3)?, "member count")?,
        });
    }
    Ok(groups)
}
