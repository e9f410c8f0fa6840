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

/// Loads the keypair at `path`, which must exist.
pub fn load(path: &Path) -> Result<Keypair, NetError> {
    let err =
        |e: &dyn std::fmt::Display| NetError::Identity(path.display().to_string(), e.to_string());
    let len = fs::metadata(path).map_err(|e| err(&e))?.len();
    if len > IDENTITY_FILE_LEN_MAX {
        return Err(err(&format!("{len} bytes is too large for a key file")));
    }
    let bytes = fs::read(path).map_err(|e| err(&e))?;
    Keypair::from_protobuf_encoding(&bytes).map_err(|e| err(&e))
}

/// Loads the keypair at `path`, or creates one (mode 0600) if absent.
pub fn load_or_create(path: &Path) -> Result<Keypair, NetError> {
    let err =
        |e: &dyn std::fmt::Display| NetError::Identity(path.display().to_string(), e.to_string());
    if path.exists() {
        return load(path);
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

/// The node's ed25519 public key, which is also its key as a cluster
/// member (consensus signatures, attestations): the 32 bytes behind its
/// peer id.
pub fn member_key(keypair: &Keypair) -> Result<fluence_proto::PublicKey, NetError> {
    let ed25519 = keypair
        .public()
        .try_into_ed25519()
        .map_err(|_| NetError::Identity("node key".into(), "not an ed25519 key".into()))?;
    Ok(fluence_proto::PublicKey(ed25519.to_bytes()))
}

/// The node's secret ed25519 seed (RFC 8032), from which consensus derives
/// the same public key as [`member_key`].
pub fn secret_seed(keypair: &Keypair) -> Result<zeroize::Zeroizing<[u8; 32]>, NetError> {
    let ed25519 = keypair
        .clone()
        .try_into_ed25519()
        .map_err(|_| NetError::Identity("node key".into(), "not an ed25519 key".into()))?;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(ed25519.secret().as_ref());
    Ok(seed)
}

/// The peer id of the node whose member key is `key`: the identity
/// multihash of the key's protobuf encoding, as libp2p derives it.
pub fn peer_id_of(key: &fluence_proto::PublicKey) -> Result<libp2p::PeerId, NetError> {
    let ed25519 = libp2p::identity::ed25519::PublicKey::try_from_bytes(&key.0)
        .map_err(|e| NetError::Identity(key.to_string(), e.to_string()))?;
    Ok(libp2p::identity::PublicKey::from(ed25519).to_peer_id())
}

/// The member key behind an ed25519 peer id (which embeds the key: an
/// identity multihash of its protobuf encoding), the inverse of
/// [`peer_id_of`]. Peer ids of other key types give an error.
pub fn member_key_of(peer: &libp2p::PeerId) -> Result<fluence_proto::PublicKey, NetError> {
    let not_ed25519 = || NetError::Identity(peer.to_string(), "not an ed25519 peer id".into());
    let multihash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    // 0x00: the identity multihash, whose digest is the key itself.
    if multihash.code() != 0 {
        return Err(not_ed25519());
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest())
        .map_err(|_| not_ed25519())?
        .try_into_ed25519()
        .map_err(|_| not_ed25519())?;
    Ok(fluence_proto::PublicKey(key.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_key_seed_and_peer_id_agree() {
        let keypair = Keypair::generate_ed25519();
        let key = member_key(&keypair).unwrap();
        assert_eq!(peer_id_of(&key).unwrap(), keypair.public().to_peer_id());
        assert_eq!(member_key_of(&keypair.public().to_peer_id()).unwrap(), key);
        // A sha2-256 multihash peer id (the form of large keys) has no key inside.
        let hashed = libp2p::multihash::Multihash::<64>::wrap(0x12, &[7; 32]).unwrap();
        let hashed = libp2p::PeerId::from_multihash(hashed).unwrap();
        assert!(member_key_of(&hashed).is_err());
        let seed = secret_seed(&keypair).unwrap();
        let rebuilt = libp2p::identity::ed25519::Keypair::from(
            libp2p::identity::ed25519::SecretKey::try_from_bytes(*seed).unwrap(),
        );
        assert_eq!(rebuilt.public().to_bytes(), key.0);
    }
}
