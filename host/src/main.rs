use std::process::ExitCode;

fn main() -> ExitCode {
    match fail2pvefw::commands::run(fail2pvefw::cli::parse()) {
        Ok(done) => {
            if !done.is_empty() {
                fail2pvefw::output::line(&done);
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            fail2pvefw::log::failure(&failure);
            failure.exit_code()
        }
    }
}
