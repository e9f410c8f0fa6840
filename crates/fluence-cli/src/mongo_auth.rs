//! Who may use the MongoDB endpoint: the user named by `--mongo-user`,
//! authenticated with SCRAM-SHA-256, the password from
//! `FLUENCE_MONGO_PASSWORD`. Never from a command-line argument (it would
//! land in shell history and `ps`). Without a user, the endpoint serves
//! only loopback.

use std::net::SocketAddr;

use anyhow::{bail, Result};
use fluence_mongo::Credentials;

pub const PASSWORD_ENV: &str = "FLUENCE_MONGO_PASSWORD";

/// The endpoint's credentials: `Some` with `--mongo-user`, which then
/// needs the password in the environment.
pub fn credentials(user: Option<&str>) -> Result<Option<Credentials>> {
    let password = std::env::var(PASSWORD_ENV).ok();
    match (user, password) {
        (Some(user), Some(password)) => match Credentials::new(user, &password) {
            Ok(credentials) => Ok(Some(credentials)),
            Err(why) => bail!("invalid MongoDB credentials: {why}"),
        },
        (Some(user), None) => {
            bail!("--mongo-user {user} needs its password in {PASSWORD_ENV}")
        }
        // A password without a user would leave the endpoint open while
        // its owner believes it is protected.
        (None, Some(_)) => bail!("{PASSWORD_ENV} is set but --mongo-user is not; name the user"),
        (None, None) => Ok(None),
    }
}

/// Refuses a non-loopback address unless connections must authenticate.
pub fn check_bind(mongo: SocketAddr, credentials: Option<&Credentials>) -> Result<()> {
    if credentials.is_none() && !mongo.ip().is_loopback() {
        bail!(
            "the MongoDB endpoint may only bind to a loopback address ({mongo} is not) without \
             SCRAM-SHA-256 credentials: pass --mongo-user and set {PASSWORD_ENV}"
        );
    }
    Ok(())
}

/// The connection string applications use: the user (never the password)
/// and the authentication options drivers need.
pub fn connection_string(addr: SocketAddr, user: Option<&str>) -> String {
    match user {
        Some(user) => format!(
            "mongodb://{}@{addr}/?authSource=admin&authMechanism=SCRAM-SHA-256",
            percent_encode(user)
        ),
        None => format!("mongodb://{addr}/"),
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters, as
/// the MongoDB URI format requires for a user name holding `@`, `:`, `/`
/// or `%`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_name_the_user_and_mechanism() {
        let addr: SocketAddr = "127.0.0.1:27017".parse().unwrap();
        assert_eq!(connection_string(addr, None), "mongodb://127.0.0.1:27017/");
        assert_eq!(
            connection_string(addr, Some("alice")),
            "mongodb://alice@127.0.0.1:27017/?authSource=admin&authMechanism=SCRAM-SHA-256"
        );
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        assert!(connection_string(v6, Some("a@b:c/d%é"))
            .starts_with("mongodb://a%40b%3Ac%2Fd%25%C3%A9@[::1]:1/?"));
    }

    #[test]
    fn only_loopback_without_credentials() {
        let public: SocketAddr = "0.0.0.0:27017".parse().unwrap();
        let error = check_bind(public, None).unwrap_err().to_string();
        assert!(
            error.contains("loopback") && error.contains("SCRAM"),
            "{error}"
        );
        check_bind("127.0.0.1:1".parse().unwrap(), None).unwrap();
        let credentials = Credentials::new("u", "p").unwrap();
        check_bind(public, Some(&credentials)).unwrap();
    }
}
