//! Names: DNS names (RFC 1034/5890 preferred syntax, RFC 6125/9525 wildcards), IP addresses,
//! e-mail addresses (RFC 5280 §4.2.1.6 rfc822Name), directory names, and the name constraints
//! of RFC 5280 §4.2.1.10 over them.
//!
//! ```text
//! NameConstraints ::= SEQUENCE {
//!      permittedSubtrees       [0]     GeneralSubtrees OPTIONAL,
//!      excludedSubtrees        [1]     GeneralSubtrees OPTIONAL }
//! GeneralSubtree ::= SEQUENCE {
//!      base                    GeneralName,
//!      minimum         [0]     BaseDistance DEFAULT 0,
//!      maximum         [1]     BaseDistance OPTIONAL }
//! ```
//!
//! Only dNSName, iPAddress, rfc822Name and directoryName constraints are processed. A constraint
//! of another form (otherName, URI, …) is refused only when a name of that form appears below
//! it, as RFC 5280 allows ("either process the constraint or reject the certificate").

use std::net::IpAddr;

use x509_cert::ext::pkix::NameConstraints;
use x509_cert::ext::pkix::constraints::name::GeneralSubtree;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

use super::limits::MAX_NAME_CONSTRAINT_COMPARISONS;

/// Longest DNS name, RFC 1035 §2.3.4 (octets, without a trailing dot).
const MAX_DNS_NAME_LEN: usize = 253;
/// Longest DNS label, RFC 1035 §2.3.4.
const MAX_DNS_LABEL_LEN: usize = 63;

/// Why names or name constraints are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// A name in the certificate is not a valid name of its form.
    #[error("invalid {0} name in certificate")]
    InvalidName(&'static str),
    /// A name constraint is malformed (bad DNS name, bad IP mask, minimum/maximum set, empty).
    #[error("invalid name constraint")]
    InvalidConstraint,
    /// A name is outside every permitted subtree of its form.
    #[error("name not permitted by name constraints")]
    NotPermitted,
    /// A name is inside an excluded subtree.
    #[error("name excluded by name constraints")]
    Excluded,
    /// A name of a form whose constraints we do not process appears under such a constraint.
    #[error("unsupported name constraint form")]
    UnsupportedConstraint,
    /// More comparisons than [`MAX_NAME_CONSTRAINT_COMPARISONS`].
    #[error("name constraint work limit exceeded")]
    WorkLimitExceeded,
}

/// A name the caller expects the end-entity certificate to be for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedName {
    /// A DNS host name (no wildcard).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
    /// An e-mail address (`local@domain`).
    Email(String),
}

/// Whether `name` is a valid DNS host name in preferred syntax (letters, digits, hyphens; no
/// empty labels; no leading or trailing hyphen in a label; no trailing dot).
pub fn is_valid_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_DNS_NAME_LEN {
        return false;
    }
    name.split('.').all(is_valid_label)
}

fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_DNS_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A dNSName from a certificate: a host name, or `*.` followed by a host name of at least two
/// labels (RFC 9525 §6.3: the wildcard is the whole left-most label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DnsPattern<'a> {
    Exact(&'a str),
    Wildcard(&'a str),
}

fn parse_dns_pattern(name: &str) -> Option<DnsPattern<'_>> {
    if let Some(base) = name.strip_prefix("*.") {
        (is_valid_dns_name(base) && base.contains('.')).then_some(DnsPattern::Wildcard(base))
    } else {
        is_valid_dns_name(name).then_some(DnsPattern::Exact(name))
    }
}

/// `name` equals `base` or ends with `.base` (ASCII case-insensitive).
fn dns_in_subtree(name: &str, base: &str) -> bool {
    if base.is_empty() {
        return true;
    }
    if name.len() == base.len() {
        return name.eq_ignore_ascii_case(base);
    }
    name.len() > base.len()
        && name
            .get(name.len() - base.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(base))
        && name.as_bytes().get(name.len() - base.len() - 1) == Some(&b'.')
}

fn dns_pattern_matches(pattern: DnsPattern<'_>, reference: &str) -> bool {
    match pattern {
        DnsPattern::Exact(name) => name.eq_ignore_ascii_case(reference),
        DnsPattern::Wildcard(base) => reference
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest.eq_ignore_ascii_case(base)),
    }
}

/// A mailbox `local@domain`: a non-empty printable local part without `@`, a valid domain.
fn parse_mailbox(addr: &str) -> Option<(&str, &str)> {
    let (local, domain) = addr.rsplit_once('@')?;
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'@');
    (local_ok && is_valid_dns_name(domain)).then_some((local, domain))
}

fn mailbox_eq(a: (&str, &str), b: (&str, &str)) -> bool {
    a.0 == b.0 && a.1.eq_ignore_ascii_case(b.1)
}

/// Checks the end entity's subjectAltName against the name the caller expects. Common names
/// are never used (RFC 9525 §6.3).
pub fn matches_expected(
    san: Option<&[GeneralName]>,
    expected: &ExpectedName,
) -> Result<bool, NameError> {
    let names = san.unwrap_or(&[]);
    match expected {
        ExpectedName::Dns(reference) => {
            if !is_valid_dns_name(reference) {
                return Ok(false);
            }
            for name in names {
                if let GeneralName::DnsName(dns) = name {
                    let pattern =
                        parse_dns_pattern(dns.as_str()).ok_or(NameError::InvalidName("dNSName"))?;
                    if dns_pattern_matches(pattern, reference) {
                        return Ok(true);
                    }
                }
            }
            Ok(false)
        }
        ExpectedName::Ip(ip) => {
            let want: Vec<u8> = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            Ok(names.iter().any(|name| {
                matches!(name, GeneralName::IpAddress(bytes) if bytes.as_bytes() == want.as_slice())
            }))
        }
        ExpectedName::Email(reference) => {
            let Some(want) = parse_mailbox(reference) else {
                return Ok(false);
            };
            for name in names {
                if let GeneralName::Rfc822Name(addr) = name {
                    let have =
                        parse_mailbox(addr.as_str()).ok_or(NameError::InvalidName("rfc822Name"))?;
                    if mailbox_eq(have, want) {
                        return Ok(true);
                    }
                }
            }
            Ok(false)
        }
    }
}

/// Checks every name in a certificate's subjectAltName is well formed for its form.
pub fn check_san_syntax(san: &[GeneralName]) -> Result<(), NameError> {
    for name in san {
        match name {
            GeneralName::DnsName(dns) => {
                parse_dns_pattern(dns.as_str()).ok_or(NameError::InvalidName("dNSName"))?;
            }
            GeneralName::IpAddress(ip) if !matches!(ip.as_bytes().len(), 4 | 16) => {
                return Err(NameError::InvalidName("iPAddress"));
            }
            GeneralName::Rfc822Name(addr) => {
                parse_mailbox(addr.as_str()).ok_or(NameError::InvalidName("rfc822Name"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a commonName value looks like a host name or an IP address literal: dot- or
/// colon-separated, with no spaces or `@` (so not a person's name or a mailbox). Non-ASCII
/// (internationalised) host names count.
pub fn looks_like_host(cn: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(cn) else {
        return false;
    };
    let dotted = text.contains('.') || text.contains(':');
    let plain = !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c == '@' || c == '/' || c == '=');
    let hexnum = text.len() > 2
        && text.starts_with("0x")
        && text[2..].bytes().all(|b| b.is_ascii_hexdigit());
    plain && (dotted || hexnum)
}

/// The textual form a commonName would need to equal an iPAddress SAN (RFC 5952 for IPv6).
pub fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => {
            let octets: [u8; 4] = bytes.try_into().ok()?;
            Some(std::net::Ipv4Addr::from(octets).to_string())
        }
        16 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(octets).to_string())
        }
        _ => None,
    }
}

/// A validated name constraints extension.
#[derive(Debug)]
pub struct Constraints<'a> {
    permitted: Option<&'a [GeneralSubtree]>,
    excluded: Option<&'a [GeneralSubtree]>,
}

impl<'a> Constraints<'a> {
    /// Validates the constraints themselves.
    pub fn new(nc: &'a NameConstraints) -> Result<Self, NameError> {
        let permitted = nc.permitted_subtrees.as_deref();
        let excluded = nc.excluded_subtrees.as_deref();
        // At least one of the two, and neither an empty SEQUENCE (SIZE (1..MAX)).
        if permitted.is_none() && excluded.is_none()
            || permitted.is_some_and(<[_]>::is_empty)
            || excluded.is_some_and(<[_]>::is_empty)
        {
            return Err(NameError::InvalidConstraint);
        }
        for subtree in permitted
            .unwrap_or(&[])
            .iter()
            .chain(excluded.unwrap_or(&[]))
        {
            check_subtree(subtree)?;
        }
        Ok(Self {
            permitted,
            excluded,
        })
    }

    /// Checks one certificate's names: its subject (when not empty) and its SAN.
    pub fn check(
        &self,
        subject: &Name,
        san: Option<&[GeneralName]>,
        budget: &mut usize,
    ) -> Result<(), NameError> {
        if !subject.is_empty() {
            self.check_name(&Subject::Directory(subject), budget)?;
        }
        for name in san.unwrap_or(&[]) {
            self.check_name(&Subject::General(name), budget)?;
        }
        Ok(())
    }

    fn check_name(&self, name: &Subject<'_>, budget: &mut usize) -> Result<(), NameError> {
        let form = name.form();
        let mut permitted_of_form = false;
        let mut permitted_match = false;
        for subtree in self.permitted.unwrap_or(&[]) {
            if form_of(&subtree.base) != form {
                continue;
            }
            spend(budget)?;
            permitted_of_form = true;
            if matches_subtree(name, &subtree.base, Mode::Permitted)? {
                permitted_match = true;
                break;
            }
        }
        if permitted_of_form && !permitted_match {
            return Err(NameError::NotPermitted);
        }
        for subtree in self.excluded.unwrap_or(&[]) {
            if form_of(&subtree.base) != form {
                continue;
            }
            spend(budget)?;
            if matches_subtree(name, &subtree.base, Mode::Excluded)? {
                return Err(NameError::Excluded);
            }
        }
        Ok(())
    }
}

fn spend(budget: &mut usize) -> Result<(), NameError> {
    *budget = budget.checked_sub(1).ok_or(NameError::WorkLimitExceeded)?;
    Ok(())
}

/// A fresh comparison budget for one path.
pub fn comparison_budget() -> usize {
    MAX_NAME_CONSTRAINT_COMPARISONS
}

enum Subject<'a> {
    Directory(&'a Name),
    General(&'a GeneralName),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Dns,
    Ip,
    Email,
    Directory,
    Other(u8),
}

fn form_of(name: &GeneralName) -> Form {
    match name {
        GeneralName::DnsName(_) => Form::Dns,
        GeneralName::IpAddress(_) => Form::Ip,
        GeneralName::Rfc822Name(_) => Form::Email,
        GeneralName::DirectoryName(_) => Form::Directory,
        GeneralName::OtherName(_) => Form::Other(0),
        GeneralName::EdiPartyName(_) => Form::Other(5),
        GeneralName::UniformResourceIdentifier(_) => Form::Other(6),
        GeneralName::RegisteredId(_) => Form::Other(8),
    }
}

impl Subject<'_> {
    fn form(&self) -> Form {
        match self {
            Subject::Directory(_) => Form::Directory,
            Subject::General(name) => form_of(name),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Permitted,
    Excluded,
}

fn check_subtree(subtree: &GeneralSubtree) -> Result<(), NameError> {
    // RFC 5280 §4.2.1.10: minimum MUST be zero and maximum MUST be absent.
    if subtree.minimum != 0 || subtree.maximum.is_some() {
        return Err(NameError::InvalidConstraint);
    }
    match &subtree.base {
        GeneralName::DnsName(dns) => {
            let dns = dns.as_str();
            if !dns.is_empty() && !is_valid_dns_name(dns) {
                return Err(NameError::InvalidConstraint);
            }
        }
        GeneralName::IpAddress(ip) => {
            ip_constraint(ip.as_bytes()).ok_or(NameError::InvalidConstraint)?;
        }
        GeneralName::Rfc822Name(addr) => {
            email_constraint(addr.as_str()).ok_or(NameError::InvalidConstraint)?;
        }
        _ => {}
    }
    Ok(())
}

/// An iPAddress constraint: address then mask, 8 or 32 octets, the mask contiguous ones.
fn ip_constraint(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    if !matches!(bytes.len(), 8 | 32) {
        return None;
    }
    let (addr, mask) = bytes.split_at(bytes.len() / 2);
    let mut seen_zero = false;
    for byte in mask {
        for bit in (0..8).rev() {
            let one = byte & (1 << bit) != 0;
            if one && seen_zero {
                return None;
            }
            seen_zero |= !one;
        }
    }
    Some((addr, mask))
}

enum EmailConstraint<'a> {
    Mailbox(&'a str, &'a str),
    Host(&'a str),
    DomainSuffix(&'a str),
}

fn email_constraint(c: &str) -> Option<EmailConstraint<'_>> {
    if c.contains('@') {
        let (local, domain) = parse_mailbox(c)?;
        Some(EmailConstraint::Mailbox(local, domain))
    } else if let Some(domain) = c.strip_prefix('.') {
        is_valid_dns_name(domain).then_some(EmailConstraint::DomainSuffix(domain))
    } else {
        is_valid_dns_name(c).then_some(EmailConstraint::Host(c))
    }
}

/// Whether `prefix`'s RDNs are the first RDNs of `name`.
fn dn_in_subtree(name: &Name, prefix: &Name) -> bool {
    prefix.len() <= name.len() && name.iter_rdn().zip(prefix.iter_rdn()).all(|(a, b)| a == b)
}

fn matches_subtree(name: &Subject<'_>, base: &GeneralName, mode: Mode) -> Result<bool, NameError> {
    match (name, base) {
        (Subject::Directory(dn), GeneralName::DirectoryName(prefix)) => {
            Ok(dn_in_subtree(dn, prefix))
        }
        (Subject::General(GeneralName::DirectoryName(dn)), GeneralName::DirectoryName(prefix)) => {
            Ok(dn_in_subtree(dn, prefix))
        }
        (Subject::General(GeneralName::DnsName(dns)), GeneralName::DnsName(base)) => {
            let base = base.as_str();
            match parse_dns_pattern(dns.as_str()).ok_or(NameError::InvalidName("dNSName"))? {
                DnsPattern::Exact(name) => Ok(dns_in_subtree(name, base)),
                // A wildcard stands for every name one label below `wild`: it is permitted only
                // if all of them are, and excluded if any of them is (CVE-2025-61727).
                DnsPattern::Wildcard(wild) => Ok(match mode {
                    Mode::Permitted => dns_in_subtree(wild, base),
                    Mode::Excluded => dns_in_subtree(wild, base) || dns_in_subtree(base, wild),
                }),
            }
        }
        (Subject::General(GeneralName::IpAddress(ip)), GeneralName::IpAddress(c)) => {
            let (addr, mask) = ip_constraint(c.as_bytes()).ok_or(NameError::InvalidConstraint)?;
            let ip = ip.as_bytes();
            if ip.len() != addr.len() {
                return Ok(false);
            }
            Ok(ip
                .iter()
                .zip(addr)
                .zip(mask)
                .all(|((i, a), m)| i & m == a & m))
        }
        (Subject::General(GeneralName::Rfc822Name(addr)), GeneralName::Rfc822Name(c)) => {
            let (local, domain) =
                parse_mailbox(addr.as_str()).ok_or(NameError::InvalidName("rfc822Name"))?;
            Ok(
                match email_constraint(c.as_str()).ok_or(NameError::InvalidConstraint)? {
                    EmailConstraint::Mailbox(cl, cd) => mailbox_eq((local, domain), (cl, cd)),
                    EmailConstraint::Host(host) => domain.eq_ignore_ascii_case(host),
                    EmailConstraint::DomainSuffix(suffix) => {
                        domain.len() > suffix.len() && dns_in_subtree(domain, suffix)
                    }
                },
            )
        }
        // A constraint on a form we do not process, with a name of that form below it.
        _ => Err(NameError::UnsupportedConstraint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_syntax() {
        assert!(is_valid_dns_name("example.com"));
        assert!(is_valid_dns_name("a-b.example"));
        assert!(!is_valid_dns_name("foo_bar.example.com"));
        assert!(!is_valid_dns_name("-a.example"));
        assert!(!is_valid_dns_name("a..example"));
        assert!(!is_valid_dns_name("example.com."));
        assert!(!is_valid_dns_name(""));
        assert!(!is_valid_dns_name(&"a".repeat(64)));
        assert!(is_valid_dns_name(&"a".repeat(63)));
    }

    #[test]
    fn wildcards() {
        let p = parse_dns_pattern("*.example.com").expect("wildcard");
        assert!(dns_pattern_matches(p, "foo.example.com"));
        assert!(dns_pattern_matches(p, "FOO.Example.COM"));
        assert!(!dns_pattern_matches(p, "example.com"));
        assert!(!dns_pattern_matches(p, "foo.bar.example.com"));
        assert!(parse_dns_pattern("*.com").is_none());
        assert!(parse_dns_pattern("*").is_none());
        assert!(parse_dns_pattern("f*o.example.com").is_none());
        assert!(parse_dns_pattern("foo.*.example.com").is_none());
    }

    #[test]
    fn subtrees() {
        assert!(dns_in_subtree("example.com", "example.com"));
        assert!(dns_in_subtree("a.example.com", "example.com"));
        assert!(!dns_in_subtree("aexample.com", "example.com"));
        assert!(!dns_in_subtree("com", "example.com"));
    }

    #[test]
    fn ip_masks() {
        assert!(ip_constraint(&[192, 0, 2, 0, 255, 255, 255, 0]).is_some());
        assert!(ip_constraint(&[192, 0, 2, 0, 255, 0, 255, 0]).is_none());
        assert!(ip_constraint(&[192, 0, 2, 0]).is_none());
    }

    #[test]
    fn mailboxes() {
        assert!(parse_mailbox("a@example.com").is_some());
        assert!(parse_mailbox("*@example.com").is_some());
        assert!(parse_mailbox("@example.com").is_none());
        assert!(parse_mailbox("a@b@example.com").is_none());
        assert!(parse_mailbox("example.com").is_none());
    }

    fn dns(name: &str) -> GeneralName {
        GeneralName::DnsName(der::asn1::Ia5String::new(name).expect("ia5"))
    }

    #[test]
    fn comparison_budget_at_n_and_n_plus_one() {
        let nc = NameConstraints {
            permitted_subtrees: Some(vec![GeneralSubtree {
                base: dns("example.com"),
                minimum: 0,
                maximum: None,
            }]),
            excluded_subtrees: None,
        };
        let constraints = Constraints::new(&nc).expect("valid constraints");
        let subject = Name::default();
        // One permitted subtree: one comparison per name.
        let names: Vec<GeneralName> = (0..MAX_NAME_CONSTRAINT_COMPARISONS)
            .map(|i| dns(&format!("h{i}.example.com")))
            .collect();
        let mut budget = comparison_budget();
        assert_eq!(
            constraints.check(&subject, Some(&names), &mut budget),
            Ok(())
        );
        assert_eq!(budget, 0);
        let mut more = names;
        more.push(dns("one-more.example.com"));
        let mut budget = comparison_budget();
        assert_eq!(
            constraints.check(&subject, Some(&more), &mut budget),
            Err(NameError::WorkLimitExceeded)
        );
    }

    #[test]
    fn wildcard_sans_against_constraints() {
        let permit = |base: &str| NameConstraints {
            permitted_subtrees: Some(vec![GeneralSubtree {
                base: dns(base),
                minimum: 0,
                maximum: None,
            }]),
            excluded_subtrees: None,
        };
        let exclude = |base: &str| NameConstraints {
            permitted_subtrees: None,
            excluded_subtrees: Some(vec![GeneralSubtree {
                base: dns(base),
                minimum: 0,
                maximum: None,
            }]),
        };
        let subject = Name::default();
        let san = [dns("*.example.com")];
        let check = |nc: &NameConstraints| {
            Constraints::new(nc).expect("valid").check(
                &subject,
                Some(&san),
                &mut comparison_budget(),
            )
        };
        assert_eq!(check(&permit("example.com")), Ok(()));
        assert_eq!(
            check(&permit("foo.example.com")),
            Err(NameError::NotPermitted)
        );
        assert_eq!(check(&exclude("bar.example.com")), Err(NameError::Excluded));
        assert_eq!(check(&exclude("example.org")), Ok(()));
    }
}
