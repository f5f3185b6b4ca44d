//! Groups: create, add and remove members (admins), leave, list, get. Every membership change
//! is announced to the members before and after it, so they redistribute their sender keys.

use std::collections::BTreeSet;

use confianza_api::limits::{MAX_GROUP_MEMBERS, MAX_GROUPS_PER_LIST};
use confianza_api::{ErrorCode, Group, GroupId, Notice, ResponseBody};
use rand::Rng;

use crate::service::error::Failure;
use crate::service::events::{Event, NoticeTarget};
use crate::service::session::Session;
use crate::store::{GroupRecord, MessageStore};

fn to_api(record: GroupRecord) -> Group {
    Group {
        id: record.id,
        name: record.name,
        revision: record.revision,
        members: record.members,
    }
}

impl<S: MessageStore + Clone> Session<S> {
    pub(crate) async fn group_create(
        &mut self,
        name: String,
        members: Vec<String>,
    ) -> Result<ResponseBody, Failure> {
        let me = self.me()?;
        let others: BTreeSet<String> = members
            .into_iter()
            .filter(|member| *member != me.address)
            .collect();
        if others.len() + 1 > MAX_GROUP_MEMBERS {
            return Err(Failure::refuse(
                ErrorCode::TooLarge,
                format!("a group has at most {MAX_GROUP_MEMBERS} members"),
            ));
        }
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let others: Vec<String> = others.into_iter().collect();
        let record = self
            .shared
            .store
            .create_group(GroupId(id), &name, &me.address, &others)
            .await?;
        self.announce(&record, []);
        Ok(ResponseBody::Group(to_api(record)))
    }

    pub(crate) async fn group_add(
        &mut self,
        group_id: GroupId,
        members: Vec<String>,
    ) -> Result<ResponseBody, Failure> {
        let me = self.me()?;
        let current = self.member_view(group_id, &me.address).await?;
        let joined: BTreeSet<&String> = current
            .members
            .iter()
            .map(|member| &member.address)
            .chain(members.iter())
            .collect();
        if joined.len() > MAX_GROUP_MEMBERS {
            return Err(Failure::refuse(
                ErrorCode::TooLarge,
                format!("a group has at most {MAX_GROUP_MEMBERS} members"),
            ));
        }
        let record = self
            .shared
            .store
            .add_members(group_id, &me.address, &members)
            .await?;
        self.announce(&record, []);
        Ok(ResponseBody::Group(to_api(record)))
    }

    pub(crate) async fn group_remove(
        &mut self,
        group_id: GroupId,
        members: Vec<String>,
    ) -> Result<ResponseBody, Failure> {
        let me = self.me()?;
        self.member_view(group_id, &me.address).await?;
        let record = self
            .shared
            .store
            .remove_members(group_id, &me.address, &members)
            .await?;
        self.announce(&record, members.iter().map(String::as_str));
        Ok(ResponseBody::Group(to_api(record)))
    }

    pub(crate) async fn group_leave(&mut self, group_id: GroupId) -> Result<ResponseBody, Failure> {
        let me = self.me()?;
        let record = self.shared.store.leave_group(group_id, &me.address).await?;
        self.announce(&record, [me.address.as_str()]);
        Ok(ResponseBody::GroupLeft)
    }

    pub(crate) async fn group_list(&mut self) -> Result<ResponseBody, Failure> {
        let me = self.me()?;
        let mut groups = self.shared.store.groups_of(&me.address).await?;
        groups.truncate(MAX_GROUPS_PER_LIST);
        Ok(ResponseBody::Groups(groups))
    }

    pub(crate) async fn group_get(&mut self, group_id: GroupId) -> Result<ResponseBody, Failure> {
        let me = self.me()?;
        let record = self.member_view(group_id, &me.address).await?;
        Ok(ResponseBody::Group(to_api(record)))
    }

    /// The group, if `address` is a member: outsiders learn nothing about it.
    async fn member_view(&self, group_id: GroupId, address: &str) -> Result<GroupRecord, Failure> {
        let record = self
            .shared
            .store
            .group(group_id)
            .await?
            .ok_or_else(|| Failure::refuse(ErrorCode::NotFound, "no such group"))?;
        if !record
            .members
            .iter()
            .any(|member| member.address == address)
        {
            return Err(Failure::refuse(
                ErrorCode::Forbidden,
                "not a member of this group",
            ));
        }
        Ok(record)
    }

    /// Tells the members (and those who just left) that the membership changed.
    fn announce<'a>(&self, record: &'a GroupRecord, former: impl IntoIterator<Item = &'a str>) {
        let notice = Notice::MembershipChanged {
            group_id: record.id,
            revision: record.revision,
        };
        let accounts: BTreeSet<&str> = record
            .members
            .iter()
            .map(|member| member.address.as_str())
            .chain(former)
            .collect();
        self.shared.bus.publish(
            accounts
                .into_iter()
                .map(|address| Event::Notice {
                    to: NoticeTarget::Account(address.to_owned()),
                    notice: notice.clone(),
                })
                .collect(),
        );
    }
}
