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
    #[command(flatten)]
    globals: commands::profile::Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates this profile's keys, enrolls with the code from your RA officer and pins the
    /// organisation's root CA (its fingerprint is printed to compare out of band).
    Init(commands::init::Args),
    /// Sends a message.
    Send(commands::send::Args),
    /// Prints the messages that arrived (sender, time, verification state), then exits.
    Receive(commands::receive::Args),
    /// The terminal UI: conversations, live messages, delivery state, input.
    Chat(commands::chat::Args),
    /// Prints a stored conversation (with a contact or a group), oldest first: sent and
    /// received messages, times, delivery and read state, attachments by name.
    History(commands::history::Args),
    /// Shows the safety number with a contact (digits and QR code), compares a scanned code,
    /// records that you verified it.
    Verify(commands::verify::Args),
    /// Calls ADDRESS and sends a WAV file as SRTP audio over UDP (the SRTP master secret goes
    /// in an end-to-end encrypted message).
    Call(commands::call::CallArgs),
    /// Waits for a call, answers it and saves the audio received over SRTP as a WAV file;
    /// or, with --decline, declines it (the caller is told).
    Answer(commands::call::AnswerArgs),
    /// Groups: create, add, remove, leave, list.
    #[command(subcommand)]
    Group(commands::group::Command),
    /// Certificates: print one the way `openssl x509 -text` does; renew or revoke your own.
    #[command(subcommand)]
    Cert(commands::cert::Command),
    /// Runs the whole system in-process and narrates it: CA, enrollment, a forged bundle
    /// refused, sessions, groups, attachments, safety numbers, calls, revocation.
    Demo(commands::demo::Args),
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
    let globals = &cli.globals;
    let result = match cli.command {
        Command::Init(args) => commands::init::run(globals, args),
        Command::Send(args) => commands::send::run(globals, args),
        Command::Receive(args) => commands::receive::run(globals, args),
        Command::Chat(args) => commands::chat::run(globals, args),
        Command::History(args) => commands::history::run(globals, args),
        Command::Verify(args) => commands::verify::run(globals, args),
        Command::Call(args) => commands::call::run_call(globals, args),
        Command::Answer(args) => commands::call::run_answer(globals, args),
        Command::Group(command) => commands::group::run(globals, command),
        Command::Cert(command) => commands::cert::run(globals, command),
        Command::Demo(args) => commands::demo::run(&args),
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
