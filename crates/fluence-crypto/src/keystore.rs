//! Passphrase-protected keystore: one file per master key.
//!
//! # File format (version 1)
//!
//! All integers little-endian.
//!
//! ```text
//! offset  size  field
//! 0       16    magic "FLUENCE-KEYSTORE"
//! 16      2     format version u16 = 1
//! 18      1     KDF id u8 = 1 (Argon2id, version 0x13)
//! 19      4     Argon2 m_cost in KiB, u32        (>= 65536, i.e. 64 MiB)
//! 23      4     Argon2 t_cost (passes), u32       (>= 3)
//! 27      4     Argon2 parallelism, u32           (>= 1)
//! 31      16    salt
//! 47      24    XChaCha20-Poly1305 nonce
//! 71      32    owner Ed25519 public key, in clear (so `fluence keys list`
//!               needs no passphrase)
//! 103     2     key name length u16 (1..=64)
//! 105     len   key name, UTF-8
//! ---- end of header ----
//! 105+len 48    wrapped master key: XChaCha20-Poly1305(KEK, nonce, AD = the
//!               whole header above, the 32-byte master key), ciphertext || tag
//! ```
//!
//! `KEK = Argon2id(passphrase, salt, m_cost, t_cost, parallelism)`, 32 bytes.
//!
//! Because the whole header is associated data, changing any header byte that
//! is not rejected earlier (name, public key, salt, nonce) makes unlocking
//! fail exactly like a wrong passphrase. Files whose header asks for weaker
//! KDF parameters than the minimum are refused before any work is done
//! ([`KeystoreError::Downgrade`]): this code never writes such a file, and a
//! keystore whose stolen copy could be brute-forced cheaply must not be used
//! silently (the user should re-create it). Absurdly large parameters are
//! refused too ([`KeystoreError::Corrupt`]) so a crafted file cannot make the
//! gateway allocate unbounded memory or spin for hours.
//!
//! Files larger than [`KEYSTORE_FILE_LEN_MAX`] are corrupt; reads are bounded.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::aead;
use crate::keys::MasterKey;

/// File magic.
pub const KEYSTORE_MAGIC: &[u8; 16] = b"FLUENCE-KEYSTORE";
/// Current format version.
pub const KEYSTORE_FORMAT_VERSION: u16 = 1;
/// KDF id of Argon2id v1.3.
pub const KDF_ARGON2ID: u8 = 1;
/// Largest keystore file accepted.
pub const KEYSTORE_FILE_LEN_MAX: usize = 4096;
/// Longest key name in bytes.
pub const KEY_NAME_LEN_MAX: usize = 64;

/// Minimum (and default) Argon2id memory: 64 MiB.
pub const M_COST_KIB_MIN: u32 = 65_536;
/// Minimum (and default) Argon2id passes.
pub const T_COST_MIN: u32 = 3;
/// Minimum (and default) Argon2id lanes.
pub const PARALLELISM_MIN: u32 = 1;
/// Largest accepted memory cost (4 GiB): beyond this a file is corrupt, not strong.
pub const M_COST_KIB_MAX: u32 = 4 * 1024 * 1024;
/// Largest accepted pass count.
pub const T_COST_MAX: u32 = 64;
/// Largest accepted lane count.
pub const PARALLELISM_MAX: u32 = 64;

const SALT_LEN: usize = 16;
const WRAPPED_LEN: usize = 32 + aead::TAG_LEN;
/// Header length without the name.
const FIXED_HEADER_LEN: usize = 16 + 2 + 1 + 4 + 4 + 4 + SALT_LEN + aead::NONCE_LEN + 32 + 2;

/// Errors of keystore operations. Each is distinct so the CLI can say exactly
/// what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// Authentication of the wrapped key failed: wrong passphrase (or a
    /// modified header, which is associated data and indistinguishable).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Not a keystore, unsupported version, truncated, bad lengths, and so on.
    #[error("keystore file is corrupt: {0}")]
    Corrupt(String),
    /// The file asks for weaker KDF parameters than the minimum.
    #[error("keystore KDF parameters are below the minimum (m_cost {m_cost_kib} KiB, t_cost {t_cost}, parallelism {parallelism}); refusing to use them")]
    Downgrade {
        /// Memory cost in the file.
        m_cost_kib: u32,
        /// Passes in the file.
        t_cost: u32,
        /// Lanes in the file.
        parallelism: u32,
    },
    /// `create` refuses to overwrite an existing file.
    #[error("keystore file {0} already exists")]
    Exists(PathBuf),
    /// The key name is empty, too long or contains control characters.
    #[error("invalid key name: {0}")]
    InvalidName(&'static str),
    /// An empty passphrase was given to `create`.
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    /// The file could not be read or written.
    #[error("keystore I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Argon2id parameters stored in a keystore header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// The parameters new keystores use (also the minimum accepted).
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: M_COST_KIB_MIN,
        t_cost: T_COST_MIN,
        parallelism: PARALLELISM_MIN,
    };
}

/// What can be learned from a keystore without the passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoreInfo {
    /// The key's name.
    pub name: String,
    /// The owner's Ed25519 public key.
    pub public_key: [u8; 32],
    /// KDF parameters.
    pub params: KdfParams,
}

/// Parsed header plus the raw bytes needed to unlock.
struct Parsed<'a> {
    info: KeystoreInfo,
    salt: [u8; SALT_LEN],
    nonce: [u8; aead::NONCE_LEN],
    header: &'a [u8],
    wrapped: &'a [u8],
}

/// Keystore file operations (stateless).
#[derive(Debug, Clone, Copy)]
pub struct Keystore;

impl Keystore {
    /// Generates a new master key, writes it to `path` protected by
    /// `passphrase`, and returns it. Refuses to overwrite an existing file.
    ///
    /// The file is written to a temporary file in the same directory (mode
    /// 0600 on unix), synced, then hard-linked into place, which fails
    /// atomically if `path` appeared meanwhile; the temporary name is then
    /// removed and the directory synced.
    pub fn create(path: &Path, name: &str, passphrase: &[u8]) -> Result<MasterKey, KeystoreError> {
        validate_name(name)?;
        if passphrase.is_empty() {
            return Err(KeystoreError::EmptyPassphrase);
        }
        if path.symlink_metadata().is_ok() {
            return Err(KeystoreError::Exists(path.to_path_buf()));
        }
        let master = MasterKey::generate();
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; aead::NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let params = KdfParams::DEFAULT;
        let header = encode_header(name, &master.owner_public_key(), &params, &salt, &nonce);
        let kek = derive_kek(passphrase, &salt, &params)?;
        let wrapped = aead::seal_with_nonce(&kek, &nonce, &header, master.as_bytes());
        // seal_with_nonce prepends the nonce; the file keeps it in the header.
        let body = &wrapped[aead::NONCE_LEN..];
        debug_assert_eq!(body.len(), WRAPPED_LEN);

        let mut file_bytes = header;
        file_bytes.extend_from_slice(body);
        assert!(file_bytes.len() <= KEYSTORE_FILE_LEN_MAX);
        write_new_file(path, &file_bytes)?;
        Ok(master)
    }

    /// Reads the name, public key and KDF parameters without the passphrase.
    pub fn read_info(path: &Path) -> Result<KeystoreInfo, KeystoreError> {
        let bytes = read_bounded(path)?;
        Ok(parse(&bytes)?.info)
    }

    /// Decrypts the master key with `passphrase`.
    pub fn unlock(path: &Path, passphrase: &[u8]) -> Result<MasterKey, KeystoreError> {
        let bytes = read_bounded(path)?;
        Self::unlock_bytes(&bytes, passphrase)
    }

    /// [`Keystore::unlock`] on file contents already in memory.
    pub fn unlock_bytes(bytes: &[u8], passphrase: &[u8]) -> Result<MasterKey, KeystoreError> {
        let parsed = parse(bytes)?;
        let params = parsed.info.params;
        if params.m_cost_kib < M_COST_KIB_MIN
            || params.t_cost < T_COST_MIN
            || params.parallelism < PARALLELISM_MIN
        {
            return Err(KeystoreError::Downgrade {
                m_cost_kib: params.m_cost_kib,
                t_cost: params.t_cost,
                parallelism: params.parallelism,
            });
        }
        let kek = derive_kek(passphrase, &parsed.salt, &params)?;
        let mut sealed = Vec::with_capacity(aead::NONCE_LEN + parsed.wrapped.len());
        sealed.extend_from_slice(&parsed.nonce);
        sealed.extend_from_slice(parsed.wrapped);
        let key_bytes = Zeroizing::new(
            aead::open(&kek, parsed.header, &sealed).map_err(|_| KeystoreError::WrongPassphrase)?,
        );
        let key_array: [u8; 32] = key_bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeystoreError::Corrupt("wrapped key has the wrong length".into()))?;
        let master = MasterKey::from_bytes(key_array);
        // The header is authenticated, so a mismatch here means the file was
        // written by a buggy or foreign tool, not tampered with.
        if master.owner_public_key() != parsed.info.public_key {
            return Err(KeystoreError::Corrupt(
                "public key in the header does not match the key".into(),
            ));
        }
        Ok(master)
    }

    /// [`Keystore::read_info`] on file contents already in memory.
    pub fn info_from_bytes(bytes: &[u8]) -> Result<KeystoreInfo, KeystoreError> {
        Ok(parse(bytes)?.info)
    }
}

fn validate_name(name: &str) -> Result<(), KeystoreError> {
    if name.is_empty() {
        return Err(KeystoreError::InvalidName("empty"));
    }
    if name.len() > KEY_NAME_LEN_MAX {
        return Err(KeystoreError::InvalidName("longer than 64 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(KeystoreError::InvalidName("contains control characters"));
    }
    Ok(())
}

fn encode_header(
    name: &str,
    public_key: &[u8; 32],
    params: &KdfParams,
    salt: &[u8; SALT_LEN],
    nonce: &[u8; aead::NONCE_LEN],
) -> Vec<u8> {
    let mut h = Vec::with_capacity(FIXED_HEADER_LEN + name.len());
    h.extend_from_slice(KEYSTORE_MAGIC);
    h.extend_from_slice(&KEYSTORE_FORMAT_VERSION.to_le_bytes());
    h.push(KDF_ARGON2ID);
    h.extend_from_slice(&params.m_cost_kib.to_le_bytes());
    h.extend_from_slice(&params.t_cost.to_le_bytes());
    h.extend_from_slice(&params.parallelism.to_le_bytes());
    h.extend_from_slice(salt);
    h.extend_from_slice(nonce);
    h.extend_from_slice(public_key);
    // validate_name bounds the length to 64, so it fits in u16.
    h.extend_from_slice(&(name.len() as u16).to_le_bytes());
    h.extend_from_slice(name.as_bytes());
    debug_assert_eq!(h.len(), FIXED_HEADER_LEN + name.len());
    h
}

/// A cursor over untrusted bytes: every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], KeystoreError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| KeystoreError::Corrupt(format!("truncated in {what}")))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], KeystoreError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, KeystoreError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>, KeystoreError> {
    if bytes.len() > KEYSTORE_FILE_LEN_MAX {
        return Err(KeystoreError::Corrupt(format!(
            "file is larger than {KEYSTORE_FILE_LEN_MAX} bytes"
        )));
    }
    let mut r = Reader { bytes, pos: 0 };
    if r.take(KEYSTORE_MAGIC.len(), "magic")? != KEYSTORE_MAGIC {
        return Err(KeystoreError::Corrupt(
            "not a Fluence keystore (bad magic)".into(),
        ));
    }
    let version = u16::from_le_bytes(r.array("format version")?);
    if version != KEYSTORE_FORMAT_VERSION {
        return Err(KeystoreError::Corrupt(format!(
            "unsupported keystore format version {version}"
        )));
    }
    let [kdf] = r.array::<1>("KDF id")?;
    if kdf != KDF_ARGON2ID {
        return Err(KeystoreError::Corrupt(format!("unknown KDF id {kdf}")));
    }
    let params = KdfParams {
        m_cost_kib: r.u32("m_cost")?,
        t_cost: r.u32("t_cost")?,
        parallelism: r.u32("parallelism")?,
    };
    if params.m_cost_kib > M_COST_KIB_MAX
        || params.t_cost > T_COST_MAX
        || params.parallelism > PARALLELISM_MAX
        || params.parallelism == 0
    {
        return Err(KeystoreError::Corrupt(format!(
            "KDF parameters out of range: {params:?}"
        )));
    }
    let salt = r.array::<SALT_LEN>("salt")?;
    let nonce = r.array::<{ aead::NONCE_LEN }>("nonce")?;
    let public_key = r.array::<32>("public key")?;
    let name_len = usize::from(u16::from_le_bytes(r.array("name length")?));
    if name_len == 0 || name_len > KEY_NAME_LEN_MAX {
        return Err(KeystoreError::Corrupt(format!(
            "key name length {name_len}"
        )));
    }
    let name = std::str::from_utf8(r.take(name_len, "name")?)
        .map_err(|_| KeystoreError::Corrupt("key name is not UTF-8".into()))?
        .to_owned();
    let header_len = r.pos;
    let wrapped = r.take(WRAPPED_LEN, "wrapped key")?;
    if r.pos != bytes.len() {
        return Err(KeystoreError::Corrupt(format!(
            "{} unexpected trailing bytes",
            bytes.len() - r.pos
        )));
    }
    Ok(Parsed {
        info: KeystoreInfo {
            name,
            public_key,
            params,
        },
        salt,
        nonce,
        header: &bytes[..header_len],
        wrapped,
    })
}

fn derive_kek(
    passphrase: &[u8],
    salt: &[u8; SALT_LEN],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let argon_params = Params::new(
        params.m_cost_kib,
        params.t_cost,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| KeystoreError::Corrupt(format!("invalid KDF parameters: {e}")))?;
    let mut kek = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
        .hash_password_into(passphrase, salt, kek.as_mut())
        .map_err(|e| KeystoreError::Corrupt(format!("key derivation failed: {e}")))?;
    Ok(kek)
}

/// Reads at most `KEYSTORE_FILE_LEN_MAX + 1` bytes, so an oversized file is
/// detected without reading it all.
fn read_bounded(path: &Path) -> Result<Vec<u8>, KeystoreError> {
    let file = fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(512);
    file.take(KEYSTORE_FILE_LEN_MAX as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > KEYSTORE_FILE_LEN_MAX {
        return Err(KeystoreError::Corrupt(format!(
            "file is larger than {KEYSTORE_FILE_LEN_MAX} bytes"
        )));
    }
    Ok(bytes)
}

fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        KeystoreError::Io(std::io::Error::other("keystore path has no file name"))
    })?;
    let mut suffix = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut suffix);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", hex::encode(suffix)));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        // hard_link fails with AlreadyExists instead of replacing the target,
        // unlike rename: no window in which another keystore is clobbered.
        match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(KeystoreError::Exists(path.to_path_buf()))
            }
            Err(e) => Err(KeystoreError::Io(e)),
        }
    })();
    // Best effort: the temporary name is garbage either way.
    let _ = fs::remove_file(&tmp);
    result?;
    #[cfg(unix)]
    {
        // Make the new directory entry durable.
        fs::File::open(&dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_docs() {
        let h = encode_header(
            "main",
            &[1u8; 32],
            &KdfParams::DEFAULT,
            &[2u8; 16],
            &[3u8; 24],
        );
        assert_eq!(FIXED_HEADER_LEN, 105);
        assert_eq!(h.len(), 109);
        assert_eq!(&h[..16], b"FLUENCE-KEYSTORE");
        assert_eq!(&h[16..18], &[1, 0]);
        assert_eq!(h[18], 1);
        assert_eq!(&h[19..23], &65_536u32.to_le_bytes());
        assert_eq!(&h[23..27], &3u32.to_le_bytes());
        assert_eq!(&h[27..31], &1u32.to_le_bytes());
        assert_eq!(&h[31..47], &[2u8; 16]);
        assert_eq!(&h[47..71], &[3u8; 24]);
        assert_eq!(&h[71..103], &[1u8; 32]);
        assert_eq!(&h[103..105], &[4, 0]);
        assert_eq!(&h[105..], b"main");
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("main").is_ok());
        assert!(validate_name("clé").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"x".repeat(65)).is_err());
        assert!(validate_name("a\nb").is_err());
    }

    #[test]
    fn parse_rejects_garbage_without_panicking() {
        use rand::{Rng, SeedableRng};
        let mut good = encode_header("k", &[1u8; 32], &KdfParams::DEFAULT, &[2u8; 16], &[3u8; 24]);
        good.extend_from_slice(&[0u8; WRAPPED_LEN]);
        assert!(parse(&good).is_ok());
        for len in 0..good.len() {
            assert!(matches!(
                parse(&good[..len]),
                Err(KeystoreError::Corrupt(_))
            ));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let len = rng.gen_range(0..300);
            let random: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            assert!(parse(&random).is_err());
            let mut flipped = good.clone();
            let pos = rng.gen_range(0..flipped.len());
            flipped[pos] ^= 1 << rng.gen_range(0..8);
            let _ = parse(&flipped);
        }
        assert!(parse(&vec![0u8; KEYSTORE_FILE_LEN_MAX + 1]).is_err());
    }
}
