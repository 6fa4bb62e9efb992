use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    siaran::cli::run().await
}
