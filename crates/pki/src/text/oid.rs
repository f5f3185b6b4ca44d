//! OpenSSL's names for the object identifiers a certificate commonly carries.
//!
//! OpenSSL prints attribute types by short name (`CN`) and everything else (algorithms,
//! extensions, key purposes) by long name; an identifier it does not know is printed dotted.
//! These tables hold the subset Confianza's certificates and the usual Web PKI ones use.

use der::asn1::ObjectIdentifier;

/// Short names of name attributes (`XN_FLAG_FN_SN`).
const ATTRIBUTES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.13", "description"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.41", "name"),
    ("2.5.4.42", "GN"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.65", "pseudonym"),
    ("2.5.4.97", "organizationIdentifier"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
];

/// Long names of algorithms, extensions, key purposes, access methods and policies.
const LONG_NAMES: &[(&str, &str)] = &[
    // Signature and key algorithms.
    ("1.2.840.10045.2.1", "id-ecPublicKey"),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.3.101.110", "X25519"),
    ("1.3.101.111", "X448"),
    ("1.3.101.112", "ED25519"),
    ("1.3.101.113", "ED448"),
    ("1.2.840.113549.1.1.1", "rsaEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.10", "rsassaPss"),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.113549.1.1.14", "sha224WithRSAEncryption"),
    // Extensions.
    ("2.5.29.14", "X509v3 Subject Key Identifier"),
    ("2.5.29.15", "X509v3 Key Usage"),
    ("2.5.29.16", "X509v3 Private Key Usage Period"),
    ("2.5.29.17", "X509v3 Subject Alternative Name"),
    ("2.5.29.18", "X509v3 Issuer Alternative Name"),
    ("2.5.29.19", "X509v3 Basic Constraints"),
    ("2.5.29.20", "X509v3 CRL Number"),
    ("2.5.29.21", "X509v3 CRL Reason Code"),
    ("2.5.29.24", "Invalidity Date"),
    ("2.5.29.27", "X509v3 Delta CRL Indicator"),
    ("2.5.29.28", "X509v3 Issuing Distribution Point"),
    ("2.5.29.29", "X509v3 Certificate Issuer"),
    ("2.5.29.30", "X509v3 Name Constraints"),
    ("2.5.29.31", "X509v3 CRL Distribution Points"),
    ("2.5.29.32", "X509v3 Certificate Policies"),
    ("2.5.29.33", "X509v3 Policy Mappings"),
    ("2.5.29.35", "X509v3 Authority Key Identifier"),
    ("2.5.29.36", "X509v3 Policy Constraints"),
    ("2.5.29.37", "X509v3 Extended Key Usage"),
    ("2.5.29.46", "X509v3 Freshest CRL"),
    ("2.5.29.54", "X509v3 Inhibit Any Policy"),
    ("1.3.6.1.5.5.7.1.1", "Authority Information Access"),
    ("1.3.6.1.5.5.7.1.11", "Subject Information Access"),
    ("1.3.6.1.5.5.7.48.1.5", "OCSP No Check"),
    ("1.3.6.1.4.1.11129.2.4.2", "CT Precertificate SCTs"),
    ("1.3.6.1.4.1.11129.2.4.3", "CT Precertificate Poison"),
    ("2.16.840.1.113730.1.13", "Netscape Comment"),
    // Extended key usages.
    ("1.3.6.1.5.5.7.3.1", "TLS Web Server Authentication"),
    ("1.3.6.1.5.5.7.3.2", "TLS Web Client Authentication"),
    ("1.3.6.1.5.5.7.3.3", "Code Signing"),
    ("1.3.6.1.5.5.7.3.4", "E-mail Protection"),
    ("1.3.6.1.5.5.7.3.8", "Time Stamping"),
    ("1.3.6.1.5.5.7.3.9", "OCSP Signing"),
    ("2.5.29.37.0", "Any Extended Key Usage"),
    // Access methods.
    ("1.3.6.1.5.5.7.48.1", "OCSP"),
    ("1.3.6.1.5.5.7.48.2", "CA Issuers"),
    ("1.3.6.1.5.5.7.48.3", "Time Stamping"),
    ("1.3.6.1.5.5.7.48.5", "CA Repository"),
    // Policies and qualifiers.
    ("2.5.29.32.0", "X509v3 Any Policy"),
    ("1.3.6.1.5.5.7.2.1", "Policy Qualifier CPS"),
    ("1.3.6.1.5.5.7.2.2", "Policy Qualifier User Notice"),
];

fn lookup(table: &[(&str, &'static str)], oid: &ObjectIdentifier) -> Option<&'static str> {
    let dotted = oid.to_string();
    table
        .iter()
        .find(|(o, _)| *o == dotted)
        .map(|(_, name)| *name)
}

/// The attribute short name, or the dotted OID.
pub(crate) fn attribute_name(oid: &ObjectIdentifier) -> String {
    lookup(ATTRIBUTES, oid).map_or_else(|| oid.to_string(), str::to_owned)
}

/// The long name (`i2a_ASN1_OBJECT`), or the dotted OID.
pub(crate) fn long_name(oid: &ObjectIdentifier) -> String {
    lookup(LONG_NAMES, oid).map_or_else(|| oid.to_string(), str::to_owned)
}
