#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::run::<docs::Docs>().await
}
