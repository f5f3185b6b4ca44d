//! `confianza group`: groups whose membership the server keeps and whose messages travel
//! under Signal sender keys (one ciphertext, fanned out by the server).

use anyhow::{Context, Result};
use clap::Subcommand;
use confianza_api::Group;
use confianza_client::account::Client;

use super::profile::{self, Globals};

/// `confianza group …`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates a group with these members; you are its admin.
    Create {
        /// The group's name.
        name: String,
        /// The other members, user@domain.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Adds members (admins only).
    Add {
        /// The group's name.
        name: String,
        /// The members to add.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Removes members (admins only); the others then use new sender keys.
    Remove {
        /// The group's name.
        name: String,
        /// The members to remove.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Leaves a group.
    Leave {
        /// The group's name.
        name: String,
    },
    /// Lists your groups with their members.
    List,
}

fn print_group(group: &Group) {
    let members: Vec<String> = group
        .members
        .iter()
        .map(|member| match member.admin {
            true => format!("{} (admin)", member.address),
            false => member.address.clone(),
        })
        .collect();
    println!(
        "{}: {} member{}: {}",
        group.name,
        members.len(),
        if members.len() == 1 { "" } else { "s" },
        members.join(", ")
    );
}

async fn find(client: &Client, name: &str) -> Result<confianza_api::GroupId> {
    Ok(client
        .find_group(name)
        .await
        .with_context(|| format!("cannot find group {name:?}"))?
        .id)
}

/// Runs `confianza group`.
pub fn run(globals: &Globals, command: Command) -> Result<()> {
    profile::block_on(profile::with_connected(globals, async |client| {
        match command {
            Command::Create { name, members } => {
                let group = client
                    .group_create(&name, &members)
                    .await
                    .with_context(|| format!("cannot create group {name:?}"))?;
                print_group(&group);
            }
            Command::Add { name, members } => {
                let id = find(client, &name).await?;
                let group = client
                    .group_add(id, &members)
                    .await
                    .with_context(|| format!("cannot add to group {name:?}"))?;
                print_group(&group);
            }
            Command::Remove { name, members } => {
                let id = find(client, &name).await?;
                let group = client
                    .group_remove(id, &members)
                    .await
                    .with_context(|| format!("cannot remove from group {name:?}"))?;
                print_group(&group);
            }
            Command::Leave { name } => {
                let id = find(client, &name).await?;
                client
                    .group_leave(id)
                    .await
                    .with_context(|| format!("cannot leave group {name:?}"))?;
                println!("left {name}");
            }
            Command::List => {
                let groups = client.group_list().await.context("cannot list groups")?;
                if groups.is_empty() {
                    eprintln!("no groups");
                }
                for summary in groups {
                    let group = client
                        .group_get(summary.id)
                        .await
                        .with_context(|| format!("cannot read group {:?}", summary.name))?;
                    print_group(&group);
                }
            }
        }
        Ok(())
    }))
}
