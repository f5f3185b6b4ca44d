//! `confianza verify`: the safety number with a contact, as digits and as a QR code.

use anyhow::{Context, Result, bail};
use confianza_client::messaging::Verification;

use super::profile::{self, Globals};

/// Digits per group when the safety number is printed.
const DIGITS_PER_GROUP: usize = 5;
/// Groups per printed line.
const GROUPS_PER_LINE: usize = 4;

/// `confianza verify ADDRESS`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The contact.
    pub address: String,
    /// The payload scanned from the contact's QR code (hex), to compare with ours.
    #[arg(long, value_name = "PAYLOAD")]
    pub scan: Option<String>,
    /// Record that you compared the safety numbers (with --scan: only if they match).
    #[arg(long, conflicts_with = "unmark_verified")]
    pub mark_verified: bool,
    /// Withdraw a previous --mark-verified.
    #[arg(long)]
    pub unmark_verified: bool,
    /// Accept a changed identity key for this contact (after comparing safety numbers);
    /// messages held meanwhile are then processed.
    #[arg(long)]
    pub accept: bool,
}

/// The 60 digits in lines of four groups of five.
pub fn grouped(digits: &str) -> Vec<String> {
    let groups: Vec<&str> = digits
        .as_bytes()
        .chunks(DIGITS_PER_GROUP)
        .map(|group| std::str::from_utf8(group).unwrap_or_default())
        .collect();
    groups
        .chunks(GROUPS_PER_LINE)
        .map(|line| line.join(" "))
        .collect()
}

/// `payload` as a QR code of Unicode half blocks.
pub fn qr_lines(payload: &[u8]) -> Result<String> {
    let code = qrcode::QrCode::new(payload).context("the payload does not fit a QR code")?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build())
}

/// Runs `confianza verify`.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    profile::block_on(profile::with_open(globals, async |client| {
        let address = args.address.as_str();
        if args.accept {
            let released = client
                .accept_identity(address)
                .await
                .with_context(|| format!("cannot accept the identity of {address}"))?;
            println!("accepted the current identity key of {address}");
            for event in &released {
                if let Some(line) =
                    super::receive::event_line(event, &super::receive::GroupNames::default())
                {
                    println!("{line}");
                }
            }
        }
        let fingerprint = client
            .safety_number(address)
            .await
            .with_context(|| format!("no safety number with {address}"))?;
        let digits = fingerprint.displayable().to_string();
        println!("safety number with {address} (the same on both sides):");
        for line in grouped(&digits) {
            println!("  {line}");
        }
        let payload = fingerprint.scannable().to_bytes();
        println!();
        print!("{}", qr_lines(&payload)?);
        println!();
        println!("scannable payload: {}", hex::encode(&payload));

        let mut matched = None;
        if let Some(scan) = &args.scan {
            let theirs =
                hex::decode(scan.trim()).context("--scan takes the payload in hexadecimal")?;
            let same = fingerprint
                .scannable()
                .compare(&theirs)
                .context("the scanned code cannot be compared")?;
            matched = Some(same);
        }
        if args.unmark_verified {
            client.set_verified(address, false).await?;
        } else if args.mark_verified && matched != Some(false) {
            client.set_verified(address, true).await?;
        }
        let state = match client.verification_of(address).await? {
            Verification::Verified => "verified by you",
            Verification::Certified => "certified by the organisation CA, not verified by you",
            Verification::Unverified => "neither certified nor verified",
        };
        println!("{address}: {state}");
        match matched {
            Some(true) => println!("the scanned code matches: same keys on both sides"),
            Some(false) => bail!(
                "the scanned code does NOT match: these are not the keys {address} sees; \
                 the conversation may be intercepted"
            ),
            None => {}
        }
        Ok(())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_digits_make_three_lines_of_four_groups() {
        let digits: String = (0..60).map(|i| char::from(b'0' + (i % 10) as u8)).collect();
        let lines = grouped(&digits);
        assert_eq!(
            lines,
            [
                "01234 56789 01234 56789",
                "01234 56789 01234 56789",
                "01234 56789 01234 56789"
            ]
        );
    }
}
