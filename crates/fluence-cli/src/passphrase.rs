//! Where passphrases come from: `FLUENCE_PASSPHRASE`, else a prompt on the
//! terminal. Never from a command-line argument (it would land in shell
//! history and `ps`).

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};

pub const ENV: &str = "FLUENCE_PASSPHRASE";

/// The passphrase to unlock an existing key.
pub fn for_unlock(what: &str) -> Result<String> {
    if let Ok(value) = std::env::var(ENV) {
        return Ok(value);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set {ENV} or run in a terminal to be prompted");
    }
    rpassword::prompt_password(format!("Passphrase for {what}: ")).context("reading the passphrase")
}

/// A new passphrase, asked twice when prompted.
pub fn for_new(what: &str) -> Result<String> {
    let passphrase = if let Ok(value) = std::env::var(ENV) {
        value
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("no passphrase: set {ENV} or run in a terminal to be prompted");
        }
        let first = rpassword::prompt_password(format!("New passphrase for {what}: "))
            .context("reading the passphrase")?;
        let second = rpassword::prompt_password("Repeat it: ").context("reading the passphrase")?;
        if first != second {
            bail!("the passphrases differ");
        }
        first
    };
    if passphrase.chars().count() < 8 {
        bail!("the passphrase must have at least 8 characters");
    }
    Ok(passphrase)
}
