//! The rules of the product, one file per area, one function per operation.
//!
//! Functions here are synchronous and deterministic: time comes in as `now_ms`, effects go out
//! as return values. No sockets, no threads, no RocksDB types: a shard calls these, then
//! persists (through `store::Batch`) and pushes what they decided.

pub mod backup;
pub mod conversation;
pub mod error;
pub mod friend;
pub mod group;
pub mod ids;
pub mod message;
pub mod page;
pub mod presence;
pub mod ratelimit;
pub mod sync;
pub mod user;
pub mod web;
pub mod wire;

pub use error::DomainError;
