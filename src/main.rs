//! The `sn-wgpu` command line: parse, call one library function, print.

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sn-wgpu", version, about = "SoundNet training and inference on any GPU through wgpu")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter, the one sn-wgpu picks, its limits and timestamp support.
    Info,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Info => print!("{}", sn_wgpu::gpu::info::report()?),
    }
    Ok(())
}
