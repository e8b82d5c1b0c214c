//! What runs with privileges in Pochta, and how they are given up: the
//! serving process binds its ports and opens its devices as root, then
//! becomes the unprivileged `pochta` user with no capabilities, sets
//! `no_new_privs` and confines itself with Landlock; the few tasks that
//! need root go through a separate helper process with a fixed request set.
//!
//! Layout:
//! - `request`: the helper's protocol and its checks, without I/O;
//! - `helper`: the helper process, and the server's handle on it;
//! - `user`: the `pochta` user: found, given the data folder, become;
//! - `caps`: capabilities, `no_new_privs`, `/proc/self/status`;
//! - `sandbox`: Landlock.
//!
//! This crate must not depend on any other Pochta crate: the system crate
//! (the clock) calls the helper through it.

pub mod caps;
pub mod helper;
pub mod request;
pub mod sandbox;
pub mod user;

pub use helper::{Helper, HELPER_COMMAND};
pub use sandbox::{confine, Confinement, Policy};
pub use user::{become_owner_of, become_user, hand_over, serving_user, User};
