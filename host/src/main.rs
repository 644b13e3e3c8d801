use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match fail2pvefw::commands::run(fail2pvefw::cli::parse()) {
        Ok(done) => {
            if !done.is_empty() {
                // A closed stdout (fail2ban may not read it) is not a failure.
                let _ = writeln!(std::io::stdout(), "{done}");
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            fail2pvefw::log::failure(&failure);
            failure.exit_code()
        }
    }
}
