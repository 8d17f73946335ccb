//! Domain types of the key management service: identifiers and ARNs, key metadata and
//! its state machine, input validation with AWS's limits, and the closed set of AWS error
//! codes. Pure and synchronous, so the rules that decide what a user sees are unit tested
//! densely here and the services stay thin.

mod clock;
mod error;
mod ids;
mod key;
pub mod schedule;
pub mod validate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorCode, KmsError, KmsResult};
pub use ids::{alias_arn, key_arn, AccountId, KeyRef, Region};
pub use key::{KeyRecord, KeySpec, KeyState, KeyUsage, Origin, StateChange, Usage};
