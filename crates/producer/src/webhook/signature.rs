//! `sha256=<hex>` HMAC-SHA256 signatures over a request body, checked in constant
//! time (GitHub's `X-Hub-Signature-256`, and the same form for `X-Gate-Signature-256`).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a signature was refused, in words safe to send back: never the expected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureError {
    Missing,
    Malformed,
    Mismatch,
}

impl SignatureError {
    pub(crate) fn reason(self, header: &str) -> String {
        match self {
            SignatureError::Missing => format!("missing {header} header"),
            SignatureError::Malformed => {
                format!("malformed {header} header: expected sha256=<64 hex digits>")
            }
            SignatureError::Mismatch => {
                format!("{header} does not match the body under the configured secret")
            }
        }
    }
}

/// Checks `header` (the header's value, if present) against the HMAC-SHA256 of
/// `body` under `secret`. The comparison is constant-time (`Mac::verify_slice`).
pub(crate) fn verify(
    secret: &[u8],
    body: &[u8],
    header: Option<&[u8]>,
) -> Result<(), SignatureError> {
    verify_parts(secret, &[body], header)
}

/// What a stamped `/events` signature covers besides the body:
/// `v1:<timestamp>:<delivery id>:`, so neither can be changed without the secret.
pub(crate) fn stamp_prefix(timestamp: &str, delivery: &str) -> String {
    format!("v1:{timestamp}:{delivery}:")
}

/// Like [`verify`], over the concatenation of `parts`.
pub(crate) fn verify_parts(
    secret: &[u8],
    parts: &[&[u8]],
    header: Option<&[u8]>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let header = std::str::from_utf8(header).map_err(|_| SignatureError::Malformed)?;
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return Err(SignatureError::Mismatch);
    };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let high = (pair[0] as char).to_digit(16)?;
            let low = (pair[1] as char).to_digit(16)?;
            u8::try_from(high * 16 + low).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example ("Validating webhook deliveries").
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_example_signature_verifies() {
        assert_eq!(
            verify(SECRET, b"Hello, World!", Some(SIGNATURE.as_bytes())),
            Ok(())
        );
        let upper = SIGNATURE.replace("757107ea", "757107EA");
        assert_eq!(
            verify(SECRET, b"Hello, World!", Some(upper.as_bytes())),
            Ok(())
        );
    }

    #[test]
    fn wrong_missing_and_malformed_signatures_are_told_apart() {
        assert_eq!(
            verify(SECRET, b"Hello, World?", Some(SIGNATURE.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                b"another secret",
                b"Hello, World!",
                Some(SIGNATURE.as_bytes())
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(SECRET, b"x", None), Err(SignatureError::Missing));
        for bad in ["sha1=abcd", "sha256=zz", "sha256=abcd", "757107ea"] {
            assert_eq!(
                verify(SECRET, b"x", Some(bad.as_bytes())),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
