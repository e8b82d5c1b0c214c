//! Shell completions and manual pages, generated from the command-line
//! definition itself (`clap_complete`, `clap_mangen`), so that they cannot
//! drift from what the binary accepts. The image build installs both.

use std::path::Path;

use clap::CommandFactory;

pub fn completions(shell: clap_complete::Shell) -> Result<(), String> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(shell, &mut cmd, "pochta", &mut std::io::stdout());
    Ok(())
}

pub fn man(dir: Option<&Path>) -> Result<(), String> {
    let cmd = crate::Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| format!("cannot write the manual pages to {}: {e}", dir.display()))
        }
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .map_err(|e| format!("cannot write the manual page: {e}")),
    }
}
