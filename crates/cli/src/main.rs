//! `confianza`: the command line of Confianza.
#![forbid(unsafe_code)]

mod commands;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Self-hosted end-to-end encrypted messaging with identity keys certified by your
/// organisation's own PKI.
#[derive(Parser)]
#[command(name = "confianza", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the whole system in-process and narrates it: CA, enrollment, a forged bundle
    /// refused, sessions, groups, attachments, safety numbers, calls, revocation.
    Demo(commands::demo::Args),
    /// Certificates: print one the way `openssl x509 -text` does.
    #[command(subcommand)]
    Cert(commands::cert::Command),
    /// Textbook RSA certificates, step by step, for teaching.
    #[command(subcommand)]
    Textbook(commands::textbook::Command),
    /// Prints a shell completion script.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(&args),
        Command::Cert(command) => commands::cert::run(command),
        Command::Textbook(command) => commands::textbook::run(command),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "confianza",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("confianza: {error:#}");
            ExitCode::FAILURE
        }
    }
}
