//! `fluence keys new|list|show`: owner keys in passphrase-protected
//! keystore files, one file per key, `<dir>/<name>.key`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fluence_crypto::keys::MasterKey;
use fluence_crypto::keystore::Keystore;

use crate::passphrase;

pub fn default_dir() -> PathBuf {
    match std::env::var_os("FLUENCE_HOME") {
        Some(home) => PathBuf::from(home).join("keys"),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".fluence").join("keys"),
            None => PathBuf::from(".fluence").join("keys"),
        },
    }
}

pub fn key_path(dir: &Path, name: &str) -> Result<PathBuf> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("key name {name:?} must be 1-64 characters of letters, digits, '-' or '_'");
    }
    Ok(dir.join(format!("{name}.key")))
}

pub fn create(dir: &Path, name: &str) -> Result<(PathBuf, MasterKey)> {
    let path = key_path(dir, name)?;
    if path.exists() {
        bail!("key {name:?} already exists at {}", path.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let passphrase = passphrase::for_new(&format!("key {name:?}"))?;
    let master = Keystore::create(&path, name, passphrase.as_bytes())
        .with_context(|| format!("creating {}", path.display()))?;
    Ok((path, master))
}

pub fn unlock(path: &Path) -> Result<MasterKey> {
    let info = Keystore::read_info(path)
        .with_context(|| format!("reading keystore {}", path.display()))?;
    let passphrase = passphrase::for_unlock(&format!("key {:?}", info.name))?;
    Keystore::unlock(path, passphrase.as_bytes())
        .with_context(|| format!("unlocking keystore {}", path.display()))
}

pub fn new(dir: &Path, name: &str) -> Result<()> {
    let (path, master) = create(dir, name)?;
    println!("created key {name:?} at {}", path.display());
    println!(
        "owner public key: {}",
        hex::encode(master.owner_public_key())
    );
    println!(
        "back this file up and remember its passphrase: nothing can recover data without both"
    );
    Ok(())
}

pub fn list(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "no keys in {} (create one with `fluence keys new NAME`)",
                dir.display()
            );
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "key"))
        .collect();
    paths.sort();
    for path in paths {
        match Keystore::read_info(&path) {
            Ok(info) => println!("{}\t{}", info.name, hex::encode(info.public_key)),
            Err(e) => println!("{}\t(unreadable: {e})", path.display()),
        }
    }
    Ok(())
}

pub fn show(dir: &Path, name: &str) -> Result<()> {
    let path = key_path(dir, name)?;
    let info = Keystore::read_info(&path)
        .with_context(|| format!("reading keystore {}", path.display()))?;
    println!("name:       {}", info.name);
    println!("file:       {}", path.display());
    println!("public key: {}", hex::encode(info.public_key));
    println!("kdf:        {:?}", info.params);
    Ok(())
}
