//! Every integration test in one binary (one link, one process): a module per area or concern,
//! all against the real functions on DynamoDB Local and the local S3 server that `./infra/test`
//! starts. Run one module with `./infra/test -p integration-tests -- canvases::`.

mod account;
mod api_keys;
mod auth;
mod canvases;
mod files;
mod fixtures;
mod gateway;
mod invitations;
mod jwt;
mod limits;
mod migrate;
mod model;
mod openapi;
mod realtime;
mod registry;
mod revocation;
mod security;
mod sessions;
mod teams;
mod workflows;
