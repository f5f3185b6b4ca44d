//! Where a profile lives: `$CONFIANZA_HOME/NAME`, else `$XDG_DATA_HOME/confianza/NAME`, else
//! `~/.local/share/confianza/NAME`.

use std::path::{Path, PathBuf};

use crate::limits::MAX_PROFILE_NAME_LEN;

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// Why a profile directory could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The name is empty, too long, or not made of letters, digits, `-`, `_` and `.`.
    #[error(
        "invalid profile name {0:?}: use 1 to {MAX_PROFILE_NAME_LEN} letters, digits, '-', '_' or '.'"
    )]
    InvalidName(String),
    /// Neither `CONFIANZA_HOME`, `XDG_DATA_HOME` nor `HOME` is set.
    #[error("no data directory: set CONFIANZA_HOME")]
    NoDataDirectory,
}

/// Checks a profile name: it becomes one path component, so no separators and no `..`.
pub fn check_profile_name(name: &str) -> Result<(), ProfileError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_PROFILE_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ProfileError::InvalidName(name.to_owned()))
    }
}

/// The directory of profile `name`, from the process environment.
pub fn profile_dir(name: &str) -> Result<PathBuf, ProfileError> {
    profile_dir_from(name, |key| std::env::var_os(key))
}

/// The directory of profile `name`, with the environment given as a lookup function (tests).
pub fn profile_dir_from(
    name: &str,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, ProfileError> {
    check_profile_name(name)?;
    let non_empty = |key: &str| env(key).filter(|value| !value.is_empty());
    let base = if let Some(home) = non_empty("CONFIANZA_HOME") {
        PathBuf::from(home)
    } else if let Some(data) = non_empty("XDG_DATA_HOME") {
        Path::new(&data).join("confianza")
    } else if let Some(home) = non_empty("HOME") {
        Path::new(&home).join(".local/share/confianza")
    } else {
        return Err(ProfileError::NoDataDirectory);
    };
    Ok(base.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn confianza_home_wins_then_xdg_then_home() {
        let all = env(&[
            ("CONFIANZA_HOME", "/c"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            profile_dir_from("alice", all),
            Ok(PathBuf::from("/c/alice"))
        );
        let xdg = env(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(
            profile_dir_from("default", xdg),
            Ok(PathBuf::from("/x/confianza/default"))
        );
        let home = env(&[("CONFIANZA_HOME", ""), ("HOME", "/h")]);
        assert_eq!(
            profile_dir_from("bob", home),
            Ok(PathBuf::from("/h/.local/share/confianza/bob"))
        );
        assert_eq!(
            profile_dir_from("bob", env(&[])),
            Err(ProfileError::NoDataDirectory)
        );
    }

    #[test]
    fn names_are_one_safe_path_component() {
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", "é"] {
            assert!(check_profile_name(bad).is_err(), "{bad:?}");
        }
        for good in ["default", "alice-2", "work_profile", "a.b"] {
            assert_eq!(check_profile_name(good), Ok(()), "{good:?}");
        }
        let at_limit = "a".repeat(MAX_PROFILE_NAME_LEN);
        assert_eq!(check_profile_name(&at_limit), Ok(()));
        let over = "a".repeat(MAX_PROFILE_NAME_LEN + 1);
        assert!(check_profile_name(&over).is_err());
    }
}
