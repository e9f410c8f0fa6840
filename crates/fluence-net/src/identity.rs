//! A node's long-lived libp2p identity (ed25519), kept in its data
//! directory so its peer id survives restarts.

use std::fs;
use std::io::Write;
use std::path::Path;

use libp2p::identity::Keypair;

use crate::NetError;

/// The protobuf encoding of an ed25519 keypair is 68 bytes; anything much
/// larger is not a key file.
const IDENTITY_FILE_LEN_MAX: u64 = 1024;

/// Loads the keypair at `path`, or creates one (mode 0600) if absent.
pub fn load_or_create(path: &Path) -> Result<Keypair, NetError> {
    let err =
        |e: &dyn std::fmt::Display| NetError::Identity(path.display().to_string(), e.to_string());
    if path.exists() {
        let len = fs::metadata(path).map_err(|e| err(&e))?.len();
        if len > IDENTITY_FILE_LEN_MAX {
            return Err(err(&format!("{len} bytes is too large for a key file")));
        }
        let bytes = fs::read(path).map_err(|e| err(&e))?;
        return Keypair::from_protobuf_encoding(&bytes).map_err(|e| err(&e));
    }
    let keypair = Keypair::generate_ed25519();
    let bytes = keypair.to_protobuf_encoding().map_err(|e| err(&e))?;
    let tmp = path.with_extension("tmp");
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| err(&e))?;
        file.write_all(&bytes).map_err(|e| err(&e))?;
        file.sync_all().map_err(|e| err(&e))?;
    }
    fs::rename(&tmp, path).map_err(|e| err(&e))?;
    Ok(keypair)
}
