//! The local stack: DynamoDB Local, the template's tables, and a local API gateway that serves
//! every function's routes through the same handler code Lambda runs.

pub mod cognito_local;
pub mod dynamodb_local;
pub mod fixtures;
pub mod gateway;
pub mod local;
pub mod s3_events;
pub mod s3_local;
pub mod streams;
pub mod tables;
pub mod websocket;

pub use template::workspace_root;
