#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::run_events::<files::UploadCleanup>().await
}
