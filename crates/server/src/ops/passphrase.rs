//! The CA passphrase: from `CONFIANZA_CA_PASSPHRASE` for scripts, else asked on the terminal.

use std::io::IsTerminal;

use zeroize::Zeroizing;

use super::OpsError;

/// Environment variable holding the passphrase of the sealed CA keys.
pub const PASSPHRASE_VARIABLE: &str = "CONFIANZA_CA_PASSPHRASE";

/// The passphrase: the environment variable, else a terminal prompt (twice when `confirm`,
/// for a new passphrase). An empty passphrase is refused; with neither a variable nor a
/// terminal the command fails with [`OpsError::NoPassphrase`].
pub fn obtain_passphrase(confirm: bool) -> Result<Zeroizing<Vec<u8>>, OpsError> {
    if let Some(value) = std::env::var_os(PASSPHRASE_VARIABLE) {
        let value = Zeroizing::new(value.into_encoded_bytes());
        if value.is_empty() {
            return Err(OpsError::Usage(format!("{PASSPHRASE_VARIABLE} is empty")));
        }
        return Ok(value);
    }
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        return Err(OpsError::NoPassphrase);
    }
    let ask = |prompt: &str| -> Result<Zeroizing<String>, OpsError> {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|_| OpsError::NoPassphrase)
    };
    let first = ask("CA passphrase: ")?;
    if first.is_empty() {
        return Err(OpsError::Usage("empty passphrase".into()));
    }
    if confirm {
        let second = ask("CA passphrase again: ")?;
        if first.as_bytes() != second.as_bytes() {
            return Err(OpsError::Usage("the passphrases differ".into()));
        }
    }
    Ok(Zeroizing::new(first.as_bytes().to_vec()))
}
