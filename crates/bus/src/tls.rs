//! TLS for `amqps://` and `rediss://`: rustls with ring, the broker's and Redis's
//! certificates always verified against the public roots plus the private CA of
//! `bus.tls_ca_file` / `stores.tls_ca_file`, and an optional client certificate.

use crate::{BusError, BusSettings, RedisSettings, StoreError};

/// The lapin TLS configuration of `settings` (empty when no file is configured:
/// public roots only). Reads the files now, naming any that cannot be read.
pub(crate) fn amqp_tls_config(
    settings: &BusSettings,
) -> Result<lapin::tcp::OwnedTLSConfig, BusError> {
    let read = |key: &str, path: &Option<String>| -> Result<Option<Vec<u8>>, BusError> {
        path.as_deref()
            .map(|path| {
                std::fs::read(path)
                    .map_err(|e| BusError::InvalidSettings(format!("bus.{key} = {path:?}: {e}")))
            })
            .transpose()
    };
    let cert_chain = read("tls_ca_file", &settings.tls_ca_file)?
        .map(|pem| {
            String::from_utf8(pem).map_err(|_| {
                BusError::InvalidSettings(format!(
                    "bus.tls_ca_file = {:?} is not PEM text",
                    settings.tls_ca_file.as_deref().unwrap_or_default()
                ))
            })
        })
        .transpose()?;
    let identity = match (
        read("tls_client_cert_file", &settings.tls_client_cert_file)?,
        read("tls_client_key_file", &settings.tls_client_key_file)?,
    ) {
        (Some(pem), Some(key)) => Some(lapin::tcp::OwnedIdentity::PKCS8 { pem, key }),
        (None, None) => None,
        _ => return Err(BusError::InvalidSettings(
            "bus.tls_client_cert_file and bus.tls_client_key_file go together: set both or neither"
                .to_string(),
        )),
    };
    Ok(lapin::tcp::OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// A Redis client for `url`, with the CA and client certificate of `settings`
/// when it is `rediss://` and they are configured.
pub(crate) fn redis_client(
    url: &str,
    settings: &RedisSettings,
) -> Result<redis::Client, StoreError> {
    let invalid = |e: redis::RedisError| {
        StoreError::InvalidUrl(format!("{} ({:?})", masked_url(url), e.kind()))
    };
    let configured = settings.tls_ca_file.is_some() || settings.tls_client_cert_file.is_some();
    if !(url.starts_with("rediss://") && configured) {
        return redis::Client::open(url).map_err(invalid);
    }
    let read = |key: &str, path: &Option<String>| -> Result<Option<Vec<u8>>, StoreError> {
        path.as_deref()
            .map(|path| {
                std::fs::read(path)
                    .map_err(|e| StoreError::InvalidUrl(format!("stores.{key} = {path:?}: {e}")))
            })
            .transpose()
    };
    let client_tls = match (
        read("tls_client_cert_file", &settings.tls_client_cert_file)?,
        read("tls_client_key_file", &settings.tls_client_key_file)?,
    ) {
        (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
            client_cert,
            client_key,
        }),
        (None, None) => None,
        _ => {
            return Err(StoreError::InvalidUrl(
                "stores.tls_client_cert_file and stores.tls_client_key_file go together: set both or neither"
                    .to_string(),
            ))
        }
    };
    let certificates = redis::TlsCertificates {
        client_tls,
        root_cert: read("tls_ca_file", &settings.tls_ca_file)?,
    };
    redis::Client::build_with_tls(url, certificates).map_err(invalid)
}

/// Makes ring rustls's process-wide provider, once, so every TLS client agrees
/// whatever other crates enabled.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `url` with its password replaced by `****`, for errors and logs.
pub(crate) fn masked_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "(not a URL)".to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or_default();
    format!(
        "{}://{}{}{}",
        &url[..scheme_end],
        user,
        if userinfo.contains(':') { ":****" } else { "" },
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            masked_url("amqps://gate:s3cret@broker:5671/prod"),
            "amqps://gate:****@broker:5671/prod"
        );
        assert_eq!(
            masked_url("rediss://:pw@cache:6380/0"),
            "rediss://:****@cache:6380/0"
        );
        assert_eq!(
            masked_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert!(!masked_url("amqp://u:p@h:1/%2f").contains(":p@"));
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let settings = BusSettings {
            tls_ca_file: Some("/nonexistent/ca.pem".to_string()),
            ..BusSettings::default()
        };
        let error = amqp_tls_config(&settings).unwrap_err().to_string();
        assert!(
            error.contains("bus.tls_ca_file") && error.contains("/nonexistent/ca.pem"),
            "{error}"
        );
    }
}
