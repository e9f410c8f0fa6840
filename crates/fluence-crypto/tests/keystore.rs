//! Keystore files on a real file system. Each Argon2id derivation (64 MiB,
//! t = 3) costs a fraction of a second, so the tests share one file where
//! they can and reject bad files before the KDF runs where the format allows.

use std::fs;

use fluence_crypto::keystore::{KEYSTORE_FILE_LEN_MAX, M_COST_KIB_MIN};
use fluence_crypto::{KdfParams, Keystore, KeystoreError};

const PASS: &[u8] = b"correct horse battery staple";

/// Offsets from the documented format (keystore module docs).
const M_COST_OFFSET: usize = 19;
const T_COST_OFFSET: usize = 23;
const PARALLELISM_OFFSET: usize = 27;
const PUBLIC_KEY_OFFSET: usize = 71;
const NAME_OFFSET: usize = 105;

#[test]
fn create_unlock_info_and_wrong_passphrase() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("owner.key");
    let created = Keystore::create(&path, "main", PASS).expect("create");

    let info = Keystore::read_info(&path).expect("info without passphrase");
    assert_eq!(info.name, "main");
    assert_eq!(info.public_key, created.owner_public_key());
    assert_eq!(info.params, KdfParams::DEFAULT);
    assert_eq!(info.params.m_cost_kib, 65_536);
    assert_eq!(info.params.t_cost, 3);
    assert_eq!(info.params.parallelism, 1);

    let unlocked = Keystore::unlock(&path, PASS).expect("unlock");
    assert_eq!(unlocked.owner_public_key(), created.owner_public_key());

    assert!(matches!(
        Keystore::unlock(&path, b"correct horse battery stapler"),
        Err(KeystoreError::WrongPassphrase)
    ));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary files are left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("owner.key")]);

    // An existing file is never overwritten (checked before any KDF work).
    let before = fs::read(&path).expect("read");
    assert!(matches!(
        Keystore::create(&path, "other", b"another passphrase"),
        Err(KeystoreError::Exists(_))
    ));
    assert_eq!(fs::read(&path).expect("read"), before);
}

#[test]
fn tampering_is_detected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("owner.key");
    Keystore::create(&path, "tamper", PASS).expect("create");
    let good = fs::read(&path).expect("read");

    // Changing the (authenticated) name or public key: indistinguishable from
    // a wrong passphrase, because the header is the AEAD's associated data.
    let mut bad = good.clone();
    bad[NAME_OFFSET] ^= 0x01;
    assert!(matches!(
        Keystore::unlock_bytes(&bad, PASS),
        Err(KeystoreError::WrongPassphrase)
    ));
    let mut bad = good.clone();
    bad[PUBLIC_KEY_OFFSET] ^= 0x80;
    assert!(matches!(
        Keystore::unlock_bytes(&bad, PASS),
        Err(KeystoreError::WrongPassphrase)
    ));
    // A flipped bit in the wrapped key (body).
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last - 20] ^= 0x04;
    assert!(matches!(
        Keystore::unlock_bytes(&bad, PASS),
        Err(KeystoreError::WrongPassphrase)
    ));

    // Everything below is rejected before the KDF runs.
    for len in 0..good.len() {
        assert!(
            matches!(
                Keystore::unlock_bytes(&good[..len], PASS),
                Err(KeystoreError::Corrupt(_))
            ),
            "truncated to {len}"
        );
        assert!(matches!(
            Keystore::info_from_bytes(&good[..len]),
            Err(KeystoreError::Corrupt(_))
        ));
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(
        Keystore::unlock_bytes(&longer, PASS),
        Err(KeystoreError::Corrupt(_))
    ));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(
        Keystore::info_from_bytes(&bad),
        Err(KeystoreError::Corrupt(_))
    ));
    let mut bad = good.clone();
    bad[16] = 2; // format version 2
    assert!(matches!(
        Keystore::unlock_bytes(&bad, PASS),
        Err(KeystoreError::Corrupt(_))
    ));
    let mut bad = good.clone();
    bad[18] = 9; // unknown KDF
    assert!(matches!(
        Keystore::unlock_bytes(&bad, PASS),
        Err(KeystoreError::Corrupt(_))
    ));
    let mut bad = good.clone();
    bad[NAME_OFFSET - 2] = 200; // name length beyond the file
    assert!(matches!(
        Keystore::unlock_bytes(&bad, PASS),
        Err(KeystoreError::Corrupt(_))
    ));
    let mut bad = good.clone();
    bad[NAME_OFFSET] = 0xFF; // not UTF-8
    assert!(matches!(
        Keystore::info_from_bytes(&bad),
        Err(KeystoreError::Corrupt(_))
    ));
    // Absurd memory cost: corrupt, and no allocation is attempted.
    let mut bad = good.clone();
    bad[M_COST_OFFSET..M_COST_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Keystore::unlock_bytes(&bad, PASS),
        Err(KeystoreError::Corrupt(_))
    ));

    // Downgrades: each parameter below its minimum.
    let patches: [(usize, u32); 3] = [
        (M_COST_OFFSET, M_COST_KIB_MIN - 1),
        (T_COST_OFFSET, 2),
        (PARALLELISM_OFFSET, 0),
    ];
    for (offset, value) in patches {
        let mut bad = good.clone();
        bad[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        let result = Keystore::unlock_bytes(&bad, PASS);
        if offset == PARALLELISM_OFFSET {
            // Zero lanes is not a weaker setting but an impossible one.
            assert!(
                matches!(result, Err(KeystoreError::Corrupt(_))),
                "{result:?}"
            );
        } else {
            assert!(
                matches!(result, Err(KeystoreError::Downgrade { .. })),
                "{result:?}"
            );
        }
    }
    // The file API reports downgrades the same way, and read_info still
    // shows the (weak) parameters so `fluence keys list` can flag them.
    let mut weak = good.clone();
    weak[M_COST_OFFSET..M_COST_OFFSET + 4].copy_from_slice(&8u32.to_le_bytes());
    let weak_path = dir.path().join("weak.key");
    fs::write(&weak_path, &weak).expect("write");
    assert!(matches!(
        Keystore::unlock(&weak_path, PASS),
        Err(KeystoreError::Downgrade { m_cost_kib: 8, .. })
    ));
    assert_eq!(
        Keystore::read_info(&weak_path)
            .expect("info")
            .params
            .m_cost_kib,
        8
    );

    // Oversized files are corrupt without being read in full.
    let big_path = dir.path().join("big.key");
    let mut big = good.clone();
    big.resize(KEYSTORE_FILE_LEN_MAX * 4, 0);
    fs::write(&big_path, &big).expect("write");
    assert!(matches!(
        Keystore::read_info(&big_path),
        Err(KeystoreError::Corrupt(_))
    ));
    assert!(matches!(
        Keystore::unlock(&big_path, PASS),
        Err(KeystoreError::Corrupt(_))
    ));

    // Missing file: an I/O error.
    assert!(matches!(
        Keystore::unlock(&dir.path().join("missing.key"), PASS),
        Err(KeystoreError::Io(_))
    ));
}

#[test]
fn invalid_arguments_rejected_before_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("k.key");
    assert!(matches!(
        Keystore::create(&path, "", PASS),
        Err(KeystoreError::InvalidName(_))
    ));
    assert!(matches!(
        Keystore::create(&path, &"n".repeat(65), PASS),
        Err(KeystoreError::InvalidName(_))
    ));
    assert!(matches!(
        Keystore::create(&path, "ok", b""),
        Err(KeystoreError::EmptyPassphrase)
    ));
    assert!(!path.exists());
}

#[test]
fn random_files_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..2000 {
        let len = rng.gen_range(0..400);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // Half the time start with a valid magic so parsing goes deeper.
        if rng.gen() && bytes.len() >= 16 {
            bytes[..16].copy_from_slice(b"FLUENCE-KEYSTORE");
            if bytes.len() >= 19 {
                bytes[16] = 1;
                bytes[17] = 0;
                bytes[18] = 1;
            }
            // Keep the KDF cheap-to-reject: parameters are either out of
            // range (Corrupt) or below the minimum (Downgrade), never run.
            if bytes.len() >= 23 {
                bytes[19..23].copy_from_slice(&rng.gen_range(0..M_COST_KIB_MIN).to_le_bytes());
            }
        }
        let result = Keystore::unlock_bytes(&bytes, PASS);
        assert!(
            matches!(
                result,
                Err(KeystoreError::Corrupt(_)) | Err(KeystoreError::Downgrade { .. })
            ),
            "{result:?}"
        );
        let _ = Keystore::info_from_bytes(&bytes);
    }
}
