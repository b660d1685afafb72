//! Settling a session before checking that something did *not* happen, without waiting on the
//! wall clock: `corral_test_support::env::settled`. Included with
//! `#[path = "common/settle.rs"] mod settle;` beside `mod common;`.

pub(crate) use corral_test_support::env::settled;
