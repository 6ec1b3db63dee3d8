#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::run::<auth::Auth>().await
}
