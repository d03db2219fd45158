//! HTTP Message Signatures (RFC 9421) as the API uses them: ed25519 over
//! `"@method" "@target-uri" "content-digest"` (and `"if-match"` when the
//! request carries that precondition) with the parameters
//! `created`, `keyid` (the user name) and `nonce` (`alg="ed25519"` and
//! `expires` optional), and the body's RFC 9530 `Content-Digest` (SHA-256).
//!
//! Signing and verifying build the same signature base; the header fields
//! are parsed and serialized as RFC 8941 structured fields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sfv::{BareItem, Dictionary, FieldType, InnerList, Item, Key, List, ListEntry, Parser};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The label requests are signed under.
pub const LABEL: &str = "sig1";

/// The components every signature must cover, in the order signed.
pub const COVERED: [&str; 3] = ["@method", "@target-uri", "content-digest"];

/// The header a signature also covers when the request carries it (a
/// precondition that changes what a write does).
pub const IF_MATCH: &str = "if-match";

/// Why a signed request was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SigError {
    /// `Signature-Input` is malformed or lacks a parameter.
    #[error("Signature-Input: {0}")]
    Input(String),
    /// `Signature` is malformed or lacks the label.
    #[error("Signature: {0}")]
    Signature(String),
    /// `Content-Digest` is malformed or has no sha-256 member.
    #[error("Content-Digest: {0}")]
    Digest(String),
    /// The body is not the one the digest was made of.
    #[error("Content-Digest does not match the body (was the body changed after signing?)")]
    DigestMismatch,
    /// The signature does not verify with the user's key.
    #[error(
        "the signature does not verify with the key of user {0} (wrong key, or the method, URI or digest changed)"
    )]
    Invalid(String),
}

/// The signature parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The user name.
    pub keyid: String,
    /// Unix seconds when the request was signed.
    pub created: i64,
    /// A value never used twice by this user within the clock window.
    pub nonce: String,
    /// Unix seconds after which the signature is void, if set.
    pub expires: Option<i64>,
}

/// The three headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `Content-Digest`.
    pub content_digest: String,
    /// `Signature-Input`.
    pub signature_input: String,
    /// `Signature`.
    pub signature: String,
}

/// `sha-256=:…:`, the Content-Digest of `body`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// Checks a `Content-Digest` header against the body it came with.
pub fn check_digest(header: &str, body: &[u8]) -> Result<(), SigError> {
    let dict: Dictionary = Parser::new(header)
        .parse()
        .map_err(|e| SigError::Digest(e.to_string()))?;
    let Some(entry) = dict.get("sha-256") else {
        return Err(SigError::Digest(
            "no sha-256 member (the only algorithm accepted)".into(),
        ));
    };
    let claimed = match entry {
        ListEntry::Item(item) => item.bare_item.as_byte_sequence(),
        ListEntry::InnerList(_) => None,
    }
    .ok_or_else(|| SigError::Digest("sha-256 is not a byte sequence".into()))?;
    if claimed != Sha256::digest(body).as_slice() {
        return Err(SigError::DigestMismatch);
    }
    Ok(())
}

fn sf_string(s: &str) -> Result<BareItem, String> {
    sfv::String::from_string(s.to_owned())
        .map(BareItem::String)
        .map_err(|(e, _)| format!("{s:?}: {e}"))
}

fn sf_key(k: &'static str) -> Key {
    sfv::KeyRef::constant(k).to_owned()
}

/// The signature base of RFC 9421 section 2.5 for the covered components
/// in `order`.
fn signature_base(
    order: &[String],
    method: &str,
    target_uri: &str,
    digest: &str,
    if_match: Option<&str>,
    params_text: &str,
) -> String {
    let mut base = String::new();
    for name in order {
        let value = match name.as_str() {
            "@method" => method,
            "@target-uri" => target_uri,
            IF_MATCH => if_match.unwrap_or_default().trim(),
            _ => digest.trim(),
        };
        base.push_str(&format!("\"{name}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {params_text}"));
    base
}

fn serialize_inner(inner: InnerList) -> Result<String, String> {
    let list: List = vec![ListEntry::InnerList(inner)];
    list.serialize()
        .ok_or_else(|| "cannot serialize the signature parameters".to_owned())
}

/// Signs a request: `target_uri` is the full URI
/// (`https://host:port/path?query`).
pub fn sign(
    key: &SigningKey,
    params: &Params,
    method: &str,
    target_uri: &str,
    body: &[u8],
) -> Result<Signed, String> {
    sign_with_if_match(key, params, method, target_uri, body, None)
}

/// Signs a request that carries `If-Match: if_match` (when given), which
/// the signature then covers too.
pub fn sign_with_if_match(
    key: &SigningKey,
    params: &Params,
    method: &str,
    target_uri: &str,
    body: &[u8],
    if_match: Option<&str>,
) -> Result<Signed, String> {
    let digest = content_digest(body);
    let mut order: Vec<String> = COVERED.iter().map(|c| (*c).to_owned()).collect();
    if if_match.is_some() {
        order.push(IF_MATCH.to_owned());
    }
    let items = order
        .iter()
        .map(|c| sf_string(c).map(Item::new))
        .collect::<Result<Vec<_>, _>>()?;
    let mut inner = InnerList::new(items);
    inner.params.insert(
        sf_key("created"),
        BareItem::Integer(
            params
                .created
                .try_into()
                .map_err(|e| format!("created: {e}"))?,
        ),
    );
    if let Some(exp) = params.expires {
        inner.params.insert(
            sf_key("expires"),
            BareItem::Integer(exp.try_into().map_err(|e| format!("expires: {e}"))?),
        );
    }
    inner
        .params
        .insert(sf_key("keyid"), sf_string(&params.keyid)?);
    inner
        .params
        .insert(sf_key("nonce"), sf_string(&params.nonce)?);
    inner.params.insert(sf_key("alg"), sf_string("ed25519")?);
    let params_text = serialize_inner(inner)?;
    let base = signature_base(&order, method, target_uri, &digest, if_match, &params_text);
    let sig = key.sign(base.as_bytes());
    Ok(Signed {
        content_digest: digest,
        signature_input: format!("{LABEL}={params_text}"),
        signature: format!("{LABEL}=:{}:", STANDARD.encode(sig.to_bytes())),
    })
}

/// What a request's `Signature-Input` and `Signature` claim, parsed and
/// checked for shape; [`Claim::verify`] checks the signature itself.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The parameters.
    pub params: Params,
    order: Vec<String>,
    params_text: String,
    signature: Signature,
}

/// Parses the signature headers. The first signature in `Signature-Input`
/// is the one checked; it must cover exactly [`COVERED`].
pub fn parse(signature_input: &str, signature: &str) -> Result<Claim, SigError> {
    let input: Dictionary = Parser::new(signature_input)
        .parse()
        .map_err(|e| SigError::Input(e.to_string()))?;
    let Some((label, entry)) = input.first() else {
        return Err(SigError::Input("no signature".into()));
    };
    let ListEntry::InnerList(inner) = entry else {
        return Err(SigError::Input(format!(
            "{}: expected a list of covered components",
            label.as_str()
        )));
    };
    let mut order = Vec::new();
    for item in &inner.items {
        let Some(name) = item.bare_item.as_string() else {
            return Err(SigError::Input(
                "a covered component is not a string".into(),
            ));
        };
        if !item.params.is_empty() {
            return Err(SigError::Input(format!(
                "component {:?} has parameters; none are supported",
                name.as_str()
            )));
        }
        order.push(name.as_str().to_owned());
    }
    let mut sorted = order.clone();
    sorted.sort();
    let mut wanted: Vec<String> = COVERED.iter().map(|c| (*c).to_owned()).collect();
    wanted.sort();
    let mut with_if_match = wanted.clone();
    with_if_match.push(IF_MATCH.to_owned());
    with_if_match.sort();
    if sorted != wanted && sorted != with_if_match {
        return Err(SigError::Input(format!(
            "the signature must cover exactly \"@method\" \"@target-uri\" \"content-digest\" (and \"if-match\" with an If-Match header); it covers {}",
            order
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    let mut keyid = None;
    let mut created = None;
    let mut nonce = None;
    let mut expires = None;
    for (k, v) in &inner.params {
        let bad = || SigError::Input(format!("parameter {} has the wrong type", k.as_str()));
        match k.as_str() {
            "keyid" => keyid = Some(v.as_string().ok_or_else(bad)?.as_str().to_owned()),
            "nonce" => nonce = Some(v.as_string().ok_or_else(bad)?.as_str().to_owned()),
            "created" => created = Some(i64::from(v.as_integer().ok_or_else(bad)?)),
            "expires" => expires = Some(i64::from(v.as_integer().ok_or_else(bad)?)),
            "alg" => {
                let alg = v.as_string().ok_or_else(bad)?.as_str();
                if alg != "ed25519" {
                    return Err(SigError::Input(format!(
                        "alg {alg:?} is not supported; use ed25519"
                    )));
                }
            }
            "tag" => {}
            other => {
                return Err(SigError::Input(format!("unknown parameter {other}")));
            }
        }
    }
    let missing = |name: &str| SigError::Input(format!("the {name} parameter is missing"));
    let params = Params {
        keyid: keyid.ok_or_else(|| missing("keyid"))?,
        created: created.ok_or_else(|| missing("created"))?,
        nonce: nonce.ok_or_else(|| missing("nonce"))?,
        expires,
    };
    if params.nonce.is_empty() || params.nonce.len() > 128 {
        return Err(SigError::Input(
            "the nonce must be 1 to 128 characters".into(),
        ));
    }
    let params_text = serialize_inner(inner.clone()).map_err(SigError::Input)?;

    let sigs: Dictionary = Parser::new(signature)
        .parse()
        .map_err(|e| SigError::Signature(e.to_string()))?;
    let bytes = match sigs.get(label.as_str()) {
        Some(ListEntry::Item(item)) => item.bare_item.as_byte_sequence(),
        Some(ListEntry::InnerList(_)) => None,
        None => {
            return Err(SigError::Signature(format!(
                "no signature labelled {}",
                label.as_str()
            )));
        }
    }
    .ok_or_else(|| SigError::Signature("not a byte sequence".into()))?;
    let signature = Signature::from_slice(bytes).map_err(|_| {
        SigError::Signature(format!(
            "{} bytes; an ed25519 signature has 64",
            bytes.len()
        ))
    })?;
    Ok(Claim {
        params,
        order,
        params_text,
        signature,
    })
}

impl Claim {
    /// Whether the signature covers the request's `If-Match` header.
    pub fn covers_if_match(&self) -> bool {
        self.order.iter().any(|c| c == IF_MATCH)
    }

    /// Verifies the signature over the request's method, full URI,
    /// `Content-Digest` header (checked against the body apart) and, when
    /// it covers it, `If-Match` header.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        method: &str,
        target_uri: &str,
        content_digest: &str,
        if_match: Option<&str>,
    ) -> Result<(), SigError> {
        let base = signature_base(
            &self.order,
            method,
            target_uri,
            content_digest,
            if_match,
            &self.params_text,
        );
        key.verify_strict(base.as_bytes(), &self.signature)
            .map_err(|_| SigError::Invalid(self.params.keyid.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            keyid: "alice".into(),
            created: 1_700_000_000,
            nonce: "n-1".into(),
            expires: None,
        }
    }

    const URI: &str = "https://127.0.0.1:4507/v1/jobs?limit=5";

    #[test]
    fn signed_requests_verify_and_any_change_is_refused() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let body = br#"{"fun":"test.ping"}"#;
        let s = sign(&key, &params(), "POST", URI, body).expect("sign");
        assert_eq!(
            s.signature_input,
            r#"sig1=("@method" "@target-uri" "content-digest");created=1700000000;keyid="alice";nonce="n-1";alg="ed25519""#
        );
        let claim = parse(&s.signature_input, &s.signature).expect("parse");
        assert_eq!(claim.params, params());
        let vk = key.verifying_key();
        claim
            .verify(&vk, "POST", URI, &s.content_digest, None)
            .expect("verifies");
        check_digest(&s.content_digest, body).expect("digest");

        assert_eq!(
            check_digest(&s.content_digest, b"{}"),
            Err(SigError::DigestMismatch)
        );
        assert!(
            claim
                .verify(&vk, "GET", URI, &s.content_digest, None)
                .is_err()
        );
        assert!(
            claim
                .verify(
                    &vk,
                    "POST",
                    "https://127.0.0.1:4507/v1/jobs",
                    &s.content_digest,
                    None
                )
                .is_err()
        );
        assert!(
            claim
                .verify(&vk, "POST", URI, &content_digest(b"{}"), None)
                .is_err()
        );
        let other = SigningKey::from_bytes(&[4; 32]).verifying_key();
        assert_eq!(
            claim.verify(&other, "POST", URI, &s.content_digest, None),
            Err(SigError::Invalid("alice".into()))
        );
    }

    #[test]
    fn an_if_match_precondition_is_covered_when_sent() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let vk = key.verifying_key();
        let body = br#"{"fields":{"owner":"web"}}"#;
        let s =
            sign_with_if_match(&key, &params(), "PATCH", URI, body, Some("\"7\"")).expect("sign");
        assert!(
            s.signature_input
                .contains(r#""content-digest" "if-match")"#),
            "{}",
            s.signature_input
        );
        let claim = parse(&s.signature_input, &s.signature).expect("parse");
        assert!(claim.covers_if_match());
        claim
            .verify(&vk, "PATCH", URI, &s.content_digest, Some("\"7\""))
            .expect("verifies");
        // Another precondition, or none, is not what was signed.
        assert!(
            claim
                .verify(&vk, "PATCH", URI, &s.content_digest, Some("\"8\""))
                .is_err()
        );
        assert!(
            claim
                .verify(&vk, "PATCH", URI, &s.content_digest, None)
                .is_err()
        );
        let plain = sign(&key, &params(), "PATCH", URI, body).expect("sign");
        assert!(
            !parse(&plain.signature_input, &plain.signature)
                .expect("parse")
                .covers_if_match()
        );
    }

    #[test]
    fn components_in_another_order_are_signed_in_that_order() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let digest = content_digest(b"");
        let input =
            r#"x=("content-digest" "@method" "@target-uri");keyid="bob";created=5;nonce="z""#;
        let base = format!(
            "\"content-digest\": {digest}\n\"@method\": GET\n\"@target-uri\": {URI}\n\"@signature-params\": (\"content-digest\" \"@method\" \"@target-uri\");keyid=\"bob\";created=5;nonce=\"z\""
        );
        let sig = key.sign(base.as_bytes());
        let header = format!("x=:{}:", STANDARD.encode(sig.to_bytes()));
        let claim = parse(input, &header).expect("parse");
        claim
            .verify(&key.verifying_key(), "GET", URI, &digest, None)
            .expect("verifies");
    }

    #[test]
    fn malformed_headers_name_what_is_wrong() {
        let sig = "sig1=:AAAA:";
        let cases = [
            (
                "sig1=(\"@method\");created=1;keyid=\"a\";nonce=\"n\"",
                "must cover exactly",
            ),
            (
                "sig1=(\"@method\" \"@target-uri\" \"content-digest\");keyid=\"a\";nonce=\"n\"",
                "created parameter is missing",
            ),
            (
                "sig1=(\"@method\" \"@target-uri\" \"content-digest\");created=1;nonce=\"n\"",
                "keyid parameter is missing",
            ),
            (
                "sig1=(\"@method\" \"@target-uri\" \"content-digest\");created=1;keyid=\"a\"",
                "nonce parameter is missing",
            ),
            (
                "sig1=(\"@method\" \"@target-uri\" \"content-digest\");created=1;keyid=\"a\";nonce=\"n\";alg=\"rsa-v1_5-sha256\"",
                "not supported",
            ),
            (
                "sig1=(\"@method\" \"@target-uri\" \"content-digest\");created=\"x\";keyid=\"a\";nonce=\"n\"",
                "wrong type",
            ),
            (
                "sig1=(\"@method\" \"@target-uri\" \"content-digest\");created=1;keyid=\"a\";nonce=\"n\";foo=1",
                "unknown parameter foo",
            ),
            ("not a dictionary (", "Signature-Input"),
        ];
        for (input, want) in cases {
            let err = parse(input, sig).expect_err(input).to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
        let good = "sig1=(\"@method\" \"@target-uri\" \"content-digest\");created=1;keyid=\"a\";nonce=\"n\"";
        let err = parse(good, "sig1=:AAAA:").expect_err("short").to_string();
        assert!(err.contains("64"), "{err}");
        let err = parse(good, "sig2=:AAAA:").expect_err("label").to_string();
        assert!(err.contains("no signature labelled sig1"), "{err}");
        assert!(check_digest("sha-512=:AAAA:", b"").is_err());
        assert!(check_digest("garbage(", b"").is_err());
    }
}
