//! `fluence keys new|list|show` as a user runs them.

mod support;

use support::{fluence, Process, PASSPHRASE};

fn run(args: &[&str], dir: &std::path::Path, passphrase: Option<&str>) -> (bool, String, String) {
    let mut command = fluence();
    command.args(args).arg("--dir").arg(dir);
    if let Some(passphrase) = passphrase {
        command.env("FLUENCE_PASSPHRASE", passphrase);
    }
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run fluence");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn keys_are_created_listed_and_shown_without_leaking_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(&["keys", "new", "alice"], dir.path(), Some(PASSPHRASE));
    assert!(ok, "{err}");
    let public = out
        .lines()
        .find_map(|l| l.strip_prefix("owner public key: "))
        .expect("public key printed")
        .to_string();
    assert_eq!(public.len(), 64);

    // Listing and showing need no passphrase.
    let (ok, out, _) = run(&["keys", "list"], dir.path(), None);
    assert!(ok);
    assert_eq!(out.trim(), format!("alice\t{public}"));
    let (ok, out, _) = run(&["keys", "show", "alice"], dir.path(), None);
    assert!(ok);
    assert!(out.contains(&public) && out.contains("alice"));

    // The keystore file holds neither the passphrase nor anything readable.
    let file = std::fs::read(dir.path().join("alice.key")).unwrap();
    assert!(!support::contains(&file, PASSPHRASE.as_bytes()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("alice.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "keystore readable by others: {mode:o}");
    }
}

#[test]
fn key_commands_refuse_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(&["keys", "new", "bob"], dir.path(), Some(PASSPHRASE)).0);
    let (ok, _, err) = run(&["keys", "new", "bob"], dir.path(), Some(PASSPHRASE));
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(&["keys", "new", "../escape"], dir.path(), Some(PASSPHRASE));
    assert!(!ok && err.contains("must be"), "{err}");
    let (ok, _, err) = run(&["keys", "new", "carol"], dir.path(), Some("short"));
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, _, err) = run(&["keys", "new", "dave"], dir.path(), None);
    assert!(!ok && err.contains("FLUENCE_PASSPHRASE"), "{err}");
    let (ok, _, err) = run(&["keys", "show", "nobody"], dir.path(), None);
    assert!(!ok && err.contains("nobody"), "{err}");

    // A damaged keystore is named as such, not as a wrong passphrase.
    let path = dir.path().join("bob.key");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, &bytes).unwrap();
    let (ok, _, err) = run(&["keys", "show", "bob"], dir.path(), None);
    assert!(!ok, "a truncated keystore must not be shown");
    assert!(
        err.to_lowercase().contains("corrupt") || err.to_lowercase().contains("truncated"),
        "{err}"
    );

    let mut gateway = fluence();
    gateway
        .args([
            "gateway",
            "--node",
            "/ip4/127.0.0.1/tcp/1",
            "--http",
            "127.0.0.1:0",
            "--key",
        ])
        .arg(&path)
        .env("FLUENCE_PASSPHRASE", PASSPHRASE);
    let (status, stderr) = Process::spawn(gateway).exit();
    assert!(!status.success());
    assert!(
        stderr.to_lowercase().contains("corrupt") || stderr.to_lowercase().contains("truncated"),
        "{stderr}"
    );
}
