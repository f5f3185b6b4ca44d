//! `confianza textbook`: RSA certificates with small numbers, every step shown.

use anyhow::Result;
use clap::Subcommand;
use confianza_pki::textbook;

#[derive(Subcommand)]
pub enum Command {
    /// Makes a CA key pair from two small primes (shows φ(n) and the extended Euclid steps).
    Keygen {
        #[arg(long)]
        p: u64,
        #[arg(long)]
        q: u64,
        #[arg(long)]
        e: u64,
    },
    /// Certifies a key: c = m^d mod n.
    Certify {
        /// The CA's private exponent.
        #[arg(long = "ca-d")]
        d: u64,
        /// The CA's modulus.
        #[arg(long = "ca-n")]
        n: u64,
        /// The key to certify.
        #[arg(long)]
        key: u64,
    },
    /// Checks a certificate: is c^e mod n the claimed key? (square-and-multiply, step by step)
    Verify {
        #[arg(long = "ca-e")]
        e: u64,
        #[arg(long = "ca-n")]
        n: u64,
        #[arg(long)]
        cert: u64,
        #[arg(long = "claimed-key")]
        claimed_key: u64,
    },
}

pub fn run(command: Command) -> Result<()> {
    let text = match command {
        Command::Keygen { p, q, e } => textbook::render_keygen(&textbook::keygen(p, q, e)?),
        Command::Certify { d, n, key } => {
            textbook::render_certification(&textbook::certify(d, n, key)?)
        }
        Command::Verify {
            e,
            n,
            cert,
            claimed_key,
        } => {
            let verification = textbook::verify(e, n, cert, claimed_key)?;
            let text = textbook::render_verification(&verification);
            if !verification.authentic {
                print!("{text}");
                anyhow::bail!("the certificate does not certify key {claimed_key}");
            }
            text
        }
    };
    print!("{text}");
    Ok(())
}
