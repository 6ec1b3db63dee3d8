//! The realtime functions: the WebSocket API's `$connect` authorizer, its `$connect`,
//! `$disconnect` and `$default` routes, and the consumer of the data tables' DynamoDB Streams,
//! which pushes each change to the connections of its owner (or of its project's readers) only.
//!
//! Three functions rather than one: each takes one typed event, and each role gets only the
//! permissions it uses (the authorizer none on DynamoDB, the routes only writes of connections,
//! the pusher only lookups and deletes of them, and reads of memberships and projects).
//!
//! Why streams rather than a call from the write path: a push then can never fail, slow down or
//! undo a write; Lambda retries stream batches on its own; and the owner of a change is read
//! from the changed item's partition key, not from anything a client sent.

mod authorizer;
mod push;
mod routes;

pub use authorizer::Authorizer;
pub use push::Push;
pub use routes::Routes;
